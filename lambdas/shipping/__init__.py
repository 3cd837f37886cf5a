"""Lambda function package: shipping (CodeUri in template.yaml)."""
