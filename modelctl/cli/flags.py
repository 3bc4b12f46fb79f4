"""Checks on flag values that every command shares."""

from __future__ import annotations

from modelctl.errors import UsageError


def require_values(**flags: str | None) -> None:
    """An empty value for a flag that names something (`--template ''`) is a mistake, not a
    request for the default: say so rather than ignore the flag. Keyword names are flag names
    with `_` for `-`."""
    for name, value in flags.items():
        if value is not None and not value.strip():
            raise UsageError(f"--{name.replace('_', '-')} needs a value; it was given an empty one")
