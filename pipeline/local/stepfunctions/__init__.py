"""A local stand-in for AWS Step Functions: an ASL interpreter and the Step Functions HTTP API."""
