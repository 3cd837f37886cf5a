"""Tests: browser tier."""
