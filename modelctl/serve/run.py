"""Running `modelctl serve`: the listening socket, uvicorn with bounded connections, the state file
the CLI finds the server by, the sweep that unloads idle models, and a clean stop on SIGTERM or
SIGINT (new connections refused, answers in progress finished or cut within `grace` seconds,
exit 0).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import math
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from modelctl.errors import UsageError
from modelctl.serve.answer import Answerer, ServeSettings
from modelctl.serve.app import Limits, Server
from modelctl.serve.wire import ApiError
from modelctl.transport.serve_state import ServerInfo, remove_state, write_state
from modelctl.version import __version__

if TYPE_CHECKING:
    from modelctl.engines.process import EngineProcess
    from modelctl.registry import Registry
    from modelctl.serve.engine_session import EnginePlan, EngineRequest

log = logging.getLogger("modelctl.serve")

HEADER_TIMEOUT_S = 10.0  # a request's headers must arrive within this (a slow client cannot hold a connection)
KEEP_ALIVE_S = 5  # an idle connection between requests is closed after this
MAX_HEADER_BYTES = 64 * 1024
MAX_CONNECTIONS = 256
CUT_S = 5  # after the grace, seconds an answer cut short has to reach its client before uvicorn drops it


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8741
    settings: ServeSettings = field(default_factory=ServeSettings)
    api_keys: tuple[str, ...] = ()
    keys_file: Path | None = None
    cors: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    grace: float = 10.0  # seconds answers in progress get to finish at shutdown
    header_timeout: float = HEADER_TIMEOUT_S
    engine: "EngineRequest | None" = None  # an engine to start and route its model to (`--engine`)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _HeadLimited(h11.Connection):
    """h11's connection, refusing a request whose head (request line and headers) is larger than
    MAX_HEADER_BYTES however it arrived: h11's own limit holds only for a head still incomplete,
    so one that arrived in a single read of up to 256 KiB would pass."""

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and _head_bytes(event) > MAX_HEADER_BYTES:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event


def _head_bytes(request: h11.Request) -> int:
    """The size of a request's head as sent: 'METHOD TARGET HTTP/1.1\r\n', 'NAME: VALUE\r\n' each."""
    return (len(request.method) + len(request.target) + 11
            + sum(len(name) + len(value) + 4 for name, value in request.headers))


