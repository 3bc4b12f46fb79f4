"""Giving up, from another thread, on a streamed answer whose read is blocked.

    scope = Abandonment()
    context.run(ABANDONMENT.set, scope)   # the work's thread: streams opened there register
    ...
    scope.abandon()                        # any thread: each registered stream's read ends now

A thread blocked reading a service's stream sees no cancel flag until the service sends
something or the read timeout (300 s) passes: a silent service would hold it that long after
its caller left. A stream opened under an `Abandonment` registers its socket; `abandon()` shuts
the socket down, which wakes the blocked read at once (closing it from another thread would
not), and the read ends as a broken connection.
"""

from __future__ import annotations

import contextvars
import itertools
import socket
import threading
from typing import Any, Callable

ABANDONMENT: "contextvars.ContextVar[Abandonment | None]" = contextvars.ContextVar("modelctl_abandonment",
                                                                                   default=None)


class Abandonment:
    """The streams one piece of work reads, to be ended together when it is given up on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._enders: dict[int, Callable[[], None]] = {}
        self._keys = itertools.count()
        self.abandoned = False

    def register(self, end: Callable[[], None]) -> Callable[[], None]:
        """Have `abandon()` call `end`; returns what forgets it again. Once abandoned, `end` is
        called at once."""
        with self._lock:
            if not self.abandoned:
                key = next(self._keys)
                self._enders[key] = end
                return lambda: self._forget(key)
        end()
        return lambda: None

    def _forget(self, key: int) -> None:
        with self._lock:
            self._enders.pop(key, None)

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            enders, self._enders = list(self._enders.values()), {}
        for end in enders:
            end()


def abandoned() -> bool:
    """Whether the current thread's work has been given up on."""
    scope = ABANDONMENT.get()
    return scope is not None and scope.abandoned


def on_abandon(response: Any) -> Callable[[], None]:
    """Register `response`'s connection with the current thread's Abandonment, if any; returns
    what forgets it (call it when the stream is closed)."""
    scope = ABANDONMENT.get()
    if scope is None:
        return lambda: None
    sock = response_socket(response)
    if sock is None:
        return lambda: None

    def end() -> None:
        if not response.is_closed:  # a closed response's connection may serve another request now
            _shut(sock)

    return scope.register(end)


def response_socket(response: Any) -> socket.socket | None:
    """The socket an httpx response is read from: its transport's `network_stream` (httpcore's,
    and modelctl's plain-http transport's), where it has one."""
    stream = getattr(response, "extensions", {}).get("network_stream")
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - a transport that cannot say: nothing to shut down
        return None
    return sock if isinstance(sock, socket.socket) else None


def _shut(sock: socket.socket) -> None:
    try:
        # the plain socket's shutdown, also under TLS: SSLSocket's own would drop its TLS state
        # under the reading thread's feet
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed, or never connected
        pass
