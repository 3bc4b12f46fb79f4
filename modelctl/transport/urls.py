"""Service addresses: checking them, taking them apart, and hiding the credentials written into
them (user info, `?key=…` and other credential query parameters) wherever they are shown or
stored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from modelctl.errors import UsageError
from modelctl.redaction import parser_detail, redact, redact_address, remember_url_credentials, split_scheme
from modelctl.transport.httpx_import import import_httpx


def url_problem(v: Any) -> str | None:
    """Why `v` is not a usable http(s) URL (no spaces, a host, a port that is a number), or None.
    The registry checks its URLs with it, and every address a request goes to (`--api-base`,
    an endpoint, a host) is checked with it first."""
    if not isinstance(v, str) or not re.match(r"^https?://", v, re.IGNORECASE):
        return "expected an http(s) URL"
    if re.search(r"\s", v):
        return "expected a URL without spaces"
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        return f"expected a URL with a valid host and port{parser_detail(v, exc)}"
    if not parts.hostname:
        return "expected a URL with a host"
    return None


def redact_url(url: str) -> str:
    """The URL with its user info and credential parameters (`key=`, `api_key=`, `sig=`, …)
    hidden, whatever characters they hold, and every known key redacted; the rest as written.
    Malformed URLs and addresses without a scheme (`user:pw@host:11434`) too."""
    scheme, address = split_scheme(url)
    return redact(scheme + redact_address(address))


def host_problem(url: str) -> str | None:
    """Why the host of an http(s) URL cannot be looked up (DNS limits: no empty label, labels of
    at most 63 characters, 253 in all) or sent to (httpx's own reading of the URL: IPv4 and IPv6
    literals, the port, international names as IDNA 2008), or None."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        return f"expected a URL with a valid host and port{parser_detail(url, exc)}"
    if not (host.startswith("[") or ":" in host):  # not an IPv6 literal
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")  # `example.com.` is fine
        if len(host) > 253 or any(len(label) > 63 for label in labels):
            return "the host name is too long (at most 63 characters between dots, 253 in all)"
        if "" in labels:
            return "the host name has an empty part between dots"
    return _httpx_problem(url)


def _httpx_problem(url: str) -> str | None:
    """What httpx says of `url` when it builds a request, before any request is built."""

    httpx = import_httpx()
    try:
        httpx.URL(url).host  # noqa: B018 (reading the host decodes an `xn--` name, as a request does)
    except (httpx.InvalidURL, UnicodeError) as exc:  # idna's errors are UnicodeErrors
        return f"not a valid address ({exc})"
    return None


@dataclass(frozen=True)
class ServiceUrl:
    """A service's address as given (`--api-base`, a registry `api_base` or `endpoint`, an
    environment variable), taken apart."""

    # Request paths are appended to `base`: no query, no trailing "/"; user info kept (httpx
    # sends it as Basic auth).
    base: str
    query: dict[str, str]  # the address's own query parameters, sent with every request
    shown: str  # what messages and --debug print: credentials hidden


def check_url(url: str, what: str = "the service address") -> str:
    """`url`, once the credentials written into it are remembered for `redact()`; a URL that
    cannot be used is a UsageError naming `what` and the URL (credentials hidden)."""
    remember_url_credentials(url)
    problem = url_problem(url) or host_problem(url)
    if problem:
        raise UsageError(f"{what} '{redact_url(url)}' is not a usable URL: {problem}")
    return url


def service_url(url: str) -> ServiceUrl:
    """Take a service's address apart (`check_url` first)."""
    parts = urlsplit(check_url(url))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    shown = redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, "")))
    return ServiceUrl(base, query, shown)
