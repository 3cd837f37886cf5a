"""Lambda function package: order_processing (CodeUri in template.yaml)."""
