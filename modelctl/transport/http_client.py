"""The HTTP client every API backend shares: one `httpx.Client` per service, its timeouts, and
the mapping of failures to modelctl errors.

`HttpClient` sends JSON requests, retries what may be retried before any answer arrived
(`retry`), describes each request under `--debug` (`debug_log`), and turns failures into
modelctl errors: 401/403 → `AuthError`, 404 → `NotFoundError` naming the model or deployment,
other 4xx → `BackendError` carrying the provider's own message, connection failures →
`OfflineError`. Every error message made here passes through `modelctl.redaction.redact`.

`httpx` is imported only when a client is made.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, TypeVar

from modelctl.errors import AuthError, BackendError, ModelctlError, NotFoundError, OfflineError, UsageError
from modelctl.redaction import redact
from modelctl.transport import response_limits as _limits
from modelctl.transport import wire
from modelctl.transport.abandon import on_abandon
from modelctl.transport.debug_log import DebugLog
from modelctl.transport.httpx_import import import_httpx
from modelctl.transport.retry import (
    RETRY_STATUSES,
    Attempt,
    RetryPolicy,
    default_retry,
    parse_retry_after,
    run_with_retries,
    unreachable,
)
from modelctl.transport.server_text import one_line, provider_message
from modelctl.transport.sse import Event, iter_sse
from modelctl.transport.urls import redact_url
from modelctl.version import __version__

if TYPE_CHECKING:
    from types import ModuleType

    from httpx import BaseTransport, Client, Response

DEFAULT_CONNECT_TIMEOUT = 10.0

E = TypeVar("E", bound=ModelctlError)


# --- errors ------------------------------------------------------------------------------------------


class StreamInterrupted(BackendError):
    """The connection failed after part of the answer had arrived. The chunks already yielded
    stand (the chat keeps them as the partial answer); `received` counts their characters."""

    def __init__(self, message: str, *, received: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.received = received
        self.retryable = received == 0  # nothing of the answer arrived: another service may answer


def interrupted(provider: str, received: int, why: str) -> StreamInterrupted:
    """The error for a stream that failed after `received` characters of answer."""
    if received:
        msg = f"the answer from {provider} was cut off after {received} characters: {why}"
        hint = "the partial answer is kept"
    else:
        msg = f"the answer from {provider} was cut off before any text arrived: {why}"
        hint = None
    return StreamInterrupted(redact(msg), received=received, hint=hint)


def error(cls: type[E], message: str, hint: str | None = None) -> E:
    """An error whose message and hint have been through redaction."""
    return cls(redact(message), hint=redact(hint) if hint else None)


@dataclass
class ErrorContext:
    """What an error message says about the service: its label, what a 404 means for it, and
    how to fix a rejected key."""

    provider: str
    not_found: str = "not found"  # "has no model 'x'"
    key_hint: str | None = None  # "the key came from env OPENAI_API_KEY"
    endpoint: str = ""
    not_found_hint: str | None = None  # "pull it: ollama pull llama3"

    def where(self, url: str = "") -> str:
        """The service and its address, once: "OpenAI at https://…", "the server at http://…"
        (credentials in the address hidden)."""
        endpoint = redact_url(self.endpoint or url)
        return self.provider if not endpoint or endpoint in self.provider else f"{self.provider} at {endpoint}"


def status_error(ctx: ErrorContext, status: int, body: Any, text: str, *, attempts: int = 1) -> ModelctlError:
    """The modelctl error for an HTTP error status, carrying the status and whether another try
    elsewhere may succeed (`RETRY_STATUSES`)."""
    err = _status_error(ctx, status, body, text, attempts)
    if isinstance(err, BackendError):  # 404 is a NotFoundError: never worth another try
        err.status = status
        err.retryable = status in RETRY_STATUSES
    return err


def _status_error(ctx: ErrorContext, status: int, body: Any, text: str, attempts: int) -> ModelctlError:
    msg = provider_message(body, text)
    detail = f": {msg}" if msg else ""
    if status in (401, 403) or (status == 400 and _rejected_key(body)):
        what = "refused access (403)" if status == 403 else "rejected the API key"
        return error(AuthError, f"{ctx.provider} {what}{detail}", ctx.key_hint)
    if status == 404:
        return error(NotFoundError, f"{ctx.provider} {ctx.not_found}{detail}", ctx.not_found_hint)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 429:
        return error(BackendError, f"{ctx.provider} is rate limiting requests (429){tries}{detail}",
                     "wait a little and try again")
    if status >= 500:
        return error(BackendError, f"{ctx.provider} had a server error ({status}){tries}{detail}")
    return error(BackendError, f"{ctx.provider} refused the request ({status}){detail}")


def _rejected_key(body: Any) -> bool:
    """Google answers a bad key with 400 INVALID_ARGUMENT and the reason API_KEY_INVALID."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return False
    details = err.get("details")
    return isinstance(details, list) and any(
        isinstance(d, dict) and str(d.get("reason", "")).startswith("API_KEY_") for d in details)


