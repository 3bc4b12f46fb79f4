"""The registry cache: `list --json` and `search --json` on a registry of many models print the
same bytes from a fresh cache as from the TOML, and as the summaries encoded whole; a damaged
cache is parsed again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registries import model, write_registry

from modelctl.config import get_paths
from modelctl.redaction import may_hold_secrets, redact_data
from modelctl.registry.loader import generated_registry, load_registry, registry_layers, validate_files
from modelctl.registry.query import ModelFilter, filter_models, search_models
from modelctl.registry.registry import Registry
from modelctl.registry.vocab import today_iso
from modelctl.terminal_text import json_text

# Characters a JSON writer must escape, or that modelctl's JSON escapes: quotes, backslashes,
# line breaks, C1 controls, line separators, bidirectional overrides, and plain non-ASCII.
ODD_TEXT = ['say "hi"', "back\\slash", "line\nbreak", "c1 \x85 next", "sep \u2028 para \u2029",
            "rtl \u202e override", "Zürich — 東京 🚀", "tab\there"]
N_MODELS = 600


def _many_models(n: int) -> list[dict]:
    """`n` varied entries: local and hosted, aliases, odd names, prices, lifecycle dates in the
    past and future, replacements (some to built-in models), deployments with ids."""
    tables = []
    for i in range(n):
        local = i % 3 == 0
        dep = ({"kind": "llama.cpp", "repo": f"t/m{i}-GGUF", "files": [{"quant": "Q4_K_M", "filename": f"m{i}.gguf"}]}
               if local else {"kind": "openai", "model": f"m-{i}", "id": f"hosted-{i}"})
        fields: dict = {
            "name": f"Model {i} {ODD_TEXT[i % len(ODD_TEXT)]}",
            "aliases": [f"alias-{i}"],
            "provider": ["Acme", "Globex", "Initech"][i % 3],
            "family": f"family-{i % 7}",
            "tasks": ["completion"] if i % 4 else ["code", "completion"],
            "context_window": 2048 << (i % 6),
            "license": {"name": "Apache-2.0" if local else "Proprietary", "open_weights": local},
            "access": {"free_tier": local, "local_capable": local, "cost_input": (i % 10) / 4,
                       "cost_output": float(i % 7), "prices_as_of": "2026-11-01"},
        }
        if i % 5 == 0:
            fields["parameters"] = (i % 70 + 1) * 10**9
        if i % 11 == 0:
            fields.update(deprecated="2024-01-01", retires="2025-01-01" if i % 2 else "2099-01-01",
                          replacement=f"test/m-{i + 1}" if i % 22 else "gpt-4o-mini")
        if i % 13 == 0:
            fields["status"] = "preview"
        tables.append(model(f"test/m-{i}", dep, **fields))
    # A URL with a password in a printed field: the listing is redacted.
    tables[1]["name"] = "Proxy https://user:hunter2hunter2@proxy.example/v1"
    return tables


def _before(models: list, scores: list[float] | None = None) -> str:
    """What `list --json` printed before the cache kept encoded summaries: the objects encoded
    whole (redacted when they may hold a secret)."""
    today = today_iso()
    items = [m.summary(today) for m in models]
    for item, score in zip(items, scores or ()):
        item["score"] = round(score, 2)
    text = json_text(items)
    if may_hold_secrets(text):
        text = json_text(redact_data(items))
    return text + "\n"


@pytest.fixture
def big_registry(modelctl_home) -> Registry:
    """A user registry of N_MODELS models and a generated layer updating one of them and a
    built-in model; the merged registry as read from the TOML, without any cache."""
    get_paths().user_registry.parent.mkdir(parents=True, exist_ok=True)
    write_registry(get_paths().user_registry, *_many_models(N_MODELS))
    generated = generated_registry()
    generated.parent.mkdir(parents=True)
    generated.write_text('schema_version = 1\n\n[[updates]]\nid = "gpt-4o-mini"\naccess = { cost_input = 0.2 }\n\n'
                         '[[updates]]\nid = "test/m-5"\naccess = { cost_input = 9.5 }\n')
    models, problems = validate_files(registry_layers())
    assert not problems
    return Registry(models)


def test_list_and_search_json_print_the_same_bytes_cold_and_warm(big_registry, run_modelctl):
    cache = get_paths().cache_dir / "registry"
    everything = filter_models(big_registry, ModelFilter(include_retired=True))
    expected = {
        ("list", "--json"): _before(filter_models(big_registry, ModelFilter())),
        ("list", "--json", "--all"): _before(everything),
        ("list", "--json", "--provider", "globex", "--sort", "-cost"): None,  # checked below, as JSON
    }
    hits = search_models(big_registry, "model zürich", limit=40)
    expected["search", "model", "zürich", "--json", "--limit", "40"] = _before([h.model for h in hits], [h.score for h in hits])
    written: dict = {}
    for run in ("cold", "warm"):
        if run == "cold":
            assert not cache.exists()
        outputs = {args: run_modelctl(*args) for args in expected}
        stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
        assert len(stamps) == 3 and written in ({}, stamps)  # built-in, generated (updates only), user: read warm
        written = stamps
        for args, result in outputs.items():
            assert result.returncode == 0, result.stderr
            if expected[args] is not None:
                assert result.stdout == expected[args], (run, args)
    listed = json.loads(outputs["list", "--json", "--all"].stdout)
    assert len(listed) == len(everything) > N_MODELS
    assert "hunter2" not in outputs["list", "--json"].stdout
    assert any(m["retired"] for m in listed) and not any(m["retired"] for m in json.loads(outputs["list", "--json"].stdout))
    by_id = {m["id"]: m for m in listed}
    assert (by_id["test/m-5"]["cost_input"], by_id["gpt-4o-mini"]["cost_input"]) == (1.25, 0.2)  # the user's entry wins
    sorted_globex = json.loads(outputs["list", "--json", "--provider", "globex", "--sort", "-cost"].stdout)
    assert [m["provider"] for m in sorted_globex] == ["Globex"] * len(sorted_globex)
    assert "\u2028" not in outputs["list", "--json"].stdout and "\\u2028" in outputs["list", "--json"].stdout


@pytest.mark.parametrize("damage", ["body", "header", "truncated", "empty"])
def test_a_damaged_cache_is_parsed_again(big_registry, run_modelctl, damage):
    expected = _before(filter_models(big_registry, ModelFilter()))
    assert run_modelctl("list", "--json").stdout == expected
    user_cache = max((get_paths().cache_dir / "registry").iterdir(), key=lambda p: p.stat().st_size)
    data = user_cache.read_bytes()
    end = data.index(b"\n")
    damaged = {
        "body": data[:end + 10] + data[end + 10:end + 60].replace(b'"', b"'") + data[end + 60:],
        "header": data[:end].replace(b'"heads"', b'"hexds"') + data[end:],
        "truncated": data[:len(data) // 2],
        "empty": b"",
    }[damage]
    assert damaged != data
    user_cache.write_bytes(damaged)
    result = run_modelctl("list", "--json")
    assert (result.returncode, result.stderr, result.stdout) == (0, "", expected)
    assert user_cache.read_bytes() == data  # written again


def test_a_model_from_the_cache_reads_its_table_on_demand(big_registry, modelctl_home):
    load_registry()  # writes the cache
    registry = load_registry()
    stored = registry.get("alias-7")
    assert stored is not None and stored.source == str(Path(get_paths().user_registry))
    assert (stored.id, stored.aliases, stored.retired(), stored.replacement) == ("test/m-7", ("alias-7",), False, None)
    assert stored._table is None  # what a listing reads needs no parsing
    fresh = big_registry.get("test/m-7")
    assert fresh is not None
    assert stored.to_dict() == fresh.to_dict()
    assert stored.summary_json(today_iso()) == json_text(fresh.summary(today_iso()))
    # The first few tables are parsed one by one, the rest all at once: the same tables either way.
    assert [m.to_dict() for m in registry] == [m.to_dict() for m in big_registry]
