"""Bounds on what a server can make modelctl read: how many bytes, how many JSON values, how
long, how long silent.

Every HTTP client modelctl uses to talk to a service (its own `HttpClient`, the `ollama`
package's, `huggingface_hub`'s session) gets `bounding_hook(...)` as a response hook. The hook
puts `BoundedBody` in place of the response's byte stream before a byte is read:

- the body is decompressed here, in pieces of at most 64 KiB, instead of by httpx (which
  inflates a whole network read at once, and each layer of a doubly compressed body in full):
  a gzip bomb costs at most `max_bytes` of memory, then it is refused;
- more than `max_bytes` of (decompressed) answer is refused; an error answer (status 400 or
  more) is cut at `ERROR_BODY_BYTES` instead, since only its first words are shown, and at
  `ERROR_BODY_SECONDS`: its status, known from the headers, decides a retry or a fallback,
  and a body that drips forever (or stops) cannot hold that back;
- an answer that could hold more than `max_values` JSON values (one per 16 bytes of
  `max_bytes`) is refused: a few bytes of JSON (`{},`) become a hundred bytes of Python
  objects, so a capped answer could still cost gigabytes once parsed. Every value but the first
  follows a comma or opens a list or object, so their count is bounded by counting `,`, `[`
  and `{` (`value_bound`) as the bytes pass, whoever parses them afterwards (modelctl, the
  `ollama` package or `huggingface_hub`);
- an answer still arriving `deadline` seconds after it started is refused (a stream that never
  ends); a server silent for `read_timeout` seconds is the HTTP client's own read timeout;
- its text is read as UTF-8, whatever charset the server names.

The numbers come from the environment, read when a client is made:

    MODELCTL_MAX_RESPONSE_MB   the largest answer read, in MiB (default 64); the JSON values
                               an answer may hold follow it (4 Mi at 64 MiB)
    MODELCTL_READ_TIMEOUT      seconds a server may stay silent while answering (default 300)
    MODELCTL_DEADLINE          seconds one answer may take from start to end (default 3600)
"""

from __future__ import annotations

import math
import os
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Protocol

from modelctl.errors import BackendError, UsageError

DEFAULT_MAX_MB = 64
DEFAULT_READ_TIMEOUT = 300.0  # a long answer from a slow model, without a byte in between
DEFAULT_DEADLINE = 3600.0
ERROR_BODY_BYTES = 64 << 10
ERROR_BODY_SECONDS = 2.0
PIECE = 64 << 10  # the most one decompression step produces
# Bytes of the size limit per JSON value allowed. Numbers in a list take 8 to 20 bytes, a
# stream's events about 16 per value: what fits the byte limit in normal JSON fits this too.
BYTES_PER_VALUE = 16

# Content codings the hook decodes; httpx's default Accept-Encoding asks for these (and for br
# or zstd only when their packages are installed: the header is set to these two here).
ACCEPT_ENCODING = "gzip, deflate"

