"""A model on an Ollama server, through the `ollama` package.

    /api/chat   streamed chat (newline-delimited JSON; the last object has `done`, counts and
                durations in nanoseconds)
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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from modelctl.backends.api import ApiBackend, StreamState
from modelctl.backends.base import FINISH_LENGTH, FINISH_STOP, Chunk, GenerationParams, Message, Usage
from modelctl.backends.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    NO_RETRY,
    RETRY_STATUSES,
    Attempt,
    ClosingIterator,
    DebugLog,
    ErrorContext,
    RetryPolicy,
    StreamClock,
    coerce_option,
    error,
    interrupted,
    parse_retry_after,
    redact_url,
    remember_url_credentials,
    request_hooks,
    run_with_retries,
    status_error,
    transport_reason,
)
from modelctl.errors import BackendError, ModelctlError, OfflineError, UsageError
from modelctl.keys import KeyInfo, remember_secret

if TYPE_CHECKING:
    from modelctl.registry import Deployment

DEFAULT_HOST = "http://127.0.0.1:11434"
# Request fields beside `options` (for -o KEY=VALUE); every other option goes into `options`.
TOP_LEVEL = frozenset({"keep_alive", "format", "think"})
OPTION_NAMES = {"max_tokens": "num_predict", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                "seed": "seed", "repeat_penalty": "repeat_penalty"}


def ollama_host(explicit: str | None = None) -> str:
    """The server URL: `explicit`, else OLLAMA_HOST, else the default; scheme and port filled in
    as Ollama does (`host:port`, `:port`, `http://host`). Credentials written into it are
    remembered for redaction (and not sent: Ollama takes none); a host that cannot be used is a
    UsageError."""
    from modelctl.registry.schema import url_problem

    given = (explicit or os.environ.get("OLLAMA_HOST") or "").strip()
    if not given:
        return DEFAULT_HOST
    remember_url_credentials(given)
    raw, scheme = given, "http"
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        default_port = 443 if scheme == "https" else 80
    else:
        default_port = 11434
    try:
        parts = urlsplit(f"{scheme}://{raw}")
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        url = f"{scheme}://{host}:{parts.port or default_port}{parts.path.rstrip('/')}"
    except ValueError as exc:
        problem: str | None = str(exc)
    else:
        problem = url_problem(url)
    if problem:
        raise UsageError(f"'{redact_url(given)}' is not a usable Ollama host: {problem}",
                         hint="check --api-base, the deployment's host, or OLLAMA_HOST")
    return url


class _Calls:
    """An ollama client, with retries and error mapping for the calls made through it.

    The ollama package keeps only the status and body of an error; a response hook keeps the
    `Retry-After` of the last answer, so that retries can honour it."""

    def __init__(self, ctx: ErrorContext, retry: RetryPolicy, debug: DebugLog) -> None:
        self.ctx = ctx
        self.retry = retry
        self.debug = debug
        self.retry_after: float | None = None

    def client(self, timeout: float | None = None, transport: Any = None):
        import httpx
        import ollama

        hooks = request_hooks(self.debug)  # silent until debug.enabled (`/debug on` may set it later)
        hooks["response"].append(self._note_response)
        kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout or DEFAULT_READ_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT),
            "event_hooks": hooks,
        }
        if transport is not None:
            kwargs["transport"] = transport
        return ollama.Client(host=self.ctx.endpoint, **kwargs)

    def _note_response(self, response: Any) -> None:
        self.retry_after = parse_retry_after(response.headers) if response.status_code >= 400 else None

    def classify(self, exc: BaseException) -> Attempt | None:
        import httpx
        import ollama

        if isinstance(exc, ollama.ResponseError):
            return Attempt(exc.status_code in RETRY_STATUSES, self.retry_after, f"HTTP {exc.status_code}")
        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            return Attempt(True, None, transport_reason(exc))
        return None

    def __call__(self, fn: Callable[[], Any], retry: RetryPolicy | None = None) -> Any:
        import httpx
        import ollama

        attempts = [0]

        def once():
            attempts[0] += 1
            return fn()

        try:
            return run_with_retries(once, self.classify, retry or self.retry, self.debug)
        except ollama.ResponseError as exc:
            raise status_error(self.ctx, exc.status_code, {"error": exc.error}, "", attempts=attempts[0]) from None
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout):
            raise error(OfflineError, f"cannot connect to Ollama at {self.ctx.endpoint}",
                        "is the Ollama server running (`ollama serve`)? Set OLLAMA_HOST if it listens elsewhere") from None
        except httpx.TimeoutException:
            raise error(BackendError, f"Ollama at {self.ctx.endpoint} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise error(BackendError, f"the request to Ollama at {self.ctx.endpoint} failed: {transport_reason(exc)}") from None


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
        self.endpoint = ollama_host(api_base or deployment.host)
        self.ctx = ErrorContext(f"Ollama at {self.endpoint}", not_found=f"has no model '{self.tag}'",
                                not_found_hint=f"pull it first: ollama pull {self.tag}", endpoint=self.endpoint)
        self.calls = _Calls(self.ctx, self.retry, self.debug)
        self._client = None
        self._show: Any = None

    @property
    def client(self):
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
        """The /api/chat arguments: messages, options (sampling), and top-level fields."""
        opts: dict[str, Any] = {}
        for name, field in OPTION_NAMES.items():
            if getattr(params, name) is not None:
                opts[field] = getattr(params, name)
        if params.stop:
            opts["stop"] = list(params.stop)
        request: dict[str, Any] = {"model": self.tag,
                                   "messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
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
        return request

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        if self.debug.enabled and self._show is None:
            try:
                template = self.show().template
            except ModelctlError as exc:
                self.debug.line("ollama template", f"unavailable ({exc})")
            else:
                self.debug.block("ollama template", template or "(none)")
        request = self.request(messages, params)
        clock = StreamClock()
        if not request["stream"]:
            answer = self.calls(lambda: self.client.chat(**request))
            clock.tick()
            text = answer.message.content or ""
            chunks = [Chunk(text=text)] if text else []
            chunks.append(self._final(self._final_state(answer), clock, answer))
            return iter(chunks)

        def first() -> tuple[Any, Iterator[Any]]:
            parts = self.client.chat(**request)
            return next(parts, None), parts

        head, rest = self.calls(first)
        return ClosingIterator(self._stream(head, rest, clock), [getattr(rest, "close", lambda: None)])

    def _stream(self, head: Any, rest: Iterator[Any], clock: StreamClock) -> Iterator[Chunk]:
        import httpx
        import ollama

        received = 0
        part = head
        while part is not None:
            text = part.message.content if part.message is not None else None
            if text:
                clock.tick()
                received += len(text)
                yield Chunk(text=text)
            if part.done:
                state = self._final_state(part)
                yield self._final(state, clock, part)
                return
            try:
                part = next(rest, None)
            except ollama.ResponseError as exc:
                raise interrupted(self.ctx.provider, received, f"Ollama reported an error: {exc.error}") from None
            except httpx.HTTPError as exc:
                raise interrupted(self.ctx.provider, received, transport_reason(exc)) from None
            except ValueError as exc:
                raise interrupted(self.ctx.provider, received, f"unreadable line ({exc})") from None
        raise interrupted(self.ctx.provider, received, "the stream ended before the answer was finished")

    @staticmethod
    def _final_state(part: Any) -> StreamState:
        reason = part.done_reason or "stop"
        usage = None
        if part.prompt_eval_count is not None or part.eval_count is not None:
            usage = Usage(prompt_tokens=part.prompt_eval_count or 0, completion_tokens=part.eval_count or 0)
        return StreamState(finish_reason={"stop": FINISH_STOP, "length": FINISH_LENGTH}.get(reason, reason),
                           usage=usage, done=True)

    def _final(self, state: StreamState, clock: StreamClock, part: Any) -> Chunk:
        """The last chunk, with Ollama's own measurements where it gives them."""
        extra: dict[str, Any] = {"prompt_eval_tokens": part.prompt_eval_count}
        if part.load_duration:
            extra["load_s"] = part.load_duration / 1e9
        chunk = self.final_chunk(state, clock, extra)
        if part.eval_count and part.eval_duration:
            from dataclasses import replace

            timings = replace(chunk.timings, tokens_per_second=part.eval_count / (part.eval_duration / 1e9))
            chunk = replace(chunk, timings=timings)
        return chunk

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        answer = self.calls(lambda: self.client.embed(model=self.tag, input=list(texts)))
        vectors = [[float(x) for x in v] for v in (answer.embeddings or [])]
        if len(vectors) != len(texts):
            raise error(BackendError, f"Ollama returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors

    def live_info(self) -> dict[str, Any]:
        self._show = self.calls(lambda: self.client.show(self.tag), retry=NO_RETRY)
        return show_summary(self._show)


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
