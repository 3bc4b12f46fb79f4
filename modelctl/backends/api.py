"""What every server and API backend shares: construction from a registry deployment, keys,
the debug log, `describe()` (registry metadata plus what the live service says), and the loop
that turns a provider's stream of events into `Chunk`s.

A provider module supplies the URL and body of a request and a function that reads one event
of its stream into a `StreamState`; this module does the rest the same way for all of them,
including for the backends that talk through a provider's own client library: the `-o` options
of a request (`coerce_option`, `pop_stream_flag`), the timing of an answer (`StreamClock`), and
an iterator of chunks that releases its connection when closed (`ClosingIterator`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from modelctl.backends.base import BaseBackend, Chunk, GenerationParams, Message, Timings, ToolCall, Usage
from modelctl.backends.images import carry_images
from modelctl.backends.tool_wire import ToolCallAssembly, settle
from modelctl.errors import ModelctlError
from modelctl.keys import KeyInfo
from modelctl.redaction import redact
from modelctl.transport import wire
from modelctl.transport.debug_log import DebugLog
from modelctl.transport.http_client import ErrorContext, HttpClient, LineStream
from modelctl.transport.retry import NO_RETRY, RetryPolicy, default_retry
from modelctl.transport.sse import Event
from modelctl.transport.urls import service_url
from modelctl.transport.wire import Wire, WireError, plain

if TYPE_CHECKING:
    import httpx

    from modelctl.registry import Deployment


# --- options and timing of a chat request -----------------------------------------------------------------


def coerce_option(value: Any) -> Any:
    """A `-o KEY=VALUE` value for a JSON body: JSON when it parses (numbers, true/false, null,
    objects, lists, at most `wire.MAX_DEPTH` deep), else the string itself."""
    if not isinstance(value, str):
        return value
    try:
        return wire.loads(value)
    except ValueError:
        return value


def pop_stream_flag(extra: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(stream?, the other options). `-o stream=false` asks for one whole answer."""
    options = {k: coerce_option(v) for k, v in extra.items()}
    stream = options.pop("stream", True)
    return stream is not False and str(stream).lower() not in ("false", "0", "no", "off"), options


class StreamClock:
    """First-token time and generation rate, measured on this side of the connection."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None

    def tick(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now

    def timings(self, completion_tokens: int | None, **extra: Any) -> Timings:
        rate = None
        if (completion_tokens and completion_tokens >= 2 and self.first is not None and self.last
                and self.last > self.first):
            rate = (completion_tokens - 1) / (self.last - self.first)
        return Timings(
            first_token_s=None if self.first is None else self.first - self.start,
            tokens_per_second=rate,
            **extra,
        )

    def total(self) -> float:
        return time.perf_counter() - self.start


class ClosingIterator:
    """An iterator of chunks that releases its connection when closed, even if it was never
    iterated (a generator that never started would not run its `finally`)."""

    def __init__(self, gen: Iterator[Any], closers: Sequence[Callable[[], None]]) -> None:
        self._gen = gen
        self._closers = list(closers)

    def __iter__(self) -> "ClosingIterator":
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        try:
            close = getattr(self._gen, "close", None)
            if close is not None:
                close()
        finally:
            closers, self._closers = self._closers, []
            for fn in closers:
                fn()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@dataclass
class StreamState:
    """What a stream has said so far, besides its text."""

    finish_reason: str | None = None
    usage: Usage | None = None
    done: bool = False  # the provider's end-of-stream marker arrived
    reasoning: str = ""  # a whole answer's reasoning, sent apart from its text
    calls: ToolCallAssembly = field(default_factory=ToolCallAssembly)  # the tool calls asked for, as they stream
    # … or, from a backend that gathers an answer's calls itself (Anthropic, Gemini), whole
    tool_calls: tuple[ToolCall, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# What a turn carries besides its role and content: an assistant's tool calls, a tool result's call.
TOOL_FIELDS = ("tool_calls", "tool_call_id", "name")


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """(the system messages joined, the other turns) for APIs that take the system apart."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [carry_images(m, {"role": m["role"], "content": m["content"] or "",
                              **{k: m[k] for k in TOOL_FIELDS if m.get(k) is not None}})
             for m in messages if m["role"] != "system"]
    return ("\n\n".join(system) if system else None), turns


