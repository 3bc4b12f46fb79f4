"""`modelctl serve`: an OpenAI-compatible HTTP server over the registry, local models kept warm."""
