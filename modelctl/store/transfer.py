"""One resumable HTTP download into a partial file, hashed while it streams.

    download(url, partial, size=..., headers=..., progress=...) -> Transfer(bytes transferred, sha256)

The partial file is kept when the transfer stops (a dropped connection, Ctrl-C, a crash), and the
next call continues it with `Range: bytes=N-`; only the missing bytes cross the network. A server
that ignores the range (200, or a 206 from byte 0) makes the file start over from that body; an
answer for another range than the one asked for is not used at all: the file starts over with a
request for the whole file. Never a spliced file. Within one call a dropped connection is resumed
at once as long as each attempt brings new bytes; an attempt that brings nothing ends the call
with `TransferInterrupted`, leaving the partial file for the next pull.

The partial file is never opened through a symbolic link (O_NOFOLLOW): a link planted in its
place is removed and the download starts over in a real file, so a pull never writes (or hashes)
whatever the link points to.

The body is read with the standard library's `http.client` (through `urllib.request`, so proxies
from the environment apply) in 1 MiB reads, and SHA-256 runs on a second thread: on loopback this
keeps up with `curl` (see bench/bench_pull.py). Redirects are followed here, and the
`Authorization` header is only ever sent to the origin it was given for, never to a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import queue
import ssl
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from modelctl.transport.urls import redact_url

if TYPE_CHECKING:
    from io import FileIO
    from urllib.request import OpenerDirector

CHUNK = 1 << 20
MAX_REDIRECTS = 10
DEFAULT_TIMEOUT = 60.0

# (scheme, host, port): where a request goes. Credentials are sent to one origin only, as
# (origin, Authorization header value).
Origin = tuple[str, str, int]
Auth = tuple[Origin, str]


class TransferProgress(Protocol):
    def start(self, total: int | None, completed: int) -> None: ...
    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start(self, total: int | None, completed: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class TransferError(Exception):
    """The server answered something a download cannot use: an HTTP error (`status`), or a
    size that contradicts the expected one (`discard`: the partial file is not worth keeping)."""

    def __init__(self, message: str, status: int | None = None, *, discard: bool = False, have: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.discard = discard
        self.have = have  # bytes in the partial file


class TransferInterrupted(Exception):
    """The connection failed and did not recover; the partial file holds `have` bytes."""

    def __init__(self, message: str, have: int) -> None:
        super().__init__(message)
        self.have = have


@dataclass(frozen=True)
class Transfer:
    transferred: int  # bytes received over the network by this call
    sha256: str  # of the whole file
    size: int
    announced: bool = True  # the size was known (given, or Content-Length/Content-Range), not just where the body ended


class _Hasher:
    """SHA-256 on a worker thread: hashlib releases the GIL, so hashing overlaps the socket reads."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._q: queue.Queue[bytes | Path | None] = queue.Queue(maxsize=32)
        self._n = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                if isinstance(item, Path):
                    self._hash_file(item, self._n)
                else:
                    self._h.update(item)
            except BaseException as exc:  # reported by digest()
                self._error = exc

    def _hash_file(self, path: Path, n: int) -> None:
        with os.fdopen(os.open(path, os.O_RDONLY | _NO_FOLLOW), "rb") as fh:
            left = n
            while left > 0:
                block = fh.read(min(8 * CHUNK, left))
                if not block:
                    raise OSError(f"{path} is shorter than {n} bytes")
                self._h.update(block)
                left -= len(block)

    def feed_file(self, path: Path, n: int) -> None:
        """Hash the first `n` bytes of `path` (the part a resumed download already has)."""
        if n:
            self._n = n
            self._q.put(path)

    def feed(self, data: bytes) -> None:
        self._q.put(data)

    def digest(self) -> str:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._h.hexdigest()

    def abandon(self) -> None:
        self._error = self._error or RuntimeError("abandoned")
        self._q.put(None)


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")
    if not cafile:
        try:
            import certifi  # noqa: PLC0415 (certifi: optional)

            cafile = certifi.where()
        except ImportError:
            cafile = None
    return ssl.create_default_context(cafile=cafile)


_opener: OpenerDirector | None = None


def _open(url: str, headers: dict[str, str], *, auth: "Auth | None", timeout: float) -> http.client.HTTPResponse:
    """GET `url`, following redirects; `auth` is (origin, header value), sent to that origin only."""
    global _opener
    import urllib.request  # noqa: PLC0415 (urllib: imported only where used)

    if _opener is None:
        opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.ProxyHandler(),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(context=_ssl_context()),
        ):
            opener.add_handler(handler)
        _opener = opener
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):  # a Location may say file:, ftp:, anything
            raise TransferError(f"refusing to download from {redact_url(url)[:200]}: not an http(s) address")
        hdrs = dict(headers)
        if auth is not None and origin(url) == auth[0]:
            hdrs["Authorization"] = auth[1]
        # urllib answers an http(s) request with an HTTPResponse (typeshed says Any)
        resp: http.client.HTTPResponse = _opener.open(urllib.request.Request(url, headers=hdrs, method="GET"),
                                                      timeout=timeout)
        if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
            resp.close()
            url = urljoin(url, resp.headers["Location"])
            continue
        return resp

    raise TransferError(f"too many redirects for {redact_url(url)}")


