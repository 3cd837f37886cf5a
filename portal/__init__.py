"""The Django project of the operations portal: settings, URLs, WSGI entry point."""
