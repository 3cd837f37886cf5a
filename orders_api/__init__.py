"""The order API: POST /submitorder, GET /orders/<id>, API keys, usage plans and their limits."""
