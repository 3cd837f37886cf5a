"""AWS Lambda handlers: each translates its event, calls one pipeline use case, translates back."""