def _without_userinfo(url: str) -> "tuple[str, Auth | None]":
    """(`url` without the user and password written into it, Basic auth for its origin): a
    mirror's address may carry them (`HF_ENDPOINT=https://user:pw@mirror`); urllib would take
    them for part of the host name."""

    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return bare, (origin(bare), "Basic " + base64.b64encode(pair).decode("ascii"))


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    first = value[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _body_start(resp: http.client.HTTPResponse) -> int | None:
    """Where the body of a 200 or 206 answer starts in the file (None: a 206 that does not say)."""
    if resp.status == 200:
        return 0
    return _content_range_start(resp.headers.get("Content-Range"))


def _unusable_range(resp: http.client.HTTPResponse, have: int) -> bool:
    """A 416 for the range asked for (the partial file is not a prefix the server knows), or a
    206 whose body starts neither where the partial file ends nor at 0: written anywhere, its
    bytes would splice the file (only a known sha256 would notice)."""
    if resp.status == 416:
        return have > 0
    return resp.status == 206 and _body_start(resp) not in (have, 0)


# Opening a partial file: never through a symbolic link, never blocking on a FIFO.
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _existing(partial: Path) -> int:
    """The bytes a partial file already holds. Anything but a regular file in its place (a
    symbolic link, a FIFO) is removed, not followed: the download starts over in a file of its
    own. A directory there is a TransferError."""
    try:
        st = os.lstat(partial)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise TransferError(f"cannot use the partial download {partial}: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if stat.S_ISDIR(st.st_mode):
        raise TransferError(f"the partial download {partial} is a directory")
    partial.unlink()
    return 0


def _open_partial(partial: Path, *, empty: bool = False) -> FileIO:
    """The partial file, for appending (emptied first with `empty`); a symbolic link or other
    non-regular file swapped in meanwhile is refused, not written through."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NO_FOLLOW | (os.O_TRUNC if empty else 0)
    try:
        fd = os.open(partial, flags, 0o644)
    except OSError as exc:
        raise TransferError(f"cannot write the partial download {partial}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TransferError(f"cannot write the partial download {partial}: not a regular file")
    return os.fdopen(fd, "ab", buffering=0)


def _restart(partial: Path, hasher: _Hasher, progress: TransferProgress, size: int | None) -> _Hasher:
    """Empty the partial file to fetch it again from its first byte; returns the new hasher."""
    hasher.abandon()
    _open_partial(partial, empty=True).close()
    progress.start(size, 0)
    return _Hasher()


def _total_size(resp: http.client.HTTPResponse, start: int) -> int | None:
    rng = resp.headers.get("Content-Range")
    if rng and "/" in rng:
        total = rng.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and resp.headers.get("Content-Encoding", "identity") == "identity":
        return int(length) + start
    return None


def download(
    url: str,
    partial: Path,
    *,
    size: int | None = None,
    headers: dict[str, str] | None = None,
    auth: "Auth | None" = None,
    progress: TransferProgress | None = None,
    max_retries: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
) -> Transfer:
    """Fetch `url` into `partial`, continuing what it already holds (see the module docstring)."""
    progress = progress or _NoProgress()
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    url, basic = _without_userinfo(url)
    auth = auth or basic
    have = _existing(partial)
    if size is not None and have > size:
        have = 0
    hasher = _Hasher()
    hasher.feed_file(partial, have)
    if not have:
        _open_partial(partial, empty=True).close()
    progress.start(size, have)
    transferred = 0
    retries = 0
    announced = True
    try:
        while size is None or have < size:
            got = 0
            try:
                resp = _open(url, headers | ({"Range": f"bytes={have}-"} if have else {}), auth=auth, timeout=timeout)
            except OSError as exc:
                raise TransferInterrupted(f"cannot connect: {_reason(exc)}", have) from None
            try:
                if _unusable_range(resp, have):
                    # Start over, and ask for the whole file (have = 0: no Range header).
                    have, hasher = 0, _restart(partial, hasher, progress, size)
                    retries += 1
                    if retries > max_retries:
                        raise TransferError(f"the server answers no range request usably (HTTP {resp.status})",
                                            resp.status)
                    continue
                if resp.status not in (200, 206):
                    raise TransferError(f"HTTP {resp.status} {resp.reason}", resp.status, have=have)
                if have and _body_start(resp) == 0:  # the range was ignored: the body is the whole file
                    have, hasher = 0, _restart(partial, hasher, progress, size)
                total = _total_size(resp, have)
                if size is None:
                    size = total
                elif total is not None and total != size:
                    raise TransferError(f"the server offers {total:,} bytes, {size:,} were expected", discard=True)
                if size is not None:
                    progress.start(size, have)
                with _open_partial(partial) as out:
                    read1 = resp.read1
                    while True:
                        block = read1(CHUNK)
                        if not block:
                            break
                        _write(out, block, partial, have)
                        hasher.feed(block)
                        n = len(block)
                        have += n
                        got += n
                        progress.advance(n)
                if size is None:
                    size, announced = have, False
                if have < size:
                    raise http.client.IncompleteRead(b"", size - have)
            except (OSError, http.client.HTTPException) as exc:
                transferred += got
                if got and retries < max_retries:
                    retries += 1
                    continue
                raise TransferInterrupted(f"the connection dropped: {_reason(exc)}", have) from None
            finally:
                resp.close()
            transferred += got
        if size is not None and have > size:
            raise TransferError(f"the server sent {have:,} bytes, {size:,} were expected", discard=True)
        digest = hasher.digest()
    except BaseException:
        hasher.abandon()
        raise
    return Transfer(transferred, digest, have, announced)


def _write(out: FileIO, block: bytes, partial: Path, have: int) -> None:
    """Append `block`; a disk that refuses it (full, read-only) is a TransferError, not a
    dropped connection worth another try."""
    view = memoryview(block)
    try:
        while view:  # unbuffered: a write may take only part of the block
            view = view[out.write(view) or 0:]
    except OSError as exc:
        raise TransferError(f"cannot write {partial}: {exc.strerror or exc}", have=have) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"{exc.expected:,} bytes missing"
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(reason, int):
        return str(reason)
    return str(exc) or type(exc).__name__