# --- huggingface_hub's session ---------------------------------------------------------------------------


def hub_session_hooks(httpx_module: ModuleType,
                      limits: "_limits.Limits | None" = None) -> dict[str, list[_limits.Hook]]:
    """Hooks that bound each answer `huggingface_hub`'s session reads (`response_limits.bounded_hooks`)."""
    return _limits.bounded_hooks(httpx_module, limits or _limits.limits(), shown=redact_url)


@contextmanager
def hooked_session(hooks: Mapping[str, list[_limits.Hook]]) -> Iterator[None]:
    """`hooks` on huggingface_hub's shared session while the block runs (it has no other way in)."""
    from huggingface_hub.utils import get_session  # noqa: PLC0415 (huggingface_hub: imported only where used)

    session_hooks = get_session().event_hooks
    for name, fns in hooks.items():
        session_hooks[name].extend(fns)
    try:
        yield
    finally:
        for name, fns in hooks.items():
            for fn in fns:
                if fn in session_hooks[name]:
                    session_hooks[name].remove(fn)


# --- the client ----------------------------------------------------------------------------------------


def _lazy_tls_transport() -> BaseTransport:
    """httpx's transport for https, set up (its CA bundle loaded: about 70 ms, a fifth of a
    scripted `modelctl chat`'s CPU time) only for a request that needs it. Plain-http requests
    go through `plain_http.PlainHTTPTransport`, which spares loading httpcore, h11 and anyio."""
    import httpx  # loaded by the client's import_httpx(), without its command-line client  # noqa: PLC0415 (httpx: imported only where used)

    from modelctl.transport.plain_http import PlainHTTPTransport  # imports httpx: not before a client  # noqa: PLC0415 (modelctl.transport.plain_http: not on the chat --api-base path)

    class LazyTLSTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._by_tls: dict[bool, httpx.BaseTransport] = {}

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            tls = request.url.scheme != "http"
            transport = self._by_tls.get(tls)
            if transport is None:
                transport = self._by_tls[tls] = httpx.HTTPTransport() if tls else PlainHTTPTransport()
            return transport.handle_request(request)

        def close(self) -> None:
            for transport in self._by_tls.values():
                transport.close()

    return LazyTLSTransport()


