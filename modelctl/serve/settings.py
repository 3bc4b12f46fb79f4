"""config.toml's `[serve]` table and the words its values are written in (`5m`, `8GB`)."""

from __future__ import annotations

import math
import re
from typing import Any

from modelctl.chat.settings import SERVE_KEYS, check_table
from modelctl.config import get_paths, user_config
from modelctl.errors import UsageError

_DURATION = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)


def serve_config() -> dict[str, Any]:
    """The [serve] table, type-checked; its fallback groups lists of names."""
    data, where = user_config(), str(get_paths().config_file)
    table = check_table(data.get("serve", {}), "serve", SERVE_KEYS, where)
    for name, services in table.get("fallback", {}).items():
        if not isinstance(services, list) or not services or not all(isinstance(s, str) and s for s in services):
            raise UsageError(f"{where}: serve.fallback.{name} must be a list of model names")
    return table


def parse_duration(text: str, what: str) -> float | None:
    """Seconds from `30s`, `5m`, `1h`, `250ms` or a bare number of seconds; a negative value is
    None (forever)."""
    found = _DURATION.fullmatch(text)
    if not found:
        raise UsageError(f"{what} takes a duration like 30s, 5m or 1h (-1: never), not {text!r}")
    value = float(found.group(1)) * _SECONDS[(found.group(2) or "").lower() or None]
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite duration")
    return None if value < 0 else value


def parse_size(text: str, what: str) -> int:
    """Bytes from `8GB`, `512MiB`, `2g` or a bare number of bytes (decimal and binary units alike
    are read as binary: memory is counted in GiB)."""
    found = _SIZE.fullmatch(text)
    if not found:
        raise UsageError(f"{what} takes a size like 8GB or 512MiB, not {text!r}")
    unit = (found.group(2) or "b").lower()[0]
    value = float(found.group(1)) * 1024 ** "bkmgt".index(unit)
    if not math.isfinite(value) or value < 1:
        raise UsageError(f"{what}: {text!r} is not a size")
    return int(value)
