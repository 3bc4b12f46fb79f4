"""`--fallback`: when a service fails before its answer begins with an error another service may
not have (rate limit, server error, timeout, no connection), the next one is asked instead.

    FallbackBackend(setup, "gpt-4o@openai", [("gpt-4o@azure-openai", open_next), ...], notify)

It is a Backend over the services in turn; each switch is told (`notify`) and recorded in the
setup's `route["fallbacks"]`. A rejected key (401), a bad request (400) or a model that is not
there (404) are the caller's to fix, and are raised as they are. An answer that has begun is
never switched: its text is already shown.

A failure of the whole endpoint (a rate limit, a server error, no connection, no answer in time)
would meet every service at the same address: the others there are skipped (said, and recorded
under `route["skipped"]`), and the next service elsewhere is asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from modelctl.backends.base import Chunk, GenerationParams, Message, RoutingBackend
from modelctl.errors import BackendError, ModelctlError, OfflineError

if TYPE_CHECKING:
    from modelctl.backends.base import Backend
    from modelctl.chat.resolve import ChatSetup


def retryable(exc: BaseException) -> bool:
    """Whether another service may answer where this error came from (see BackendError)."""
    return isinstance(exc, BackendError) and exc.retryable


def provider_wide(exc: BackendError) -> bool:
    """Whether `exc` says the endpoint is failing, not the one model: a rate limit (429), a server
    error (5xx), no connection, or no answer in time (a stream cut off before any text, or 408,
    409, 425, may be the request's own)."""
    from modelctl.transport.http_client import StreamInterrupted

    if isinstance(exc, OfflineError):
        return True
    if exc.status is not None:
        return exc.status == 429 or exc.status >= 500
    return exc.retryable and not isinstance(exc, StreamInterrupted)


def endpoint_of(backend: Any) -> str | None:
    """The scheme, host and port a service is reached at (None: it runs in this process)."""
    from urllib.parse import urlsplit

    endpoint = getattr(backend, "endpoint", None)
    if not isinstance(endpoint, str) or "://" not in endpoint:
        return None
    parts = urlsplit(endpoint)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _close(chunks: Any) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class FallbackBackend(RoutingBackend):
    """The services of a chat, tried in order until one begins an answer."""

    kind = "fallback"

    def __init__(self, setup: "ChatSetup", service: str, others: Sequence[tuple[str, Callable[[], "ChatSetup"]]],
                 notify: Callable[[str], None]) -> None:
        self.setup = setup
        self.current: "Backend" = setup.backend
        self.service = service
        self.others = list(others)
        self.notify = notify
        self._debug: bool | None = None
        self._down: set[str] = set()  # endpoints that failed as a whole
        setup.route.setdefault("service", service)
        setup.route.setdefault("fallbacks", [])

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """The current service's answer, once its first text (or its end) has arrived; a
        retryable failure before then moves on to the next service."""
        while True:
            chunks: Any = None
            head: list[Chunk] = []
            try:
                chunks = iter(self.current.chat(messages, params))
                for chunk in chunks:
                    head.append(chunk)
                    if chunk.text or chunk.final:
                        break
            except BackendError as exc:
                _close(chunks)
                if not retryable(exc) or not self._switch(exc):
                    raise
                continue
            except BaseException:
                _close(chunks)
                raise
            return self._answer(head, chunks)

    @staticmethod
    def _answer(head: list[Chunk], chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        try:
            yield from head
            yield from chunks
        finally:
            _close(chunks)

    def _switch(self, failure: BackendError) -> bool:
        """Open the next service that opens, at an endpoint that has not failed as a whole;
        False when none is left."""
        where = endpoint_of(self.current)
        if where is not None and provider_wide(failure):
            self._down.add(where)
        skipped: list[str] = []
        while self.others:
            label, open_next = self.others.pop(0)
            try:
                setup = open_next()
            except ModelctlError as exc:
                self.notify(f"{label} cannot be used ({exc}); skipping it")
                continue
            if endpoint_of(setup.backend) in self._down:
                setup.backend.close()
                skipped.append(label)
                continue
            self._say_skipped(skipped, failure)
            self._use(setup, label, failure)
            return True
        self._say_skipped(skipped, failure)
        return False

    def _say_skipped(self, skipped: list[str], failure: BackendError) -> None:
        if not skipped:
            return
        self.setup.route.setdefault("skipped", []).extend(skipped)
        shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        where = " and ".join(sorted(self._down))
        self.notify(f"{where} fails for every model ({failure.message}); skipping the other services there: {shown}")

    def _use(self, setup: "ChatSetup", label: str, failure: BackendError) -> None:
        """Switch to `setup`'s service, saying so."""
        self.notify(f"{self.service} failed ({failure.message}); falling back to {label}")
        self.setup.route["fallbacks"].append({"from": self.service, "to": label, "error": failure.message,
                                              "status": failure.status})
        self.current.close()
        self.current, self.service = setup.backend, label
        self.setup.model_id, self.setup.entry, self.setup.deployment = setup.model_id, setup.entry, setup.deployment
        self.setup.local = setup.local
        self.setup.route["service"] = label
        if self._debug is not None:
            self.current.set_debug(self._debug)

    def describe(self) -> dict[str, Any]:
        return {**self.current.describe(), "service": self.service}

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled
        self.current.set_debug(enabled)
