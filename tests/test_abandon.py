"""Work given up on from another thread (transport/abandon): a blocked read of a real loopback
stream ends at once, no retry or fallback is tried for it, and a stream registered after the
work was given up on is ended as it opens."""

from __future__ import annotations

import contextvars
import socket
import threading
from typing import Any, Callable

import pytest
from providers.server import FakeServer, Reply
from test_fallback_scripted import answer, interrupted, routed

from modelctl.backends.scripted import ScriptedBackend
from modelctl.errors import BackendError
from modelctl.transport.abandon import ABANDONMENT, Abandonment, abandoned
from modelctl.transport.http_client import ErrorContext, HttpClient, StreamInterrupted
from modelctl.transport.retry import RetryPolicy

GUARD_S = 60.0  # a wait this long is a hang: a guard, never what a test measures


def under(scope: Abandonment, work: Callable[[], Any]) -> Callable[[], Any]:
    context = contextvars.copy_context()
    context.run(ABANDONMENT.set, scope)
    return lambda: context.run(work)


class Silent:
    """A loopback server that begins a streamed answer, then sends nothing more."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(GUARD_S)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: first\n\n")
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def test_abandoning_ends_a_blocked_read_of_a_real_stream():
    server = Silent()
    client = HttpClient(ErrorContext("the server"))
    scope, seen, first = Abandonment(), [], threading.Event()

    def read() -> None:
        stream = client.open_stream(server.url + "/v1/chat/completions", {"stream": True})
        try:
            for line in stream.lines():  # the first line, then a read that blocks
                seen.append(line)
                first.set()
        except StreamInterrupted as exc:
            seen.append(exc)
        finally:
            stream.close()

    worker = threading.Thread(target=under(scope, read))
    try:
        worker.start()
        assert first.wait(GUARD_S)
        scope.abandon()
        worker.join(GUARD_S)
        assert not worker.is_alive(), "the read was still blocked"
        assert seen[0] == "data: first" and "more" not in seen
    finally:
        scope.abandon()
        client.close()
        server.close()


def test_a_stream_opened_after_the_work_was_given_up_is_ended_at_once():
    scope = Abandonment()
    scope.abandon()
    ended: list[str] = []
    forget = scope.register(lambda: ended.append("now"))
    assert ended == ["now"]
    forget()  # (nothing left to forget)
    kept = Abandonment()
    forget = kept.register(lambda: ended.append("never"))
    forget()
    kept.abandon()
    assert ended == ["now"] and kept.abandoned


def test_no_retry_is_sent_for_work_given_up_on():
    server = FakeServer().start()
    server.route("POST", "/v1/x", Reply(503, json={"error": {"message": "busy"}}))
    waits: list[float] = []
    client = HttpClient(ErrorContext("the server"), retry=RetryPolicy(retries=3, sleep=waits.append))
    try:
        with pytest.raises(BackendError):
            client.request_json("POST", server.url + "/v1/x", {})
        assert len(server.calls("/v1/x")) == 4  # three retries, as the policy says
        scope = Abandonment()
        scope.abandon()
        with pytest.raises(BackendError):
            under(scope, lambda: client.request_json("POST", server.url + "/v1/x", {}))()
        assert len(server.calls("/v1/x")) == 5  # the one request, no retry
    finally:
        client.close()
        server.stop()


def test_a_retry_waited_for_is_not_sent_once_the_work_is_given_up():
    server = FakeServer().start()
    server.route("POST", "/v1/x", Reply(503, json={"error": {"message": "busy"}}))
    scope = Abandonment()
    client = HttpClient(ErrorContext("the server"), retry=RetryPolicy(retries=3, sleep=lambda s: scope.abandon()))
    try:
        with pytest.raises(BackendError):
            under(scope, lambda: client.request_json("POST", server.url + "/v1/x", {}))()
        assert len(server.calls("/v1/x")) == 1
    finally:
        client.close()
        server.stop()


def test_work_given_up_on_falls_back_to_no_other_service():
    first = ScriptedBackend([interrupted("the server", 0, "connection reset")], model_id="a")
    second = ScriptedBackend(["from b"], model_id="b")
    fallback, _, _ = routed(first, second)
    scope = Abandonment()
    scope.abandon()
    with pytest.raises(BackendError):
        under(scope, lambda: answer(fallback))()
    assert not second.requests and not abandoned()
    first = ScriptedBackend([interrupted("the server", 0, "connection reset")], model_id="a")
    fallback, _, _ = routed(first, ScriptedBackend(["from b"], model_id="b"))
    assert answer(fallback) == "from b"  # the same failure, for work still wanted
