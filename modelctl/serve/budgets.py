"""Per-key budgets of `modelctl serve`: what a key's label spent in the current UTC day and month,
read from the history database (the turns `serve` logs with that label), checked before a request
is forwarded.

The spend is read afresh for every check (a short-lived connection and one index range per
budget: well under a millisecond on a history of 100,000 turns), never cached: a turn logged by
another request shows at once. Requests that run at the same time see each other through `hold`:
the most each may cost counts as spent until its turn is logged. Another server process on the
same history is seen only once its turns are logged.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from modelctl.history import History
from modelctl.serve.auth import ApiKey, RequestRefused

DAY_S = 86400
# Sums of float costs are not exact: a spend this close to the cap is at the cap.
_EPSILON_USD = 1e-9


class OverBudget(RequestRefused):
    """A request its key's daily or monthly budget cannot pay for (429). `retry_after`: seconds
    until that budget starts again."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Period:
    """A budget's period, as UTC Unix times: [start, end)."""

    name: str  # "daily" | "monthly"
    start: float
    end: float


def day_of(now: float) -> Period:
    start = now - now % DAY_S  # Unix time counts no leap seconds: this is 00:00 UTC
    return Period("daily", start, start + DAY_S)


def month_of(now: float) -> Period:
    first = datetime.fromtimestamp(now, timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return Period("monthly", first.timestamp(), following.timestamp())


def usd(value: float) -> str:
    """Dollars as a person reads them: cents from a cent up, else the digits that matter."""
    if value == 0 or value >= 0.01:
        return f"${value:,.2f}"
    shown = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"${shown}" if shown != "0" else "under $0.000001"


class Budgets:
    """The budgets' check against the history database at `history_path` (default: the
    history's own). `clock` gives the Unix time (a test's stand-in for another day)."""

    def __init__(self, history_path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.history_path = history_path
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, float] = {}  # label -> the most the requests under way may cost

    def check(self, key: ApiKey | None, estimate_usd: float | None) -> None:
        """OverBudget (429) when what `key` spent in the current UTC day or month, with what its
        requests under way may cost, plus `estimate_usd` (the most this request may cost: 0 for a
        free model, None when unknown) is over either budget; a budget already used up refuses a
        request whose cost is unknown too. A free request, None, or a key without budgets always
        passes."""
        with self._lock:
            self._check(key, _known(estimate_usd))

    @contextmanager
    def hold(self, key: ApiKey | None, estimate_usd: float | None) -> Iterator[None]:
        """`check`, then count `estimate_usd` as spent by `key` until the block ends: end it once
        the request's turn is logged, so that no request running meanwhile overlooks its cost."""
        estimate = _known(estimate_usd)
        amount = estimate or 0.0
        label = key.label if key is not None and _has_budget(key) else None
        with self._lock:
            self._check(key, estimate)
            if label is not None:
                self._held[label] = self._held.get(label, 0.0) + amount
        try:
            yield
        finally:
            if label is not None:
                with self._lock:
                    left = self._held.pop(label) - amount
                    if left > _EPSILON_USD:
                        self._held[label] = left

    def spent(self, label: str, period: Period) -> float:
        """USD the requests with `label` spent in `period`, as logged."""
        with History(self.history_path) as history:
            return history.spent(label, period.start)

    def _check(self, key: ApiKey | None, estimate: float | None) -> None:
        if key is None or not _has_budget(key):
            return
        now = self._clock()
        over: list[tuple[Period, float, float]] = []
        for cap, period in ((key.budget_month, month_of(now)), (key.budget_day, day_of(now))):
            if cap is None:
                continue
            spent = self.spent(key.label, period) + self._held.get(key.label, 0.0)
            if _over(spent, cap, estimate):
                over.append((period, spent, cap))
        if over:  # the month's first: waiting for the next day would not help
            raise _refusal(key.label, *over[0], estimate, now)


def _has_budget(key: ApiKey) -> bool:
    return key.budget_day is not None or key.budget_month is not None


def _known(estimate: float | None) -> float | None:
    """An estimate that is a cost (finite, not below 0), or None: unknown."""
    return estimate if estimate is not None and math.isfinite(estimate) and estimate >= 0 else None


def _over(spent: float, cap: float, estimate: float | None) -> bool:
    """Whether a request that may cost `estimate` (None: unknown) is beyond `cap`. A free request
    never is: a budget is of money. One of unknown cost is once the budget is used up."""
    if estimate is None:
        return spent >= cap - _EPSILON_USD
    return estimate > 0 and spent + estimate > cap + _EPSILON_USD


def _refusal(label: str, period: Period, spent: float, cap: float, estimate: float | None, now: float) -> OverBudget:
    cost = "" if estimate is None or spent >= cap else f", and this request may cost up to {usd(estimate)}"
    again = datetime.fromtimestamp(period.end, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return OverBudget(f"key {label!r} has spent {usd(spent)} of its {usd(cap)} {period.name} budget{cost}; "
                      f"the budget starts again at {again}", retry_after=max(1, math.ceil(period.end - now)))
