"""A transport for plain-http requests (`http://`) built on the standard library's `http.client`.

httpx's own transport loads httpcore, h11 and anyio before its first request: about 15 ms of
CPU, a noticeable part of a scripted `modelctl chat --api-base http://…`, which sends one
request. `PlainHTTPTransport` sends such a request over `http.client` (which httpx imports
anyway) and behaves as httpx's transport does where modelctl relies on it:

- the body streams: each read of the socket is handed on as it arrives (server-sent events
  come chunk by chunk), chunked transfer encoding decoded, content encodings left to the
  response hooks (`response_limits`);
- the request's timeouts (`extensions["timeout"]`) bound connecting, sending and each read;
  the read timeout is taken again when the body is first read, so that a hook may shorten it;
- failures are httpx's own exceptions (ConnectError, ConnectTimeout, WriteError, ReadTimeout,
  ReadError, RemoteProtocolError), raised from the OS error, so that retries and error
  messages (`retry.unreachable`, `http_client.transport_reason`) treat them as before;
- a new connection per request, closed with the response: no pool to keep or to go stale.

https requests keep httpx's transport (TLS, certificates); proxies from the environment are
httpx's mounts and never reach this transport.
"""

from __future__ import annotations

import http.client
import re
import socket
from email.errors import MultipartInvariantViolationDefect, StartBoundaryNotFoundDefect
from typing import TYPE_CHECKING, Iterator, NoReturn

from modelctl.transport.httpx_import import import_httpx

if TYPE_CHECKING:
    import httpx
else:
    httpx = import_httpx()

READ_SIZE = 64 << 10  # the most one read hands on
MAX_TRAILER_LINES = 100  # as http.client bounds header lines; h11 bounds trailers too
INCOMPLETE = "peer closed connection without sending complete message body"  # h11's words
# Defects the e-mail parser reports for any multipart content type, headers or not.
_HARMLESS_DEFECTS = (StartBoundaryNotFoundDefect, MultipartInvariantViolationDefect)
_FOLD = re.compile(r"\r?\n[ \t]+")


class _Response(http.client.HTTPResponse):
    def _read_and_discard_trailer(self) -> None:
        """The trailer of a chunked body, at most MAX_TRAILER_LINES lines (http.client reads
        lines for as long as a server sends them)."""
        assert self.fp is not None
        for _ in range(MAX_TRAILER_LINES):
            line = self.fp.readline(http.client._MAXLINE + 1)  # type: ignore[attr-defined]
            if len(line) > http.client._MAXLINE:  # type: ignore[attr-defined]
                raise http.client.LineTooLong("trailer line")
            if line in (b"\r\n", b"\n", b""):
                return
        raise http.client.HTTPException(f"more than {MAX_TRAILER_LINES} trailer lines")


class _Connection(http.client.HTTPConnection):
    response_class = _Response


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeouts = request.extensions.get("timeout")
    return timeouts if isinstance(timeouts, dict) else {}


class PlainHTTPTransport(httpx.BaseTransport):
    """One request per connection over `http.client`, for `http://` URLs (see the module
    docstring)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{request.url.scheme!r} is not plain http", request=request)
        conn = _connect(request)
        sock = conn.sock  # (http.client lets go of it once a response that ends with the connection begins)
        try:
            sent = _send(conn, request)
            response = _receive(conn, request, sent)
        except BaseException:
            conn.close()
            raise
        return httpx.Response(
            response.status,
            headers=_headers(response),
            stream=_Body(conn, response, request),
            extensions={"http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                        "reason_phrase": response.reason.encode("latin-1", "replace"),
                        "network_stream": _NetworkStream(sock)},
        )


class _NetworkStream:
    """What httpcore calls a response's network stream, as far as it is used here: its socket
    (`get_extra_info("socket")`, for ending a blocked read from another thread)."""

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock

    def get_extra_info(self, name: str) -> object:
        return self._sock if name == "socket" else None


def _connect(request: httpx.Request) -> _Connection:
    url = request.url
    conn = _Connection(url.host, url.port or 80, timeout=_timeouts(request).get("connect"))
    try:
        conn.connect()
    except TimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    return conn


def _send(conn: _Connection, request: httpx.Request) -> OSError | None:
    """Send the request; a failure to send is returned rather than raised, since the server may
    have answered before it stopped reading (a 413, a 401): httpx's transport reads that answer."""
    assert conn.sock is not None
    conn.sock.settimeout(_timeouts(request).get("write"))
    target = request.url.raw_path.decode("ascii")
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    try:
        conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.raw:
            conn.putheader(name, value)
        conn.endheaders()
        for data in request.stream:  # type: ignore[union-attr]
            if chunked and data:
                conn.send(b"%x\r\n%s\r\n" % (len(data), data))
            elif data:
                conn.send(data)
        if chunked:
            conn.send(b"0\r\n\r\n")
    except TimeoutError as exc:
        raise httpx.WriteTimeout(str(exc) or "timed out", request=request) from exc
    except (ValueError, http.client.HTTPException) as exc:  # a header or target http.client refuses
        raise httpx.LocalProtocolError(str(exc), request=request) from exc
    except OSError as exc:
        return exc
    return None


def _receive(conn: _Connection, request: httpx.Request, send_failure: OSError | None) -> _Response:
    """The response's status line and headers."""
    assert conn.sock is not None
    conn.sock.settimeout(_timeouts(request).get("read"))
    try:
        response = conn.getresponse()
    except Exception as exc:
        if send_failure is not None:
            raise httpx.WriteError(str(send_failure), request=request) from send_failure
        if isinstance(exc, http.client.RemoteDisconnected):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request) from exc
        _raise_read_error(exc, request)
    assert isinstance(response, _Response)
    if any(not isinstance(d, _HARMLESS_DEFECTS) for d in response.msg.defects):
        raise httpx.RemoteProtocolError("malformed response headers", request=request)
    return response


def _headers(response: _Response) -> list[tuple[bytes, bytes]]:
    """The response's headers as bytes, as they came (http.client reads them as latin-1); a
    value folded over lines is one line, as h11 makes it."""
    return [(name.encode("latin-1"), _FOLD.sub(" ", value).encode("latin-1"))
            for name, value in response.getheaders()]


def _raise_read_error(exc: BaseException, request: httpx.Request) -> NoReturn:
    """httpx's exception for a failure while reading the response."""
    if isinstance(exc, TimeoutError):
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    if isinstance(exc, http.client.IncompleteRead):
        raise httpx.RemoteProtocolError(f"{INCOMPLETE}: incomplete chunked read", request=request) from exc
    if isinstance(exc, http.client.HTTPException):
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    if isinstance(exc, OSError):
        raise httpx.ReadError(str(exc), request=request) from exc
    raise exc


class _Body(httpx.SyncByteStream):
    """The response body, each read handed on as it arrives; closing it closes the connection."""

    def __init__(self, conn: _Connection, response: _Response, request: httpx.Request) -> None:
        self._conn = conn
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        if self._conn.sock is not None:  # a hook may have shortened the read timeout
            self._conn.sock.settimeout(_timeouts(self._request).get("read"))
        while True:
            try:
                data = self._response.read1(READ_SIZE)
            except Exception as exc:
                _raise_read_error(exc, self._request)
            if data:
                yield data
                continue
            left = self._response.length  # bytes of a Content-Length body still to come
            if left:
                raise httpx.RemoteProtocolError(f"{INCOMPLETE}: {left} bytes short", request=self._request)
            return

    def close(self) -> None:
        self._response.close()
        self._conn.close()
