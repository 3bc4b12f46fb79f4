"""Filters, sorting, search ranking, resolution, layering and the JSON contract."""

from __future__ import annotations

import json

import pytest
from conftest import DATA

from modelctl.errors import NotFoundError, UsageError
from modelctl.registry import (
    ModelFilter,
    Registry,
    build_model_list,
    check_file,
    filter_models,
    load_registry,
    search_models,
    sort_models,
)

SMALL = DATA / "registry_small.toml"


@pytest.fixture(scope="module")
def small() -> Registry:
    raws, problems = check_file(SMALL)
    assert problems == []
    return Registry(build_model_list(raws, str(SMALL)))


def ids(models):
    return [m.id for m in models]


def test_filters_combine_with_and(small):
    assert ids(filter_models(small, ModelFilter(free=True))) == ["acme/tiny-chat", "acme/embed-small", "acme/coder-7b"]
    assert ids(filter_models(small, ModelFilter(free=True, local=True))) == ["acme/tiny-chat", "acme/coder-7b"]
    assert ids(filter_models(small, ModelFilter(free=True, local=True, task="code"))) == ["acme/coder-7b"]
    assert ids(filter_models(small, ModelFilter(provider="acme cloud"))) == ["acme/big-cloud"]
    assert ids(filter_models(small, ModelFilter(category="task"))) == ["acme/embed-small", "acme/coder-7b"]
    assert ids(filter_models(small, ModelFilter(open=True, min_context=4096))) == ["acme/coder-7b"]
    assert ids(filter_models(small, ModelFilter(use_case="SEARCH"))) == ["acme/embed-small"]
    assert ids(filter_models(small, ModelFilter(kind="azure-openai"))) == ["acme/big-cloud"]
    assert filter_models(small, ModelFilter(local=True, category="industry")) == []


def test_sorting_keeps_missing_values_last(small):
    assert ids(sort_models(small.models, "-context")) == ["acme/big-cloud", "acme/coder-7b", "acme/tiny-chat", "acme/embed-small"]
    assert ids(sort_models(small.models, "context")) == ["acme/embed-small", "acme/tiny-chat", "acme/coder-7b", "acme/big-cloud"]
    assert ids(sort_models(small.models, "parameters"))[-1] == "acme/big-cloud"
    assert ids(sort_models(small.models, "-parameters")) == ["acme/coder-7b", "acme/tiny-chat", "acme/embed-small", "acme/big-cloud"]
    assert ids(sort_models(small.models, "cost"))[0] == "acme/big-cloud"
    assert ids(sort_models(small.models, "-release"))[:2] == ["acme/big-cloud", "acme/tiny-chat"]
    assert ids(sort_models(small.models, "release"))[:2] == ["acme/tiny-chat", "acme/big-cloud"]
    with pytest.raises(UsageError, match="unknown sort key 'size'"):
        sort_models(small.models, "size")


def test_search_ranks_id_and_alias_hits_above_descriptions(small):
    hits = search_models(small, "code")
    assert ids(h.model for h in hits)[:2] == ["acme/coder-7b", "acme/big-cloud"]
    assert hits[0].score > hits[1].score
    # Every word must match somewhere.
    assert ids(h.model for h in search_models(small, "semantic search")) == ["acme/embed-small"]
    assert search_models(small, "semantic banana") == []
    # An exact alias wins outright.
    assert search_models(small, "tc")[0].model.id == "acme/tiny-chat"
    with pytest.raises(UsageError):
        search_models(small, "  !! ")


def test_resolve_by_id_or_alias_case_insensitively(small):
    assert small.resolve("ACME/Tiny-Chat").id == "acme/tiny-chat"
    assert small.resolve("TC").id == "acme/tiny-chat"
    assert small.resolve(" coder ").id == "acme/coder-7b"
    with pytest.raises(NotFoundError) as info:
        small.resolve("tiny-chta")
    assert "did you mean 'tiny-chat'" in str(info.value)


def test_deployment_selection_and_service_metadata(small):
    cloud = small.resolve("big-cloud")
    azure = cloud.deployment("azure-eu")
    meta = azure.service_metadata()
    assert meta == {
        "model_id": "big-cloud-1",
        "kind": "azure-openai",
        "endpoint": "https://example-resource.openai.azure.com",
        "api_version": "2024-10-21",
        "deployment_name": "big-cloud-eu",
        "key_env": "AZURE_OPENAI_API_KEY",
        "local": False,
    }
    assert cloud.deployment().kind == "openai"  # no local one: the first
    tiny = small.resolve("tc")
    assert tiny.deployment().kind == "llama.cpp"
    assert tiny.deployment("llama.cpp").file_for("q8_0").filename == "tiny-chat.Q8_0.gguf"
    assert tiny.deployment("llama.cpp").file_for().quant == "Q4_K_M"
    with pytest.raises(NotFoundError, match="has no deployment 'ollama'"):
        tiny.deployment("ollama")


