"""Small files modelctl reads that a user (or someone else) can put in its way: the Hugging Face
token file, the refs of the Hub cache, what modelctl keeps for itself (markers, remembered
verdicts). Each must be a regular file, read with a bound and never blocking: a FIFO would
block the read forever, /dev/zero never ends. The token file, which the user names, is a usage
error naming it; what modelctl keeps for itself is only a shortcut lost.

Every command runs in a real process with a bound on its time: a read that blocks fails the
test instead of hanging it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

REPO = "test/Small-GGUF"


def planted(kind: str, where: Path) -> Path:
    """`where` made a FIFO, a link to /dev/zero, a directory or a file of 2 MiB."""
    where.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(where)
    elif kind == "dev-zero":
        where.symlink_to("/dev/zero")
    elif kind == "directory":
        where.mkdir()
    else:
        where.write_text("hf_" + "x" * (2 << 20))
    return where


KINDS = ["fifo", "dev-zero", "directory", "huge"]
SAID = {"fifo": "is a FIFO", "dev-zero": "is a character device", "directory": "is a directory", "huge": "bytes, more than"}


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    full = dict(os.environ, NO_COLOR="1", **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("named", ["HF_HOME", "HF_TOKEN_PATH"])
def test_a_token_file_that_is_not_a_small_regular_file_is_a_usage_error(named, kind, hf_env, hub_server, tmp_path):
    hf_home = Path(os.environ["HF_HOME"])
    token = planted(kind, hf_home / "token" if named == "HF_HOME" else tmp_path / "elsewhere" / "my-token")
    env = {"HF_TOKEN_PATH": str(token)} if named == "HF_TOKEN_PATH" else {}
    proc = run(["-m", "modelctl", "pull", "--quiet", f"hf:{REPO}"], env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("modelctl: error: Hugging Face token file ") and str(token) in lines[0]
    assert SAID[kind] in lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hugging_face_chat_reads_the_saved_token_only_from_a_small_regular_file(kind, hf_env, tmp_path):
    """With no HF_TOKEN, an hf-inference deployment looks for the saved login, as huggingface_hub
    would (unbounded) if modelctl did not."""
    from registries import model, write_registry

    token = planted(kind, tmp_path / "elsewhere" / "token")
    registry = write_registry(tmp_path / "registry.toml",
                              model("test/hf", {"kind": "hf-inference", "model": "test/hf", "api_base": "http://127.0.0.1:9/x"},
                                    tasks=["chat"]))
    proc = run(["-m", "modelctl", "--registry", str(registry), "chat", "-m", "test/hf", "Hi"],
               {"HF_TOKEN_PATH": str(token), "MODELCTL_RETRIES": "0"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"Hugging Face token file {str(token)!r} " in lines[0] and SAID[kind] in lines[0]


def test_a_regular_token_file_is_still_used(hf_env):
    from modelctl.store.hub import settings

    (Path(os.environ["HF_HOME"]) / "token").parent.mkdir(parents=True, exist_ok=True)
    (Path(os.environ["HF_HOME"]) / "token").write_text("hf_abcdefghijklmnopqrstuvwxyz\n")
    assert settings().token == "hf_abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("kind", KINDS)
def test_a_ref_in_the_hub_cache_that_is_not_a_regular_file_is_no_ref(kind, hf_env, tmp_path):
    """`refs/main` names the cached commit; a FIFO there must not stop the offline lookup."""
    refs = hf_env / f"models--{REPO.replace('/', '--')}" / "refs"
    planted(kind, refs / "main")
    proc = run(["-m", "modelctl", "pull", "--quiet", f"hf:{REPO}"], {"HF_HUB_OFFLINE": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 9 and len(lines) == 1 and "offline" in lines[0], proc.stderr


KEPT = """
import sys
from modelctl.files import read_kept_text
print(repr(read_kept_text(sys.argv[1])))
"""


@pytest.mark.parametrize("kind", [*KINDS, "not-utf8", "absent"])
def test_what_modelctl_keeps_for_itself_is_read_only_from_a_small_regular_file(kind, tmp_path):
    path = tmp_path / "kept" / "verdicts.json"
    if kind == "not-utf8":
        path.parent.mkdir()
        path.write_bytes(b"\xff\xfe")
    elif kind != "absent":
        planted(kind, path)
    proc = run(["-c", KEPT, str(path)], {})
    assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stderr