class HttpClient:
    """JSON over HTTP for one service, with retries, error mapping and debug description."""

    def __init__(
        self,
        ctx: ErrorContext,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        debug: "bool | DebugLog | None" = None,
        transport: BaseTransport | None = None,
    ) -> None:
        self.ctx = ctx
        self.headers = dict(headers or {})
        self.params = dict(params or {})  # sent with every request (the service address's own query)
        self.limits = _limits.limits()
        self.read_timeout = timeout or self.limits.read_timeout
        self.connect_timeout = connect_timeout or DEFAULT_CONNECT_TIMEOUT
        self.retry = retry or default_retry()
        self.debug = DebugLog.of(debug)
        self._transport = transport
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            httpx = import_httpx()

            self._client = httpx.Client(
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                headers={"user-agent": f"modelctl/{__version__}", **self.headers},
                transport=self._transport or _lazy_tls_transport(),
                follow_redirects=False,  # a key is never sent on to wherever a server points
                event_hooks=_limits.bounded_hooks(httpx, self.limits, shown=redact_url),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # The request ---------------------------------------------------------------------------------------

    def _classify(self, exc: BaseException) -> Attempt | None:
        httpx = import_httpx()

        if isinstance(exc, _Status):
            return Attempt(exc.status in RETRY_STATUSES, exc.retry_after, f"HTTP {exc.status}")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                            httpx.ReadError, httpx.WriteError, httpx.PoolTimeout)):
            return Attempt(True, None, transport_reason(exc))
        if isinstance(exc, httpx.ReadTimeout):
            return Attempt(False)
        return None

    def _send(self, method: str, url: str, body: Any, params: Mapping[str, str] | None,
              stream: bool, retry: RetryPolicy | None = None, form: "Form | None" = None,
              headers: Mapping[str, str] | None = None, not_modified: bool = False) -> Response:
        """The response to a request (status < 400), after any retries. For a stream the body
        is not read yet; the caller closes the response. `form` sends a multipart upload
        instead of a JSON body; `headers` go with this request only; with `not_modified` a 304
        is an answer (to a conditional request), not an unexpected status."""
        httpx = import_httpx()

        policy = retry or self.retry
        params = {**self.params, **(params or {})} or None
        if form is not None:
            sent = {**self.headers, "content-type": "multipart/form-data"}
            shown = form.described()
        else:
            sent = {**self.headers, **({"content-type": "application/json"} if body is not None else {})}
            shown = body
        sent.update(headers or {})
        attempts = 0

        def once() -> Response:
            nonlocal attempts
            attempts += 1
            t0 = time.perf_counter()
            if form is not None:
                request = self.client.build_request(method, url, data=form.fields, files=form.files_arg(),
                                                    params=params, headers=headers)
            else:
                request = self.client.build_request(method, url, json=body, params=params, headers=headers)
            response = self.client.send(request, stream=True)
            elapsed = time.perf_counter() - t0
            self.debug.response(response.status_code, response.reason_phrase, elapsed, response.headers)
            if response.status_code >= 400:
                try:
                    response.read()
                finally:
                    response.close()
                raise _Status(response)
            if not_modified and response.status_code == 304:
                response.close()
                return response
            if response.status_code != 200 and (stream or response.status_code < 200 or response.status_code >= 300
                                                 or response.status_code == 204):
                response.close()
                raise _Unexpected(response)
            if not stream:
                try:
                    response.read()
                finally:
                    response.close()
            return response

        try:
            self.debug.request(method, str(httpx.URL(url, params=params)) if params else url, sent, shown)
            return run_with_retries(once, self._classify, policy, self.debug)
        except httpx.InvalidURL as exc:
            raise error(UsageError, f"cannot send a request to '{redact_url(url)}': {exc}",
                        "check the service address (--api-base, or the deployment's api_base, endpoint or host)",
                        ) from None
        except _Status as exc:
            raise status_error(self.ctx, exc.status, exc.body, exc.text, attempts=attempts) from None
        except _Unexpected as exc:
            raise error(BackendError, f"{self.ctx.provider} answered with {exc} instead of "
                        f"{'a stream' if stream else 'JSON'}", "check the service address") from None
        except _limits.LimitExceeded as exc:
            raise error(BackendError, f"the answer from {self.ctx.provider} {exc.why}") from None
        except httpx.TimeoutException as exc:
            if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                raise error(OfflineError, f"cannot connect to {self.ctx.where(url)}: "
                            f"no answer within {self.connect_timeout:g} s") from None
            timeout = error(BackendError, f"{self.ctx.provider} sent nothing for {self.read_timeout:g} s",
                            "the server may be overloaded; try again later")
            timeout.retryable = True
            raise timeout from None
        except httpx.ConnectError as exc:
            tries = f" (tried {attempts} times)" if attempts > 1 else ""
            raise error(OfflineError, f"cannot connect to {self.ctx.where(url)}: "
                        f"{transport_reason(exc)}{tries}") from None
        except httpx.HTTPError as exc:
            raise error(BackendError, f"the request to {self.ctx.provider} failed: {transport_reason(exc)}") from None

    def request_json(self, method: str, url: str, body: Any = None, *, params: Mapping[str, str] | None = None,
                     retry: RetryPolicy | None = None, form: "Form | None" = None) -> Any:
        """Send a request (a JSON `body`, or a multipart `form`) and return its JSON answer."""
        response = self._send(method, url, body, params, stream=False, retry=retry, form=form)
        return parse_json(self.ctx, response, response.content)

    def get_if_changed(self, url: str, etag: str | None) -> Response | None:
        """GET `url`, with `If-None-Match: etag` when there is one: None when the server answers
        304 Not Modified, else the answer, read (`content`, `headers`) within the limits."""
        headers = {"if-none-match": etag} if etag else None
        response = self._send("GET", url, None, None, stream=False, headers=headers, not_modified=True)
        return None if response.status_code == 304 else response

    def request_bytes(self, method: str, url: str, body: Any = None, *, params: Mapping[str, str] | None = None,
                      form: "Form | None" = None) -> tuple[bytes, str]:
        """Send a request and return its answer as bytes with their media type (audio, images).
        An error page in JSON or HTML is no such answer."""
        response = self._send(method, url, body, params, stream=False, form=form)
        kind = media_type(response)
        if kind in ("text/html", "application/json") or not response.content:
            raise error(BackendError, f"{self.ctx.provider} answered with {what_came(response)} "
                        f"instead of a file: {one_line(response.text, 120)}", "check the service address")
        return response.content, kind

    def open_stream(self, url: str, body: Any, *, params: Mapping[str, str] | None = None) -> "LineStream":
        """POST `body` and return the answer's lines, ready to read (status already checked; a
        web page instead of a stream is an error at once)."""
        response = self._send("POST", url, body, params, stream=True)
        if media_type(response) == "text/html":
            response.close()
            raise error(BackendError, f"{self.ctx.provider} answered with a web page ({what_came(response)}) "
                        "instead of a stream", "check the service address")
        return LineStream(self, response)


