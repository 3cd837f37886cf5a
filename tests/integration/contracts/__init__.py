"""Contract tests: the same cases against each in-memory fake and the adapter it stands in for."""
