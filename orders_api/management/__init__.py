"""Management commands of the order API."""
