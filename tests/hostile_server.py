"""A loopback HTTP/1.1 server that misbehaves on purpose, byte by byte.

Each route (a path; any method, any query) answers one scripted `Answer`: a status, headers, and
either a body sent whole (with Content-Length) or pieces sent with chunked transfer encoding,
after which the stream ends, hangs (sends nothing more until the server stops), pings (sends
SSE comments until the client leaves) or drips (one byte at a time, each well within any read
timeout, until the server stops). `drip_head` drips the headers themselves, so that no answer
ever begins. The builders below make the hostile answers: server-sent events and JSON lines of
any text at all, gzip bombs, nested compression, JSON that is small to send and large to build.
"""

from __future__ import annotations

import gzip
import struct
import threading
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from providers.server import FakeServer


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None  # sent with chunked transfer encoding, one piece per write
    then: str = "end"  # after the chunks: "end", "hang", "ping" or "drip"
    drip_head: bool = False  # the status line, then a header one byte at a time, forever


class HostileServer(FakeServer):
    """`FakeServer`'s life cycle, with answers written byte by byte: `answer(path, Answer)`."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.paths: list[str] = []  # every request's path, in order
        self.released = threading.Event()  # set at stop: hanging answers end
        super().__init__()

    def _make_handler(self) -> type:
        return _handler(self)

    def answer(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer

    def stop(self) -> None:
        self.released.set()
        super().stop()


def _handler(server: HostileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            path = urlsplit(self.path).path
            server.paths.append(path)
            answer = server.answers.get(path) or Answer(404, {"Content-Type": "application/json"},
                                                       b'{"error": "no such route"}')
            try:
                self._answer(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_HEAD = do_DELETE = _handle

        def _answer(self, answer: Answer) -> None:
            if answer.drip_head:
                self.wfile.write(f"HTTP/1.1 {answer.status} OK\r\nX-Slow: ".encode())
                self._drip()
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.chunks is None:
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in answer.chunks:
                self._chunk(piece)
            if answer.then == "hang":
                server.released.wait(30)
                self.close_connection = True
                return
            if answer.then == "drip":
                self._drip(chunked=True)
                return
            while answer.then == "ping" and not server.released.is_set():
                self._chunk(b": ping\n\n")
                server.released.wait(0.02)
            self.wfile.write(b"0\r\n\r\n")

        def _drip(self, *, chunked: bool = False) -> None:
            """One byte every 50 ms until the server stops (a minute at most)."""
            for _ in range(1200):
                if server.released.is_set():
                    break
                if chunked:
                    self._chunk(b" ")
                else:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                server.released.wait(0.05)
            self.close_connection = True

        def _chunk(self, piece: bytes) -> None:
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()

    return Handler


# --- hostile answers ---------------------------------------------------------------------------------


def sse(*datas: str, events: list[str | None] | None = None, then: str = "end",
        ctype: str = "text/event-stream") -> Answer:
    """Server-sent events with these data texts (and event names, if given)."""
    names = events or [None] * len(datas)
    pieces = [(f"event: {name}\n" if name else "").encode() + f"data: {data}\n\n".encode("utf-8", "surrogatepass")
              for name, data in zip(names, datas)]
    return Answer(200, {"Content-Type": ctype}, chunks=pieces, then=then)


def ndjson(*lines: str, then: str = "end") -> Answer:
    """Newline-delimited JSON lines (Ollama's streams), each text as given."""
    return Answer(200, {"Content-Type": "application/x-ndjson"}, chunks=[f"{line}\n".encode() for line in lines],
                  then=then)


def body(text: str | bytes, status: int = 200, ctype: str = "application/json", **headers: str) -> Answer:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return Answer(status, {"Content-Type": ctype, **headers}, data)


def deep(levels: int = 100_000) -> str:
    """JSON nested `levels` deep: enough for any recursive parser to give up."""
    return "[" * levels + "]" * levels


def many(n: int, item: str = "{}") -> str:
    """A JSON list of `n` copies of `item`: three bytes a value to send, a hundred to build."""
    return "[" + ",".join([item] * n) + "]"


@lru_cache(maxsize=None)
def zeros_gzipped(mib: int) -> bytes:
    """`mib` MiB of zeros as one gzip member of about a thousandth of that. Built from one
    compressed MiB: after a full flush the compressor starts afresh, so every further MiB
    compresses to the same bytes (compressing a GiB for real takes seconds)."""
    block = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    last = comp.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + again * (mib - 1) + last + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)


def bomb(status: int = 200, *, mib: int = 1024, layers: int = 1, ctype: str = "application/json") -> Answer:
    """A gzip bomb: `mib` MiB of zeros in about a thousandth of that, compressed `layers` times."""
    data = zeros_gzipped(mib)
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    encoding = ", ".join(["gzip"] * layers)
    return Answer(status, {"Content-Type": ctype, "Content-Encoding": encoding}, data)
