"""The operations pages under /ops/: each view translates input, calls one use case (or reads
through the pipeline's adapters), and renders the outcome in the admin's look."""
