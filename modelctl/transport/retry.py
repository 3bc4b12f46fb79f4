"""Whether and when to try a request again: bounded retries with exponential backoff on 429, 5xx
and connection errors, honouring `Retry-After` (and `retry-after-ms`); the policy's `sleep` is
injectable. `run_with_retries` drives any call (httpx, huggingface_hub, ollama) with a policy and
a function that classifies its failures.

A host that cannot be reached at all is never retried, whoever asks: a name that does not resolve
(offline, or a wrong host) or a refused connection (nothing listens there) gives the same answer a
second later. The callers report it as OfflineError (exit 9) at once. A connection that breaks or
times out is retried."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from modelctl.transport.abandon import abandoned

if TYPE_CHECKING:
    from modelctl.transport.debug_log import DebugLog

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass
class RetryPolicy:
    """Bounded retries with exponential backoff. `retries` is the number of extra attempts;
    a `Retry-After` longer than `max_wait` is not waited for (the error is reported at once)."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt number `attempt + 1` (0-based), or None to give up."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        return min(self.max_backoff, self.backoff * (2.0**attempt))


NO_RETRY = RetryPolicy(retries=0)


def default_retry() -> RetryPolicy:
    """The policy for this process: `MODELCTL_RETRIES` extra attempts (default 3)."""
    raw = os.environ.get("MODELCTL_RETRIES", "")
    try:
        retries = int(raw) if raw else 3
    except ValueError:
        retries = 3
    return RetryPolicy(retries=max(0, retries))


def unreachable(exc: BaseException) -> str | None:
    """Why `exc` (or an exception it was raised from) says the host cannot be reached at all, or
    None: "the host name does not resolve (…)" or "connection refused"."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return None


@dataclass
class Attempt:
    """One failed try, as `run_with_retries` sees it."""

    retryable: bool
    retry_after: float | None = None
    reason: str = ""


def run_with_retries(call: Callable[[], T], classify: Callable[[BaseException], Attempt | None],
                     policy: RetryPolicy, debug: "DebugLog | None" = None) -> T:
    """Call `call` until it succeeds, fails for good, or the policy gives up.

    `classify` looks at an exception: None means "not ours, re-raise"; otherwise whether it may
    be retried and after how long. The last exception propagates unchanged.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None or not verdict.retryable or unreachable(exc) or abandoned():
                raise
            wait = policy.delay(attempt, verdict.retry_after)
            if wait is None:
                raise
            if debug is not None:
                debug.line("retry", f"{verdict.reason or type(exc).__name__}; attempt {attempt + 2} "
                           f"of {policy.retries + 1} in {wait:g} s")
            if wait > 0:
                policy.sleep(wait)
                if abandoned():  # given up on while it waited: no request for a caller gone
                    raise
            attempt += 1
