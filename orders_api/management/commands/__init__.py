"""populate_inventory, create_api_key, pipeline_status."""
