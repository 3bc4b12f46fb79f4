"""`modelctl serve` when things go wrong, in real processes: a client that goes away mid-answer,
an upstream service that dies mid-stream, the server killed (-9) or stopped (SIGTERM) while it
streams, and hostile clients (slow or endless headers, idle connections, huge or trickling
bodies); a bind beyond loopback without keys is refused at start."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from serve_clients import (
    GEMMA_NAME,
    HANG_S,
    HOSTED,
    HOSTED_WORDS,
    Held,
    answering,
    connect,
    error_of,
    history_db,
    hosted_home,
    post,
    ps,
    read_until_closed,
    response_of,
    serve_warm,
    skip_module_without_packaged_models,
    stream,
    write_config,
)
from serve_process import ServeProcess, serve_env

from modelctl.store.default_model import GEMMA, SMOLLM2

skip_module_without_packaged_models()
CHAT = "/v1/chat/completions"
# Gemma, a base model, repeats itself greedily: this answer runs until it is cut.
ENDLESS = {"model": GEMMA_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "temperature": 0}


def ask(model: str, text: str, max_tokens: int = 4) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "temperature": 0}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    server = FakeServer().start()
    server.route("POST", CHAT, openai_wire.chat_stream(HOSTED_WORDS))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hosted(upstream) -> Iterator[FakeServer]:
    """The upstream service, its answer set back after the test."""
    try:
        yield upstream
    finally:
        upstream.route("POST", CHAT, openai_wire.chat_stream(HOSTED_WORDS))


@pytest.fixture(scope="module")
def home(tmp_path_factory, upstream) -> Path:
    return hosted_home(tmp_path_factory, "serve-faults", upstream.url)


def serve(home: Path, *flags: str) -> ServeProcess:
    return serve_warm(home, *flags, key=FAKE_KEY)


@pytest.fixture(scope="module")
def server(home) -> Iterator[ServeProcess]:
    """A server with tight limits on what a request may take, shared by the module's tests."""
    with serve(home, "--header-timeout", "1", "--body-timeout", "1", "--max-body-mb", "1") as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=HANG_S) as made:
        yield made


