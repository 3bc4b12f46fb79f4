"""The admin routes of a running `modelctl serve`, as its own user's CLI calls them (`modelctl ps`,
`modelctl stop`): what it holds loaded (GET /api/ps) and unloading (POST /api/stop), with the
local token of its state file (`serve_state`), through the project's HTTP client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelctl.errors import NotFoundError, OfflineError
from modelctl.redaction import remember_secret
from modelctl.transport.http_client import ErrorContext, HttpClient
from modelctl.transport.retry import NO_RETRY
from modelctl.transport.serve_state import ServerInfo, read_state
from modelctl.transport.wire import Wire

NO_SERVER = "no modelctl server is running (start one with `modelctl serve`)"
# Everything here is on this machine: a server that takes longer to answer is stuck.
_TIMEOUT = 30.0
# A name that stands for every loaded model in POST /api/stop.
ALL = "*"


@dataclass(frozen=True)
class LoadedModel:
    """One model the server holds loaded (a row of GET /api/ps). Times are in seconds: since it
    was loaded, since its last request, until it is unloaded (None: never, or not told)."""

    model: str
    path: str | None
    size_bytes: int | None
    loaded_s: float | None
    idle_s: float | None
    expires_in_s: float | None
    busy: bool
    queue: int
    requests: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunningEngine:
    """A serving engine the server started (`serve --engine`) and sends its model to."""

    engine: str
    model: str
    url: str
    pid: int | None
    running_s: float | None
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def running_server() -> ServerInfo:
    """The server the state file names; OfflineError (exit 9) when none runs."""
    server = read_state()
    if server is None:
        raise OfflineError(NO_SERVER)
    return server


def loaded_models(server: ServerInfo) -> list[LoadedModel]:
    """What `server` holds loaded now."""
    return server_status(server)[0]


def server_status(server: ServerInfo) -> tuple[list[LoadedModel], list[RunningEngine]]:
    """What `server` holds loaded now, and the engines it started."""
    client = _client(server)
    try:
        data = client.request_json("GET", f"{server.url}/api/ps")
    finally:
        client.close()
    wire = Wire(client.ctx.provider)
    answer = wire.obj(data, "the answer", optional=False)
    rows = wire.items(answer.get("models"), "models")
    engines = wire.items(answer.get("engines"), "engines") if answer.get("engines") is not None else []
    return ([_loaded(wire, wire.obj(row, "a model", optional=False)) for row in rows],
            [_engine(wire, wire.obj(row, "an engine", optional=False)) for row in engines])


def stop_models(server: ServerInfo, name: str) -> list[str]:
    """Have `server` unload the model `name` (any name `-m` takes, `ALL` for every one); the
    ids it unloaded. NotFoundError (exit 4) when it holds no such model."""
    client = _client(server)
    not_loaded = NotFoundError(f"'{name}' is not loaded in {client.ctx.provider}",
                               hint="`modelctl ps` lists the loaded models")
    try:
        data = client.request_json("POST", f"{server.url}/api/stop", {"model": name})
    except NotFoundError:
        if name == ALL:  # nothing was loaded: nothing to do
            return []
        raise not_loaded from None
    finally:
        client.close()
    wire = Wire(client.ctx.provider)
    stopped = [wire.text(s, "a model stopped") or "" for s in
               wire.items(wire.obj(data, "the answer", optional=False).get("stopped"), "stopped")]
    if not stopped and name != ALL:
        raise not_loaded
    return stopped


def _client(server: ServerInfo) -> HttpClient:
    remember_secret(server.token)  # a --debug request log shows it hidden
    where = f"the modelctl server at {server.url} (pid {server.pid})"
    return HttpClient(ErrorContext(where, key_hint="is another server listening at that address?"),
                      headers={"authorization": f"Bearer {server.token}"}, timeout=_TIMEOUT, retry=NO_RETRY)


def _engine(wire: Wire, row: dict[str, Any]) -> RunningEngine:
    alive = row.get("alive", True)
    if not isinstance(alive, bool):
        raise wire.wrong("alive", alive, "true or false")
    pid = wire.number(row.get("pid"), "pid")
    return RunningEngine(engine=wire.text(row.get("engine"), "engine") or "?", model=wire.text(row.get("model"), "model") or "?",
                         url=wire.text(row.get("url"), "url") or "?", pid=None if pid is None else int(pid),
                         running_s=wire.number(row.get("running_s"), "running_s"), alive=alive)


def _loaded(wire: Wire, row: dict[str, Any]) -> LoadedModel:
    busy = row.get("busy", False)
    if not isinstance(busy, bool):
        raise wire.wrong("busy", busy, "true or false")
    size = wire.number(row.get("size_bytes"), "size_bytes")
    queue = wire.number(row.get("queue"), "queue")
    requests = wire.number(row.get("requests"), "requests")
    return LoadedModel(
        model=wire.text(row.get("model"), "model") or "?",
        path=wire.text(row.get("path"), "path"),
        size_bytes=None if size is None else int(size),
        loaded_s=wire.number(row.get("loaded_s"), "loaded_s"),
        idle_s=wire.number(row.get("idle_s"), "idle_s"),
        expires_in_s=wire.number(row.get("expires_in_s"), "expires_in_s"),
        busy=busy,
        queue=0 if queue is None else int(queue),
        requests=None if requests is None else int(requests),
    )
