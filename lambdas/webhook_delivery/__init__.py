"""Lambda function package: webhook_delivery (CodeUri in template.yaml)."""
