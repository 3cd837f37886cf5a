"""`manage.py pipeline_status`, `populate_inventory`, `replay_dlq`."""
