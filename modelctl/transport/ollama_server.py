"""What the two halves of Ollama support share: chatting (`modelctl.backends.ollama`) and
listing, pulling and deleting models (`modelctl.store.ollama_pull`) talk to one server, named one
way, through clients bounded one way.

    ollama_host(own, given) the server: `given` (--api-base), else the user's [api_base] ollama,
                            else `own` (a deployment's host), else OLLAMA_HOST, else
                            DEFAULT_HOST; checked (UsageError when unusable)
    normalize_tag(tag)      `llama2` -> `llama2:latest`, as Ollama names models
    ollama_client(host, …)  an `ollama.Client` whose answers are bounded (`response_limits`)
    NOT_OLLAMA, unreadable  what the ollama package raises for an answer it cannot read, in words
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping
from urllib.parse import urlsplit

from modelctl.config import api_base_for
from modelctl.errors import UsageError
from modelctl.redaction import remember_url_credentials
from modelctl.transport.response_limits import Hook, Limits, bounded_hooks, limits
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import host_problem, redact_url, url_problem

if TYPE_CHECKING:
    import httpx
    import ollama

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
# What the ollama package raises for an answer it cannot read: JSON that does not parse or nests
# too deep, or of another shape than its pydantic models (ValidationError is a ValueError; a
# list where an object belongs fails as TypeError or AttributeError inside the package).
NOT_OLLAMA = (ValueError, TypeError, AttributeError, RecursionError)


def ollama_host(own: str | None = None, *, given: str | None = None) -> str:
    """The server URL: `given` (--api-base), else `[api_base] ollama` (config.api_base_for), else
    `own` (a deployment's host), else OLLAMA_HOST, else the default; scheme and port filled in as
    Ollama does (`host:port`, `:port`, `http://host`). Credentials written into it are
    remembered for redaction (and not sent: Ollama takes none); a host that cannot be used is a
    UsageError."""
    given = (api_base_for("ollama", given) or own or os.environ.get("OLLAMA_HOST") or "").strip()
    if not given:
        return DEFAULT_HOST
    remember_url_credentials(given)
    raw, scheme = given, "http"
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        default_port = 443 if scheme == "https" else 80
    else:
        default_port = DEFAULT_PORT
    try:
        parts = urlsplit(f"{scheme}://{raw}")
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        url = f"{scheme}://{host}:{parts.port or default_port}{parts.path.rstrip('/')}"
    except ValueError as exc:
        problem: str | None = str(exc)
    else:
        problem = url_problem(url) or host_problem(url)
    if problem:
        raise UsageError(f"'{redact_url(given)}' is not a usable Ollama host: {problem}",
                         hint="check --api-base, [api_base] ollama in config.toml, the deployment's host, or OLLAMA_HOST")
    return url


def normalize_tag(tag: str) -> str:
    """`llama2` -> `llama2:latest`, as Ollama names models."""
    tag = tag.strip()
    name = tag.rsplit("/", 1)[-1]
    return tag if ":" in name else f"{tag}:latest"


def unreadable(exc: BaseException) -> str:
    """Why the ollama package could not read an answer (one of `NOT_OLLAMA`)."""
    return "JSON nested too deeply" if isinstance(exc, RecursionError) else one_line(str(exc), 120)


Hooks = Mapping[str, list[Hook]]


def ollama_client(host: str, *, timeout: httpx.Timeout | float, bounds: Limits | None = None, deadline: bool = True,
                  hooks: Hooks | None = None, transport: httpx.BaseTransport | None = None) -> ollama.Client:
    """An `ollama.Client` for `host` (as `ollama_host` gives it) that follows no redirect (a key
    goes nowhere else) and whose answers are bounded by `bounds` (default `limits()`; a pull,
    which may take hours, has no `deadline`). `hooks` run before the bounds' own."""
    import httpx  # noqa: PLC0415 (httpx: imported only where used)
    import ollama  # noqa: PLC0415 (ollama: imported only where used)

    bounds = bounds or limits()
    bounded = bounded_hooks(httpx, bounds if deadline else bounds.without_deadline(), shown=redact_url)
    event_hooks = {name: [*(hooks or {}).get(name, []), *fns] for name, fns in bounded.items()}
    extra: dict[str, httpx.BaseTransport] = {} if transport is None else {"transport": transport}
    return ollama.Client(host=host, timeout=timeout, follow_redirects=False, event_hooks=event_hooks, **extra)
