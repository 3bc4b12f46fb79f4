"""modelctl's version, in a module of its own: what needs only the version (`--version`, the
User-Agent, cache keys) imports it without the package's public API."""

__version__ = "0.1.0"
