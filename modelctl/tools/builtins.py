"""The built-in tools: harmless (they read the clock and modelctl's version, nothing else), so
that tools can be tried with no setup: `modelctl chat -T builtin "What time is it?"`.

Each is a plain function; its signature and docstring are its schema, as for `--functions`.
"""

from __future__ import annotations

from datetime import datetime

from modelctl.tools.functions import LocalFunction, local_functions
from modelctl.version import __version__


def now(timezone: str | None = None) -> str:
    """The current date and time, ISO 8601, in the local time zone unless one is named.

    Args:
        timezone: An IANA time zone name, such as UTC, Europe/Paris or America/New_York.
    """
    if not timezone:
        return datetime.now().astimezone().isoformat(timespec="seconds")
    from zoneinfo import ZoneInfo  # noqa: PLC0415 (zoneinfo: only where a time zone is named)

    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {timezone!r} (give an IANA name such as Europe/Paris)") from None
    return datetime.now(zone).isoformat(timespec="seconds")


def modelctl_version() -> str:
    """The version of modelctl, the program running these tools."""
    return __version__


def builtin_functions() -> list[LocalFunction]:
    """The built-in tools, in the order `tools list` shows them."""
    return local_functions((now, modelctl_version), "builtin")
