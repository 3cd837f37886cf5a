"""Tests: the operations portal (/ops/) on DynamoDB Local, the local runtime, PostgreSQL."""
