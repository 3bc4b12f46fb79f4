"""`modelctl registry update --live`: models.dev's catalogue and LiteLLM's price table fetched
from loopback servers (their addresses set by MODELCTL_MODELS_DEV_URL and MODELCTL_LITELLM_URL):
conditional requests (ETag, 304), refusals that name the source and write nothing, offline use.

fixtures/registry_sources/litellm-prices.json holds entries of LiteLLM's published table (its
`sample_spec` and a few models, as the file ships them)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from providers.server import Reply
from test_registry_update import _builtin_before  # noqa: F401 (autouse: the registry before the refresh)

from modelctl.config import get_paths
from modelctl.errors import BackendError, OfflineError, RegistryError
from modelctl.registry import load_registry
from modelctl.registry.live import cache_dir
from modelctl.registry.loader import generated_registry
from modelctl.registry.sources import load_mapping, parse_litellm
from modelctl.registry.update import update_registry

FIXTURES = Path(__file__).parent / "fixtures" / "registry_sources"
TODAY = "2026-12-06"
MD, LL = "/api.json", "/model_prices_and_context_window.json"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def live(server, monkeypatch):
    """The two sources on the loopback server, no retries, online; `live()` runs an update."""
    monkeypatch.setenv("MODELCTL_MODELS_DEV_URL", f"{server.url}{MD}")
    monkeypatch.setenv("MODELCTL_LITELLM_URL", f"{server.url}{LL}")
    monkeypatch.setenv("MODELCTL_RETRIES", "0")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    server.route("GET", MD, Reply(json=_fixture("models-dev-api.json"), headers={"etag": '"md-1"'}))
    server.route("GET", LL, Reply(json=_fixture("litellm-prices.json"), headers={"etag": 'W/"ll-1"'}))

    def run(**kwargs: Any) -> Any:
        return update_registry(live=True, today=TODAY, **kwargs)

    return run


def _cached_files() -> dict[str, bytes]:
    folder = cache_dir()
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def test_litellm_prices_are_read_per_million_with_tiers_and_dates():
    facts = {f.id: f for f in parse_litellm(_fixture("litellm-prices.json"), "ll", load_mapping(), TODAY)}
    sonnet = facts["claude-sonnet-4-5"].prices
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write) == (3.0, 15.0, 0.3, 3.75)
    assert sonnet.tiers == ((200000, 6.0, 22.5),)
    assert facts["gpt-4o"].chat and not facts["gpt-4o-mini-tts"].chat
    assert "sample_spec" not in facts and "gemini-embedding-001" not in facts  # not a mapped provider
    table = {"gemini/gemini-flash-latest": {**_fixture("litellm-prices.json")["gemini-flash-latest"],
                                            "deprecation_date": "2026-11-30"}}
    [flash] = parse_litellm(table, "ll", load_mapping(), TODAY)
    assert (flash.provider, flash.id, flash.deprecated) == ("google", "gemini-flash-latest", True)


def test_a_live_update_then_a_304_reuses_the_copy_and_changes_nothing(live, server):
    user = get_paths().user_registry
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('schema_version = 1\n')
    plan, wrote = live()
    assert wrote and "gpt-5.1" in plan.added_ids
    assert plan.sources == [f"models.dev {server.url}{MD}", f"LiteLLM {server.url}{LL}"]
    sonnet = load_registry().get("claude-sonnet-4-5")
    assert sonnet is not None and sonnet.access.cost_cache_read == 0.3
    layer, cached = generated_registry().read_bytes(), _cached_files()
    assert set(cached) == {"models-dev.json", "models-dev.etag", "litellm.json", "litellm.etag"}
    assert [r.header("if-none-match") for r in server.requests] == [None, None]

    server.route("GET", MD, Reply(304))  # no body: the copy must be used
    server.route("GET", LL, Reply(304))
    plan, wrote = live()
    assert not wrote and not plan.changed
    assert [r.header("if-none-match") for r in server.requests[2:]] == ['"md-1"', 'W/"ll-1"']
    assert generated_registry().read_bytes() == layer and _cached_files() == cached
    assert user.read_text() == 'schema_version = 1\n'


def test_a_dry_run_writes_neither_the_layer_nor_the_copies(live):
    plan, wrote = live(dry_run=True)
    assert plan.added_ids and not wrote
    assert not generated_registry().exists() and _cached_files() == {}


def test_a_damaged_copy_is_not_used_for_a_conditional_request(live, server):
    live()
    (cache_dir() / "litellm.json").write_bytes(b"{}")  # no longer the body its ETag belongs to
    live()
    assert server.calls(LL)[-1].header("if-none-match") is None
    assert server.calls(MD)[-1].header("if-none-match") == '"md-1"'


def _refused(live: Any, error: type[Exception], *words: str) -> None:
    """The update raises `error` with `words`, and the layer and the copies stay as they were."""
    layer = generated_registry().read_bytes() if generated_registry().exists() else None
    cached = _cached_files()
    with pytest.raises(error) as caught:
        live()
    for word in words:
        assert word in str(caught.value)
    assert (generated_registry().read_bytes() if generated_registry().exists() else None) == layer
    assert _cached_files() == cached


def test_a_server_error_is_refused_with_the_source_named(live, server):
    live()
    server.route("GET", LL, Reply(500, json={"error": "down"}))
    _refused(live, BackendError, f"LiteLLM {server.url}{LL}", "500")


def test_an_answer_over_the_size_limit_is_refused(live, server, monkeypatch):
    monkeypatch.setenv("MODELCTL_MAX_RESPONSE_MB", "1")
    huge = {**_fixture("models-dev-api.json"), "padding": {"models": {}, "note": "x" * (2 << 20)}}
    server.route("GET", MD, Reply(json=huge))
    _refused(live, BackendError, "models.dev", "MODELCTL_MAX_RESPONSE_MB")


def test_malformed_json_is_refused_with_the_source_named(live, server):
    server.route("GET", MD, Reply(text='{"openai": {"models": ', headers={"content-type": "application/json"}))
    _refused(live, BackendError, f"models.dev {server.url}{MD}", "not JSON")


@pytest.mark.parametrize("bad", ["3e-06", -3e-06])
def test_a_price_that_is_a_string_or_negative_is_refused(live, server, bad):
    live()
    table = copy.deepcopy(_fixture("litellm-prices.json"))
    table["claude-sonnet-4-5"]["input_cost_per_token"] = bad
    server.route("GET", LL, Reply(json=table, headers={"etag": '"ll-2"'}))
    _refused(live, RegistryError, f"source LiteLLM {server.url}{LL}", "claude-sonnet-4-5.input_cost_per_token",
             "nothing was written")


def test_offline_uses_the_copy_and_sends_nothing(live, server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _refused(live, OfflineError, "HF_HUB_OFFLINE")
    assert server.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    live()
    sent = len(server.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan, wrote = live()
    assert len(server.requests) == sent and not wrote and not plan.changed


def test_cli_live_errors_are_one_line_with_their_exit_code(cli, live, server):
    server.route("GET", MD, Reply(500))
    r = cli("registry", "update", "--live")
    assert r.exit_code == 7, r.output
    assert r.stderr.startswith("modelctl: error: source models.dev") and "Traceback" not in r.stderr
    server.route("GET", MD, Reply(json=_fixture("models-dev-api.json")))
    r = cli("registry", "update", "--live", "--dry-run")
    assert r.exit_code == 0 and f"sources: models.dev {server.url}{MD}, LiteLLM" in r.stdout
