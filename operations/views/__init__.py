"""The operations pages under /ops/, in the admin's look.

Each view translates input, calls one pipeline use case (a write) or operations.selectors (a
read), and renders the outcome.
"""
