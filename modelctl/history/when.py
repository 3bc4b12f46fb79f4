"""Ages and dates as the history commands take them: `30d`, `12h`, `2w`, or `2026-01-31`."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from modelctl.errors import UsageError

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+)\s*([mhdw])\s*", re.IGNORECASE)


def parse_age(text: str, flag: str) -> float:
    """Seconds in an age such as `30d` (units: m minutes, h hours, d days, w weeks)."""
    match = _AGE.fullmatch(text)
    if not match:
        raise UsageError(f"{flag} {text!r}: expected a number and a unit, such as 30d, 12h, 2w or 90m")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_since(text: str, flag: str, *, now: float | None = None) -> float:
    """The moment `text` names, as a Unix time: an age back from now (`7d`) or a local date
    (`2026-01-31`, from its midnight) or date and time (`2026-01-31T08:00`)."""
    now = time.time() if now is None else now
    if _AGE.fullmatch(text):
        return now - parse_age(text, flag)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a date (2026-01-31), a date and time, or an age such as 7d") from None
    return moment.timestamp()  # naive: local time


def iso(moment: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, to the second."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")
