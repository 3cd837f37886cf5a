"""`manage.py create_api_key`."""
