"""`modelctl serve --engine E MODEL`: the engines' command lines built from registry entries
(golden), and what goes wrong at start: an engine that is not installed, one that never becomes
healthy, one that exits at once, a port in use. The engines that misbehave are stand-in scripts
written here (a `llama-server` on a PATH of the test's own, or a Python script under
`engines.process` directly); no model is loaded."""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from hosts import amx_host
from serve_process import ServeProcess

from modelctl.config import get_paths
from modelctl.engines import process
from modelctl.engines.launch import EngineCommand, LaunchSpec, engine_command, tool_parser
from modelctl.errors import BackendError, UsageError
from modelctl.registry import get_registry
from modelctl.serve.engine_session import EngineRequest, plan, routed
from modelctl.store.default_model import SMOLLM2
from modelctl.store.locate import locate

KEY = "engine-test-key-0123456789"
KEY_REF = '"$MODELCTL_ENGINE_API_KEY"'
PY = shlex.quote(sys.executable)
GONE_S = 30.0  # a guard on waiting for a killed process to go: never what a test measures

# --- golden command lines ---------------------------------------------------------------------------

GOLDEN = [
    ("vllm", "qwen2.5-7b-instruct",
     f"VLLM_API_KEY={KEY_REF} vllm serve Qwen/Qwen2.5-7B-Instruct --served-model-name Qwen/Qwen2.5-7B-Instruct "
     "--host 127.0.0.1 --port 8000 --max-model-len 32768 --enable-auto-tool-choice --tool-call-parser hermes"),
    ("vllm", "llama-3.1-8b-instruct",
     f"VLLM_API_KEY={KEY_REF} vllm serve meta-llama/Llama-3.1-8B-Instruct --served-model-name "
     "meta-llama/Llama-3.1-8B-Instruct --host 127.0.0.1 --port 8000 --max-model-len 131072 "
     "--enable-auto-tool-choice --tool-call-parser llama3_json"),
    ("vllm", "gpt-oss-20b",
     f"VLLM_API_KEY={KEY_REF} vllm serve openai/gpt-oss-20b --served-model-name openai/gpt-oss-20b "
     "--host 127.0.0.1 --port 8000 --max-model-len 131072 --enable-auto-tool-choice --tool-call-parser openai"),
    ("vllm", "gemma-3-270m",  # a family without a call format: no parser
     f"VLLM_API_KEY={KEY_REF} vllm serve google/gemma-3-270m --served-model-name google/gemma-3-270m "
     "--host 127.0.0.1 --port 8000 --max-model-len 32768"),
    ("sglang", "qwen2.5-7b-instruct",
     f"{PY} -m sglang.launch_server --model-path Qwen/Qwen2.5-7B-Instruct --served-model-name "
     "Qwen/Qwen2.5-7B-Instruct --host 127.0.0.1 --port 8000 --context-length 32768 --tool-call-parser qwen25 "
     f"--api-key {KEY_REF}"),
    ("sglang", "llama-3.1-8b-instruct",
     f"{PY} -m sglang.launch_server --model-path meta-llama/Llama-3.1-8B-Instruct --served-model-name "
     "meta-llama/Llama-3.1-8B-Instruct --host 127.0.0.1 --port 8000 --context-length 131072 "
     f"--tool-call-parser llama3 --api-key {KEY_REF}"),
    ("sglang", "gpt-oss-20b",
     f"{PY} -m sglang.launch_server --model-path openai/gpt-oss-20b --served-model-name openai/gpt-oss-20b "
     f"--host 127.0.0.1 --port 8000 --context-length 131072 --tool-call-parser gpt-oss --api-key {KEY_REF}"),
]


