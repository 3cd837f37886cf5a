"""The order API's migrations: API keys and usage plans."""
