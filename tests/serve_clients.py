"""Clients of a `modelctl serve` process for the load and fault tests: a streamed answer read
event by event (and dropped midway where a test says), the server's `/api/ps`, the files of its
home, and raw sockets for what an HTTP library would not send."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from serve_process import ServeProcess

from modelctl.config import get_paths
from modelctl.store.default_model import GEMMA, SMOLLM2

HANG_S = 60.0  # a read that waits this long is a hang: a guard, never what a test measures
GEMMA_NAME = "gemma-3-270m"
HOSTED = "gpt-4o-mini"  # the registry's OpenAI model, its API moved to the loopback server by config
HOSTED_WORDS = ["Hosted ", "answer."]


def skip_module_without_packaged_models() -> None:
    """Skip the calling test module where the two packaged GGUFs are not installed (only their
    files are used)."""
    if not all(importlib.util.find_spec(m.package) for m in (GEMMA, SMOLLM2)):
        pytest.skip(f"the packaged models are not installed ({GEMMA.install}; {SMOLLM2.install})",
                    allow_module_level=True)


@dataclass
class Streamed:
    """What a client read of one streamed answer: the status, each `data:` payload (parsed JSON,
    or the string "[DONE]"), and how the stream broke where it did not end by itself."""

    status: int
    events: list[Any] = field(default_factory=list)
    body: Any = None  # the JSON body of a response that is not a stream (an error)
    broken: str | None = None  # the client's error where the connection ended midway

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and "choices" in e]

    @property
    def text(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" if "delta" in c["choices"][0]
                       else c["choices"][0].get("text") or "" for c in self.chunks if c["choices"])

    @property
    def finish_reason(self) -> str | None:
        return next((c["choices"][0]["finish_reason"] for c in self.chunks
                     if c["choices"] and c["choices"][0]["finish_reason"]), None)

    @property
    def usage(self) -> dict[str, Any] | None:
        return next((c["usage"] for c in self.chunks if c.get("usage")), None)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e["error"] for e in self.events if isinstance(e, dict) and "error" in e]

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1] == "[DONE]" and self.broken is None

    @property
    def complete(self) -> bool:
        """A whole answer: its finish chunk, no error, `[DONE]` last."""
        return self.status == 200 and self.done and self.finish_reason is not None and not self.errors


def stream(client: httpx.Client, url: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
           until: Callable[[Streamed], bool] | None = None) -> Streamed:
    """POST `body` (streamed) and read its events; once `until(read so far)` holds, the
    connection is dropped there, as a client that goes away does."""
    read = Streamed(0)
    try:
        with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
            read.status = response.status_code
            if response.status_code != 200:
                read.body = json.loads(response.read())
                return read
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line.removeprefix("data: ")
                read.events.append(data if data == "[DONE]" else json.loads(data))
                if until is not None and until(read):
                    return read  # leaving the block closes the connection midway
    except httpx.TransportError as exc:
        read.broken = f"{type(exc).__name__}: {exc}"
    return read


def answering(read: Streamed) -> bool:
    """`until` for a stream whose model is generating: its first words have come."""
    return bool(read.text)


def ps(client: httpx.Client, url: str, token: str) -> dict[str, dict[str, Any]]:
    """The server's resident models by id (`GET /api/ps` with the local token)."""
    rows = client.get(f"{url}/api/ps", headers={"authorization": f"Bearer {token}"}).json()["models"]
    return {row["model"]: row for row in rows}


@contextmanager
def home_env(home: Path) -> Iterator[None]:
    """MODELCTL_HOME set to `home` for a moment (to ask modelctl where its files lie there)."""
    old = os.environ.get("MODELCTL_HOME")
    os.environ["MODELCTL_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MODELCTL_HOME")
        else:
            os.environ["MODELCTL_HOME"] = old


def hosted_home(tmp_path_factory: Any, name: str, upstream_url: str) -> Path:
    """A home for a module's servers whose `openai` deployments are at the loopback `upstream_url`
    (Gemma's file is assembled into it once)."""
    home = tmp_path_factory.mktemp(name)
    write_config(home, f'[api_base]\nopenai = "{upstream_url}/v1"\n')
    return home


def serve_warm(home: Path, *flags: str, key: str) -> ServeProcess:
    """A server in `home` that keeps its models loaded, with `key` as its OpenAI key."""
    return ServeProcess(home, "--keep-alive", "-1", *flags, env={"OPENAI_API_KEY": key})


def write_config(home: Path, text: str) -> None:
    with home_env(home):
        path = get_paths().config_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def history_db(home: Path) -> Path:
    with home_env(home):
        return get_paths().history_db


def connect(url: str) -> socket.socket:
    """A raw connection to the server at `url` (http://HOST:PORT), reads bounded by HANG_S."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=HANG_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    data = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                return data
            data += part
    except ConnectionResetError:
        return data


def response_of(data: bytes) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 response (with a content-length) as it came over the
    socket."""
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, value in
               (line.split(b":", 1) for line in head.split(b"\r\n")[1:])}
    return status, rest[:int(headers.get(b"content-length", b"0"))]


def error_of(data: bytes) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI error object of a response as it came over the socket."""
    status, body = response_of(data)
    return status, json.loads(body)["error"]


def post(client: httpx.Client, url: str, body: dict[str, Any]) -> Streamed:
    """POST `body` unstreamed: its status and JSON body."""
    response = client.post(url, json={**body, "stream": False})
    return Streamed(response.status_code, body=response.json())


class Held:
    """A stream read in a thread of its own until its model is generating, then held (the model
    busy with it, nothing read) until `drop()` closes the connection there or `finish()` reads
    on to the stream's end."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.generating = threading.Event()
        self._release = threading.Event()
        self._dropping = False
        self.read: Streamed | None = None
        self._thread = threading.Thread(target=self._run, args=(url, body), daemon=True)
        self._thread.start()
        if not self.generating.wait(HANG_S) or self.read is not None:
            raise AssertionError(f"the held stream ended before its model generated: {self.read}")

    def _run(self, url: str, body: dict[str, Any]) -> None:
        with httpx.Client(timeout=HANG_S) as client:
            self.read = stream(client, url, body, until=self._until)
        self.generating.set()  # (also where it ended first: the constructor tells)

    def _until(self, read: Streamed) -> bool:
        if self._release.is_set() or not answering(read):
            return self._dropping
        self.generating.set()
        self._release.wait(HANG_S)
        return self._dropping

    def drop(self) -> Streamed:
        self._dropping = True
        return self.finish()

    def finish(self) -> Streamed:
        self._release.set()
        self._thread.join(HANG_S)
        assert self.read is not None, "the held stream did not end"
        return self.read
