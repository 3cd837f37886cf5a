"""Lambda function package: order_events (CodeUri in template.yaml)."""
