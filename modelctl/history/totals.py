"""Totals of `History.usage` rows: their sum, a row for every day of a period (days without
turns as zeros), the period's first day. Shared by `modelctl usage` and `serve`'s /api/usage."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Sequence

# The counters of a usage row that add up; `cost` and `cache_saved` are None where no turn knew them.
COUNTS = ("turns", "prompt_tokens", "completion_tokens", "cached_tokens", "priced_turns")
KNOWN_SUMS = ("cost", "cache_saved")


def known_sum(values: Iterable[float | None]) -> float | None:
    """The sum of the values that are known; None when none is."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def total(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rows' counters summed (a row without a counter counts 0 of it)."""
    summed: dict[str, Any] = {name: sum(r.get(name, 0) for r in rows) for name in COUNTS}
    summed.update({name: known_sum(r.get(name) for r in rows) for name in KNOWN_SUMS})
    return summed


def empty_row(key: str, value: str) -> dict[str, Any]:
    """A usage row of no turns."""
    return {key: value, **{name: 0 for name in COUNTS}, **{name: None for name in KNOWN_SUMS}}


def every_day(rows: Sequence[Mapping[str, Any]], first: date, last: date) -> list[dict[str, Any]]:
    """`usage(by="day")` rows, one per day from `first` to `last` (oldest first), a day without
    turns as a row of zeros; rows outside the period are left out."""
    by_day = {r["day"]: r for r in rows}
    days = []
    for n in range((last - first).days + 1):
        day = (first + timedelta(days=n)).isoformat()
        days.append(dict(by_day[day]) if day in by_day else empty_row("day", day))
    return days


def days_back(days: int, today: date | None = None) -> tuple[date, float]:
    """The first (local) day of the `days` days that end today, and its midnight as a Unix time."""
    first = (today or date.today()) - timedelta(days=days - 1)
    return first, time.mktime(first.timetuple())
