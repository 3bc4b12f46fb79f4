"""`modelctl serve` as a real process for tests: started on a free loopback port, found by the
line it prints, stopped with a signal (its exit status checked by the caller)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from modelctl.transport.serve_state import state_path

_LISTENING = re.compile(r"listening on (http://\S+) \(pid (\d+)\)")
START_TIMEOUT_S = 60.0  # generous: a busy 2-core host starts Python slowly


class ServeProcess:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.args = args
        self.env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1", **(env or {}))
        self.lines: list[str] = []
        self.url = ""
        self._seen = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> "ServeProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "modelctl", "serve", "--port", "0", *self.args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=self.env)
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._seen.wait(START_TIMEOUT_S) or not self.url:
            self.kill()
            raise AssertionError("modelctl serve did not start:\n" + "".join(self.lines))
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._seen.set()
        self._seen.set()  # it ended without listening

    @property
    def base(self) -> str:
        return self.url + "/v1"

    @property
    def state(self) -> dict:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    @property
    def state_path(self) -> Path:
        old = os.environ.get("MODELCTL_HOME")
        os.environ["MODELCTL_HOME"] = str(self.home)
        try:
            return state_path()
        finally:
            if old is None:
                os.environ.pop("MODELCTL_HOME")
            else:
                os.environ["MODELCTL_HOME"] = old

    @property
    def token(self) -> str:
        return json.loads(self.state_path.read_text())["token"]

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @contextmanager
    def serving(self) -> Iterator["ServeProcess"]:
        """Started for the `with` block, then stopped with SIGTERM, which it must take cleanly (exit 0)."""
        self.start()
        try:
            yield self
        finally:
            assert self.stop() == 0, self.stderr

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def serve_env(home: Path) -> dict[str, str]:
    """The environment of a CLI process of the same user as a server started in `home`."""
    return dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
