"""The HTTP API: thin FastAPI routers over admission, the store and the reports; no logic of its own."""
