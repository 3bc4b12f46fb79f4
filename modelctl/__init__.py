"""modelctl: one command-line tool and library to find, fetch, inspect and chat with language models."""

__version__ = "0.1.0"

from modelctl.errors import ModelctlError

__all__ = ["ModelctlError", "__version__"]