def test_user_registry_overrides_and_adds(modelctl_home, tmp_path):
    builtin = load_registry()
    some = builtin.models[0]
    user = modelctl_home / "config" / "registry.toml"
    user.parent.mkdir(parents=True)
    text = SMALL.read_text().replace('id = "acme/tiny-chat"', f'id = "{some.id.upper()}"')
    text = text.replace('aliases = ["tiny-chat", "tc"]', 'aliases = ["tiny-chat-mine"]')
    user.write_text(text)
    merged = load_registry()
    assert len(merged) == len(builtin) + 3
    replaced = merged.resolve(some.id)
    assert replaced.name == "Tiny Chat" and replaced.source == str(user)
    assert merged.models.index(replaced) == 0  # keeps its place
    # --registry layers over the user registry.
    extra = tmp_path / "extra.toml"
    extra.write_text(SMALL.read_text().replace('name = "Coder 7B"', 'name = "Coder Seven"'))
    assert load_registry(extra).resolve("coder").name == "Coder Seven"


def test_alias_collision_across_layers(modelctl_home):
    builtin = load_registry()
    target = next(m for m in builtin if m.aliases)
    user = modelctl_home / "config" / "registry.toml"
    user.parent.mkdir(parents=True)
    user.write_text(SMALL.read_text().replace('aliases = ["coder"]', f'aliases = ["{target.aliases[0]}"]'))
    from modelctl.errors import RegistryError

    with pytest.raises(RegistryError, match=f"alias '{target.aliases[0]}' is already the alias of model '{target.id}'"):
        load_registry()


LIST_KEYS = {"id", "name", "aliases", "provider", "category", "tasks", "context_window", "parameters",
             "license", "open_weights", "free", "local", "deployments"}


def test_list_json_contract(cli):
    result = cli("--registry", str(SMALL), "list", "--provider", "acme", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [i["id"] for i in items] == ["acme/tiny-chat", "acme/big-cloud", "acme/embed-small", "acme/coder-7b"]
    for item in items:
        assert LIST_KEYS <= set(item)
        assert all({"id", "kind"} <= set(d) for d in item["deployments"])
    tiny = items[0]
    assert tiny["parameters"] == 1_100_000_000 and tiny["context_window"] == 2048
    assert tiny["free"] and tiny["local"] and tiny["open_weights"]
    assert tiny["deployments"] == [{"id": "llama.cpp", "kind": "llama.cpp", "local": True}]


def test_list_flags(cli):
    result = cli("--registry", str(SMALL), "list", "-p", "acme", "--free", "--local", "--json")
    assert [i["id"] for i in json.loads(result.stdout)] == ["acme/tiny-chat", "acme/coder-7b"]
    result = cli("--registry", str(SMALL), "list", "-p", "acme", "--sort", "-context", "--limit", "1", "--json")
    assert [i["id"] for i in json.loads(result.stdout)] == ["acme/big-cloud"]
    result = cli("--registry", str(SMALL), "list", "--category", "fundation")
    assert result.exit_code == 2 and "--category: 'fundation' is not one of" in result.stderr
    result = cli("--registry", str(SMALL), "list", "--sort", "size")
    assert result.exit_code == 2 and "unknown sort key" in result.stderr


def test_list_plain_table_when_piped(cli):
    result = cli("--registry", str(SMALL), "list", "-p", "acme cloud")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "PROVIDER", "CATEGORY", "TASKS", "CONTEXT", "PARAMS", "LICENSE", "FREE", "LOCAL", "STATUS"]
    assert lines[1].split()[:2] == ["acme/big-cloud", "Acme"] and lines[1].split()[-1] == "active"
    assert "\x1b[" not in result.stdout


def test_search_command(cli):
    result = cli("--registry", str(SMALL), "search", "code", "acme", "--json")
    items = json.loads(result.stdout)
    assert items[0]["id"] == "acme/coder-7b" and items[0]["score"] >= items[1]["score"]
    result = cli("--registry", str(SMALL), "search", "zzzznothing")
    assert result.exit_code == 0 and "no model matches" in result.stderr


