"""Deprecation and retirement dates, replacements, dated prices and active parameters: what `list`,
`list --all`, `search` and `show` make of them. The dates are far in the past or future, so the
outcome does not depend on the day the tests run."""

from __future__ import annotations

import json

import pytest

from modelctl.registry import ModelFilter, Registry, filter_models, validate_files

LIFECYCLE = '''schema_version = 1

[[models]]
id = "acme/old-chat"
name = "Old Chat"
aliases = ["old-chat"]
provider = "Acme"
category = "industry"
tasks = ["chat"]
deprecated = "2019-06-01"
retires = "2020-01-15"
replacement = "new-chat"
license = { name = "Proprietary", open_weights = false }
access = { free_tier = false, local_capable = false, cost_input = 30.0, cost_output = 60.0, prices_as_of = "2019-06-01" }

[[models.deployments]]
kind = "openai"
model = "old-chat-1"

[[models]]
id = "acme/fading-chat"
name = "Fading Chat"
provider = "Acme"
category = "industry"
tasks = ["chat"]
deprecated = "2020-03-01"
retires = "2999-12-31"
replacement = "acme/new-chat"
license = { name = "Proprietary", open_weights = false }
access = { free_tier = false, local_capable = false }

[[models.deployments]]
kind = "openai"
model = "fading-chat-1"
cost_input = 1.5
cost_output = 2.0
prices_as_of = "2025-08-07"

[[models]]
id = "acme/new-chat"
name = "New Chat"
aliases = ["new-chat"]
provider = "Acme"
category = "foundation"
tasks = ["chat"]
parameters = 30_000_000_000
active_parameters = 3_000_000_000
template = "chatml"
license = { name = "Apache-2.0", open_weights = true }
access = { free_tier = true, local_capable = true }

[[models.deployments]]
kind = "ollama"
tag = "new-chat:30b"

[[models.deployments]]
id = "hosted"
kind = "openai-compatible"
model = "new-chat"
api_base = "https://api.example.com/v1"
cost_input = 0.2
cost_output = 0.8
'''


@pytest.fixture
def lifecycle_file(tmp_path):
    path = tmp_path / "lifecycle.toml"
    path.write_text(LIFECYCLE)
    return path


@pytest.fixture
def registry(lifecycle_file) -> Registry:
    models, problems = validate_files([lifecycle_file])
    assert problems == []
    return Registry(models)


def test_retired_is_judged_against_the_given_day(registry):
    old = registry.resolve("old-chat")
    assert old.retired("2020-01-15") and old.retired("2026-12-03")
    assert not old.retired("2020-01-14")
    def listed(flt: ModelFilter) -> list[str]:
        return [m.id for m in filter_models(registry, flt)]

    assert listed(ModelFilter(today="2020-01-14")) == ["acme/old-chat", "acme/fading-chat", "acme/new-chat"]
    assert listed(ModelFilter(today="2020-01-15")) == ["acme/fading-chat", "acme/new-chat"]
    assert listed(ModelFilter(include_retired=True, today="2030-01-01")) == [
        "acme/old-chat", "acme/fading-chat", "acme/new-chat"]


def test_status_follows_the_dates_unless_declared(registry):
    assert registry.resolve("old-chat").status == "deprecated"
    assert registry.resolve("acme/fading-chat").status == "deprecated"
    assert registry.resolve("new-chat").status == "active"


def test_list_hides_retired_models_unless_all(cli, lifecycle_file):
    listed = json.loads(cli("--registry", str(lifecycle_file), "list", "-p", "acme", "--json").stdout)
    assert [i["id"] for i in listed] == ["acme/fading-chat", "acme/new-chat"]
    everything = json.loads(cli("--registry", str(lifecycle_file), "list", "-p", "acme", "--all", "--json").stdout)
    old = everything[0]
    assert old["id"] == "acme/old-chat"
    assert (old["status"], old["deprecated"], old["retires"], old["retired"], old["replacement"]) == (
        "deprecated", "2019-06-01", "2020-01-15", True, "new-chat")
    assert old["prices_as_of"] == "2019-06-01"
    fading = everything[1]
    assert (fading["retired"], fading["retires"], fading["prices_as_of"]) == (False, "2999-12-31", None)
    new = everything[2]
    assert (new["status"], new["retired"], new["deprecated"], new["parameters"], new["active_parameters"]) == (
        "active", False, None, 30_000_000_000, 3_000_000_000)


def test_list_table_names_the_status(cli, lifecycle_file):
    table = cli("--registry", str(lifecycle_file), "list", "-p", "acme", "--all").stdout.splitlines()
    status = {line.split()[0]: line.split()[-1] for line in table[1:]}
    assert status == {"acme/old-chat": "retired", "acme/fading-chat": "deprecated", "acme/new-chat": "active"}


def test_search_still_finds_retired_models(cli, lifecycle_file):
    hits = json.loads(cli("--registry", str(lifecycle_file), "search", "old", "chat", "--json").stdout)
    old = next(h for h in hits if h["id"] == "acme/old-chat")  # found, after the models in service
    assert old["retired"] is True and all(h["status"] == "deprecated" for h in hits[hits.index(old):])


def test_show_prints_lifecycle_and_price_dates(cli, lifecycle_file):
    out = cli("--registry", str(lifecycle_file), "show", "old-chat").stdout
    assert "status        deprecated 2019-06-01, retired 2020-01-15; use new-chat instead" in out
    assert "cost          in $30, out $60 per 1M tokens (prices as of 2019-06-01)" in out
    fading = cli("--registry", str(lifecycle_file), "show", "acme/fading-chat").stdout
    assert "deprecated 2020-03-01, retires 2999-12-31; use acme/new-chat instead" in fading
    assert "cost          in -, out - per 1M tokens\n" in fading  # no model-level price, so no date either
    assert "    cost: in $1.5, out $2 per 1M tokens (prices as of 2025-08-07)" in fading
    new = cli("--registry", str(lifecycle_file), "show", "new-chat").stdout
    assert "parameters    30B (3B active)" in new and "status        active\n" in new
    assert "    cost: in $0.2, out $0.8 per 1M tokens\n" in new  # an undated price is shown without a date
    data = json.loads(cli("--registry", str(lifecycle_file), "show", "old-chat", "--json").stdout)
    assert (data["retired"], data["retires"], data["replacement"]) == (True, "2020-01-15", "new-chat")
    assert data["access"]["prices_as_of"] == "2019-06-01"
    fading_json = json.loads(cli("--registry", str(lifecycle_file), "show", "acme/fading-chat", "--json").stdout)
    assert fading_json["deployments"][0]["prices_as_of"] == "2025-08-07" and fading_json["retired"] is False


def test_list_all_in_a_subprocess(run_modelctl, lifecycle_file):
    proc = run_modelctl("--registry", str(lifecycle_file), "list", "--provider", "acme", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "acme/old-chat" not in {i["id"] for i in json.loads(proc.stdout)}
    proc = run_modelctl("--registry", str(lifecycle_file), "list", "--provider", "acme", "-a", "--json")
    assert "acme/old-chat" in {i["id"] for i in json.loads(proc.stdout)}
