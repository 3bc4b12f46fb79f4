"""A real distributed engine on this machine: a one-node Ray cluster whose Serve application
(modelctl/engines/ray_app.py) hosts two replicas of SmolLM2 behind OpenAI-compatible routes,
launched from `ray_serve_command` as a child process: healthy, its served model discovered by
`modelctl registry add-endpoint`, chat through modelctl and through the OpenAI client (streamed
and not), its load in /metrics, a prompt over the context window (400), clients leaving
mid-stream, a replica killed mid-stream (an error event, no hang), a key, what keeps it from
starting, and stopped (SIGTERM, or SIGKILL to its process group) with every process of the
cluster gone.

One cluster serves most of the module; two tests start one of their own (a start is 10-25 s on
2 cores). The module takes 65-90 s on 2 shared cores. Skipped where Ray Serve or the SmolLM2
package is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
from llama_server_process import free_port

from modelctl.engines.ray_app import METRICS, READY_LINE, ray_serve_command
from modelctl.store.default_model import SMOLLM2

pytest.importorskip("ray.serve", reason="Ray Serve is not importable (pip install 'modelctl[ray]')",
                    exc_type=ImportError)
if importlib.util.find_spec(SMOLLM2.package) is None:
    pytest.skip(f"the SmolLM2 model is not installed ({SMOLLM2.install})", allow_module_level=True)

START_DEADLINE_S = 240.0  # a cluster that has not said it is ready by then is killed
STOP_DEADLINE_S = 60.0


def smollm2_file() -> Path:
    locations = importlib.util.find_spec(SMOLLM2.package).submodule_search_locations
    return Path(locations[0]) / SMOLLM2.filename


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (Ray's daemons, workers and replicas)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def proc_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(pids: set[int], deadline_s: float) -> set[int]:
    """Wait (on pidfds, no polling) until these processes have ended; returns those still alive."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    try:
        waiting = set(fds)
        while waiting:
            ready, _, _ = select.select(list(waiting), [], [], deadline_s)
            if not ready:
                break
            waiting -= set(ready)
        return {fds[fd] for fd in waiting}
    finally:
        for fd in fds:
            os.close(fd)


class RayEngine:
    """The launched engine: its process, base URL, and a bounded, checked stop."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1")

    def replicas(self) -> list[int]:
        return [p for p in descendants(self.proc.pid) if "ServeReplica:default:LlamaReplica" in proc_title(p)]

    def stop(self) -> tuple[int | None, set[int]]:
        """SIGTERM, as `serve --engine` stops it: the exit status and any process left behind."""
        cluster = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            code = None
        left = wait_gone(cluster, STOP_DEADLINE_S)
        for pid in left | ({self.proc.pid} if code is None else set()):
            os.kill(pid, signal.SIGKILL)
        return code, left


def wait_ready(proc: subprocess.Popen[str]) -> str:
    """Read the engine's log until it says it is ready (a watchdog kills one that never does)."""
    watchdog = threading.Timer(START_DEADLINE_S, proc.kill)
    watchdog.start()
    log: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if line.startswith(READY_LINE):
                threading.Thread(target=proc.stdout.read, daemon=True).start()  # never block on a full pipe
                return line.split()[-1]
    finally:
        watchdog.cancel()
    proc.kill()
    raise RuntimeError("the Ray Serve engine did not start:\n" + "".join(log[-40:]))


