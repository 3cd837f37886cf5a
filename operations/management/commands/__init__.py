"""`manage.py replay_dlq`."""
