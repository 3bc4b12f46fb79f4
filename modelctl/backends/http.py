"""The HTTP layer every API backend shares: timeouts, bounded retries, server-sent events,
error mapping, and the one place a request is described for `--debug`.

- `RetryPolicy` decides whether and how long to wait before another attempt: on 429, 5xx and
  connection errors, honouring `Retry-After` (and `retry-after-ms`); its `sleep` is injectable.
- `HttpClient` sends JSON requests through one `httpx.Client`, retries what may be retried
  before any answer arrived, and turns failures into modelctl errors: 401/403 → `AuthError`,
  404 → `NotFoundError` naming the model or deployment, other 4xx → `BackendError` carrying the
  provider's own message, connection failures → `OfflineError`.
- `DebugLog` writes the request (method, URL, headers with credentials redacted, JSON body) and
  the response (status, time, usage) to stderr. Every string it writes, and every error
  message made here, passes through `modelctl.keys.redact`.

`httpx` is imported only when a client is made.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import unquote_plus

from modelctl.backends import limits as _limits
from modelctl.backends import wire
from modelctl.backends.base import Timings, Usage
from modelctl.errors import AuthError, BackendError, ModelctlError, NotFoundError, OfflineError, UsageError
from modelctl.keys import REDACTED, redact, remember_secret

# Headers whose values are credentials, whatever they hold.
SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "x-goog-api-key", "proxy-authorization", "cookie"}
)
# Query parameters that carry credentials in some APIs; also any whose name contains one of
# SECRET_PARAM_WORDS (`x-api-key`, `auth_token`, `client_secret`, …).
SECRET_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "access_token", "token", "sig"})
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "signature")

DEFAULT_CONNECT_TIMEOUT = 10.0
MESSAGE_CHARS = 300  # the most of a server's own words an error message quotes

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


# --- errors ------------------------------------------------------------------------------------------


class StreamInterrupted(BackendError):
    """The connection failed after part of the answer had arrived. The chunks already yielded
    stand (the chat keeps them as the partial answer); `received` counts their characters."""

    def __init__(self, message: str, *, received: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.received = received


def interrupted(provider: str, received: int, why: str) -> StreamInterrupted:
    """The error for a stream that failed after `received` characters of answer."""
    if received:
        msg = f"the answer from {provider} was cut off after {received} characters: {why}"
        hint = "the partial answer is kept"
    else:
        msg = f"the answer from {provider} was cut off before any text arrived: {why}"
        hint = None
    return StreamInterrupted(redact(msg), received=received, hint=hint)


def error(cls: type[ModelctlError], message: str, hint: str | None = None) -> ModelctlError:
    """An error whose message and hint have been through redaction."""
    return cls(redact(message), hint=redact(hint) if hint else None)


def provider_message(body: Any, text: str = "") -> str:
    """The human message inside an error body, in any of the shapes providers document:
    `{"error": {"message": ...}}` (OpenAI, Azure, Anthropic, Gemini), `{"message": ...}`
    (Mistral), `{"error": "..."}` (Hugging Face, Ollama), `{"detail": ...}` (FastAPI servers);
    else the start of the body's text. On one line, at most MESSAGE_CHARS long, control
    characters shown as escapes (a server's words never drive the terminal)."""
    return one_line(_message(body) or (body is None and _salvaged(text)) or text)


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A server's words, safe to put in a message: one line, escapes for control characters,
    at most `limit` characters."""
    text = escape_controls(" ".join(wire.clean_text(text[: limit * 4]).split()))
    return text[:limit] + ("…" if len(text) > limit else "")


def escape_controls(text: str) -> str:
    """Control characters (C0 but newline and tab, DEL, C1) as escapes: `\\x1b`, never the byte
    that drives a terminal."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MESSAGE_FIELD = re.compile(r'"(?:message|detail|error)"\s*:\s*"((?:[^"\\]|\\.){1,1200})')


def _salvaged(text: str) -> str:
    """The message of a JSON error body that does not parse because it was cut short (error
    bodies are read up to `limits.ERROR_BODY_BYTES`)."""
    m = _MESSAGE_FIELD.search(text[:8192])
    if not m:
        return ""
    try:
        return json.loads(f'"{m[1]}"')
    except ValueError:  # cut inside an escape
        return m[1]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg")
            if msg:
                return _flatten(msg)
        elif isinstance(err, str) and err:
            return err
        for key in ("message", "detail", "error_description", "msg"):
            if body.get(key):
                return _flatten(body[key])
    elif isinstance(body, list) and body:
        return _message(body[0])
    return ""


def _flatten(msg: Any, depth: int = 0) -> str:
    if isinstance(msg, str):
        return msg
    if depth > 8:  # validation details nest a little; a hostile body may nest a lot
        return "…"
    if isinstance(msg, list):  # FastAPI/pydantic validation details
        parts = []
        for item in msg[:20]:
            if isinstance(item, dict) and "msg" in item:
                loc = item.get("loc") if isinstance(item.get("loc"), list) else []
                where = ".".join(str(x) for x in loc if x != "body")
                parts.append(f"{where}: {_flatten(item['msg'], depth + 1)}" if where else _flatten(item["msg"], depth + 1))
            else:
                parts.append(_flatten(item, depth + 1))
        return "; ".join(parts)
    if isinstance(msg, dict):
        if "detail" in msg:
            return _flatten(msg["detail"], depth + 1)
        if "message" in msg:
            return _flatten(msg["message"], depth + 1)
    try:
        return json.dumps(msg, ensure_ascii=False)[: MESSAGE_CHARS * 4]
    except (ValueError, RecursionError):
        return wire.kind(msg)


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


def status_error(ctx: ErrorContext, status: int, body: Any, text: str, *, attempts: int = 1) -> BackendError:
    """The modelctl error for an HTTP error status."""
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
    details = err.get("details") if isinstance(err.get("details"), list) else []
    return any(isinstance(d, dict) and str(d.get("reason", "")).startswith("API_KEY_") for d in details)


# --- retries ------------------------------------------------------------------------------------------


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
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

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
        return min(self.max_backoff, self.backoff * (2**attempt))


NO_RETRY = RetryPolicy(retries=0)


def default_retry() -> RetryPolicy:
    """The policy for this process: `MODELCTL_RETRIES` extra attempts (default 3)."""
    raw = os.environ.get("MODELCTL_RETRIES", "")
    try:
        retries = int(raw) if raw else 3
    except ValueError:
        retries = 3
    return RetryPolicy(retries=max(0, retries))


@dataclass
class Attempt:
    """One failed try, as `run_with_retries` sees it."""

    retryable: bool
    retry_after: float | None = None
    reason: str = ""


def run_with_retries(call: Callable[[], Any], classify: Callable[[BaseException], Attempt | None],
                     policy: RetryPolicy, debug: "DebugLog | None" = None) -> Any:
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
            if verdict is None or not verdict.retryable:
                raise
            wait = policy.delay(attempt, verdict.retry_after)
            if wait is None:
                raise
            if debug is not None:
                debug.line("retry", f"{verdict.reason or type(exc).__name__}; attempt {attempt + 2} "
                           f"of {policy.retries + 1} in {wait:g} s")
            if wait > 0:
                policy.sleep(wait)
            attempt += 1


# --- service addresses ---------------------------------------------------------------------------------


# [scheme://][userinfo@]rest — the user info runs to the last "@" before the path.
_URL_PARTS = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?:(?P<userinfo>[^/?#]*)@)?(?P<rest>.*)$", re.DOTALL)


def _secret_param(name: str) -> bool:
    name = unquote_plus(name).lower()
    return name in SECRET_PARAMS or any(word in name for word in SECRET_PARAM_WORDS)


def _split_url(url: str) -> tuple[str, str | None, str, str | None, str]:
    """(scheme://, user info, host and path, query, #fragment) as written; never raises, so that
    a malformed URL can be shown safely too."""
    m = _URL_PARTS.match(url)
    assert m is not None  # every part is optional
    rest, hash_, fragment = m["rest"].partition("#")
    head, question, query = rest.partition("?")
    return m["scheme"] or "", m["userinfo"], head, query if question else None, hash_ + fragment


def url_credentials(url: str) -> list[str]:
    """The secrets written into a URL: the password of its user info (the whole user info when
    it has no password: a token) and the values of credential query parameters, as written and
    decoded."""
    _, userinfo, _, query, _ = _split_url(url)
    found = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for pair in (query or "").split("&"):
        name, _, value = pair.partition("=")
        if _secret_param(name):
            found.append(value)
    return [form for secret in found if secret for form in dict.fromkeys((secret, unquote_plus(secret)))]


def remember_url_credentials(url: str) -> None:
    """Have `redact()` hide the credentials written into `url` wherever they appear later."""
    for secret in url_credentials(url):
        remember_secret(secret)


def redact_url(url: str) -> str:
    """The URL with its user info and credential query parameters (`key=`, `api_key=`, …)
    hidden, and every known key redacted; the rest as written. Malformed URLs too."""
    scheme, userinfo, head, query, fragment = _split_url(url)
    shown = scheme + (f"{REDACTED}@" if userinfo is not None else "") + head
    if query is not None:
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            pairs.append(f"{name}={REDACTED}" if eq and value and _secret_param(name) else pair)
        shown += "?" + "&".join(pairs)
    return redact(shown + fragment)


def strip_credentials(url: str) -> str:
    """The URL without its user info and credential query parameters: what may be written
    into a file."""
    scheme, _, head, query, fragment = _split_url(url)
    if query is not None:
        kept = [pair for pair in query.split("&") if not _secret_param(pair.partition("=")[0])]
        head += "?" + "&".join(kept) if kept else ""
    return scheme + head + fragment


def host_problem(url: str) -> str | None:
    """Why the host of an http(s) URL cannot be looked up (DNS limits: labels of at most 63
    characters, 253 in all, encodable as IDNA), or None."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        return f"expected a URL with a valid host and port ({exc})"
    if host.startswith("[") or ":" in host:  # an IPv6 literal: urlsplit checked it
        return None
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        return "the host name is too long (at most 63 characters between dots, 253 in all)"
    try:
        host.encode("idna")
    except UnicodeError as exc:
        return f"the host name is not valid ({exc})"
    return None


@dataclass(frozen=True)
class ServiceUrl:
    """A service's address as given (`--api-base`, a registry `api_base` or `endpoint`, an
    environment variable), taken apart."""

    base: str  # request paths are appended to this: no query, no trailing "/"; user info kept (httpx sends it as Basic auth)
    query: dict[str, str]  # the address's own query parameters, sent with every request
    shown: str  # what messages and --debug print: credentials hidden


def check_url(url: str, what: str = "the service address") -> str:
    """`url`, once the credentials written into it are remembered for `redact()`; a URL that
    cannot be used is a UsageError naming `what` and the URL (credentials hidden)."""
    from modelctl.registry.schema import url_problem

    remember_url_credentials(url)
    problem = url_problem(url) or host_problem(url)
    if problem:
        raise UsageError(f"{what} '{redact_url(url)}' is not a usable URL: {problem}")
    return url


def service_url(url: str) -> ServiceUrl:
    """Take a service's address apart (`check_url` first)."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(check_url(url))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    shown = redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, "")))
    return ServiceUrl(base, query, shown)


# --- debug ---------------------------------------------------------------------------------------------


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    shown = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            shown[name] = f"{scheme} {REDACTED}".strip()
        else:
            shown[name] = redact(value)
    return shown


def debug_enabled(debug: "bool | DebugLog | None") -> bool:
    if isinstance(debug, DebugLog):
        return debug.enabled
    if debug is None:
        return os.environ.get("MODELCTL_DEBUG", "") not in ("", "0")
    return bool(debug)


class DebugLog:
    """`--debug` output for API backends: lines on stderr starting with `debug: `.

    This is the one place requests are described; everything written goes through `redact`.
    """

    def __init__(self, enabled: bool | None = None, out: IO[str] | None = None) -> None:
        self.enabled = debug_enabled(enabled)
        self._out = out

    @classmethod
    def of(cls, debug: "bool | DebugLog | None") -> "DebugLog":
        return debug if isinstance(debug, DebugLog) else cls(debug)

    @property
    def out(self) -> IO[str]:
        return self._out or sys.stderr

    def line(self, label: str, value: Any) -> None:
        if not self.enabled:
            return
        self.out.write(escape_controls(redact(f"debug: {label}: {value}")) + "\n")
        self.out.flush()

    def block(self, label: str, text: str) -> None:
        if not self.enabled:
            return
        self.out.write(f"debug: {label}:\n")
        for row in escape_controls(wire.clean_text(redact(text))).splitlines() or [""]:
            self.out.write(f"debug:   {row}\n")
        self.out.flush()

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: Any = None) -> None:
        """The exact request: method, URL, headers (credentials hidden) and JSON body."""
        if not self.enabled:
            return
        self.line("request", f"{method} {redact_url(url)}")
        for name, value in redact_headers(headers or {}).items():
            self.line("header", f"{name}: {value}")
        if body is not None:
            self.block("body", json.dumps(body, indent=2, ensure_ascii=False))

    def response(self, status: int, reason: str, elapsed: float, headers: Mapping[str, str] | None = None) -> None:
        if not self.enabled:
            return
        self.line("response", f"{status} {reason} after {elapsed:.3f} s")
        for name in ("x-request-id", "request-id", "apim-request-id", "x-ratelimit-remaining-requests"):
            if headers and headers.get(name):
                self.line("header", f"{name}: {headers[name]}")

    def answer(self, finish_reason: str | None, usage: Usage | None, timings: Timings | None,
               total_s: float | None = None) -> None:
        if not self.enabled:
            return
        parts = [f"finish reason {finish_reason}"]
        if usage is not None:
            parts.append(f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens")
        else:
            parts.append("no usage reported")
        if timings is not None and timings.first_token_s is not None:
            parts.append(f"first token after {timings.first_token_s:.3f} s")
        if timings is not None and timings.tokens_per_second is not None:
            parts.append(f"{timings.tokens_per_second:.1f} tokens/s")
        if total_s is not None:
            parts.append(f"{total_s:.3f} s in all")
        self.line("answer", "; ".join(parts))


def request_hooks(debug: DebugLog) -> dict[str, list[Callable[[Any], None]]]:
    """httpx event hooks that describe each request a library client sends (huggingface_hub,
    ollama) exactly as it goes out, through `debug`."""
    started: list[float] = []

    def on_request(request: Any) -> None:
        started.append(time.perf_counter())
        body: Any = None
        try:
            content = request.content
        except Exception:  # a streamed upload: nothing to show
            content = b""
        if content:
            try:
                body = json.loads(content)
            except (ValueError, UnicodeDecodeError):
                body = f"<{len(content)} bytes>"
        debug.request(request.method, str(request.url), dict(request.headers), body)

    def on_response(response: Any) -> None:
        elapsed = time.perf_counter() - started[-1] if started else 0.0
        debug.response(response.status_code, response.reason_phrase, elapsed, response.headers)

    return {"request": [on_request], "response": [on_response]}


def hub_session_hooks(httpx_module: Any, limits: "_limits.Limits | None" = None) -> dict[str, list[Callable[[Any], None]]]:
    """Hooks that bound each answer `huggingface_hub`'s session reads (`limits.bounded_hooks`)."""
    return _limits.bounded_hooks(httpx_module, limits or _limits.limits(), shown=redact_url)


@contextmanager
def hooked_session(hooks: Mapping[str, list[Callable[[Any], None]]]) -> Iterator[None]:
    """`hooks` on huggingface_hub's shared session while the block runs (it has no other way in)."""
    from huggingface_hub.utils import get_session

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


# --- timing of a streamed answer -------------------------------------------------------------------------


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
        if completion_tokens and completion_tokens >= 2 and self.first is not None and self.last and self.last > self.first:
            rate = (completion_tokens - 1) / (self.last - self.first)
        return Timings(
            first_token_s=None if self.first is None else self.first - self.start,
            tokens_per_second=rate,
            **extra,
        )

    def total(self) -> float:
        return time.perf_counter() - self.start


# --- options ------------------------------------------------------------------------------------------


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


# --- server-sent events ----------------------------------------------------------------------------------


@dataclass
class Event:
    event: str
    data: str

    def json(self) -> Any:
        """The event's data as JSON (`wire.loads`: ValueError when it is not, or nests too deep)."""
        return wire.loads(self.data)


def iter_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream of lines (the WHATWG event-stream rules: `data:` lines
    joined by newlines, `event:` names, comments and `id:`/`retry:` fields ignored)."""
    name = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        fname, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if fname == "data":
            data.append(value)
        elif fname == "event":
            name = value
    if data:
        yield Event(name or "message", "\n".join(data))


# --- the client ----------------------------------------------------------------------------------------


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
        transport: Any = None,
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
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import httpx

            from modelctl import __version__

            self._client = httpx.Client(
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                headers={"user-agent": f"modelctl/{__version__}", **self.headers},
                transport=self._transport,
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
        import httpx

        if isinstance(exc, _Status):
            return Attempt(exc.status in RETRY_STATUSES, exc.retry_after, f"HTTP {exc.status}")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                            httpx.ReadError, httpx.WriteError, httpx.PoolTimeout)):
            return Attempt(True, None, transport_reason(exc))
        if isinstance(exc, httpx.ReadTimeout):
            return Attempt(False)
        return None

    def _send(self, method: str, url: str, body: Any, params: Mapping[str, str] | None,
              stream: bool, retry: RetryPolicy | None = None):
        """The response to a request (status < 400), after any retries. For a stream the body
        is not read yet; the caller closes the response."""
        import httpx

        policy = retry or self.retry
        params = {**self.params, **(params or {})} or None
        sent = {**self.headers, **({"content-type": "application/json"} if body is not None else {})}
        attempts = 0

        def once():
            nonlocal attempts
            attempts += 1
            t0 = time.perf_counter()
            request = self.client.build_request(method, url, json=body, params=params)
            response = self.client.send(request, stream=True)
            self.debug.response(response.status_code, response.reason_phrase, time.perf_counter() - t0, response.headers)
            if response.status_code >= 400:
                try:
                    response.read()
                finally:
                    response.close()
                raise _Status(response)
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
            self.debug.request(method, str(httpx.URL(url, params=params)) if params else url, sent, body)
            return run_with_retries(once, self._classify, policy, self.debug)
        except httpx.InvalidURL as exc:
            raise error(UsageError, f"cannot send a request to '{redact_url(url)}': {exc}",
                        "check the service address (--api-base, or the deployment's api_base, endpoint or host)") from None
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
            raise error(BackendError, f"{self.ctx.provider} sent nothing for {self.read_timeout:g} s",
                        "the server may be overloaded; try again later") from None
        except httpx.ConnectError as exc:
            tries = f" (tried {attempts} times)" if attempts > 1 else ""
            raise error(OfflineError, f"cannot connect to {self.ctx.where(url)}: "
                        f"{transport_reason(exc)}{tries}") from None
        except httpx.HTTPError as exc:
            raise error(BackendError, f"the request to {self.ctx.provider} failed: {transport_reason(exc)}") from None

    def request_json(self, method: str, url: str, body: Any = None, *, params: Mapping[str, str] | None = None,
                     retry: RetryPolicy | None = None) -> Any:
        """Send a request and return its JSON answer."""
        response = self._send(method, url, body, params, stream=False, retry=retry)
        try:
            return wire.loads(response.content)
        except ValueError as exc:
            why = str(exc) if "nested" in str(exc) else one_line(response.text, 120)
            raise error(BackendError, f"{self.ctx.provider} answered with something that is not JSON "
                        f"({what_came(response)}): {why}") from None

    def open_stream(self, url: str, body: Any, *, params: Mapping[str, str] | None = None) -> "LineStream":
        """POST `body` and return the answer's lines, ready to read (status already checked; a
        web page instead of a stream is an error at once)."""
        response = self._send("POST", url, body, params, stream=True)
        if media_type(response) == "text/html":
            response.close()
            raise error(BackendError, f"{self.ctx.provider} answered with a web page ({what_came(response)}) "
                        "instead of a stream", "check the service address")
        return LineStream(self, response)


class LineStream:
    """The lines of a streamed answer. Iteration raises `StreamInterrupted` when the connection
    fails midway; `close()` releases the connection (also on Ctrl-C)."""

    def __init__(self, client: HttpClient, response) -> None:
        self.client = client
        self.response = response
        self.received = 0  # characters of answer text the backend reported (for messages)
        self.events_read = 0
        self.head = ""  # the first characters of the body, to say what came back if it was no stream

    def lines(self) -> Iterator[str]:
        import httpx

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
        self.response.close()


def media_type(response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def what_came(response) -> str:
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

    def __init__(self, response) -> None:
        super().__init__(what_came(response))


class _Status(Exception):
    """An HTTP error status, inside the retry loop."""

    def __init__(self, response) -> None:
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
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause).strip()
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "peer closed connection" in text or "incomplete chunked read" in text:
        return "the server closed the connection"
    return redact(text) or type(exc).__name__


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
