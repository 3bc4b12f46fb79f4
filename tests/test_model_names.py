"""Every name `list --installed` shows works wherever a model is named (chat, embed, prompt, rm),
and `hf:OWNER/REPO[:QUANT]` and `OWNER/REPO[:QUANT]` find a GGUF already in the Hugging Face
cache without a network call: the Hub endpoint is a closed port throughout, so any call to it
would fail the command with exit code 9."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hubserver import closed_port, make_gguf

pytestmark = pytest.mark.usefixtures("hf_env")

pytest.importorskip("gguf")

REPO = "other-tool/Tiny-GGUF"
COMMIT = "a" * 40
TEMPLATE = "{% for m in messages %}<start_of_turn>{{ m.content }}<end_of_turn>{% endfor %}"


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")


def plant(cache: Path, repo: str, filename: str, source: Path, *, link: bool = False) -> Path:
    """`source` put in the Hugging Face cache as `huggingface_hub` lays it out: a blob, a snapshot
    link to it, refs/main. With `link`, the blob is a link to `source` (for a large file that
    the test never removes)."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    blob = storage / "blobs" / (f"{abs(hash((repo, filename))):x}" + "0" * 8)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if link:
        blob.symlink_to(source)
    else:
        blob.write_bytes(source.read_bytes())
    pointer = storage / "snapshots" / COMMIT / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return pointer


def installed(cli) -> list[dict]:
    r = cli("list", "--installed", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def prompt_for(cli, name: str):
    return cli("prompt", "--model", name, "--json", input='[{"role": "user", "content": "Hi"}]')


@pytest.fixture
def two_quants(tmp_path, hf_env) -> dict[str, Path]:
    files = {}
    for quant, file_type in (("Q4_K_M", 15), ("Q8_0", 7)):
        gguf = make_gguf(tmp_path / f"tiny.{quant}.gguf", file_type=file_type, template=TEMPLATE)
        files[quant] = plant(hf_env, REPO, f"tiny.{quant}.gguf", gguf)
    return files


def test_every_listed_name_and_hub_name_renders_a_prompt(cli, two_quants):
    listed = {m["id"]: m for m in installed(cli)}
    assert set(listed) == {f"{REPO}/tiny.Q4_K_M.gguf", f"{REPO}/tiny.Q8_0.gguf"}
    assert all(m["source"] == "hf-cache" and m["registry_id"] is None for m in listed.values())
    names = [*listed, f"hf:{REPO}", f"hf:{REPO}:Q8_0", f"hf:{REPO}:q4_k_m", REPO, f"{REPO}:Q8_0"]
    for name in names:
        r = prompt_for(cli, name)
        assert r.exit_code == 0, (name, r.output)
        data = json.loads(r.stdout)
        assert "<start_of_turn>Hi<end_of_turn>" in data["prompt"] and data["source"] == "gguf", name


def test_a_quantization_that_is_not_here_says_which_are(cli, two_quants):
    r = prompt_for(cli, f"hf:{REPO}:Q2_K")
    assert r.exit_code == 4
    assert "not in Q2_K (here: Q4_K_M, Q8_0)" in r.stderr and f"modelctl pull hf:{REPO}:Q2_K" in r.stderr


def test_a_repository_that_is_not_here_gets_a_pull_hint(cli, two_quants):
    r = prompt_for(cli, "hf:someone/Absent-GGUF")
    assert r.exit_code == 4 and "modelctl pull hf:someone/Absent-GGUF" in r.stderr
    r = prompt_for(cli, "someone/Absent-GGUF")
    assert r.exit_code == 4 and "modelctl pull hf:someone/Absent-GGUF" in r.stderr
    r = cli("rm", "hf:someone/Absent-GGUF", "-y")
    assert r.exit_code == 4 and r.stdout == ""


def test_rm_takes_the_listed_name_and_hub_names(cli, two_quants):
    r = cli("rm", f"{REPO}/tiny.Q8_0.gguf", "-y", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["id"] == f"{REPO}/tiny.Q8_0.gguf" and data["freed_bytes"] > 0
    assert not two_quants["Q8_0"].exists() and two_quants["Q4_K_M"].exists()
    r = cli("rm", f"hf:{REPO}:Q4_K_M", "-y")
    assert r.exit_code == 0, r.output
    assert installed(cli) == []


def test_a_file_in_the_models_directory_by_its_listed_name(cli, tmp_path, modelctl_home, monkeypatch):
    models = modelctl_home / "data" / "models"
    models.mkdir(parents=True)
    make_gguf(models / "loose.Q4_K_M.gguf", template=TEMPLATE)
    [entry] = installed(cli)
    assert entry["id"] == "loose.Q4_K_M.gguf"
    monkeypatch.chdir(tmp_path)  # not where the file is: the name, not a path, finds it
    r = prompt_for(cli, "loose.Q4_K_M.gguf")
    assert r.exit_code == 0, r.output
    r = cli("rm", "loose.Q4_K_M.gguf", "-y")
    assert r.exit_code == 0, r.output
    assert installed(cli) == []


def test_a_missing_path_is_still_a_missing_file(cli, tmp_path):
    r = cli("chat", "-m", str(tmp_path / "nowhere.gguf"), "Hi")
    assert r.exit_code == 4 and "nowhere.gguf" in r.stderr and "does not exist" in r.stderr


# --- the real model ---------------------------------------------------------------------------


@pytest.fixture
def gemma_in_cache(hf_env, model_path) -> str:
    """The real Gemma GGUF as another tool would have put it in the cache (its blob a link)."""
    plant(hf_env, "google/gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q4_K_M.gguf", Path(model_path), link=True)
    return "google/gemma-3-270m-it-GGUF"


def test_chat_and_embed_by_hub_names_without_a_pull(cli, gemma_in_cache):
    [entry] = installed(cli)
    r = cli("chat", "-m", f"hf:{gemma_in_cache}", "-n", "4", "--seed", "1", "--json", "Name a colour.")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["id"] == entry["id"] and data["text"] and data["template"]
    r = cli("embed", "-m", entry["id"], "--json", "a colour")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["id"] == entry["id"] and data["dimensions"] > 0


def test_an_ollama_model_by_its_listed_name(cli, monkeypatch):
    from providers import ollama_wire
    from providers.server import FakeServer, Reply

    server = FakeServer().start()
    try:
        listing = ollama_wire.tags()
        listing.json["models"][0].update(name="my-own:7b", model="my-own:7b")  # no registry model's tag
        server.route("GET", "/api/tags", listing)
        server.route("POST", "/api/chat", ollama_wire.chat_stream(["Blue", "."]))
        server.route("POST", "/api/embed", ollama_wire.embed([[0.5, 0.25]]))
        server.route("DELETE", "/api/delete", Reply(json={}))
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        [entry] = installed(cli)
        assert entry["source"] == "ollama" and entry["registry_id"] is None and entry["id"] == "my-own:7b"
        r = cli("chat", "-m", entry["id"], "--json", "A colour?")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["id"] == entry["id"] and json.loads(r.stdout)["text"] == "Blue."
        r = cli("embed", "-m", entry["id"], "a colour")
        assert r.exit_code == 0 and r.stdout == "0.5 0.25\n", r.output
        assert prompt_for(cli, entry["id"]).exit_code == 0
        r = cli("rm", entry["id"], "-y")
        assert r.exit_code == 0, r.output
        assert [req.body for req in server.calls("/api/delete")] == [{"model": entry["id"]}]
    finally:
        server.stop()
