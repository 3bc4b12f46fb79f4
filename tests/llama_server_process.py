"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`, through
safe_llama_server.py) as a real child process on a free loopback port, for the tests that talk to
a real server: started, waited for by reading its log (no polling, no sleeps), stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(proc: subprocess.Popen, deadline_s: float = 240.0) -> str:
    """Read the server's log until uvicorn says it is listening (no polling, no sleeps). Line by
    line from the pipe: a select() on it would miss lines already in the reader's buffer (uvicorn
    writes its last three lines at once). A watchdog ends a server that never says it."""
    watchdog = threading.Timer(deadline_s, proc.kill)
    watchdog.start()
    log: list[str] = []
    try:
        for line in proc.stdout:
            log.append(line)
            if "Uvicorn running on" in line:
                return "".join(log)
    finally:
        watchdog.cancel()
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start:\n" + "".join(log[-30:]))


@contextmanager
def llama_server(model: Path, *args: str) -> Iterator[str]:
    """The server for `model` with the server's own `args` (`--chat_format`, `--api_key`, …),
    running while the context lasts; yields its base URL (`http://127.0.0.1:PORT/v1`)."""
    port = free_port()
    launcher = Path(__file__).with_name("safe_llama_server.py")
    cmd = [sys.executable, str(launcher), "--model", str(model), "--host", "127.0.0.1", "--port", str(port), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_until_listening(proc)
        # Drain the log from now on so that the server never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
