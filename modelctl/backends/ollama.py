"""A model on an Ollama server, through the `ollama` package.

    /api/chat   streamed chat (newline-delimited JSON; the last object has `done`, counts and
                durations in nanoseconds); `format` asks for JSON, or JSON of a schema;
                `tools`, whose calls come whole (arguments as an object), on any line. The
                body is written here and sent through the client's `_request`: the package's
                models would drop nested tool schemas and the ids of calls
    /api/show   the model's template, parameters and details (`describe()`; `--debug` prints
                the template Ollama applies)
    /api/embed  embeddings

Listing and pulling the server's models (/api/tags, /api/pull) belong to the store
(`modelctl.store.ollama_pull`).

The server is `--api-base`, else the deployment's `host`, else `OLLAMA_HOST`, else
`http://127.0.0.1:11434`. Under `--debug` every request the client sends is described as it
goes out (httpx event hooks), credentials redacted.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from modelctl.backends.api import ApiBackend, ClosingIterator, StreamClock, StreamState, coerce_option
from modelctl.backends.base import FINISH_LENGTH, FINISH_STOP, Chunk, GenerationParams, Message, ToolCall, Usage
from modelctl.backends.images import ollama_message
from modelctl.backends.params import param_table, request_fields
from modelctl.backends.tool_wire import ToolCallAssembly, checked_choice, message_calls, refuse_tools
from modelctl.errors import BackendError, ModelctlError, OfflineError, UsageError
from modelctl.keys import KeyInfo
from modelctl.redaction import remember_secret
from modelctl.transport.debug_log import DebugLog, request_hooks
from modelctl.transport.http_client import (
    DEFAULT_CONNECT_TIMEOUT,
    ErrorContext,
    error,
    interrupted,
    status_error,
    transport_reason,
    what_came,
)
from modelctl.transport.ollama_server import NOT_OLLAMA, ollama_client, ollama_host, unreadable
from modelctl.transport.response_limits import LimitExceeded, limits
from modelctl.transport.retry import NO_RETRY, RETRY_STATUSES, Attempt, RetryPolicy, parse_retry_after, run_with_retries
from modelctl.transport.server_text import one_line
from modelctl.transport.wire import WireError

if TYPE_CHECKING:
    import httpx
    import ollama

    from modelctl.registry import Deployment

# Request fields beside `options` (for -o KEY=VALUE); every other option goes into `options`.
TOP_LEVEL = frozenset({"keep_alive", "format", "think"})
# The `options` field of each generation parameter.
OPTION_NAMES = param_table(max_tokens="num_predict", temperature="temperature", top_p="top_p", top_k="top_k",
                           seed="seed", repeat_penalty="repeat_penalty", stop="stop")


class _Calls:
    """An ollama client, with retries and error mapping for the calls made through it.

    The ollama package keeps only the status and body of an error; a response hook keeps the
    `Retry-After` of the last answer, so that retries can honour it."""

    def __init__(self, ctx: ErrorContext, retry: RetryPolicy, debug: DebugLog) -> None:
        self.ctx = ctx
        self.retry = retry
        self.debug = debug
        self.retry_after: float | None = None
        self.came = "no answer"  # what the last response was (`what_came`), for messages
        self.limits = limits()

    def client(self, timeout: float | None = None, transport: httpx.BaseTransport | None = None, *,
               deadline: bool = True) -> ollama.Client:
        import httpx  # noqa: PLC0415 (httpx: imported only where used)

        hooks = request_hooks(self.debug)  # silent until debug.enabled (`/debug on` may set it later)
        hooks["response"].append(self._note_response)
        return ollama_client(self.ctx.endpoint, bounds=self.limits, deadline=deadline, hooks=hooks,
                             transport=transport,
                             timeout=httpx.Timeout(timeout or self.limits.read_timeout, connect=DEFAULT_CONNECT_TIMEOUT))

    def _note_response(self, response: Any) -> None:
        self.retry_after = parse_retry_after(response.headers) if response.status_code >= 400 else None
        self.came = what_came(response)

    def not_ollama(self, exc: BaseException) -> BackendError:
        """The error for an answer the ollama package could not read (`NOT_OLLAMA`)."""
        return error(BackendError, f"{self.ctx.provider} answered with something that is not Ollama's JSON "
                     f"({self.came}): {unreadable(exc)}")

    def classify(self, exc: BaseException) -> Attempt | None:
        import httpx  # noqa: PLC0415 (httpx: imported only where used)
        import ollama  # noqa: PLC0415 (ollama: imported only where used)

        if isinstance(exc, ollama.ResponseError):
            return Attempt(exc.status_code in RETRY_STATUSES, self.retry_after, f"HTTP {exc.status_code}")
        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            return Attempt(True, None, transport_reason(exc))
        return None

    def __call__(self, fn: Callable[[], Any], retry: RetryPolicy | None = None) -> Any:
        import httpx  # noqa: PLC0415 (httpx: imported only where used)
        import ollama  # noqa: PLC0415 (ollama: imported only where used)

        attempts = [0]

        def once() -> Any:
            attempts[0] += 1
            return fn()

        try:
            return run_with_retries(once, self.classify, retry or self.retry, self.debug)
        except ollama.ResponseError as exc:
            if 300 <= exc.status_code < 400:
                raise error(BackendError, f"{self.ctx.provider} answered with {self.came} instead of an answer",
                            "check the Ollama host") from None
            # The package's `error` is the body's message, or the whole body when it did not parse.
            raise status_error(self.ctx, exc.status_code, None, str(exc.error), attempts=attempts[0]) from None
        except LimitExceeded as exc:
            raise error(BackendError, f"the answer from {self.ctx.provider} {exc.why}") from None
        except NOT_OLLAMA as exc:
            raise self.not_ollama(exc) from None
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout):
            raise error(OfflineError, f"cannot connect to Ollama at {self.ctx.endpoint}",
                        "is the Ollama server running (`ollama serve`)? Set OLLAMA_HOST if it listens elsewhere",
                        ) from None
        except httpx.TimeoutException:
            raise error(BackendError, f"Ollama at {self.ctx.endpoint} did not answer in time",
                        "MODELCTL_READ_TIMEOUT sets how long a server may stay silent") from None
        except httpx.HTTPError as exc:
            raise error(BackendError, f"the request to Ollama at {self.ctx.endpoint} failed: "
                        f"{transport_reason(exc)}") from None


class OllamaBackend(ApiBackend):
    label = "Ollama"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        # Ollama itself needs no key; the ollama package sends OLLAMA_API_KEY if it is set.
        secret = os.environ.get("OLLAMA_API_KEY")
        remember_secret(secret)
        super().__init__(deployment, key=KeyInfo(secret, "env OLLAMA_API_KEY" if secret else None), **options)
        self.tag = deployment.tag or deployment.model or ""
        self.model_id = self.tag
        self.endpoint = ollama_host(deployment.host, given=api_base)
        self.ctx = ErrorContext(f"Ollama at {self.endpoint}", not_found=f"has no model '{self.tag}'",
                                not_found_hint=f"pull it first: ollama pull {self.tag}", endpoint=self.endpoint)
        self.calls = _Calls(self.ctx, self.retry, self.debug)
        self._client: ollama.Client | None = None
        self._show: Any = None

    @property
    def client(self) -> ollama.Client:
        if self._client is None:
            self._client = self.calls.client(self.timeout, self.transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def show(self) -> Any:
        """/api/show for the model (cached)."""
        if self._show is None:
            self._show = self.calls(lambda: self.client.show(self.tag))
        return self._show

    def request(self, messages: Sequence[Message], params: GenerationParams) -> dict[str, Any]:
        """The /api/chat body: messages, tools, options (sampling), and top-level fields."""
        return self._request({"messages": [ollama_turn(m) for m in messages], **ollama_tools(params)}, params)

    def _request(self, payload: dict[str, Any], params: GenerationParams) -> dict[str, Any]:
        opts, _ = request_fields(params, OPTION_NAMES)  # Ollama has every one
        request: dict[str, Any] = {"model": self.tag, **payload}
        if params.response_format is not None:  # a JSON Schema, or "json": any JSON
            fmt = params.response_format
            request["format"] = fmt.json_schema() if fmt.schema is not None else "json"
        stream = True
        for key, value in params.extra.items():
            value = coerce_option(value)
            if key == "stream":
                stream = value is not False and str(value).lower() not in ("false", "0", "no", "off")
            elif key in TOP_LEVEL:
                request[key] = value
            else:
                opts[key] = value
        request["stream"] = stream
        if opts:
            request["options"] = opts
        # `think`: true or false, or gpt-oss's effort ("low", "medium", "high") in its place.
        if params.reasoning_effort is not None:
            request["think"] = params.reasoning_effort
        elif params.think is not None:
            request["think"] = params.think
        return request

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        if self.debug.enabled and self._show is None:
            try:
                template = self.show().template
            except ModelctlError as exc:
                self.debug.line("ollama template", f"unavailable ({exc})")
            else:
                self.debug.block("ollama template", template or "(none)")
        return self._answer("chat", self.request(messages, params))

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        """/api/generate with `raw`: the text reaches the model as it stands, with no template."""
        refuse_tools(params, "Ollama's text completion")
        return self._answer("generate", self._request({"prompt": text, "raw": True}, params))

    def _send(self, endpoint: str, request: dict[str, Any]) -> Any:
        """`request` to /api/chat as it was built here (the ollama package's models would drop
        what they do not know of a tool's schema, such as nested properties, and the ids of tool
        calls), or through the client's `generate`."""
        if endpoint == "chat":
            return self.client._request(_chat_response(), "POST", "/api/chat", json=request, stream=request["stream"])
        return self.client.generate(**request)

    def _answer(self, endpoint: str, request: dict[str, Any]) -> Iterator[Chunk]:
        """Send `request` to /api/chat or /api/generate; the answer as chunks."""
        clock = StreamClock()
        if not request["stream"]:
            answer = self.calls(lambda: self._send(endpoint, request))
            clock.tick()
            text, thought = self._text(answer) or "", self._thinking(answer)
            chunks = [Chunk(text=text, reasoning=thought)] if text or thought else []
            state = self._final_state(answer)
            state.calls.add_whole(tool_calls_of(answer), self.wire)
            chunks.append(self._final(state, clock, answer))
            return iter(chunks)

        def first() -> tuple[Any, Iterator[Any]]:
            parts = self._send(endpoint, request)
            return next(parts, None), parts

        head, rest = self.calls(first)
        return ClosingIterator(self._stream(head, rest, clock), [getattr(rest, "close", lambda: None)])

    def _stream(self, head: Any, rest: Iterator[Any], clock: StreamClock) -> Iterator[Chunk]:
        received = 0
        calls = ToolCallAssembly()  # Ollama sends each call whole, on any line
        part = head
        while part is not None:
            try:
                text, thought = self._text(part) or "", self._thinking(part)
                calls.add_whole(tool_calls_of(part), self.wire)
            except WireError as exc:
                raise interrupted(self.ctx.provider, received, f"a line it cannot use: {exc.detail}") from None
            if text or thought:
                clock.tick()
                received += len(text) + len(thought)
                yield Chunk(text=text, reasoning=thought)
            if part.done:
                state = self._final_state(part)
                state.calls = calls
                try:
                    final = self._final(state, clock, part)
                except WireError as exc:
                    raise interrupted(self.ctx.provider, received, f"an answer it cannot use: {exc.detail}") from None
                yield final
                return
            part = self._next(rest, received)
        why = "the stream ended before the answer " + (
            "was finished" if received or head else f"began: {self.calls.came}")
        raise interrupted(self.ctx.provider, received, why)

    def _next(self, rest: Iterator[Any], received: int) -> Any:
        """The next line of a stream, or None at its end; failures keep the `received` text."""
        import httpx  # noqa: PLC0415 (httpx: imported only where used)
        import ollama  # noqa: PLC0415 (ollama: imported only where used)

        try:
            return next(rest, None)
        except ollama.ResponseError as exc:
            why = f"Ollama reported an error: {one_line(str(exc.error))}"
        except httpx.TimeoutException:
            why = f"no data for {self.calls.limits.read_timeout:g} s (MODELCTL_READ_TIMEOUT)"
        except httpx.HTTPError as exc:
            why = transport_reason(exc)
        except LimitExceeded as exc:
            why = f"the answer {exc.why}"
        except NOT_OLLAMA as exc:
            why = f"an unreadable line ({unreadable(exc)})"
        raise interrupted(self.ctx.provider, received, why) from None

    def _text(self, part: Any) -> str | None:
        message = getattr(part, "message", None)
        if message is None:  # /api/generate's lines carry `response`
            return self.wire.text(getattr(part, "response", None), "the text of the answer")
        return self.wire.text(message.content, "the text of the answer")

    def _thinking(self, part: Any) -> str:
        """The reasoning a line carries apart (`message.thinking`, or /api/generate's `thinking`,
        when `think` was asked for)."""
        message = getattr(part, "message", None)
        thought = getattr(message if message is not None else part, "thinking", None)
        return self.wire.text(thought, "the thinking of the answer") or ""

    def _final_state(self, part: Any) -> StreamState:
        wire = self.wire
        reason = wire.reason(part.done_reason, "done_reason") or "stop"
        prompt = wire.count(part.prompt_eval_count, "prompt_eval_count")
        completion = wire.count(part.eval_count, "eval_count")
        usage = None
        if prompt is not None or completion is not None:
            usage = Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0)
        return StreamState(finish_reason={"stop": FINISH_STOP, "length": FINISH_LENGTH}.get(reason, reason),
                           usage=usage, done=True)

    def _final(self, state: StreamState, clock: StreamClock, part: Any) -> Chunk:
        """The last chunk, with Ollama's own measurements (nanoseconds) where it gives them."""
        wire = self.wire
        load, took = (wire.count(getattr(part, k), k) for k in ("load_duration", "eval_duration"))
        extra: dict[str, Any] = {"prompt_eval_tokens": state.usage.prompt_tokens if state.usage else None}
        if load:
            extra["load_s"] = load / 1e9
        chunk = self.final_chunk(state, clock, extra)
        if state.usage and state.usage.completion_tokens and took and chunk.timings is not None:
            timings = replace(chunk.timings, tokens_per_second=state.usage.completion_tokens / (took / 1e9))
            chunk = replace(chunk, timings=timings)
        return chunk

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        answer = self.calls(lambda: self.client.embed(model=self.tag, input=list(texts)))
        rows = [list(v) if isinstance(v, (list, tuple)) else v for v in (answer.embeddings or [])]
        return self.wire.vectors(rows, len(texts))

    def live_info(self) -> dict[str, Any]:
        self._show = self.calls(lambda: self.client.show(self.tag), retry=NO_RETRY)
        return show_summary(self._show)


