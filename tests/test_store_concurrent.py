"""Two modelctl commands at once: pulls that write the user registry together, `keys set` beside
another writer. The pulls are real processes against the loopback Hub (tests/hubserver.py),
sequenced with its gate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("gguf")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer, isolate_hf, make_gguf  # noqa: E402


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    return isolate_hf(tmp_path, monkeypatch)


@pytest.fixture
def hub(monkeypatch):
    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    yield server
    server.stop()


def start(*args: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
    return subprocess.Popen([sys.executable, "-m", "modelctl", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, out, err


def lock_is_held(path: Path) -> bool:
    """Whether someone holds `locked_update(path)`'s lock now (asked without waiting)."""
    from filelock import FileLock, Timeout

    from modelctl.config import get_paths

    lock = FileLock(str(get_paths().data_dir / "locks" / f"{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


# --- writers of the same file ---------------------------------------------------------------


def test_concurrent_hf_pulls_keep_every_user_registry_entry(hub, tmp_path, modelctl_home):
    repos = [f"owner/Model{c}-GGUF" for c in "ABC"]
    for i, repo in enumerate(repos):
        path = make_gguf(tmp_path / f"model{i}-Q4_K_M.gguf", name=f"Model {i}", n_floats=1 << 16)
        hub.add_file(repo, path.name, path)
    # Every pull pauses in its download until all three are downloading, then they finish together
    # and write the user registry at the same moment.
    hub.gate, hub.gate_after = threading.Event(), 10_000
    downloading = threading.Semaphore(0)
    hub.listeners.append(lambda req: req.path.startswith("/cdn/") and downloading.release())
    pulls = [start("pull", "--quiet", f"hf:{repo}", home=modelctl_home) for repo in repos]
    try:
        for _ in repos:
            assert downloading.acquire(timeout=60), "a pull never started downloading"
        hub.gate.set()
        results = [finish(p) for p in pulls]
    finally:
        hub.gate.set()
        for p in pulls:
            p.kill()
    assert [code for code, _, _ in results] == [0, 0, 0], results

    from modelctl.registry import check_file

    raws, problems = check_file(modelctl_home / "config" / "registry.toml")
    assert problems == []
    assert sorted(m["id"] for m in raws) == repos


def test_keys_are_read_and_written_under_one_lock(monkeypatch):
    from modelctl import keys

    seen = []
    read, write = keys.read_keys, keys._write_keys

    def reading():
        seen.append(("read", lock_is_held(keys.keys_path())))
        return read()

    def writing(values):
        seen.append(("write", lock_is_held(keys.keys_path())))
        return write(values)

    monkeypatch.setattr(keys, "read_keys", reading)
    monkeypatch.setattr(keys, "_write_keys", writing)
    keys.store_key("openai", "sk-first-key-123")
    keys.delete_key("openai")
    assert seen == [("read", True), ("write", True)] * 2
    assert not lock_is_held(keys.keys_path())
