"""A generation that runs in a worker thread, read from the event loop.

llama.cpp and the providers' clients block, so each request's work runs in a thread of its own
and hands what it makes to the event loop, which writes it to the client. The reader stopping
(the client went away, the server shuts down) sets the request's cancel event: the worker's next
`emit` raises `Cancelled`, which closes the generation (a local model's slot is freed at once),
and a worker waiting for a busy model sees it through `CANCEL`. A worker blocked reading a
service that has gone silent is woken too: the streams it opened are abandoned
(transport/abandon), so it does not wait out the read timeout for a reader that left.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import Executor
from typing import Any, AsyncIterator, Callable

from modelctl.transport.abandon import ABANDONMENT, Abandonment

# The cancel event of the request the current worker thread serves (None outside a request).
CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("modelctl_serve_cancel", default=None)

Emit = Callable[[Any], None]
_END = object()


class Cancelled(Exception):
    """The request's reader is gone: stop working for it."""


def cancelled() -> bool:
    """Whether the request this thread serves was cancelled."""
    event = CANCEL.get()
    return event is not None and event.is_set()


class ThreadStream:
    """`work(emit)` run in `executor`; iterate to read what it emits, in order. An exception
    `work` raises is raised to the reader after what it emitted before. `stop()` (or leaving
    the iteration early) cancels the work."""

    def __init__(self, executor: Executor, work: Callable[[Emit], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancel = threading.Event()
        self._streams = Abandonment()
        context = contextvars.copy_context()
        context.run(CANCEL.set, self.cancel)
        context.run(ABANDONMENT.set, self._streams)
        self._future = self._loop.run_in_executor(executor, context.run, self._run, work)

    def _run(self, work: Callable[[Emit], None]) -> None:
        outcome: Any = _END
        try:
            work(self._emit)
        except Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 (handed to the reader, which raises it)
            outcome = _Failure(exc)
        self._put(outcome)
        if outcome is not _END:
            self._put(_END)

    def _emit(self, item: Any) -> None:
        if self.cancel.is_set():
            raise Cancelled
        self._put(item)

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is gone
            self.cancel.set()

    async def next(self) -> Any:
        """The next item; raises StopAsyncIteration at the end, and what `work` raised."""
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        try:
            while True:
                try:
                    yield await self.next()
                except StopAsyncIteration:
                    return
        finally:
            self.stop()

    def stop(self) -> None:
        self.cancel.set()
        self._streams.abandon()

    def fail(self, exc: BaseException) -> None:
        """End the reading now with `exc` (raised by the next read, before anything still
        queued) and cancel the work. Called on the event loop."""
        self.stop()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_Failure(exc))

    async def finished(self) -> None:
        """Wait until the worker has returned (its model slot released)."""
        await self._future


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
