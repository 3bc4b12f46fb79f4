"""`--fallback`: when a service fails before its answer begins with an error another service may
not have (rate limit, server error, timeout, no connection), the next one is asked instead.

    FallbackBackend(setup, "gpt-4o@openai", [("gpt-4o@azure-openai", open_next), ...], notify)

It is a Backend over the services in turn; each switch is told (`notify`) and recorded in the
setup's `route["fallbacks"]`. A rejected key (401), a bad request (400) or a model that is not
there (404) are the caller's to fix, and are raised as they are. An answer that has begun is
never switched: its text is already shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from modelctl.backends.base import Chunk, GenerationParams, Message, RoutingBackend
from modelctl.errors import BackendError, ModelctlError

if TYPE_CHECKING:
    from modelctl.backends.base import Backend
    from modelctl.chat.resolve import ChatSetup


def retryable(exc: BaseException) -> bool:
    """Whether another service may answer where this error came from (see BackendError)."""
    return isinstance(exc, BackendError) and exc.retryable


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
        """Open the next service that opens; False when none is left."""
        while self.others:
            label, open_next = self.others.pop(0)
            try:
                setup = open_next()
            except ModelctlError as exc:
                self.notify(f"{label} cannot be used ({exc}); skipping it")
                continue
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
            return True
        return False

    def describe(self) -> dict[str, Any]:
        return {**self.current.describe(), "service": self.service}

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled
        self.current.set_debug(enabled)
