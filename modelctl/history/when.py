"""Ages and dates as the history commands take them: `30d`, `12h`, `2w`, or `2026-01-31`."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone

from modelctl.errors import UsageError

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+)\s*([mhdw])\s*", re.IGNORECASE)
# The longest age taken: 10,000 years, older than any date (a longer one is a typo, and its
# digits could be too many for Python to read).
MAX_AGE_S = 10_000 * 365 * 86400


def parse_age(text: str, flag: str) -> float:
    """Seconds in an age such as `30d` (units: m minutes, h hours, d days, w weeks)."""
    match = _AGE.fullmatch(text)
    if not match:
        raise UsageError(f"{flag} {text!r}: expected a number and a unit, such as 30d, 12h, 2w or 90m")
    digits = match.group(1).lstrip("0") or "0"
    unit = _UNITS[match.group(2).lower()]
    if len(digits) > len(str(MAX_AGE_S)) or int(digits) * unit > MAX_AGE_S:
        raise UsageError(f"{flag} {_shown(text)}: an age of at most 10,000 years")
    return int(digits) * unit


def parse_since(text: str, flag: str, *, now: float | None = None) -> float:
    """The moment `text` names, as a Unix time: an age back from now (`7d`) or a local date
    (`2026-01-31`, from its midnight) or date and time (`2026-01-31T08:00`)."""
    now = time.time() if now is None else now
    if _AGE.fullmatch(text):
        return now - parse_age(text, flag)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {_shown(text)}: expected a date (2026-01-31), a date and time, "
                         "or an age such as 7d") from None
    try:
        return moment.timestamp()  # naive: local time
    except (ValueError, OverflowError, OSError):
        # At the ends of the calendar (0001-01-01, 9999-12-31) local time cannot be worked out:
        # taken as UTC, hours make no difference there.
        return (moment.replace(tzinfo=moment.tzinfo or timezone.utc) - _EPOCH).total_seconds()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:30]}…")


def iso(moment: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, to the second; None for none, or one past the calendar
    (a hand-edited database)."""
    if moment is None:
        return None
    try:
        return datetime.fromtimestamp(math.floor(moment), timezone.utc).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return None