def _protocol_error(exc: BaseException | None) -> ApiError:
    """The OpenAI-shaped answer to a request h11 could not read."""
    if isinstance(exc, h11.RemoteProtocolError) and exc.error_status_hint == 431:
        return ApiError(431, f"the request's headers are larger than {MAX_HEADER_BYTES} bytes",
                        code="request_header_fields_too_large")
    return ApiError(400, "malformed HTTP request", code="malformed_request")


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers: a client that
    opens a connection and sends nothing, or drips its headers, is cut off; and so is one that
    goes on sending a body refused unread (413, 408), which uvicorn would read for as long as
    it comes. A head over MAX_HEADER_BYTES is refused (431) however it arrives, and what cannot be
    read as HTTP is answered with an OpenAI-shaped error body, as every other refusal is."""

    header_timeout = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _HeadLimited(h11.SERVER, MAX_HEADER_BYTES)

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this inside its `except h11.RemoteProtocolError`: the error is the one in hand
        error = _protocol_error(sys.exc_info()[1])
        body = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        reason = HTTPStatus(error.status).phrase.encode()
        for event in (h11.Response(status_code=error.status, headers=headers, reason=reason), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        conn = self.conn
        refused_body = conn.our_state is h11.DONE and conn.their_state is h11.SEND_BODY
        if (conn.their_state is h11.IDLE or refused_body) and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, which stops on SIGTERM/SIGINT and returns (uvicorn would raise the
    signal again once stopped, and the process would end by it rather than exit 0), and says
    it is ready (`on_ready`) once it accepts connections and its signal handlers are in place;
    `on_stopping` runs as it begins to stop."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None],
                 on_stopping: Callable[[], None] = lambda: None) -> None:
        super().__init__(config)
        self.on_ready = on_ready
        self.on_stopping = on_stopping

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.on_ready()

    async def shutdown(self, sockets: Any = None) -> None:
        self.on_stopping()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == 2:
            self.force_exit = True
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a clear error when the address is taken or cannot be had."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"{host}:{port} is in use (another server listens there)",
                             hint="stop it, or give another --port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions, *, say: Callable[[str], None]) -> int:
    """Run the server until it is told to stop; the exit status (0)."""
    from modelctl.registry import get_registry  # noqa: PLC0415 (the registry: loaded once, here)
    from modelctl.serve.auth import Keys  # noqa: PLC0415 (keys: read at start)
    from modelctl.serve.budgets import Budgets  # noqa: PLC0415 (budgets: read the history)
    from modelctl.serve.metrics import Metrics  # noqa: PLC0415 (metrics: kept in memory)

    keys = Keys.load(options.api_keys, options.keys_file)
    if not is_loopback(options.host) and not keys:
        raise UsageError(f"serving on {options.host} (not this machine only) needs API keys",
                         hint="give --api-key KEY or --keys-file FILE, or bind 127.0.0.1")
    os.environ["MODELCTL_NO_SERVER"] = "1"  # this process's own chats never go to a server: it is the server
    registry = get_registry(None)
    engine_plan = _engine_plan(options.engine, registry)
    sock = bind(options.host, options.port)
    try:
        engine = _start_engine(engine_plan, say) if engine_plan else None
    except BaseException:
        sock.close()
        raise
    if engine is not None:
        registry = _route(registry, engine_plan)
    host, port = sock.getsockname()[:2]
    metrics = Metrics()
    answerer = Answerer(options.settings, registry, metrics, Budgets())
    token = secrets.token_hex(24)
    server = Server(answerer, keys, metrics, token=token, limits=options.limits, cors=options.cors,
                    engines=(engine,) if engine else ())
    shown_host = f"[{host}]" if ":" in host else host
    info = ServerInfo(pid=os.getpid(), url=f"http://{shown_host}:{port}", host=host, port=port, token=token,
                      started=time.time(), version=__version__)
    protocol = type("GuardedH11", (_GuardedH11,), {"header_timeout": options.header_timeout})
    config = uvicorn.Config(server.app(), log_level="warning", http=protocol, lifespan="off",
                            timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=math.ceil(options.grace) + CUT_S,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES, limit_concurrency=MAX_CONNECTIONS,
                            server_header=False, date_header=False)
    stopping = threading.Event()
    sweeper = threading.Thread(target=_sweep, args=(answerer, stopping), name="modelctl-serve-sweep", daemon=True)

    def ready() -> None:
        write_state(info)
        say(f"modelctl serve: listening on {info.url} (pid {info.pid}); OpenAI-compatible API at {info.url}/v1")

    def cut_later() -> None:  # answers in progress get `grace` seconds, then end with an error
        asyncio.get_running_loop().call_later(options.grace, server.cut)

    try:
        sweeper.start()
        if engine is not None:
            threading.Thread(target=_watch, args=(engine, stopping, say), name="modelctl-serve-engine",
                             daemon=True).start()
        asyncio.run(_Uvicorn(config, ready, cut_later).serve(sockets=[sock]))
    finally:
        stopping.set()
        remove_state(info.pid)
        server.close()
        sock.close()
        if engine is not None:
            engine.stop()
            say(f"modelctl serve: stopped {engine.label}")
    say("modelctl serve: stopped")
    return 0


def _engine_plan(request: "EngineRequest | None", registry: "Registry") -> "EnginePlan | None":
    """The engine `--engine` asks for, planned and found installed (nothing started yet)."""
    if request is None:
        return None
    from modelctl.engines.launch import check_installed  # noqa: PLC0415 (engines: only for --engine)
    from modelctl.engines.process import check_port  # noqa: PLC0415 (engines: only for --engine)
    from modelctl.serve.engine_session import plan  # noqa: PLC0415 (engines: only for --engine)

    planned = plan(request, registry)
    check_installed(request.engine)
    check_port(planned.spec.host, planned.spec.port)
    return planned


def _start_engine(engine_plan: "EnginePlan", say: Callable[[str], None]) -> "EngineProcess":
    from modelctl.engines.process import start  # noqa: PLC0415 (engines: only for --engine)

    spec = engine_plan.spec
    say(f"modelctl serve: starting {spec.engine} for {spec.served_name} at {spec.base_url}")
    engine = start(spec, engine_plan.command, timeout=engine_plan.timeout)
    say(f"modelctl serve: {engine.label} is ready at {engine.api_base} (pid {engine.proc.pid}, "
        f"{engine.ready_s or 0:.1f} s); {spec.served_name} goes to it")
    return engine


def _route(registry: "Registry", engine_plan: "EnginePlan | None") -> "Registry":
    """`registry` with the engine's model sent to it; the engine's key where its deployment looks."""
    from modelctl.redaction import remember_secret  # noqa: PLC0415 (engines: only for --engine)
    from modelctl.serve.engine_session import ENGINE_KEY_ENV, routed  # noqa: PLC0415 (engines: only for --engine)

    assert engine_plan is not None and engine_plan.spec.api_key
    remember_secret(engine_plan.spec.api_key)
    os.environ[ENGINE_KEY_ENV] = engine_plan.spec.api_key
    return routed(registry, engine_plan)


def _watch(engine: "EngineProcess", stopping: threading.Event, say: Callable[[str], None]) -> None:
    """Say so when the engine ends while the server still runs (its model's requests fail then)."""
    code = engine.proc.wait()
    if not stopping.is_set():
        say(f"modelctl serve: {engine.label} exited with status {code}; requests for {engine.spec.served_name} "
            f"fail until serve is restarted (its log: {engine.log_path})")


def _sweep(answerer: Answerer, stopping: threading.Event) -> None:
    """Unload idle models, a few times per keep-alive period."""
    keep_alive = answerer.settings.keep_alive
    if keep_alive is None:
        return
    step = min(max(keep_alive / 4, 0.05), 5.0)
    while not stopping.wait(step):
        for model in answerer.pool.sweep():
            log.info("unloaded %s (idle)", model)
