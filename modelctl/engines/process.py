"""A serving engine as a child process: started in its own process group with its output in a
log file, waited for until its health probe answers (bounded), and stopped with its whole group.

What can go wrong at start is told in one line each: the port is taken (before anything starts),
the engine ends before it is healthy (its status and the last line of its log), or it is not
healthy within the wait (then it is killed). A child is never left behind: the group is sent
SIGTERM, then SIGKILL after a grace; on Linux the child also gets SIGTERM if modelctl itself is
killed (PR_SET_PDEATHSIG), and a SIGTERM that comes while modelctl waits stops the child first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from modelctl.config import get_paths
from modelctl.engines.catalog import engine_facts
from modelctl.engines.launch import EngineCommand, LaunchSpec
from modelctl.engines.ports import listen_error
from modelctl.errors import BackendError, UsageError
from modelctl.transport.probe_get import probe_get

PROBE_TIMEOUT_S = 2.0  # one health request; a server that takes longer is not ready
_FIRST_STEP_S, _MAX_STEP_S = 0.05, 1.0  # between probes: growing, so a fast engine is seen fast
_TAIL_BYTES = 4096


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """UsageError (exit 2) when `host:port` cannot be listened on (another server has it)."""
    exc = listen_error(host, port)
    if exc is None:
        return
    if exc.errno == errno.EADDRINUSE:
        raise UsageError(f"{host}:{port} is in use (another server listens there)",
                         hint="stop it, or give another --engine-port")
    raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@dataclass
class EngineProcess:
    """A started engine: its spec, the child, its log file, and when it became healthy."""

    spec: LaunchSpec
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float
    ready_s: float | None = None  # seconds from start to healthy
    grace: float = 10.0  # seconds from SIGTERM to SIGKILL when stopped (the engine's, at start)

    @property
    def label(self) -> str:
        return engine_facts(self.spec.engine).label

    @property
    def api_base(self) -> str:
        return self.spec.base_url + "/v1"

    def describe(self) -> dict[str, Any]:
        """What `modelctl ps` shows of it (no key)."""
        return {"engine": self.spec.engine, "model": self.spec.served_name, "url": self.api_base,
                "pid": self.proc.pid, "running_s": round(time.time() - self.started, 3),
                "ready_s": None if self.ready_s is None else round(self.ready_s, 3), "log": str(self.log_path),
                "alive": self.proc.poll() is None}

    def wait_healthy(self, timeout: float) -> None:
        """Return once the engine answers its health probe; BackendError (exit 7), the child
        stopped, when it ends first or `timeout` seconds pass."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        step = _FIRST_STEP_S
        while True:
            code = self.proc.poll()
            if code is not None:
                raise self._failed(f"exited with status {code} before it was healthy")
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise self._failed(f"was not healthy within {timeout:g} s, so it was stopped")
            if healthy(self.spec, timeout=min(PROBE_TIMEOUT_S, left)):
                self.ready_s = time.monotonic() - t0
                return
            with contextlib.suppress(subprocess.TimeoutExpired):
                # waits between probes, and ends the wait as soon as the child exits
                self.proc.wait(max(0.0, min(step, deadline - time.monotonic())))
            step = min(step * 1.5, _MAX_STEP_S)

    def stop(self) -> int | None:
        """Stop the engine and everything it started (its process group); its exit status."""
        grace = self.grace
        if self.proc.poll() is None or _group_alive(self.proc.pid):
            if engine_facts(self.spec.engine).leader_stops:
                with contextlib.suppress(OSError):
                    self.proc.terminate()
            else:
                _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(self.proc, getattr(signal, "SIGKILL", signal.SIGTERM))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        return self.proc.returncode

    def _failed(self, what: str) -> BackendError:
        last = last_line(self.log_path)
        said = f": {last}" if last else ""
        return BackendError(f"{self.label} for {self.spec.served_name} {what}{said}", hint=f"its log: {self.log_path}")


def start(spec: LaunchSpec, command: EngineCommand, *, timeout: float, log_dir: Path | None = None,
          grace: float | None = None) -> EngineProcess:
    """Start `command` (the engine of `spec`) and wait until it is healthy (see EngineProcess)."""
    check_port(spec.host, spec.port)
    folder = log_dir or get_paths().data_dir / "engines"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{spec.engine}-{spec.port}.log"
    with open(log_path, "wb") as log:  # the child holds its own copy of the descriptor
        proc = subprocess.Popen(list(command.argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **command.env}, **_own_group())
    engine = EngineProcess(spec, proc, log_path, time.time(),
                           grace=engine_facts(spec.engine).stop_grace_s if grace is None else grace)
    try:
        with _terminated_as_interrupt():
            engine.wait_healthy(timeout)
    except BaseException:
        engine.stop()
        raise
    return engine


@contextlib.contextmanager
def running(spec: LaunchSpec, command: EngineCommand, *, timeout: float) -> Iterator[EngineProcess]:
    """The engine, started and healthy for the `with` block, stopped at its end."""
    engine = start(spec, command, timeout=timeout)
    try:
        yield engine
    finally:
        engine.stop()


def healthy(spec: LaunchSpec, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the engine answers 200 at its health path (its model list where it has none)."""
    path = engine_facts(spec.engine).health_path or "/v1/models"
    answer = probe_get(spec.base_url + path, max(timeout, 0.01), 64 * 1024, spec.api_key or None)
    return answer.status == 200


def last_line(path: Path) -> str:
    """The last line of text in the file at `path` ('' when none), at most 300 characters."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
            tail = f.read()
    except OSError:
        return ""
    lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- processes ---------------------------------------------------------------------------------------


def _own_group() -> dict[str, Any]:
    """Popen's arguments for a child in its own process group (and, on Linux, ended with us)."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    options: dict[str, Any] = {"start_new_session": True}
    if sys.platform.startswith("linux"):
        options["preexec_fn"] = _die_with_parent
    return options


def _die_with_parent() -> None:
    """In the child, before it runs the engine: SIGTERM when the parent ends."""
    import ctypes  # noqa: PLC0415 (ctypes: only in a Linux child, before exec)

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if sys.platform == "win32":
        with contextlib.suppress(OSError):
            proc.terminate() if sig == signal.SIGTERM else proc.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _group_alive(pgid: int) -> bool:
    if sys.platform == "win32":
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """While it lasts (in the main thread), SIGTERM raises KeyboardInterrupt, so that a stop
    asked for while an engine starts ends the engine too."""
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

