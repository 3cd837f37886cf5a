"""Lambda function package: sqs_processor (CodeUri in template.yaml)."""
