"""A call bounded in wall-clock time, whatever it waits on.

    done, value = within(5.0, fetch, name="probe http://host/health")

The call runs in a daemon thread of its own and is left behind at the deadline: nothing else
bounds a server that sends its headers a byte at a time (each read is quick), nor a slow name
lookup. What the call raises is raised again in the caller's thread.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def within(timeout: float, call: Callable[[], T], *, name: str = "bounded call") -> tuple[bool, T | None]:
    """(True, what `call` returned) if it ended within `timeout` seconds, else (False, None)."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return False, None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return True, outcome[0]
