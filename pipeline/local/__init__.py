"""The local runtime: template.yaml's backbone on this machine, with local AWS endpoints."""
