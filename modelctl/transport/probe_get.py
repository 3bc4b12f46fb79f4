"""One bounded GET for probes: whatever the server does, it ends within its timeout (name lookup,
connection, the answer to its last byte) and reads at most `max_bytes`; what happened comes back
as a value, never as an exception.

    answer = probe_get("http://gpu1:8000/health", timeout=1.5, max_bytes=64 << 10)
    answer.status   # 200, 503, …; None where no complete answer came
    answer.why      # "http://gpu1:8000/health (HTTP 200)", or what went wrong

No redirect is followed and no credential is sent, those written into the URL included, except
a `key` given as a bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelctl.redaction import strip_credentials
from modelctl.transport.deadline import within
from modelctl.transport.http_client import _lazy_tls_transport, transport_reason
from modelctl.transport.httpx_import import import_httpx
from modelctl.transport.response_limits import LimitExceeded, Limits, bounded_hooks
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import redact_url


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no complete, usable answer
    body: bytes
    why: str  # "URL (HTTP 200)" for an answer; otherwise what happened, the URL named


def probe_get(url: str, timeout: float, max_bytes: int, key: str | None = None) -> Answer:
    """GET `url` within `timeout` seconds, all of it, reading at most `max_bytes`."""
    shown = one_line(redact_url(url), 200)
    done, answer = within(timeout, lambda: _exchange(url, shown, timeout, max_bytes, key), name=f"probe {shown}")
    if not done or answer is None:
        return Answer(None, b"", f"no complete answer from {shown} within {timeout:g} s")
    return answer


def _exchange(url: str, shown: str, timeout: float, max_bytes: int, key: str | None) -> Answer:
    httpx = import_httpx()
    bounds = Limits(max_bytes=max_bytes, read_timeout=timeout, deadline=timeout)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        # The client's own transport loads the CA bundle (tens of ms) even for plain http.
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, transport=_lazy_tls_transport(),
                          event_hooks=bounded_hooks(httpx, bounds, shown=redact_url)) as client:
            response = client.get(strip_credentials(url), headers=headers)
            return Answer(response.status_code, response.content, f"{shown} (HTTP {response.status_code})")
    except LimitExceeded as exc:
        return Answer(None, b"", f"no usable answer from {shown}: it {exc.why}")
    except httpx.HTTPError as exc:
        return Answer(None, b"", f"no answer from {shown}: {transport_reason(exc)}")
    except (httpx.InvalidURL, UnicodeError) as exc:  # UnicodeError: a host name IDNA refuses
        return Answer(None, b"", f"cannot probe {shown}: not a usable address ({one_line(str(exc), 120)})")
