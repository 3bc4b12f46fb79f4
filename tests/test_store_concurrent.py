"""Two modelctl commands at once: pulls that write the user registry together, `keys set` beside
another writer, and `rm` while a pull of the same model is downloading. The pulls are real
processes against the loopback Hub (tests/hubserver.py), sequenced with its gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("gguf")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer, make_gguf, sha256_file, write_llamacpp_registry  # noqa: E402

pytestmark = pytest.mark.usefixtures("hf_env")

REPO = "test/Busy-GGUF"


@pytest.fixture
def hub(hub_server):
    return hub_server


@pytest.fixture
def busy_model(tmp_path, hub, monkeypatch):
    """A registry model with two quantizations on the loopback Hub."""
    d = tmp_path / "served"
    d.mkdir()
    files = {"Q4_K_M": make_gguf(d / "busy-Q4_K_M.gguf", file_type=15, n_floats=1 << 18),
             "Q8_0": make_gguf(d / "busy-Q8_0.gguf", file_type=7, n_floats=1 << 16)}
    for path in files.values():
        hub.add_file(REPO, path.name, path)
    reg = write_llamacpp_registry(tmp_path / "registry.toml", "test/busy", REPO,
                                  {quant: [path.name] for quant, path in files.items()})
    monkeypatch.setenv("MODELCTL_REGISTRY", str(reg))
    return files


def storage(cache: Path) -> Path:
    return cache / f"models--{REPO.replace('/', '--')}"


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


@contextmanager
def paused_pull(hub: HubServer, home: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A `modelctl pull` that has started its download and waits at the hub's gate until the
    test sets it."""
    hub.gate = threading.Event()
    hub.gate_after = 100_000
    proc = start("pull", "--quiet", *args, home=home)
    try:
        assert hub.gate_reached.wait(60), "the pull never started downloading"
        yield proc
    finally:
        hub.gate.set()
        proc.kill()


def resume(hub: HubServer, proc: subprocess.Popen) -> tuple[int, str, str]:
    hub.gate.set()
    return finish(proc)


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
    from modelctl.keyfile import keys_path

    seen = []
    read, write = keys.read_keys, keys._write_keys

    def reading():
        seen.append(("read", lock_is_held(keys_path())))
        return read()

    def writing(values):
        seen.append(("write", lock_is_held(keys_path())))
        return write(values)

    monkeypatch.setattr(keys, "read_keys", reading)
    monkeypatch.setattr(keys, "_write_keys", writing)
    keys.store_key("openai", "sk-first-key-123")
    keys.delete_key("openai")
    assert seen == [("read", True), ("write", True)] * 2
    assert not lock_is_held(keys_path())


# --- rm while a pull downloads --------------------------------------------------------------


def test_rm_leaves_a_running_download_alone(cli, hub, busy_model, hf_env, modelctl_home):
    assert cli("pull", "test/busy", "--quant", "Q8_0").exit_code == 0
    with paused_pull(hub, modelctl_home, "test/busy", "--quant", "Q4_K_M") as pull:
        [partial] = storage(hf_env).glob("blobs/*.incomplete")
        r = cli("rm", "test/busy", "-y", "--json")
        assert r.exit_code == 0, r.output
        assert "being downloaded right now" in r.stderr
        assert partial.exists()  # the Q8_0 file went, the download in progress stayed
        assert [i["kind"] for i in json.loads(r.stdout)["items"]] == ["hf-cache"]
        code, out, err = resume(hub, pull)
    assert code == 0, err
    assert sha256_file(Path(out.strip())) == sha256_file(busy_model["Q4_K_M"])


def test_rm_keeps_the_repo_folder_while_a_download_holds_its_lock(cli, busy_model, hf_env):
    """A pull holds its blob's lock before its partial file exists and until the blob is linked:
    the folder it writes into must stay even when nothing else of the repository is left."""
    from filelock import FileLock

    from modelctl.store.paths import lock_path

    assert cli("pull", "test/busy", "--quant", "Q8_0").exit_code == 0
    with FileLock(str(lock_path(REPO, sha256_file(busy_model["Q4_K_M"])))):
        r = cli("rm", "test/busy", "-y")
        assert r.exit_code == 0, r.output
        assert (storage(hf_env) / "blobs").is_dir()
    assert cli("list", "--installed", "--json").stdout.strip() == "[]"


def test_a_cache_changed_under_a_pull_is_one_clear_error(hub, busy_model, hf_env, modelctl_home):
    with paused_pull(hub, modelctl_home, "test/busy", "--quant", "Q4_K_M") as pull:
        # Another tool puts something where the finished download is to go.
        (storage(hf_env) / "blobs" / sha256_file(busy_model["Q4_K_M"])).mkdir()
        code, _, err = resume(hub, pull)
    assert code == 1, err
    assert "Traceback" not in err
    assert "could not be put in place" in err and "run the same command again" in err