class ApiBackend(BaseBackend):
    """A backend that talks to a service over HTTP.

    Subclasses set `label`, take their service's address with `use_base()` (which sets
    `self.endpoint`) and build `self.http` (an `HttpClient`) with `make_client()`; they
    implement `chat()` with `self.stream_chunks(...)` and, where the service has them,
    `embed`, `count_tokens` and `live_info`.
    """

    label = "API"

    def __init__(
        self,
        deployment: "Deployment",
        *,
        key: KeyInfo | None = None,
        debug: "bool | DebugLog | None" = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.deployment = deployment
        self.kind = deployment.kind
        self.model_id = deployment.model or deployment.tag or deployment.id
        self.key = key or KeyInfo(None, None)
        self.debug = DebugLog.of(debug)
        self.retry = retry or default_retry()
        self.timeout = timeout
        self.transport = transport
        self.endpoint = ""  # the service's address as shown: credentials hidden
        self.base_query: dict[str, str] = {}  # the query of the address given, sent with every request
        self.http: HttpClient | None = None
        self._live: dict[str, Any] | None = None
        # Answers being streamed now: no other request is made meanwhile, because some servers
        # (llama.cpp's among them) abandon a running answer when a new request arrives.
        self._open_streams = 0

    @property
    def wire(self) -> Wire:
        """The checks for this service's answers (errors name it)."""
        return Wire(self.label)

    # --- construction helpers ------------------------------------------------------------------

    def use_base(self, url: str) -> str:
        """Take `url` as the service's address: the credentials written into it (a password,
        `?key=…`) are remembered for redaction, `endpoint` shows it with them hidden, and its
        query goes with every request. Returns the URL request paths are appended to."""
        address = service_url(url)
        self.endpoint = address.shown
        self.base_query = address.query
        return address.base

    def make_client(self, ctx: ErrorContext, headers: Mapping[str, str]) -> HttpClient:
        ctx.endpoint = ctx.endpoint or self.endpoint
        if ctx.key_hint is None and self.key.source:
            ctx.key_hint = f"the key came from {self.key.source}"
        return HttpClient(ctx, headers=headers, params=self.base_query, timeout=self.timeout, retry=self.retry,
                          debug=self.debug, transport=self.transport)

    # --- the protocol ------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Registry metadata (model id, endpoint, api version, deployment name, key variable),
        where the key came from (never the key), and what the service says about the model."""
        meta = self.deployment.service_metadata()
        meta["kind"] = self.kind
        meta["endpoint"] = self.endpoint
        if self.key.source:
            meta["key_source"] = self.key.source
        if self._live is None and not self._open_streams:
            try:
                self._live = self.live_info() or {}
            except ModelctlError as exc:
                self._live = {"error": redact(str(exc))}
        if self._live:
            meta["service"] = plain(self._live)
        return meta

    def live_info(self) -> dict[str, Any]:
        """What the service says about the model (no retries: this is informational)."""
        return {}

    def close(self) -> None:
        if self.http is not None:
            self.http.close()

    def set_debug(self, enabled: bool) -> None:
        self.debug.enabled = enabled  # the HTTP client and the library clients share this log

    # --- chat over HTTP ------------------------------------------------------------------------

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """Send the conversation; stream the answer (or, with `-o stream=false`, fetch it whole).
        The request is made here, so HTTP errors are raised before the first chunk."""
        stream, options = pop_stream_flag(params.extra)
        body = self.request_body(messages, params, stream, options)
        url, query = self.chat_target(stream)
        return self.exchange(url, query, body, stream)

    def exchange(self, url: str, query: Mapping[str, str] | None, body: Any, stream: bool, *,
                 read_whole: Callable[[Any], tuple[str, StreamState]] | None = None,
                 read_event: Callable[[Event, StreamState, LineStream], Iterable[str | Chunk]] | None = None,
                 ) -> Iterator[Chunk]:
        """POST `body`; the answer streamed (read with `read_event`) or whole (`read_whole`): the
        backend's own, or the ones given (a provider whose answers read differently by request)."""
        clock = StreamClock()
        read_whole = read_whole or self.read_whole
        assert self.http is not None
        if not stream:
            text, state = read_whole(self.http.request_json("POST", url, body, params=query))
            return self.whole_answer(text, state, clock)
        lines = self.http.open_stream(url, body, params=query)
        if lines.is_json():  # the server ignored `stream: true`: its answer is whole
            try:
                text, state = read_whole(lines.whole_json())
            finally:
                lines.close()
            self.debug.line("answer", f"{self.label} sent the answer whole, not streamed")
            return self.whole_answer(text, state, clock)
        return self.stream_chunks(lines, read_event or self.read_event, clock)

    def request_body(self, messages: Sequence[Message], params: GenerationParams, stream: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of a chat request; `options` are the `-o KEY=VALUE` extras."""
        raise NotImplementedError

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        """(URL, query parameters) of a chat request."""
        raise NotImplementedError

    def read_event(self, event: Event, state: StreamState, lines: LineStream) -> Iterable[str | Chunk]:
        """The deltas of one streamed event: text, or a Chunk with the reasoning the provider sends
        apart; finish reason and usage go into `state`."""
        raise NotImplementedError

    def read_whole(self, data: Any) -> tuple[str, StreamState]:
        """(text, state) of a non-streamed answer."""
        raise NotImplementedError

    # --- streaming -------------------------------------------------------------------------------

    def note_ignored(self, names: Sequence[str]) -> None:
        """Say under --debug which parameters the service has no use for."""
        if names:
            self.debug.line("ignored", f"{', '.join(names)} ({self.label} has no such parameter)")

    def stream_chunks(
        self,
        stream: LineStream,
        read_event: Callable[[Event, StreamState, LineStream], Iterable[str | Chunk]],
        clock: StreamClock,
        *,
        events: Iterator[Event] | None = None,
        timings_extra: Callable[[StreamState], dict[str, Any]] | None = None,
    ) -> ClosingIterator:
        """Chunks from a provider's event stream. `read_event` returns the deltas of one event
        (text, or reasoning as a Chunk) and records finish reason and usage in the state; it raises (through
        `stream.interrupted`) for an error the provider sends mid-stream."""

        self._open_streams += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open_streams -= 1
                stream.close()

        def gen() -> Iterator[Chunk]:
            state = StreamState()
            try:
                for event in events if events is not None else stream.events():
                    try:
                        texts = read_event(event, state, stream)
                    except WireError as exc:  # a malformed event: the text so far stands
                        raise stream.interrupted(f"an event it cannot use: {exc.detail}") from None
                    for item in texts:
                        chunk = Chunk(text=item) if isinstance(item, str) else item
                        if chunk.text or chunk.reasoning:
                            clock.tick()
                            stream.received += len(chunk.text) + len(chunk.reasoning)
                            yield chunk
                    if state.done:
                        break
            finally:
                release()
            if state.finish_reason is None:
                raise stream.ended_early()
            try:
                final = self.final_chunk(state, clock, timings_extra(state) if timings_extra else {})
            except WireError as exc:  # tool calls it cannot use
                raise stream.interrupted(f"an answer it cannot use: {exc.detail}") from None
            yield final

        return ClosingIterator(gen(), [release])

    def final_chunk(self, state: StreamState, clock: StreamClock, extra: Mapping[str, Any] | None = None) -> Chunk:
        """The last chunk: finish reason, usage, timings and the tool calls asked for (WireError
        for calls that cannot be used)."""
        usage = state.usage
        asked = state.calls.calls(self.wire)
        reason, calls = settle(state.finish_reason, asked)
        if len(calls) < len(asked):
            self.debug.line("tool calls", f"{len(asked)} left out: the answer ended with {reason}")
        for call in calls:
            self.debug.line("tool call", f"{call.name} ({call.id}), {len(call.arguments)} characters of arguments")
        timings = clock.timings(usage.completion_tokens if usage else None, **(extra or {}))
        if state.tool_calls:  # gathered and settled by the backend itself
            reason, calls = state.finish_reason, state.tool_calls
        self.debug.answer(reason, usage, timings, clock.total())
        return Chunk(finish_reason=reason, usage=usage, timings=timings, tool_calls=calls)

    def whole_answer(self, text: str, state: StreamState, clock: StreamClock) -> Iterator[Chunk]:
        """The chunks of a non-streamed answer (`-o stream=false`)."""
        clock.tick()
        chunks = [Chunk(text=text, reasoning=state.reasoning)] if text or state.reasoning else []
        chunks.append(self.final_chunk(state, clock))
        return iter(chunks)

    def live_request(self, method: str, url: str, body: Any = None, **kw: Any) -> Any:
        assert self.http is not None
        return self.http.request_json(method, url, body, retry=NO_RETRY, **kw)
