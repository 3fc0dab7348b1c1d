"""HTTP: the ASGI application, the inference handler and the admin API."""