@pytest.mark.parametrize(("engine", "model", "line"), GOLDEN, ids=[f"{e}-{m}" for e, m, _ in GOLDEN])
def test_repo_engines_command_lines_from_the_registry(cli, engine, model, line):
    result = cli("serve", "--engine", engine, model, "--engine-port", "8000", "--api-key", KEY, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == line
    assert KEY not in result.output  # a key is never printed


def _smollm2_gguf() -> Path:
    if importlib.util.find_spec(SMOLLM2.package) is None:
        pytest.skip(f"the packaged SmolLM2 is not installed ({SMOLLM2.install})")
    path = locate(get_registry(None).resolve(SMOLLM2.id))
    assert path is not None
    return path


@pytest.mark.parametrize(("engine", "expected"), [
    ("llama-server", "LLAMA_API_KEY={ref} llama-server -m {gguf} --alias HuggingFaceTB/SmolLM2-135M-Instruct "
                     "--host 127.0.0.1 --port 8080 -c {ctx} --jinja --metrics"),
    ("llama-cpp-python", "API_KEY={ref} {py} -m llama_cpp.server --model {gguf} --model_alias "
                         "HuggingFaceTB/SmolLM2-135M-Instruct --host 127.0.0.1 --port 8080 --n_ctx {ctx}"),
    ("ray-serve", "MODELCTL_RAY_API_KEY={ref} {py} -m modelctl.engines.ray_app --model {gguf} --model-id "
                  "HuggingFaceTB/SmolLM2-135M-Instruct --host 127.0.0.1 --port 8080 --replicas 1 --n-ctx {ctx} "
                  "--api-key-env MODELCTL_RAY_API_KEY"),
])
@pytest.mark.parametrize(("flags", "ctx"), [((), 4096), (("--ctx", "2048"), 2048), (("--ctx", "100000"), 8192)])
def test_gguf_engines_command_lines_load_the_local_file(cli, engine, expected, flags, ctx, monkeypatch):
    # the fast CPU path, whatever this host's own verdict (the other is tested below)
    monkeypatch.setenv("MODELCTL_CPU_VERDICT", "ok")
    gguf = _smollm2_gguf()
    result = cli("serve", "--engine", engine, "smollm2-135m", "--engine-port", "8080", *flags, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected.format(ref=KEY_REF, gguf=shlex.quote(str(gguf)), py=PY, ctx=ctx)


@pytest.mark.parametrize(("verdict", "module"), [("crash", "modelctl.engines.llama_cpp_safe"),
                                                 ("ok", "llama_cpp.server")])
def test_llama_cpp_python_s_server_takes_the_cpu_path_a_local_chat_takes(run_modelctl, verdict, module):
    """On an AMX build and CPU (a recorded Sapphire Rapids, on any host) the engine loads as a local
    chat would: where the AMX path crashed, through the wrapper that turns extra buffers off."""
    _smollm2_gguf()
    done = run_modelctl("serve", "--engine", "llama-cpp-python", "smollm2-135m", "--engine-port", "8080",
                        "--dry-run", env=amx_host(verdict))
    assert done.returncode == 0, done.stderr
    assert f" -m {module} --model " in done.stdout


def test_a_dry_run_on_an_undecided_amx_host_runs_no_cpu_check_and_shows_the_safe_path(run_modelctl, modelctl_home):
    """--dry-run starts nothing, the CPU check's test child included: where no verdict is known
    (a recorded Sapphire Rapids never probed), it shows the safe path and remembers nothing."""
    _smollm2_gguf()
    done = run_modelctl("serve", "--engine", "llama-cpp-python", "smollm2-135m", "--engine-port", "8080",
                        "--dry-run", env=amx_host("probe"))
    assert done.returncode == 0, done.stderr
    assert " -m modelctl.engines.llama_cpp_safe --model " in done.stdout
    assert not list(modelctl_home.rglob("llama-cpu-verdicts.json"))  # no probe ran, no verdict kept


def test_replicas_go_to_ray_serve_only(cli):
    result = cli("serve", "--engine", "ray-serve", "smollm2-135m", "--replicas", "3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert " --replicas 3 " in result.stdout
    refused = cli("serve", "--engine", "llama-cpp-python", "smollm2-135m", "--replicas", "3", "--dry-run")
    assert refused.exit_code == 2 and "--replicas is for ray-serve" in refused.stderr


def test_weights_flag_names_the_repository_and_the_served_name_stays_the_registry_id(cli):
    result = cli("serve", "--engine", "vllm", "qwen2.5-7b-instruct", "--weights", "Qwen/Qwen2.5-7B-Instruct-AWQ",
                 "--engine-port", "8000", "--ctx", "8192", "--dry-run")
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert argv[argv.index("serve") + 1] == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert argv[argv.index("--served-model-name") + 1] == "Qwen/Qwen2.5-7B-Instruct"
    assert argv[argv.index("--max-model-len") + 1] == "8192"


def test_tool_parsers_follow_the_template_family():
    assert [tool_parser("vllm", f) for f in ("hermes", "llama3_json", "mistral", "harmony", "granite", None)] == \
        ["hermes", "llama3_json", "mistral", "openai", "granite", None]
    assert [tool_parser("sglang", f) for f in ("hermes", "llama3_json", "harmony", "granite")] == \
        ["qwen25", "llama3", "gpt-oss", None]
    assert tool_parser("llama-server", "hermes") is None  # --jinja: the GGUF's template does it


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--engine", "vllm", "gpt-4o-mini"), 2, "has no open weights"),
    (("--engine", "kserve", "qwen2.5-7b-instruct"), 2, "does not start KServe"),
    (("--engine", "tgi", "qwen2.5-7b-instruct"), 2, "unknown engine 'tgi'"),
    (("--engine", "vllm"), 2, "needs the MODEL"),
    (("qwen2.5-7b-instruct",), 2, "go with --engine"),
    ((), 2, "--dry-run shows the command"),
    (("--engine", "vllm", "no-such-model-anywhere"), 4, "no-such-model-anywhere"),
])
def test_bad_engine_requests_are_one_line(cli, args, code, words):
    result = cli("serve", *args, "--dry-run")
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: ") and words in lines[0], result.stderr


def test_a_repository_the_registry_lacks_asks_for_weights(cli):
    registry = get_paths().user_registry
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(textwrap.dedent("""
        [[models]]
        id = "acme/tiny-chat"
        name = "Tiny chat"
        provider = "Acme"
        category = "foundation"
        tasks = ["chat"]
        license = { name = "Apache-2.0", open_weights = true }
        access = { free_tier = true, local_capable = true }

        [[models.deployments]]
        kind = "ollama"
        tag = "tiny-chat"
    """))
    result = cli("serve", "--engine", "vllm", "acme/tiny-chat", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "names no repository of the original weights of 'acme/tiny-chat'" in result.stderr
    assert "--weights REPO" in result.stderr


def test_the_routed_registry_sends_the_model_to_the_engine():
    registry = get_registry(None)
    planned = plan(EngineRequest("vllm", "qwen2.5-7b-instruct", port=8123, api_key=KEY), registry)
    served = routed(registry, planned).get("qwen2.5-7b-instruct")
    assert served is not None
    dep = served.deployment()
    assert (dep.id, dep.kind, dep.engine, dep.api_base, dep.model, dep.key_env) == (
        "engine", "openai-compatible", "vllm", "http://127.0.0.1:8123/v1", "Qwen/Qwen2.5-7B-Instruct",
        "MODELCTL_ENGINE_API_KEY")
    assert "llama.cpp" not in [d.kind for d in served.deployments]
    assert registry.get("qwen2.5-7b-instruct").deployment().id != "engine"  # the loaded registry is unchanged


# --- bad engines, through the CLI: a stand-in `llama-server` on the test's own PATH ------------------

NEVER_HEALTHY = """\
import os, socket, sys, time
# listens and takes connections, but never answers a request
port = int(sys.argv[sys.argv.index("--port") + 1])
open(os.environ["STANDIN_PID_FILE"], "w").write(str(os.getpid()))
sock = socket.create_server(("127.0.0.1", port))
print("stand-in: loading forever", flush=True)
held = []
while True:
    held.append(sock.accept()[0])
"""

EXITS_AT_ONCE = """\
import os, sys
open(os.environ["STANDIN_PID_FILE"], "w").write(str(os.getpid()))
print("error: failed to load model: unknown architecture", flush=True)
sys.exit(3)
"""


def _stand_in(tmp_path: Path, body: str) -> dict[str, str]:
    """A PATH whose `llama-server` runs `body` (with this Python), and the file it writes its pid to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "standin.py"
    script.write_text(body)
    exe = bin_dir / "llama-server"
    exe.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} \"$@\"\n")
    exe.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STANDIN_PID_FILE": str(tmp_path / "pid")}


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie not yet reaped by init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GONE_S
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        os.sched_yield()
    return _gone(pid)


pytestmark_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytestmark_linux
def test_an_engine_never_healthy_is_stopped_after_the_wait(run_modelctl, tmp_path):
    _smollm2_gguf()
    env = _stand_in(tmp_path, NEVER_HEALTHY)
    result = run_modelctl("serve", "--port", "0", "--engine", "llama-server", "smollm2-135m",
                          "--engine-timeout", "1.5", env=env)
    assert result.returncode == 7, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("modelctl: error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "was not healthy within 1.5 s, so it was stopped: stand-in: loading forever" in error[0]
    assert "its log:" in error[0]
    assert _wait_gone(int((tmp_path / "pid").read_text()))


@pytestmark_linux
def test_an_engine_that_exits_at_once_says_why(run_modelctl, tmp_path):
    _smollm2_gguf()
    env = _stand_in(tmp_path, EXITS_AT_ONCE)
    result = run_modelctl("serve", "--port", "0", "--engine", "llama-server", "smollm2-135m", env=env)
    assert result.returncode == 7, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("modelctl: error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "exited with status 3 before it was healthy: error: failed to load model: unknown architecture" in error[0]


def test_an_engine_port_in_use_starts_nothing(run_modelctl, tmp_path):
    _smollm2_gguf()
    env = _stand_in(tmp_path, EXITS_AT_ONCE)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_modelctl("serve", "--port", "0", "--engine", "llama-server", "smollm2-135m",
                              "--engine-port", str(port), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"modelctl: error: 127.0.0.1:{port} is in use (another server listens there) " \
                                    "(stop it, or give another --engine-port)"
    assert not (tmp_path / "pid").exists()  # the engine never started


def test_an_engine_not_installed_is_one_line_with_its_install(run_modelctl, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run_modelctl("serve", "--port", "0", "--engine", "vllm", "qwen2.5-7b-instruct",
                          env={"PATH": str(empty)})
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip() == ("modelctl: error: vLLM is not installed (vllm is not on PATH) "
                                     "(pip install vllm (Linux, a CUDA or ROCm GPU; see docs.vllm.ai))")


# --- the process itself -----------------------------------------------------------------------------

IGNORES_TERM = """\
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
print("stand-in: deaf to SIGTERM", flush=True)
time.sleep(3600)
"""


@pytestmark_linux
def test_a_child_deaf_to_sigterm_and_its_own_children_are_killed(tmp_path):
    script = tmp_path / "deaf.py"
    script.write_text(IGNORES_TERM)
    pids = tmp_path / "pids"
    spec = LaunchSpec("llama-cpp-python", "x", "x.gguf", port=process.free_port(), api_key=KEY)
    command = EngineCommand((sys.executable, str(script), str(pids)))
    with pytest.raises(BackendError) as caught:
        process.start(spec, command, timeout=1.0, log_dir=tmp_path, grace=0.5)
    assert "was not healthy within 1 s, so it was stopped: stand-in: deaf to SIGTERM" in str(caught.value)
    for pid in map(int, pids.read_text().split()):
        assert _wait_gone(pid), pid


HEALTHY = """\
import http.server, os, sys
# answers the health probes (llama-server's /health, llama-cpp-python's model list, with the key)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        key = os.environ.get("API_KEY") or os.environ.get("LLAMA_API_KEY")
        ok = self.path in ("/health", "/v1/models") and self.headers.get("authorization") == "Bearer " + key
        self.send_response(200 if ok else 401)
        self.end_headers()
    def log_message(self, *a):
        pass
if os.environ.get("STANDIN_PID_FILE"):
    open(os.environ["STANDIN_PID_FILE"], "w").write(str(os.getpid()))
port = int(sys.argv[sys.argv.index("--port") + 1])
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def test_a_healthy_engine_is_seen_and_stopped(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text(HEALTHY)
    spec = LaunchSpec("llama-cpp-python", "x", "x.gguf", port=process.free_port(), api_key=KEY)
    built = engine_command(spec)
    command = EngineCommand((sys.executable, str(script), "--port", str(spec.port)), built.env, built.secrets)
    with process.running(spec, command, timeout=60) as engine:
        assert engine.ready_s is not None and process.healthy(spec)
        assert engine.describe()["alive"] is True and KEY not in str(engine.describe())
        proc = engine.proc
    assert proc.returncode is not None and not process.healthy(spec)


def test_a_port_in_use_is_a_usage_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(UsageError, match="is in use"):
            process.check_port("127.0.0.1", taken.getsockname()[1])


def test_the_log_s_last_line_is_bounded(tmp_path):
    log = tmp_path / "log"
    log.write_bytes(b"first\n" + b"x" * 10_000 + b"\n\n  \n")
    assert process.last_line(log) == "x" * 300
    assert process.last_line(tmp_path / "none") == ""



@pytestmark_linux
def test_sigterm_while_the_engine_starts_stops_the_engine(modelctl_home, tmp_path):
    """The stand-in names itself through a FIFO, which the test reads (blocking: no polling)."""
    _smollm2_gguf()
    env = _stand_in(tmp_path, NEVER_HEALTHY)
    os.mkfifo(tmp_path / "pid")
    proc = subprocess.Popen([sys.executable, "-m", "modelctl", "serve", "--port", "0", "--engine", "llama-server",
                             "smollm2-135m"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MODELCTL_HOME": str(modelctl_home), "NO_COLOR": "1", **env})
    guard = threading.Timer(GONE_S * 4, proc.kill)
    guard.start()
    try:
        engine_pid = int((tmp_path / "pid").read_text())  # the engine runs; modelctl waits for its health
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=GONE_S * 4)
    finally:
        guard.cancel()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "modelctl: interrupted"
    assert _wait_gone(engine_pid)


@pytestmark_linux
def test_an_engine_that_dies_while_serving_is_reported_and_its_model_fails(modelctl_home, tmp_path):
    _smollm2_gguf()
    env = _stand_in(tmp_path, HEALTHY)
    server = ServeProcess(modelctl_home, "--engine", "llama-server", "smollm2-135m", env=env)
    with server.serving():
        engine_pid = int((tmp_path / "pid").read_text())
        os.kill(engine_pid, signal.SIGKILL)
        auth = {"authorization": f"Bearer {server.token}"}
        for _ in range(int(GONE_S * 10)):  # each round is a request to the server
            [engine] = httpx.get(f"{server.url}/api/ps", headers=auth, timeout=GONE_S).json()["engines"]
            if not engine["alive"]:
                break
        assert engine["alive"] is False
        answer = httpx.post(f"{server.base}/chat/completions", headers=auth, timeout=GONE_S,
                            json={"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hi"}]})
        assert answer.status_code >= 500 and "error" in answer.json()
    assert "llama.cpp server exited with status -9; requests for HuggingFaceTB/SmolLM2-135M-Instruct fail" \
        in server.stderr
