"""A loopback HTTP/1.1 server that answers from a script and records every request.

Each route (`METHOD /path`) has a list of `Reply`s, answered in order; the last one repeats. A
reply is a JSON document, a stream of server-sent events, or a stream of JSON lines (Ollama),
sent with chunked transfer encoding as the real services do. `drop_after=N` sends N items of a
stream and then closes the socket without the final chunk: a connection cut off midway.

The provider modules beside this one (`openai_wire`, `anthropic_wire`, …) build replies in each
service's documented wire format.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str | None, str]] | None = None  # server-sent events: (event name, data)
    lines: list[Any] | None = None  # newline-delimited JSON objects
    data: bytes | None = None  # a binary body (audio, an image), sent with headers["content-type"]
    drop_after: int | None = None  # close the socket after this many events/lines
    # (N, event): send N events/lines, then wait for the event before the rest (an answer that is
    # still streaming while a test does something else)
    hold: tuple[int, threading.Event] | None = None

    @property
    def streaming(self) -> bool:
        return self.events is not None or self.lines is not None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None
    raw: bytes = b""  # the body as it came (a multipart upload)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FakeServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Request] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _make_handler(self) -> type:
        return _handler(self)

    def route(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[f"{method.upper()} {path}"] = list(replies)

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_reply(self, method: str, path: str) -> Reply:
        replies = self.routes.get(f"{method} {path}")
        if not replies:
            return Reply(404, json={"error": {"message": f"no route {method} {path}", "type": "not_found"}})
        return replies.pop(0) if len(replies) > 1 else replies[0]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (a test closing a stream) is not news


def _handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            server.requests.append(Request(
                self.command, parts.path, parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()}, body, raw,
            ))
            reply = server._next_reply(self.command, parts.path)
            if reply.streaming:
                self._stream(reply)
            else:
                self._whole(reply)

        do_GET = do_POST = do_DELETE = do_HEAD = _handle

        def _whole(self, reply: Reply) -> None:
            if reply.data is not None:
                data = reply.data
                ctype = "application/octet-stream"
            elif reply.json is not None:
                data = json.dumps(reply.json).encode()
                ctype = "application/json"
            else:
                data = (reply.text or "").encode()
                ctype = "text/plain"
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.headers.get("content-type", ctype))
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                if k.lower() != "content-type":
                    self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: Reply) -> None:
            if reply.events is not None:
                ctype = "text/event-stream"
                items = []
                for name, data in reply.events:
                    head = f"event: {name}\n" if name else ""
                    items.append(f"{head}data: {data}\n\n".encode())
            else:
                ctype = "application/x-ndjson"
                items = [(json.dumps(obj) + "\n").encode() for obj in reply.lines or []]
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Transfer-Encoding", "chunked")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            for i, item in enumerate(items):
                if reply.hold is not None and i == reply.hold[0]:
                    reply.hold[1].wait(60)
                if reply.drop_after is not None and i >= reply.drop_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(f"{len(item):x}\r\n".encode() + item + b"\r\n")
                self.wfile.flush()
            if reply.drop_after is not None and reply.drop_after >= len(items):
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
