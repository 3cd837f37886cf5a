"""Integration tests of the order API: DynamoDB Local, PostgreSQL, Redis, gunicorn."""