def test_show_human_and_json(cli):
    result = cli("--registry", str(SMALL), "show", "BIG-CLOUD")
    assert result.exit_code == 0
    out = result.stdout
    for text in ("Big Cloud", "acme/big-cloud", "200K tokens", "in $3, out $15", "azure-eu (azure-openai)",
                 "api_version: 2024-10-21", "deployment_name: big-cloud-eu", "key_env: AZURE_OPENAI_API_KEY"):
        assert text in out, text
    data = json.loads(cli("--registry", str(SMALL), "show", "tc", "--json").stdout)
    assert data["id"] == "acme/tiny-chat" and data["template"] == "chatml"
    dep = data["deployments"][0]
    assert dep["files"][0] == {"quant": "Q4_K_M", "filename": "tiny-chat.Q4_K_M.gguf", "size_bytes": 668788096}
    assert dep["service"]["repo"] == "acme/tiny-chat-GGUF"
    result = cli("--registry", str(SMALL), "show", "tiny-chta")
    assert result.exit_code == 4
    assert result.stderr.strip() == "modelctl: error: unknown model 'tiny-chta' (did you mean 'tiny-chat'?)"


def test_registry_export_and_path(cli, modelctl_home):
    data = json.loads(cli("--registry", str(SMALL), "registry", "export").stdout)
    assert data["schema_version"] == 1 and data["count"] == len(data["models"])
    assert data["sources"][-1] == str(SMALL)
    assert any(m["id"] == "acme/embed-small" and m["embedding_dimensions"] == 384 for m in data["models"])
    paths = json.loads(cli("--registry", str(SMALL), "registry", "path", "--json").stdout)
    assert [p["layer"] for p in paths] == ["builtin", "generated", "user", "extra"]
    assert paths[1] == {"layer": "generated", "path": str(modelctl_home / "data" / "registry" / "generated.toml"), "exists": False}
    assert paths[2] == {"layer": "user", "path": str(modelctl_home / "config" / "registry.toml"), "exists": False}


def test_registry_from_environment_variable(run_modelctl):
    proc = run_modelctl("list", "--provider", "acme cloud", "--json", env={"MODELCTL_REGISTRY": str(SMALL)})
    assert proc.returncode == 0, proc.stderr
    assert [i["id"] for i in json.loads(proc.stdout)] == ["acme/big-cloud"]


def test_version_and_help(cli, run_modelctl):
    from modelctl import __version__

    assert cli("--version").stdout.strip() == f"modelctl {__version__}"
    for args in (["--help"], ["list", "--help"], ["registry", "--help"], ["registry", "validate", "--help"]):
        assert cli(*args).exit_code == 0
    proc = run_modelctl("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"modelctl {__version__}"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["list", "--min-context", "abc"], "Invalid value for '--min-context'"),
        (["show"], "Missing argument 'model'"),
        (["registry", "validate", "--bogus"], "No such option: --bogus (see `modelctl registry validate --help`)"),
        (["--bogus"], "No such option: --bogus (see `modelctl --help`)"),
    ],
)
def test_bad_flags_are_one_line_with_exit_code_2(run_modelctl, args, expected):
    proc = run_modelctl(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("modelctl: error: ") and proc.stderr.count("\n") == 1
    assert expected in proc.stderr


def test_model_for_file_matches_a_listed_file_name(small):
    assert small.model_for_file("/somewhere/TINY-CHAT.q8_0.gguf").id == "acme/tiny-chat"
    assert small.model_for_file("tiny-chat.Q4_K_M.gguf").id == "acme/tiny-chat"
    assert small.model_for_file("/models/other.gguf") is None


def test_search_puts_models_in_service_first_then_legacy_then_deprecated_and_retired(tmp_path):
    from registries import model, write_registry

    dep = {"kind": "openai", "model": "m"}
    path = write_registry(tmp_path / "standing.toml",
                          model("acme/zeta-chat-old", dep, status="deprecated", deprecated="2020-01-01"),
                          model("acme/zeta-chat-gone", dep, deprecated="2019-01-01", retires="2020-01-01"),
                          model("acme/zeta-chat-legacy", dep, status="legacy"),
                          model("acme/zeta-chat-preview", dep, status="preview"),
                          model("acme/zeta-chat", dep, status="active", description="a zeta chat model"))
    hits = search_models(load_registry(str(path)), "zeta chat", today="2026-12-07")
    # the exact id scores highest, yet a legacy model follows every one in service, whatever its score
    assert ids(h.model for h in hits) == ["acme/zeta-chat", "acme/zeta-chat-preview", "acme/zeta-chat-legacy",
                                          "acme/zeta-chat-gone", "acme/zeta-chat-old"]
