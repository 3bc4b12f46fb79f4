"""The state file of a running `modelctl serve`, and how the CLI finds that server.

`serve` writes `<data_dir>/serve.json` (mode 0600, atomically) when it starts and removes it when
it exits: its pid, address and a random local token that lets the same user's CLI talk to it
whatever keys the server asks of others. `find_server()` is asked on every local chat, so it is
cheap: one small file read, no network, nothing imported beyond the standard library.

A file that cannot be trusted or used is as good as none: not a regular file, not the user's
own, readable by others (it holds a token), malformed, or naming a process that is gone (a server
killed without cleaning up; the next `serve` replaces it).
"""

from __future__ import annotations

import json
import math
import os
import socket
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeGuard
from urllib.parse import urlsplit

from modelctl.config import get_paths, user_config
from modelctl.errors import UsageError
from modelctl.files import atomic_write

DEFAULT_PORT = 8741
STATE_FILE = "serve.json"
# Set to 1 (true, yes, on): the CLI runs local models in-process even when a server runs.
NO_SERVER_ENV = "MODELCTL_NO_SERVER"
# A state file is a few hundred bytes: anything much larger is not one.
_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServerInfo:
    """A running server, as its state file describes it. `url` is where a client on this
    machine reaches it (`http://127.0.0.1:8741`); `token` passes its auth for the same user."""

    pid: int
    url: str
    host: str
    port: int
    token: str
    started: float
    version: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def state_path() -> Path:
    return get_paths().data_dir / STATE_FILE


def write_state(info: ServerInfo) -> None:
    """Write the state file for `info` (atomically; readable by this user only)."""
    atomic_write(state_path(), json.dumps(info.to_dict()).encode("utf-8"), mode=0o600)


def remove_state(pid: int) -> None:
    """Remove the state file if it still describes the server `pid` (another server may have
    replaced it meanwhile)."""
    path = state_path()
    data = _read_json(path)
    if isinstance(data, dict) and data.get("pid") == pid:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def read_state() -> ServerInfo | None:
    """The server the state file describes; None when there is no file, when it cannot be
    trusted or read, or when its process is gone."""
    info = _server_info(_read_json(state_path()))
    return info if info is not None and _alive(info.pid) else None


def find_server() -> ServerInfo | None:
    """The running server the CLI should use for local models: `read_state()`, unless
    MODELCTL_NO_SERVER or config.toml's `[serve] use = false` says not to. No network."""
    return None if _turned_off() else read_state()


def why_not_found() -> str:
    """Why `find_server()` found none, in words (for --debug)."""
    return _turned_off() or "no modelctl server is running"


def _turned_off() -> str | None:
    if os.environ.get(NO_SERVER_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return f"{NO_SERVER_ENV} is set"
    if not use_server_config():
        return "[serve] use = false in config.toml"
    return None


def answers(info: ServerInfo, timeout: float = 1.0) -> bool:
    """Whether the server's address takes a connection (a loopback address refuses at once when
    nothing listens there: a server that died and left its file, its pid now another process's)."""
    address = urlsplit(info.url)
    try:
        socket.create_connection((address.hostname or info.host, address.port or info.port), timeout=timeout).close()
    except (OSError, ValueError):  # ValueError: a port out of range in the URL
        return False
    return True


def use_server_config() -> bool:
    """config.toml's `[serve] use` (default true), type-checked."""
    where = get_paths().config_file
    table = user_config().get("serve", {})
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [serve] must be a table")
    use = table.get("use", True)
    if not isinstance(use, bool):
        raise UsageError(f"{where}: serve.use must be true or false, not {type(use).__name__} {use!r}")
    return use


def _read_json(path: Path) -> object:
    """The JSON of the state file at `path`, or None: absent, not a regular file, not this
    user's, open to the group or others, too large, or not JSON."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES or not _private(st):
            return None
        data = os.read(fd, _MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8
        return None


def _private(st: os.stat_result) -> bool:
    """Whether a file with this status is this user's own and closed to everyone else."""
    if not hasattr(os, "getuid"):  # Windows: the profile directory's ACLs guard it
        return True
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def _server_info(data: object) -> ServerInfo | None:
    """`data` as a ServerInfo, when every field has its type (and the address is plain http)."""
    if not isinstance(data, dict):
        return None
    pid, port, url, host, token = data.get("pid"), data.get("port"), data.get("url"), data.get("host"), data.get("token")
    started, version = data.get("started", 0.0), data.get("version", "")
    if not (_positive_int(pid) and _positive_int(port) and isinstance(url, str) and url.startswith("http://")
            and isinstance(host, str) and isinstance(token, str) and token and _number(started)
            and isinstance(version, str)):
        return None
    return ServerInfo(pid=pid, url=url.rstrip("/"), host=host, port=port, token=token, started=float(started),
                      version=version)


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts: signal 0 is only refused to us)."""
    if sys.platform == "win32":  # os.kill would end it there; a dead server refuses connections
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
