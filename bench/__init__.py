"""Benchmarks that print figures: the API under gunicorn, the pipeline end to end."""