@contextmanager
def launched(replicas: int, env: dict[str, str] | None = None, **options: Any) -> Iterator[RayEngine]:
    """The engine for SmolLM2 from `ray_serve_command(..., **options)`, running while the context lasts."""
    with tempfile.TemporaryDirectory(prefix="ray-") as ray_dir, \
            tempfile.TemporaryDirectory(prefix="modelctl-home-") as home:
        # Ray's socket paths must stay short (a Unix socket path takes at most 107 bytes).
        cmd = ray_serve_command(SMOLLM2.id, smollm2_file(), free_port(), replicas, num_cpus=2, temp_dir=ray_dir,
                                **options)
        env = dict(os.environ, MODELCTL_HOME=home, PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0", **(env or {}))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        started = RayEngine(proc, wait_ready(proc))
        try:
            yield started
        finally:
            started.stop()


@pytest.fixture(scope="module")
def engine() -> Iterator[RayEngine]:
    with launched(replicas=2) as started:
        yield started


def chat_body(stream: bool, max_tokens: int = 12, prompt: str = "Say hello to the sea.") -> dict[str, object]:
    return {"model": SMOLLM2.id, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "stream": stream, "temperature": 0}


def long_answer() -> dict[str, object]:
    """A streamed answer that lasts seconds (hundreds of tokens): time to look at it, or kill it, mid-way."""
    return chat_body(True, max_tokens=400, prompt="Write a long story about the sea.")


def test_healthy_with_its_replicas_and_model_listed(engine):
    assert httpx.get(f"{engine.root}/-/healthz", timeout=30).status_code == 200  # Serve's proxy
    assert httpx.get(f"{engine.root}/health", timeout=30).text == "ok"  # the application, deployed
    assert len(engine.replicas()) == 2
    models = httpx.get(f"{engine.base_url}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [SMOLLM2.id]


def test_served_model_discovered_and_chatted_with_through_modelctl(engine, run_modelctl):
    added = run_modelctl("registry", "add-endpoint", engine.base_url, "--prefix", "ray/", "--yes")
    assert added.returncode == 0, added.stderr
    assert f"added ray/{SMOLLM2.id}" in added.stderr
    for mode in ("--no-stream", None):  # whole, then streamed
        done = run_modelctl("chat", "-m", f"ray/{SMOLLM2.id}", "-n", "12", *([mode] if mode else []),
                            "Say hello to the sea.")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip(), done.stderr


def test_chat_with_the_openai_client_streamed_and_not(engine):
    client = openai.OpenAI(base_url=engine.base_url, api_key="unused", timeout=120, max_retries=0)
    whole = client.chat.completions.create(**chat_body(stream=False))
    assert whole.model == SMOLLM2.id and whole.choices[0].message.content
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 12
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(**chat_body(stream=True))
              if c.choices]
    assert "".join(pieces).strip()


def test_bad_requests_get_openai_errors(engine):
    cases = [
        (httpx.post(f"{engine.base_url}/chat/completions", content=b"{not json", timeout=30), 400),
        (httpx.post(f"{engine.base_url}/chat/completions", json={"messages": []}, timeout=30), 400),
        (httpx.post(f"{engine.base_url}/chat/completions", json=dict(chat_body(False), model="other"), timeout=30), 404),
        (httpx.get(f"{engine.base_url}/nothing", timeout=30), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) >= {"message", "type"}


def metrics(engine: RayEngine) -> dict[str, float]:
    text = httpx.get(f"{engine.root}/metrics", timeout=30).text
    samples = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    return {name.split("{")[0]: float(value) for name, value in samples}


def test_metrics_count_the_requests_being_answered(engine):
    running, waiting, replicas = METRICS
    assert metrics(engine) == {running: 0, waiting: 0, replicas: 2}
    with httpx.stream("POST", f"{engine.base_url}/chat/completions", json=long_answer(), timeout=60) as response:
        lines = response.iter_lines()  # kept: an iterator dropped closes its response, and Serve cancels the request
        assert next(lines).startswith("data: ")  # the answer has begun
        assert metrics(engine) == {running: 1, waiting: 0, replicas: 2}


def stream_events(engine: RayEngine, body: dict[str, object], keep: int | None = None) -> list[str]:
    """The data of a streamed answer's events; with `keep`, the client leaves after that many."""
    events: list[str] = []
    with httpx.stream("POST", f"{engine.base_url}/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
                if len(events) == keep:
                    break
    return events


def test_a_prompt_over_the_context_window_is_a_400_streamed_or_not(engine):
    """llama-cpp-python's refusal is the request's fault: a 400 before any event, no fallback."""
    too_long = chat_body(False, prompt="sea " * 3000)  # over the replicas' 2048-token window
    for stream in (False, True):
        response = httpx.post(f"{engine.base_url}/chat/completions", json=dict(too_long, stream=stream), timeout=60)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "exceed context window" in error["message"], error


def test_clients_leaving_mid_stream_leave_the_replicas_answering(engine):
    """A stream cancelled by its client frees the replica for the next request while its generation
    winds down: the next one waits for it instead of decoding alongside (which aborts llama.cpp)."""
    replicas = set(engine.replicas())
    for _ in range(3):
        assert len(stream_events(engine, long_answer(), keep=2)) == 2
    assert stream_events(engine, long_answer())[-1] == "[DONE]"
    assert set(engine.replicas()) == replicas  # none died and was replaced


def test_a_replica_killed_mid_stream_ends_it_with_an_error(engine):
    events: list[str] = []
    killed: list[int] = []
    with httpx.stream("POST", f"{engine.base_url}/chat/completions", json=long_answer(),
                      timeout=httpx.Timeout(30, read=60)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line.removeprefix("data: "))
            if len(events) == 3:  # answering: the replica streaming it dies (every replica, to be sure of it)
                killed = engine.replicas()
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
    assert len(killed) == 2
    assert events[-1] != "[DONE]"
    error = json.loads(events[-1])["error"]
    assert error["type"] == "replica_failed" and "mid-stream" in error["message"]
    # Serve replaces the dead replicas: the next request is answered.
    again = httpx.post(f"{engine.base_url}/chat/completions", json=chat_body(False, max_tokens=4), timeout=180)
    assert again.status_code == 200, again.text


def test_modelctl_reports_a_replica_killed_mid_answer_and_exits(engine, run_modelctl, modelctl_home):
    """Through the CLI: the partial answer stands, one error line, exit 7 (a backend error), no
    hang. (No fallback once text has arrived: --fallback moves on only before an answer begins.)"""
    assert run_modelctl("registry", "add-endpoint", engine.base_url, "--prefix", "ray/", "--yes").returncode == 0
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    chat = subprocess.Popen([sys.executable, "-m", "modelctl", "chat", "-m", f"ray/{SMOLLM2.id}", "-n", "400",
                             "--fallback", "Write a long story about the sea."],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    watchdog = threading.Timer(180, chat.kill)
    watchdog.start()
    try:
        assert chat.stdout is not None
        first = chat.stdout.read(8)  # the answer has begun
        killed = engine.replicas()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        rest, err = chat.communicate()
    finally:
        watchdog.cancel()
    assert killed and first.strip()
    stderr = err.decode()
    assert chat.returncode == 7, stderr
    assert "cut off after" in stderr and "the replica failed mid-stream" in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("modelctl: error:")], stderr
    assert "Traceback" not in stderr


def test_a_key_is_required_where_one_is_set():
    """--api-key-env: the key is read from the variable (never on the command line); every route
    but /health wants it."""
    with launched(replicas=1, env={"RAY_ENGINE_TEST_KEY": "k-123"}, api_key_env="RAY_ENGINE_TEST_KEY") as engine:
        assert "k-123" not in " ".join(engine.proc.args)
        assert httpx.get(f"{engine.root}/health", timeout=30).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(f"{engine.base_url}/models", headers=headers, timeout=30)
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_api_key"
        client = openai.OpenAI(base_url=engine.base_url, api_key="k-123", timeout=120, max_retries=0)
        assert client.chat.completions.create(**chat_body(stream=False)).choices[0].message.content


def test_killing_its_process_group_takes_the_whole_cluster_down():
    """The forced stop (a launcher's last resort): SIGKILL to the group the command was started in.
    Ray's workers run in process groups of their own, but end with the raylet, which is in it."""
    with launched(replicas=1) as engine:
        cluster = descendants(engine.proc.pid)
        os.killpg(engine.proc.pid, signal.SIGKILL)
        assert engine.proc.wait(timeout=STOP_DEADLINE_S) == -signal.SIGKILL
        left = wait_gone(cluster, STOP_DEADLINE_S)
        assert not left, [proc_title(p) for p in left]


def refused(gguf: Path, port: int) -> str:
    """The one line the engine's command writes when it cannot start (before a cluster starts)."""
    done = subprocess.run(ray_serve_command(SMOLLM2.id, gguf, port), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("modelctl-ray-serve: error: "), done.stderr
    return f"{done.returncode} {done.stderr.strip()}"


def test_a_port_in_use_is_refused_at_once():
    """Checked first: Serve's proxy would fail to bind only after the cluster had started."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert refused(smollm2_file(), port).startswith(f"1 modelctl-ray-serve: error: cannot listen on 127.0.0.1:{port}")


def test_a_missing_model_file_is_refused(tmp_path):
    assert refused(tmp_path / "missing.gguf", free_port()).startswith("2 modelctl-ray-serve: error: no such file")


def test_stopped_cleanly_with_every_process_of_the_cluster_gone(engine):
    """Last in the module: SIGTERM stops Serve and the cluster; nothing is left running."""
    assert len(descendants(engine.proc.pid)) >= 6  # GCS, raylet, controller, proxy, router, replicas
    code, left = engine.stop()
    assert code == 0
    assert not left, [proc_title(p) for p in left]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{engine.root}/-/healthz", timeout=5)
