"""`--debug` for server and API backends: the one place a request is described. `DebugLog` writes
the request (method, URL, headers with credentials redacted, JSON body) and the response
(status, time, usage) to stderr; every string it writes passes through `modelctl.redaction.redact`.
`request_hooks` describes the requests a library client (huggingface_hub, ollama) sends."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import IO, Any, Callable, Mapping, Protocol

from modelctl.redaction import REDACTED, credential_name, redact, redact_data, redactor
from modelctl.terminal_text import escape_controls
from modelctl.transport import wire
from modelctl.transport.urls import redact_url


class Usage(Protocol):
    """Token counts of an answer, as a backend reports them (`modelctl.backends.base.Usage`)."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...


class Timings(Protocol):
    """An answer's speed, as a backend reports it (`modelctl.backends.base.Timings`)."""

    @property
    def first_token_s(self) -> float | None: ...
    @property
    def tokens_per_second(self) -> float | None: ...


# A header value made of an auth scheme and a credential: `Bearer abc…`, `Basic dXNl…`.
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|digest|negotiate|sharedkey)\s+\S")


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as `--debug` shows them: the value of one named like a credential (`Authorization`,
    `api-key`, `x-goog-api-key`, `Cookie`, …) or made of a scheme and a token hidden, all but the
    scheme; every other value redacted as text."""
    hide = redactor()
    shown = {}
    for name, value in headers.items():
        scheme = _AUTH_SCHEME.match(value)
        if scheme or credential_name(name):
            shown[name] = f"{scheme.group(1)} {REDACTED}" if scheme else REDACTED
        else:
            shown[name] = hide(value)
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
            self.block("body", json.dumps(redact_data(abbreviate(body)), indent=2, ensure_ascii=False))

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


_BASE64 = re.compile(r"(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/=]{200,}")


def abbreviate(value: Any) -> Any:
    """`value` (a JSON body) with long base64 strings (images, audio, data URLs) shown by size."""
    if isinstance(value, str):
        match = _BASE64.fullmatch(value) if len(value) > 200 else None
        return f"<{match.group(1) or ''}{len(value)} characters of base64>" if match else value
    if isinstance(value, dict):
        return {k: abbreviate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [abbreviate(v) for v in value]
    return value


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
