"""Lambda function package: payment (CodeUri in template.yaml)."""