@dataclass
class Form:
    """A multipart/form-data upload: text fields and files (name -> (file name, bytes, media type))."""

    fields: dict[str, str]
    files: dict[str, tuple[str, bytes, str]]

    def files_arg(self) -> dict[str, tuple[str, bytes, str]]:
        return dict(self.files)

    def described(self) -> dict[str, Any]:
        """The form as the debug log shows it: files by name, size and type, not their bytes."""
        shown: dict[str, Any] = dict(self.fields)
        for name, (filename, data, kind) in self.files.items():
            shown[name] = f"<{filename}: {len(data)} bytes, {kind}>"
        return shown


class LineStream:
    """The lines of a streamed answer. Iteration raises `StreamInterrupted` when the connection
    fails midway; `close()` releases the connection (also on Ctrl-C)."""

    def __init__(self, client: HttpClient, response: Response) -> None:
        self.client = client
        self.response = response
        self._forget = on_abandon(response)  # a caller that gives up ends a blocked read (transport/abandon)
        self.received = 0  # characters of answer text the backend reported (for messages)
        self.events_read = 0
        self.head = ""  # the first characters of the body, to say what came back if it was no stream

    def lines(self) -> Iterator[str]:
        httpx = import_httpx()

        try:
            for line in self.response.iter_lines():
                if len(self.head) < 120:
                    self.head += line[:120] + " "
                yield line
        except httpx.TimeoutException:
            raise self.interrupted(f"no data for {self.client.read_timeout:g} s (MODELCTL_READ_TIMEOUT)") from None
        except httpx.HTTPError as exc:
            raise self.interrupted(transport_reason(exc)) from None
        except _limits.LimitExceeded as exc:
            raise self.interrupted(f"the answer {exc.why}") from None

    def is_json(self) -> bool:
        """Whether the server answered with one JSON document instead of events (some
        OpenAI-compatible servers ignore `stream: true`)."""
        return media_type(self.response) == "application/json"

    def whole_json(self) -> Any:
        """That JSON document, read within the stream's time and size limits."""
        return parse_json(self.client.ctx, self.response, "\n".join(self.lines()))

    def events(self) -> Iterator[Event]:
        for event in iter_sse(self.lines()):
            self.events_read += 1
            yield event

    def interrupted(self, why: str) -> StreamInterrupted:
        return interrupted(self.client.ctx.provider, self.received, why)

    def ended_early(self) -> StreamInterrupted:
        """The error for a stream that ended without the provider's end marker: when not one
        event came, what came instead."""
        if self.events_read:
            return self.interrupted("the stream ended before the answer was finished")
        body = one_line(self.head, 120)
        return self.interrupted(f"the stream ended before the answer began: {what_came(self.response)}"
                                + (f", not events: {body}" if body else " with no events"))

    def close(self) -> None:
        self._forget()
        self.response.close()


def parse_json(ctx: ErrorContext, response: Response, content: str | bytes) -> Any:
    """The JSON of a response's `content`; what came instead is said in a BackendError."""
    try:
        return wire.loads(content)
    except ValueError as exc:
        why = str(exc) if isinstance(exc, wire.TooBig) else one_line(
            content if isinstance(content, str) else response.text, 120)
        raise error(BackendError, f"{ctx.provider} answered with something that is not JSON "
                    f"({what_came(response)}): {why}") from None


def media_type(response: Response) -> str:
    kind: str = response.headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower()


def what_came(response: Response) -> str:
    """What a response was, for a message: "HTTP 301 Moved Permanently, to https://…",
    "HTTP 200, text/html"."""
    reason = one_line(response.reason_phrase or "", 40)
    parts = [f"HTTP {response.status_code}{' ' + reason if reason else ''}"]
    location = response.headers.get("location")
    if location:
        parts.append(f"to {one_line(redact_url(location), 120)}")
    parts.append(one_line(media_type(response), 60) or "no content type")
    return ", ".join(parts)


class _Unexpected(Exception):
    """A status that is no answer: a redirect (not followed), 204 No Content, 1xx."""

    def __init__(self, response: Response) -> None:
        super().__init__(what_came(response))


class _Status(Exception):
    """An HTTP error status, inside the retry loop."""

    def __init__(self, response: Response) -> None:
        self.status = response.status_code
        self.text = response.text
        try:
            self.body = wire.loads(self.text)
        except ValueError:
            self.body = None
        self.retry_after = parse_retry_after(response.headers)
        super().__init__(f"HTTP {self.status}")


def transport_reason(exc: BaseException) -> str:
    """A short reason for a transport error (httpx messages are often empty)."""
    why = unreachable(exc)
    if why is not None:
        return why
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause).strip()
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "peer closed connection" in text or "incomplete chunked read" in text:
        return "the server closed the connection"
    return redact(text) or type(exc).__name__
