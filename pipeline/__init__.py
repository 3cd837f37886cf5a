"""The order pipeline: domain rules, use cases and AWS adapters (no Django here)."""
