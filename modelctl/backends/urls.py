"""Service addresses: checking them, taking them apart, and hiding the credentials written into
them (user info, `?key=…` and other credential query parameters) wherever they are shown or
stored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from modelctl.errors import UsageError
from modelctl.keys import REDACTED, redact, remember_secret

# Query parameters that carry credentials in some APIs; also any whose name contains one of
# SECRET_PARAM_WORDS (`x-api-key`, `auth_token`, `client_secret`, …).
SECRET_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "access_token", "token", "sig"})
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "signature")


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
    """Why the host of an http(s) URL cannot be looked up (DNS limits: no empty label, labels of
    at most 63 characters, 253 in all) or sent to (httpx's own reading of the URL: IPv4 and IPv6
    literals, the port, international names as IDNA 2008), or None."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        return f"expected a URL with a valid host and port ({exc})"
    if not (host.startswith("[") or ":" in host):  # not an IPv6 literal
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")  # `example.com.` is fine
        if len(host) > 253 or any(len(label) > 63 for label in labels):
            return "the host name is too long (at most 63 characters between dots, 253 in all)"
        if "" in labels:
            return "the host name has an empty part between dots"
    return _httpx_problem(url)


def _httpx_problem(url: str) -> str | None:
    """What httpx says of `url` when it builds a request, before any request is built."""
    import httpx

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
