"""Tests: unit tier."""
