"""The plain-http transport (`transport/plain_http.py`) against loopback servers that write the
bytes each test chooses: streaming chunk by chunk, bodies cut short, silent servers, refused
ports, error statuses, odd headers; and the same failures as `HttpClient` reports them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from typing import Callable, Iterator

import httpx
import pytest
from providers import openai_wire
from providers.server import FakeServer

from modelctl.errors import BackendError, NotFoundError, OfflineError
from modelctl.transport.http_client import ErrorContext, HttpClient, StreamInterrupted, transport_reason
from modelctl.transport.plain_http import PlainHTTPTransport
from modelctl.transport.retry import NO_RETRY, unreachable

WAIT = 30  # the longest a script waits for the test: only a broken transport makes it wait that long

Script = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """Answers each connection with `script(conn, server)` once the request has been read whole;
    `requests` keeps each request's bytes, `go` lets a script wait for the test."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.go = threading.Event()
        self.released = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed at the end of the test
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.requests.append(_read_request(conn))
                self.script(conn, self)
            except OSError:  # the client left
                pass

    def hang(self) -> None:
        self.released.wait(WAIT)

    def close(self) -> None:
        self.released.set()
        self._sock.close()


def _read_request(conn: socket.socket) -> bytes:
    """One request: its head, then a Content-Length or chunked body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(conn)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), 0)
    chunked = b"transfer-encoding: chunked" in lines
    while (chunked and not body.endswith(b"0\r\n\r\n")) or (not chunked and len(body) < length):
        body += _recv(conn)
    return head + b"\r\n\r\n" + body


def _recv(conn: socket.socket) -> bytes:
    data = conn.recv(65536)
    if not data:
        raise ConnectionResetError("the client left")
    return data


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client(read: float = 10.0) -> httpx.Client:
    return httpx.Client(transport=PlainHTTPTransport(), timeout=httpx.Timeout(read, connect=5.0))


def http_client(url: str, read: float = 10.0) -> HttpClient:
    return HttpClient(ErrorContext("the server", endpoint=url), timeout=read, retry=NO_RETRY)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"text": text}).encode() + b"\n\n"


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


# --- streaming -------------------------------------------------------------------------------------------


def two_events_apart(conn: socket.socket, server: RawServer) -> None:
    """The first event, then the second only once the test has seen the first."""
    conn.sendall(SSE_HEAD + chunk(event("first")))
    server.go.wait(WAIT)
    conn.sendall(chunk(event("second")) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def test_a_chunked_event_stream_is_read_chunk_by_chunk(serve):
    server = serve(two_events_apart)
    with client() as c, c.stream("POST", server.url + "/v1/chat", json={"stream": True}) as response:
        pieces = response.iter_raw()
        assert next(pieces) == event("first")  # before the server sends anything more
        server.go.set()
        assert b"".join(pieces) == event("second") + b"data: [DONE]\n\n"


def test_events_reach_the_http_client_as_they_arrive(serve):
    server = serve(two_events_apart)
    stream = http_client(server.url).open_stream(server.url + "/v1/chat", {"stream": True})
    try:
        events = stream.events()
        assert next(events).json() == {"text": "first"}
        server.go.set()
        assert [e.data for e in events] == ['{"text": "second"}', "[DONE]"]
    finally:
        stream.close()


def test_a_request_body_arrives_whole_and_chunked_bodies_are_framed(serve):
    def ok(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = serve(ok)
    with client() as c:
        assert c.post(server.url + "/a?x=1", json={"q": "é"}, headers={"x-key": "v"}).text == "ok"
        assert c.post(server.url + "/b", content=iter([b"ab", b"", b"cde"])).text == "ok"
    head, body = server.requests[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /a?x=1 HTTP/1.1\r\n")
    assert b"\r\nx-key: v" in head.lower() and b"\r\nhost: 127.0.0.1:" in head.lower()
    assert json.loads(body) == {"q": "é"}
    assert server.requests[1].split(b"\r\n\r\n", 1)[1] == b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"


@pytest.mark.parametrize("answer, body", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
    (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),  # no length: read to the close
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", b"abc"),
])
def test_bodies_of_every_framing_are_read_whole(answer, body, serve):
    server = serve(lambda conn, _: conn.sendall(answer))
    with client() as c:
        assert c.get(server.url).content == body


def test_many_requests_on_one_client_each_get_their_answer(serve):
    # A REPL sends one request per turn through the same client.
    def numbered(conn: socket.socket, server: RawServer) -> None:
        n = str(len(server.requests)).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(n), n))

    server = serve(numbered)
    with client() as c:
        assert [c.get(server.url).text for _ in range(5)] == ["1", "2", "3", "4", "5"]


# --- failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"one piece"),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\nhalf a chunk",
])
def test_a_body_cut_short_is_a_protocol_error(answer, serve):
    server = serve(lambda conn, _: conn.sendall(answer))
    with client() as c, c.stream("GET", server.url) as response:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            response.read()
    assert transport_reason(caught.value) == "the server closed the connection"


def test_a_stream_cut_short_keeps_what_came(serve):
    server = serve(lambda conn, _: conn.sendall(SSE_HEAD + chunk(event("partial"))))
    stream = http_client(server.url).open_stream(server.url + "/v1/chat", {})
    try:
        events = stream.events()
        assert next(events).json() == {"text": "partial"}
        stream.received = 7
        with pytest.raises(StreamInterrupted, match="cut off after 7 characters: the server closed"):
            next(events)
    finally:
        stream.close()


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200 OK\r\nContent-"])
def test_a_server_that_closes_before_answering_is_a_protocol_error(answer, serve):
    server = serve(lambda conn, _: conn.sendall(answer))
    with client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(server.url)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: 1\r\n" * 200,
])
def test_a_malformed_answer_is_a_protocol_error(answer, serve):
    server = serve(lambda conn, _: conn.sendall(answer))
    with client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(server.url).read()


def test_a_server_that_never_answers_is_a_read_timeout(serve):
    server = serve(lambda conn, server: server.hang())
    with client(read=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.get(server.url)
    with pytest.raises(BackendError, match="sent nothing for 0.2 s") as caught:
        http_client(server.url, read=0.2).request_json("GET", server.url)
    assert caught.value.retryable


def test_a_body_that_stops_is_a_read_timeout_and_a_shortened_timeout_applies(serve):
    def stop_midway(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.")
        server.hang()

    server = serve(stop_midway)
    with client(read=WAIT * 2) as c, c.stream("GET", server.url) as response:
        # After the headers, before the body: as response_limits shortens an error's reads.
        response.request.extensions["timeout"]["read"] = 0.2
        with pytest.raises(httpx.ReadTimeout):
            response.read()


def test_a_refused_port_is_a_connect_error():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with client() as c, pytest.raises(httpx.ConnectError) as caught:
        c.get(url)
    assert unreachable(caught.value) == "connection refused"
    with pytest.raises(OfflineError, match=r"cannot connect to the server at http://127\.0\.0\.1:\d+: connection refused"):
        http_client(url).request_json("GET", url)


@pytest.mark.parametrize("status, reason", [(400, b"Bad Request"), (404, b"Not Found"),
                                            (503, b"Service Unavailable")])
def test_an_error_status_comes_with_its_body(status, reason, serve):
    body = json.dumps({"error": {"message": f"no luck ({status})"}}).encode()

    def error(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, reason, len(body), body))

    server = serve(error)
    with client() as c:
        response = c.get(server.url)
    assert (response.status_code, response.reason_phrase, response.content) == (status, reason.decode(), body)
    expected = NotFoundError if status == 404 else BackendError
    with pytest.raises(expected, match=rf"no luck \({status}\)") as caught:
        http_client(server.url).request_json("POST", server.url, {})
    assert getattr(caught.value, "retryable", False) == (status >= 500)


def test_headers_come_as_sent_and_folded_values_as_one_line(serve):
    answer = (b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nX-Latin: caf\xe9\r\nSet-Cookie: a=1\r\n"
              b"Set-Cookie: b=2\r\nContent-Length: 0\r\n\r\n")
    server = serve(lambda conn, _: conn.sendall(answer))
    with client() as c:
        response = c.get(server.url)
    assert response.headers["x-folded"] == "one two"
    assert response.headers.raw[1] == (b"X-Latin", b"caf\xe9")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.http_version == "HTTP/1.1"


def test_https_is_not_this_transports_business():
    with pytest.raises(httpx.UnsupportedProtocol):
        PlainHTTPTransport().handle_request(httpx.Request("GET", "https://127.0.0.1:9/"))


# --- a real run ------------------------------------------------------------------------------------------


def test_a_chat_with_a_plain_http_server_loads_no_httpcore(modelctl_home):
    server = FakeServer().start()
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Red", ", green", ", blue."]))
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
            f"sys.argv = ['modelctl', 'chat', '--api-base', {server.url + '/v1'!r}, '-m', 'x', 'hi']\n"
            "from modelctl.cli.main import run\n"
            "run()\n")
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "Red, green, blue."
    imported = {name.split(".")[0] for name in proc.stderr.rsplit("MODULES ", 1)[1].split()}
    assert not imported & {"httpcore", "h11", "anyio"}