def ollama_tools(params: GenerationParams) -> dict[str, Any]:
    """`tools` for /api/chat. Ollama has no tool_choice: "none" is kept by sending no tools, and
    a call it cannot be made to make ("required", a tool's name) is refused."""
    choice = checked_choice(params)
    if choice not in (None, "auto", "none"):
        raise UsageError(f"Ollama cannot be made to call a tool (tool choice '{choice}'): it has no tool_choice",
                         hint="use tool choice auto, or a local model (a grammar forces its call)")
    if not params.tools or choice == "none":
        return {}
    return {"tools": [tool.openai() for tool in params.tools]}


def ollama_turn(message: Message) -> dict[str, Any]:
    """An /api/chat message: an assistant's calls with their arguments as an object, a tool's
    result with the tool's name and the call's id."""
    turn = ollama_message(message)
    calls = message_calls(message)
    if calls:
        turn["tool_calls"] = [{**({"id": c.id} if c.id else {}),
                               "function": {"name": c.name, "arguments": _arguments_object(c)}} for c in calls]
    if message["role"] == "tool":
        turn.update({k: message[v] for k, v in (("tool_name", "name"), ("tool_call_id", "tool_call_id"))
                     if message.get(v)})
    return turn


def _arguments_object(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the object Ollama takes: {} for arguments that are no JSON object
    (the model's slip, kept in the conversation as it was)."""
    try:
        return call.arguments_json()
    except BackendError:
        return {}


def tool_calls_of(part: Any) -> Any:
    """The tool calls a line of /api/chat carries, as the server sent them (None on /api/generate's)."""
    return getattr(getattr(part, "message", None), "tool_calls", None)


@lru_cache(maxsize=1)
def _chat_response() -> type:
    """The ollama package's ChatResponse, with the message's tool calls kept as the server sent
    them (ids included), to be read by `ToolCallAssembly` with the checks every answer gets."""
    import ollama  # noqa: PLC0415 (ollama: imported only where used)

    class RawCallsMessage(ollama.Message):
        tool_calls: Any = None

    class RawCallsResponse(ollama.ChatResponse):
        message: RawCallsMessage

    return RawCallsResponse


def show_summary(show: Any) -> dict[str, Any]:
    """The parts of /api/show worth showing: details, context length, capabilities, template."""
    info: dict[str, Any] = {}
    details = show.details
    if details is not None:
        info.update({k: v for k, v in {
            "family": details.family, "parameter_size": details.parameter_size,
            "quantization_level": details.quantization_level, "format": details.format,
        }.items() if v})
    model_info = show.modelinfo or {}
    arch = model_info.get("general.architecture")
    if arch and model_info.get(f"{arch}.context_length"):
        info["context_length"] = model_info[f"{arch}.context_length"]
    if show.capabilities:
        info["capabilities"] = list(show.capabilities)
    if show.parameters:
        info["parameters"] = show.parameters
    if show.template:
        info["template"] = show.template
    if show.modified_at:
        info["modified_at"] = show.modified_at.isoformat()
    return info