# An event hook: called with a request or a response of httpx or of its fork httpx2 (two
# libraries' classes, hence Any).
Hook = Callable[[Any], None]


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    read_timeout: float
    deadline: float | None  # None: no deadline (an Ollama pull may take hours)

    @property
    def max_values(self) -> int:
        """The most JSON values one answer may hold (see the module docstring)."""
        return max(self.max_bytes // BYTES_PER_VALUE, 1)

    def without_deadline(self) -> "Limits":
        return Limits(self.max_bytes, self.read_timeout, None)


def value_bound(data: bytes | bytearray | str) -> int:
    """At least the number of JSON values in `data`, less one: every value but the first is
    the first in its list or object (one per `[` or `{`) or follows a comma. Commas and brackets
    inside strings count too, so this can only overstate."""
    if isinstance(data, str):
        return data.count(",") + data.count("[") + data.count("{")
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def too_many_values(limit: int) -> str:
    """What is wrong with an answer of more than `limit` JSON values, for messages."""
    return f"holds more than {limit:,} JSON values (MODELCTL_MAX_RESPONSE_MB sets this too)"


def _env_number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum:
        raise UsageError(f"{name}={raw[:40]!r} is not a number of at least {minimum:g}")
    return value


def limits() -> Limits:
    """The limits for this process, from the environment (see the module docstring)."""
    mb = _env_number("MODELCTL_MAX_RESPONSE_MB", DEFAULT_MAX_MB, minimum=1)
    return Limits(
        max_bytes=int(mb * (1 << 20)),
        read_timeout=_env_number("MODELCTL_READ_TIMEOUT", DEFAULT_READ_TIMEOUT, minimum=0.01),
        deadline=_env_number("MODELCTL_DEADLINE", DEFAULT_DEADLINE, minimum=0.01),
    )


class LimitExceeded(BackendError):
    """An answer beyond what modelctl reads: too large, too slow, or in an encoding it does not
    decode. `why` says which, without naming the service, for callers that name it themselves."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"the answer from {where} {why}")
        self.why = why


# --- decompression in bounded pieces ------------------------------------------------------------


class _Decompressor(Protocol):
    """What `_inflate` uses of a zlib decompression object."""

    @property
    def eof(self) -> bool: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _decompressor(coding: str, head: bytes, where: str) -> _Decompressor:
    """A zlib decompressor for `coding`; deflate is zlib-wrapped or raw, as its first two bytes
    (`head`) tell."""
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        zlib_header = len(head) >= 2 and (head[0] & 0x0F) == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.decompressobj() if zlib_header else zlib.decompressobj(-zlib.MAX_WBITS)
    raise LimitExceeded(where, f"is in a content encoding modelctl does not read ({coding[:40]!r})")


def _two_bytes_first(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks`, the first one at least two bytes long when the body has two."""
    head = b""
    for data in chunks:
        if len(head) >= 2:
            yield data
            continue
        head += data
        if len(head) >= 2:
            yield head
    if 0 < len(head) < 2:
        yield head


def _inflate(chunks: Iterable[bytes], coding: str, where: str) -> Iterator[bytes]:
    """`chunks` decoded from one content coding, in pieces of at most PIECE bytes."""
    d = None
    for data in _two_bytes_first(chunks):
        if d is None:
            d = _decompressor(coding, data, where)
        try:
            while data and not d.eof:
                piece = d.decompress(data, PIECE)
                if piece:
                    yield piece
                data = d.unconsumed_tail
            while not d.eof:  # output zlib holds back for want of room, not of input
                piece = d.decompress(b"", PIECE)
                if not piece:
                    break
                yield piece
        except zlib.error as exc:
            raise LimitExceeded(where, f"is not valid {coding} data ({exc})") from None


def _codings(header: str | None) -> list[str]:
    """The content codings applied, last applied first (the order to undo them)."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    return [c for c in reversed(codings) if c and c != "identity"]


def bounded_body(raw: Iterable[bytes], encoding: str | None, *, where: str, status: int,
                 limits: Limits, started: float) -> Iterator[bytes]:
    """The decoded body of a response, within `limits` (see the module docstring)."""
    failed = status >= 400
    chunks: Iterable[bytes] = _until_failure(raw) if failed else raw
    for coding in _codings(encoding):
        chunks = _inflate(chunks, coding, where)
    cap = ERROR_BODY_BYTES if failed else limits.max_bytes
    deadline = ERROR_BODY_SECONDS if failed else limits.deadline
    total = values = 0
    for block in chunks:
        if deadline is not None and time.monotonic() - started > deadline:
            if failed:  # what came of an error's body in time is what is shown
                return
            raise LimitExceeded(where, f"did not end within {deadline:g} s (MODELCTL_DEADLINE)")
        if total + len(block) > cap:
            if status >= 400:  # only the first words of an error are shown
                yield block[: cap - total]
                return
            raise LimitExceeded(where, f"is larger than {_mib(cap)} (MODELCTL_MAX_RESPONSE_MB)")
        total += len(block)
        values += value_bound(block) if status < 400 else 0
        if values >= limits.max_values:
            raise LimitExceeded(where, too_many_values(limits.max_values))
        yield block


def _until_failure(raw: Iterable[bytes]) -> Iterator[bytes]:
    """An error answer's body until it ends or reading it fails (a read timeout, a dropped
    connection): the error is its status; the body only adds words to the message."""
    blocks = iter(raw)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            return
        except Exception:  # the transport's own failure, whatever the HTTP library's class
            return
        yield block


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


# --- the hook ----------------------------------------------------------------------------------------


class _Closable(Protocol):
    def close(self) -> None: ...


class _BoundedBody:
    """The body a response reads once the hook is in place: `blocks`, made from `inner`."""

    def __init__(self, inner: _Closable, blocks: Iterator[bytes]) -> None:
        self._inner = inner
        self._blocks = blocks

    def __iter__(self) -> Iterator[bytes]:
        return self._blocks

    def close(self) -> None:
        self._inner.close()


@lru_cache(maxsize=None)
def _stream_class(base: type) -> type:
    """`_BoundedBody` as a byte stream class that httpx (or its fork httpx2, used by
    huggingface_hub) accepts: a subclass of that library's `SyncByteStream` (`base`)."""
    return type("BoundedBody", (_BoundedBody, base), {})


def bounding_hook(httpx_module: ModuleType, limits: Limits, *, shown: Callable[[str], str] = str) -> Hook:
    """A response hook for an httpx (or httpx2) client that bounds each answer by `limits`.
    `shown` turns the request's URL into what a message may show (credentials hidden)."""
    cls = _stream_class(httpx_module.SyncByteStream)

    def hook(response: Any) -> None:
        if isinstance(response.stream, cls) or not isinstance(response.stream, httpx_module.SyncByteStream):
            return
        url = response.request.url
        where = shown(str(url.copy_with(query=None, fragment=None)))
        encoding = response.headers.get("content-encoding")
        response.headers.pop("content-encoding", None)  # decoded here, not again by httpx
        # JSON, server-sent events and JSON lines are UTF-8 whatever charset a server names (a
        # "utf-16" on UTF-8 bytes makes the decoder raise, not replace).
        response.encoding = "utf-8"
        if response.status_code >= 400:
            _shorten_reads(response)
        blocks = bounded_body(response.stream, encoding, where=where, status=response.status_code,
                              limits=limits, started=time.monotonic())
        response.stream = cls(response.stream, blocks)

    return hook


def _shorten_reads(response: Any) -> None:
    """Wait at most ERROR_BODY_SECONDS for each read of an error answer's body: the transport
    (httpcore) takes that wait from the request's timeouts when the body is first read."""
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        timeouts["read"] = min(timeouts.get("read") or ERROR_BODY_SECONDS, ERROR_BODY_SECONDS)


def request_hook(request: Any) -> None:
    """Ask only for the content codings `bounded_body` decodes."""
    request.headers["accept-encoding"] = ACCEPT_ENCODING


def bounded_hooks(httpx_module: ModuleType, limits: Limits, *,
                  shown: Callable[[str], str] = str) -> dict[str, list[Hook]]:
    """Event hooks (`{"request": [...], "response": [...]}`) that bound every answer."""
    return {"request": [request_hook], "response": [bounding_hook(httpx_module, limits, shown=shown)]}
