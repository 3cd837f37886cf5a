"""Lambda function package: manual_intervention (CodeUri in template.yaml)."""
