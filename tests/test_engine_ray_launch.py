"""`modelctl serve --engine ray-serve smollm2-135m --replicas 2` for real: modelctl starts the Ray
Serve engine (a one-node cluster, two replicas of the packaged SmolLM2), waits until it is
healthy, routes the model to it (streamed and not, and the CLI's own chat), probes its load, and
stops the whole cluster with itself. About 30 s on 2 cores; skipped without Ray Serve."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_process import ServeProcess, serve_env

from modelctl.engines.probe import probe_engine
from modelctl.store.default_model import SMOLLM2

pytest.importorskip("ray.serve", reason="Ray Serve is not importable (pip install 'modelctl[ray]')",
                    exc_type=ImportError)
if importlib.util.find_spec(SMOLLM2.package) is None:
    pytest.skip(f"the SmolLM2 model is not installed ({SMOLLM2.install})", allow_module_level=True)

KEY = "ray-engine-key-0123456789"
ASK = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Say hello."}],
       "max_tokens": 8, "temperature": 0, "seed": 1}
HANG_S = 240.0  # a guard: a cluster start is 10-25 s on 2 cores, never what is measured


def _modelctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "modelctl", *args], capture_output=True, text=True,
                         env=serve_env(home), timeout=HANG_S)
    assert out.returncode == 0, out.stderr
    return out


def test_serve_starts_ray_serve_routes_to_it_and_stops_its_cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("ray-engine-home")
    server = ServeProcess(home, "--engine", "ray-serve", "smollm2-135m", "--replicas", "2", "--api-key", KEY)
    with server.serving(), httpx.Client(timeout=HANG_S) as client:
        [engine] = json.loads(_modelctl(home, "ps", "--json").stdout)["engines"]
        assert (engine["engine"], engine["model"], engine["alive"]) == ("ray-serve", SMOLLM2.id, True)
        assert KEY not in json.dumps(engine)
        auth = {"authorization": f"Bearer {KEY}"}

        whole = client.post(f"{server.base}/chat/completions", json=ASK, headers=auth)
        assert whole.status_code == 200, whole.text
        assert whole.json()["modelctl"]["deployment"] == "engine"
        assert whole.json()["choices"][0]["message"]["content"]
        with client.stream("POST", f"{server.base}/chat/completions", json={**ASK, "stream": True},
                           headers=auth) as streamed:
            assert streamed.status_code == 200
            assert any(line.startswith("data: {") for line in streamed.iter_lines())

        # the engine itself: its key, its served model, its load as the probes read it
        assert client.get(f"{engine['url']}/models").status_code == 401
        status = probe_engine("ray-serve", engine["url"], key=KEY, timeout=30.0)
        assert (status.state, status.served) == ("ready", (SMOLLM2.id,)), status.why
        load = status.load_for(SMOLLM2.id)
        assert load is not None and load.waiting == 0, status.samples
        metrics = client.get(engine["url"].removesuffix("/v1") + "/metrics").text
        assert any(line.split()[-1] in ("2", "2.0") for line in metrics.splitlines()
                   if line.startswith("modelctl_ray:replicas")), metrics

        chat = _modelctl(home, "chat", "-m", "smollm2-135m", "--max-tokens", "4", "--temperature", "0", "Hi")
        assert chat.stdout.strip()
    assert not Path(f"/proc/{engine['pid']}").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{engine['url']}/models", headers={"authorization": f"Bearer {KEY}"}, timeout=HANG_S)
