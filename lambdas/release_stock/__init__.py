"""Lambda function package: release_stock (CodeUri in template.yaml)."""
