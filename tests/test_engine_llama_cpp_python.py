"""`modelctl serve --engine llama-cpp-python smollm2-135m` for real: llama-cpp-python's own
server started by modelctl on the packaged SmolLM2 GGUF, healthy, shown by `modelctl ps`,
answering through modelctl's server (streamed and not) and directly with the key, and stopped with
modelctl's server, its process gone."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hosts import amx_host
from serve_process import ServeProcess, serve_env

from modelctl.store.default_model import SMOLLM2

if importlib.util.find_spec(SMOLLM2.package) is None:
    pytest.skip(f"the packaged SmolLM2 is not installed ({SMOLLM2.install})", allow_module_level=True)
if not all(importlib.util.find_spec(m) for m in ("llama_cpp", "fastapi", "sse_starlette", "starlette_context")):
    pytest.skip("llama-cpp-python's server is not installed (pip install 'llama-cpp-python[server]')",
                allow_module_level=True)

KEY = "engine-real-key-0123456789"
MODEL_ID = SMOLLM2.id
ASK = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Say hello."}],
       "max_tokens": 8, "temperature": 0, "seed": 1}
HANG_S = 120.0  # a guard on one request: never what a test measures


def _modelctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "modelctl", *args], capture_output=True, text=True,
                         env=serve_env(home), timeout=HANG_S)
    assert out.returncode == 0, out.stderr
    return out


def _ps(home: Path) -> dict:
    return json.loads(_modelctl(home, "ps", "--json").stdout)


def _stream_text(client: httpx.Client, url: str, headers: dict[str, str]) -> str:
    text = []
    with client.stream("POST", url, json={**ASK, "stream": True}, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices") or [{}]
                text.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(text)


def test_launched_healthy_chatted_with_and_stopped(tmp_path_factory):
    home = tmp_path_factory.mktemp("engine-home")
    server = ServeProcess(home, "--engine", "llama-cpp-python", "smollm2-135m", "--api-key", KEY)
    with server.serving(), httpx.Client(timeout=HANG_S) as client:
        assert "llama-cpp-python server is ready at http://127.0.0.1:" in server.stderr
        [engine] = _ps(home)["engines"]
        assert (engine["engine"], engine["model"], engine["alive"]) == ("llama-cpp-python", MODEL_ID, True)
        assert KEY not in json.dumps(engine)
        auth = {"authorization": f"Bearer {KEY}"}

        # through modelctl: the registry alias goes to the engine's deployment
        whole = client.post(f"{server.base}/chat/completions", json=ASK, headers=auth)
        assert whole.status_code == 200, whole.text
        body = whole.json()
        assert body["modelctl"]["deployment"] == "engine" and body["model"] == MODEL_ID
        assert body["choices"][0]["message"]["content"]
        assert _stream_text(client, f"{server.base}/chat/completions", auth)

        # directly: the engine serves the registry id, with the key only
        direct = client.post(f"{engine['url']}/chat/completions", json={**ASK, "model": MODEL_ID}, headers=auth)
        assert direct.status_code == 200, direct.text
        assert direct.json()["model"] == MODEL_ID
        assert client.get(f"{engine['url']}/models").status_code == 401
        assert _stream_text(client, f"{engine['url']}/chat/completions", auth)
        models = client.get(f"{engine['url']}/models", headers=auth).json()
        assert [m["id"] for m in models["data"]] == [MODEL_ID]

        # the CLI's own chat with the local model goes through modelctl's server to the engine:
        # nothing is loaded in modelctl's server itself
        chat = _modelctl(home, "chat", "-m", "smollm2-135m", "--max-tokens", "4", "--temperature", "0", "Hi")
        assert chat.stdout.strip()
        assert _ps(home)["models"] == []
        table = _modelctl(home, "ps").stdout
        assert "llama-cpp-python" in table and MODEL_ID in table and engine["url"] in table
    assert "stopped llama-cpp-python server" in server.stderr
    assert not Path(f"/proc/{engine['pid']}").exists()  # reaped by modelctl's server, which has ended
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{engine['url']}/models", headers={"authorization": f"Bearer {KEY}"}, timeout=HANG_S)


def test_on_an_amx_host_whose_amx_path_crashed_the_engine_loads_without_extra_buffers(tmp_path_factory):
    """A recorded Sapphire Rapids whose AMX probe crashed (on any host): the engine is llama-cpp-python's
    server run through modelctl's wrapper, which loads without llama.cpp's extra buffer types, as a
    local chat there would: its log never mentions CPU_REPACK (the fast path's log does), and it answers."""
    home = tmp_path_factory.mktemp("engine-amx-home")
    server = ServeProcess(home, "--engine", "llama-cpp-python", "smollm2-135m", "--api-key", KEY, env=amx_host("crash"))
    with server.serving(), httpx.Client(timeout=HANG_S) as client:
        [engine] = _ps(home)["engines"]
        port = engine["url"].rsplit(":", 1)[1].split("/")[0]
        [log_file] = home.rglob(f"llama-cpp-python-{port}.log")  # <data>/engines/ENGINE-PORT.log
        whole = client.post(f"{server.base}/chat/completions", json=ASK, headers={"authorization": f"Bearer {KEY}"})
        assert whole.status_code == 200, whole.text
        assert whole.json()["choices"][0]["message"]["content"]
        log = log_file.read_text(errors="replace")
        assert "llama_model_loader" in log and "CPU_REPACK" not in log
