"""FastAPI application: routers, auth, live stream, the web console."""