def turns(home: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(history_db(home)) as db:
        return db.execute("SELECT model, finish_reason FROM turns ORDER BY id").fetchall()


# --- clients that go away, services that die ------------------------------------------------------


def test_a_client_that_drops_its_stream_frees_the_model(server, client):
    dropped = stream(client, server.url + CHAT, ENDLESS, until=answering)
    assert dropped.text and not dropped.done
    # The next request gets the model (it would wait behind 4,000 tokens otherwise) and completes.
    following = stream(client, server.url + CHAT, ask(GEMMA_NAME, "Next."))
    assert following.complete, following
    row = ps(client, server.url, server.token)[GEMMA.id]
    assert (row["busy"], row["queue"]) == (False, 0), row


def test_a_client_that_goes_away_before_its_whole_answer_frees_the_model(server, client):
    """Unstreamed: the answer is cut when the server sees the connection closed."""
    assert post(client, server.url + CHAT, ask(GEMMA_NAME, "Load.")).status == 200  # loaded: busy comes soon
    body = json.dumps(ENDLESS).encode()
    with connect(server.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
        for _ in range(10_000):  # each try is a request to the server: no sleep, a bound
            if ps(client, server.url, server.token)[GEMMA.id]["busy"]:
                break
        else:
            pytest.fail("the model never became busy with the request")
    following = post(client, server.url + CHAT, ask(GEMMA_NAME, "Next."))
    assert following.status == 200, following
    row = ps(client, server.url, server.token)[GEMMA.id]
    assert (row["busy"], row["queue"]) == (False, 0), row


def test_an_upstream_that_dies_mid_stream_gives_an_error_event_then_done(server, client, hosted):
    hosted.route("POST", CHAT, openai_wire.chat_stream(["Half ", "an ", "answer."], drop_after=3))
    got = stream(client, server.url + CHAT, ask(HOSTED, "Tell me.", 50))
    assert got.status == 200 and got.done, got  # not a hang, not a cut connection
    assert got.text == "Half an " and got.finish_reason is None
    assert got.events[-2] == {"error": got.errors[0]} and len(got.errors) == 1
    assert got.errors[0]["type"] == "api_error" and got.errors[0]["message"]
    # Unstreamed, the same failure is the response's status.
    whole = post(client, server.url + CHAT, ask(HOSTED, "Tell me.", 50))
    assert whole.status == 502 and whole.body["error"]["type"] == "api_error", whole


# --- the server stopped mid-answer ------------------------------------------------------------------


def test_kill_9_mid_answers_leaves_the_history_whole(home, hosted):
    release = threading.Event()
    running = serve(home).start()
    held: list[Held] = []
    try:
        url = running.url + CHAT
        with httpx.Client(timeout=HANG_S) as client:
            for body in (ask(SMOLLM2.id, "Say hi."), ask(HOSTED, "Hi."), ask(GEMMA_NAME, "Hi.")):
                assert stream(client, url, body).complete
        hosted.route("POST", CHAT, openai_wire.chat_stream(HOSTED_WORDS, hold=(2, release)))
        held = [Held(url, ENDLESS), Held(url, ask(HOSTED, "Wait.", 50))]
        with ThreadPoolExecutor(4) as pool:  # and short answers, some of them being logged as it dies
            racing = [pool.submit(post, httpx.Client(timeout=HANG_S), url, ask(SMOLLM2.id, f"Count to {n}."))
                      for n in range(4)]
            assert running.stop(signal.SIGKILL) == -signal.SIGKILL
            for future in racing:
                future.exception(HANG_S)
    finally:
        release.set()
        running.kill()
        for one in held:
            one.drop()

    with sqlite3.connect(history_db(home)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    listed = subprocess.run([sys.executable, "-m", "modelctl", "history", "list", "--json"], env=serve_env(home),
                            capture_output=True, text=True, timeout=HANG_S)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) >= 3
    # The state file it left names a process that is gone: the next server starts in its place.
    with serve(home) as after:
        assert after.state["pid"] == after.proc.pid
        assert after.stop() == 0


def test_sigterm_mid_answers_exits_0_and_ends_every_stream_cleanly(home, hosted):
    release = threading.Event()
    hosted.route("POST", CHAT, openai_wire.chat_stream(HOSTED_WORDS, hold=(2, release)))
    running = serve(home, "--grace", "1").start()
    try:
        url = running.url + CHAT
        held = [Held(url, ENDLESS), Held(url, ask(HOSTED, "Wait.", 50))]
        with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=HANG_S) as client:
            waiting = pool.submit(stream, client, url, ask(GEMMA_NAME, "In line."))  # behind the endless one
            for _ in range(10_000):  # each try is a request to the server: no sleep, a bound
                if ps(client, running.url, running.token)[GEMMA.id]["queue"]:
                    break
            assert running.proc is not None
            running.proc.send_signal(signal.SIGTERM)
            ended = [one.finish() for one in held] + [waiting.result(HANG_S)]
        # (The worker reading the silent upstream is waited for until its read ends.)
        release.set()
        status = running.proc.wait(HANG_S)
    finally:
        release.set()
        running.kill()

    assert status == 0, running.stderr
    for read in ended[:2]:  # each complete, or cut cleanly: an error event, then [DONE]
        assert read.broken is None and read.done and read.text, read
        assert read.complete or read.errors[0]["code"] == "server_shutting_down", read
    # The one still in line had not begun: its answer is a 503.
    assert ended[2].status == 503 and ended[2].body["error"]["code"] == "server_shutting_down", ended[2]
    assert not running.state_path.exists()
    assert "Traceback" not in running.stderr, running.stderr


# --- hostile clients ------------------------------------------------------------------------------------


def test_slow_headers_are_cut_off_and_do_not_hold_the_server(server, client):
    with connect(server.url) as sock:
        sock.sendall(b"GET /health HT")  # half a request line, then nothing
        assert client.get(server.url + "/health").status_code == 200  # others are answered meanwhile
        assert b"200" not in read_until_closed(sock)  # closed after --header-timeout 1


def test_an_idle_connection_is_closed(server):
    with connect(server.url) as sock:
        assert read_until_closed(sock) == b""
    with connect(server.url) as sock:  # and one idle after its answer
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        data = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1


def test_a_declared_100_mb_body_is_refused_413_unread(server):
    with connect(server.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n{" % (100 * 2**20))
        status, error = error_of(read_until_closed(sock))
    assert status == 413 and error["code"] == "request_too_large"


def test_a_chunked_body_past_the_limit_is_refused_413(server):
    part = b"x" * 65536
    with connect(server.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(24):  # 1.5 MiB, past --max-body-mb 1
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        except OSError:  # the server answered and closed before the rest was sent
            pass
        status, error = error_of(read_until_closed(sock))
    assert status == 413 and error["code"] == "request_too_large"


def test_a_body_that_trickles_is_refused_408(server):
    with connect(server.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n{\"model\": ")  # and the rest never comes
        status, error = error_of(read_until_closed(sock))
    assert status == 408 and error["code"] == "request_timeout"


def test_headers_past_the_bound_are_refused_not_waited_for(server):
    """A megabyte of headers is refused as it arrives (the answer may be lost to the reset of a
    connection closed before all of it was read)."""
    with connect(server.url) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2**20 + b"\r\n\r\n")
        except OSError:  # refused before it was all sent
            pass
        data = read_until_closed(sock)
    assert data == b"" or response_of(data)[0] == 431, data[:200]


@pytest.mark.parametrize("head", [
    b"x-big: " + b"a" * 66_000 + b"\r\n",  # one header, the whole head arriving at once
    b"".join(b"x-h%d: %s\r\n" % (i, b"b" * 100) for i in range(620)),  # many small ones
], ids=["one-large", "many-small"])
def test_a_head_past_64_kib_is_431_however_it_arrives(server, head):
    """The bound holds for a head that arrives whole in one read too (h11's own holds only while
    a head is incomplete), and the refusal is an OpenAI-shaped error like every other."""
    assert 65_536 < len(head) < 70_000
    with connect(server.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n" + head + b"\r\n")
        status, error = error_of(read_until_closed(sock))
    assert status == 431 and error["code"] == "request_header_fields_too_large" and "65536" in error["message"]
    with connect(server.url) as sock:  # just under the bound: answered
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: " + b"a" * 65_000 + b"\r\n\r\n")
        assert response_of(read_until_closed(sock))[0] == 200


@pytest.mark.parametrize("request_bytes", [b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
                                           b"GET /health\r\n\r\n"])
def test_what_is_not_http_gets_an_openai_shaped_400(server, request_bytes):
    with connect(server.url) as sock:
        sock.sendall(request_bytes)
        status, error = error_of(read_until_closed(sock))
    assert status == 400 and error == {"message": "malformed HTTP request", "type": "invalid_request_error",
                                       "param": None, "code": "malformed_request"}


@pytest.mark.parametrize("where", ["flag", "config"])
def test_a_bind_beyond_loopback_without_keys_is_refused_at_start(tmp_path, where):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if where == "config":
        write_config(tmp_path, '[serve]\nhost = "0.0.0.0"\n')
    args = ["--host", "0.0.0.0"] if where == "flag" else []
    done = subprocess.run([sys.executable, "-m", "modelctl", "serve", "--port", str(port), *args],
                          env=serve_env(tmp_path), capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("modelctl: error: "), done.stderr
    assert "key" in done.stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=HANG_S).close()
    assert not ServeProcess(tmp_path).state_path.exists()


class SilentUpstream:
    """An OpenAI-compatible service that begins a streamed answer, then sends nothing more, and
    notes when the connection it holds is closed by the other end."""

    FIRST = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": HOSTED,
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]}

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.asked = threading.Event()
        self.closed = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(HANG_S)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                if not head.startswith(b"POST /v1/chat/completions"):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
                             + b"data: " + json.dumps(self.FIRST).encode() + b"\n\n")
                self.asked.set()
                try:
                    while conn.recv(65536):  # what the client still sends (nothing), until it closes
                        pass
                    self.closed.set()
                except OSError:  # the guard ran out: nobody closed it
                    pass

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_a_client_that_leaves_frees_a_worker_reading_a_silent_upstream(tmp_path_factory, streamed):
    """The worker blocked reading an upstream that went silent is woken when its client leaves
    (its connection to the upstream is shut), not left waiting out the read timeout."""
    upstream = SilentUpstream()
    home = hosted_home(tmp_path_factory, "serve-silent", upstream.url)
    running = ServeProcess(home, "--keep-alive", "-1", env={"OPENAI_API_KEY": FAKE_KEY, "MODELCTL_READ_TIMEOUT": "3600"})
    body = {**ask(HOSTED, "Say hello."), "stream": streamed}
    try:
        with running, httpx.Client(timeout=HANG_S) as client:
            if streamed:
                with client.stream("POST", running.url + CHAT, json=body) as answer:
                    assert answer.status_code == 200
                    for line in answer.iter_lines():
                        if '"Hel"' in line:
                            break  # the first words came; the client leaves, the upstream says no more
            else:
                with connect(running.url) as sock:  # asks, and leaves while the answer is awaited
                    data = json.dumps(body).encode()
                    sock.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (CHAT.encode(), len(data), data))
                    assert upstream.asked.wait(HANG_S)
            assert upstream.asked.is_set()
            assert upstream.closed.wait(HANG_S), "the upstream connection was still open"
            assert running.stop() == 0
    finally:
        upstream.stop()
    assert "Traceback" not in running.stderr, running.stderr
