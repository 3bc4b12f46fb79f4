"""`modelctl serve`: one OpenAI-compatible endpoint for every model in the registry."""
