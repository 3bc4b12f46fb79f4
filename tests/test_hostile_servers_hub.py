"""`modelctl pull` against a Hub or mirror that misbehaves: an unusable HF_ENDPOINT, a password
in it, Hub API answers that are web pages, nested too deep or of the wrong shape, hostile file
names in a listing, and a mirror that gives neither size nor sha256 and cuts the body short.
Each is one line and the documented exit code; nothing half-downloaded is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("gguf")

from ggufs import write_gguf  # noqa: E402
from hostile_server import deep  # noqa: E402
from hubserver import closed_port  # noqa: E402
from test_hostile_servers import assert_one_error  # noqa: E402

pytestmark = pytest.mark.usefixtures("hf_env")

REPO = "test/Hostile-GGUF"
PASSWORD = "s3cretPW-9f2c"


@pytest.fixture
def model_file(tmp_path_factory) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "hostile-Q4_K_M.gguf", n_floats=1 << 14)


@pytest.fixture
def hub(hub_server, model_file):
    hub_server.add_file(REPO, model_file.name, model_file)
    return hub_server


def installed(cli) -> list:
    result = cli("list", "--installed", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("snapshots/*/*") if p.exists()]


@pytest.mark.parametrize("endpoint", ["ftp://x", "http://[::1", "http://" + "a" * 64 + ".example.com",
                                      "http://" + ".".join(["abcdefgh"] * 40), "not a url", "http://"])
def test_an_unusable_hf_endpoint_is_a_usage_error(endpoint, cli, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 2, "HF_ENDPOINT")


def test_a_password_in_hf_endpoint_is_never_shown(cli, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://someone:{PASSWORD}@127.0.0.1:{closed_port()}")
    result = cli("pull", "--quiet", f"hf:{REPO}")
    line = assert_one_error(result, 9)
    assert PASSWORD not in result.output and "***" in line


def test_a_password_in_hf_endpoint_is_not_written_to_the_registry(hub, cli, monkeypatch, modelctl_home):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint.replace("http://", f"http://someone:{PASSWORD}@"))
    result = cli("pull", "--quiet", f"hf:{REPO}")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    registry = (modelctl_home / "config" / "registry.toml").read_text()
    assert PASSWORD not in registry and "someone" not in registry
    assert f"{hub.endpoint}/{REPO}" in registry  # the model card link, without the credentials
    shown = cli("show", REPO, "--json")
    assert shown.exit_code == 0 and PASSWORD not in shown.output


HUB_ANSWERS = [
    ("web-page", "text/html", b"<!doctype html><html><body>Welcome to our mirror</body></html>"),
    ("nested-too-deep", "application/json", deep().encode()),
    ("siblings-is-a-number", "application/json", b'{"id": "test/Hostile-GGUF", "sha": "abc", "siblings": 5}'),
    ("a-list", "application/json", b"[1, 2, 3]"),
    ("not-json", "application/json", b'{"id": '),
]


@pytest.mark.parametrize("case,ctype,data", HUB_ANSWERS, ids=[c for c, _, _ in HUB_ANSWERS])
def test_a_hub_api_answer_that_is_not_the_hubs_is_one_line(case, ctype, data, hub, cli, hf_env):  # noqa: F811
    hub.model_info_body = (ctype, data)
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 7, "did not answer like the Hugging Face Hub")
    assert not snapshot_files(hf_env)


HOSTILE_NAMES = ["../../escape.gguf", "/etc/evil.gguf", "bad\x1b[31m-Q8_0.gguf", "bell\x07-Q8_0.gguf", "csi\x9b31m-Q8_0.gguf",
                 "x" * 300 + "-Q8_0.gguf", "dir/" + "y" * 260 + "/m-Q8_0.gguf", ".gguf", "a\\b-Q8_0.gguf",
                 "nul\x00-Q8_0.gguf", "lone\ud800-Q8_0.gguf", 42, None, ["list.gguf"]]


def test_hostile_file_names_in_a_listing_are_skipped(hub, cli, hf_env):  # noqa: F811
    hub.extra_siblings = [{"rfilename": name, "size": 10, "lfs": {"sha256": "00" * 32, "size": 10, "pointerSize": 134}}
                          for name in HOSTILE_NAMES]
    result = cli("pull", f"hf:{REPO}")
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stderr and "Traceback" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert [Path(p).name for p in map(str, snapshot_files(hf_env))] == ["hostile-Q4_K_M.gguf"]
    assert not (hf_env.parent / "escape.gguf").exists()


def test_a_listing_of_only_hostile_names_has_no_model(hub, cli):
    hub.repos[REPO].files.clear()
    hub.extra_siblings = [{"rfilename": "../../escape.gguf"}, {"rfilename": "\x1b]0;x\x07.gguf"}]
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 4, "no GGUF model files")


def test_a_mirror_that_cuts_the_body_short_installs_nothing(hub, cli, hf_env, model_file):  # noqa: F811
    hub.anonymous = True
    hub.truncate_at = model_file.stat().st_size - 1000
    line = assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 7, "stopped after", "GGUF header declares")
    assert "run the same command again" in line
    assert snapshot_files(hf_env) == [] and installed(cli) == []

    hub.truncate_at = None  # the mirror comes back whole: the pull resumes and completes
    result = cli("pull", "--quiet", f"hf:{REPO}")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).read_bytes() == model_file.read_bytes()


def test_a_mirror_that_cuts_the_header_short_installs_nothing(hub, cli, hf_env):  # noqa: F811
    hub.anonymous = True
    hub.truncate_at = 100
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 5, "not a usable GGUF file", "deleted")
    assert snapshot_files(hf_env) == [] and installed(cli) == []


def test_a_mirror_that_serves_a_web_page_installs_nothing(hub, cli, hf_env, tmp_path):  # noqa: F811
    page = tmp_path / "page.html"
    page.write_text("<html>" + "mirror maintenance " * 100 + "</html>")
    hub.add_file(REPO, "hostile-Q4_K_M.gguf", page)
    hub.anonymous = True
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 5, "not a GGUF file")
    assert snapshot_files(hf_env) == [] and installed(cli) == []


def test_a_complete_file_from_a_mirror_without_sizes_is_installed(hub, cli, model_file):
    hub.anonymous = True
    result = cli("pull", "--quiet", f"hf:{REPO}")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).read_bytes() == model_file.read_bytes()
    assert len(installed(cli)) == 1


def test_a_mirror_with_a_password_gets_it_as_basic_auth_and_never_shows_it(hub, cli, model_file):
    import base64

    hub.anonymous = True  # the file comes from the endpoint itself, not a CDN
    endpoint = hub.endpoint.replace("http://", f"http://someone:{PASSWORD}@")
    result = cli("pull", f"hf:{REPO}", env={"HF_ENDPOINT": endpoint})
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert Path(result.stdout.strip()).read_bytes() == model_file.read_bytes()
    basic = "Basic " + base64.b64encode(f"someone:{PASSWORD}".encode()).decode()
    downloads = [r for r in hub.gets("/test/") if "/resolve/" in r.path]
    assert downloads and all(r.headers.get("authorization") == basic for r in downloads)


def test_a_truncated_file_the_server_announces_whole_is_deleted(hub_server, cli, hf_env, tmp_path):  # noqa: F811
    """The server's own copy is short: its size and Content-Length agree with it, only the GGUF
    header tells. Resuming could not help, so nothing is kept."""
    whole = write_gguf(tmp_path / "short-Q4_K_M.gguf", n_floats=1 << 14)
    short = tmp_path / "served" / whole.name
    short.parent.mkdir()
    short.write_bytes(whole.read_bytes()[:-4000])
    hub_server.add_file(REPO, short.name, short)
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 5, "the server's copy is truncated", "deleted")
    assert snapshot_files(hf_env) == [] and not list(hf_env.rglob("*.incomplete")) and installed(cli) == []


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.com/model.gguf", "gopher://x/1"])
def test_a_download_sent_elsewhere_than_http_is_refused(location, hub, cli, hf_env):  # noqa: F811
    hub.location = location
    assert_one_error(cli("pull", "--quiet", f"hf:{REPO}"), 7, "not an http(s) address")
    assert snapshot_files(hf_env) == []


def test_what_a_downloaded_header_says_is_never_a_registry_error(hub_server, cli, modelctl_home, tmp_path):
    """Header fields the registry format would refuse (a licence link with spaces, a name of
    blanks) are left out of the entry pull writes, not an invalid registry (exit 3)."""
    odd = write_gguf(tmp_path / "odd-Q4_K_M.gguf", name="   ", n_floats=1 << 10,
                     kv={"general.license.link": "http://example.com/a licence", "general.license": " "})
    hub_server.add_file(REPO, odd.name, odd)
    result = cli("pull", "--quiet", f"hf:{REPO}")
    assert result.exit_code == 0, result.output
    from modelctl.registry import check_file

    raws, problems = check_file(modelctl_home / "config" / "registry.toml")
    assert problems == [] and raws[0]["license"] == {"name": "unknown", "open_weights": True}
