"""Adapters that carry the domain to AWS: DynamoDB, SQS and Step Functions."""
