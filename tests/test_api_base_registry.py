"""`-m NAME --api-base URL`: a name the registry (or a user alias) knows keeps its entry (defaults,
prices, names) and only moves to URL; any other name is the server's own model, as before.
Against a loopback server speaking OpenAI's wire format."""

from __future__ import annotations

import json

import pytest
from providers import openai_wire
from registries import model, write_registry

from modelctl.config import get_paths
from modelctl.refs import parse_ref
from modelctl.registry.loader import load_registry
from modelctl.resolver import Resolver


def _registry(tmp_path):
    priced = model("t/priced", {"id": "openai", "kind": "openai", "model": "upstream-name"},
                   {"id": "azure", "kind": "azure-openai", "model": "upstream-name", "endpoint": "https://x.example.com",
                    "api_version": "2024-10-21"},
                   tasks=["chat"], defaults={"temperature": 0.3},
                   access={"free_tier": False, "local_capable": False, "cost_input": 2.0, "cost_output": 8.0,
                           "prices_as_of": "2026-01-01"})
    local = model("t/local", {"id": "llama.cpp", "kind": "llama.cpp", "repo": "t/local-GGUF",
                              "files": [{"filename": "local.gguf", "quant": "Q4_K_M"}]},
                  tasks=["chat"], template="gemma", defaults={"top_p": 0.5})
    anthropic = model("t/other-wire", {"id": "anthropic", "kind": "anthropic", "model": "claude-x"}, tasks=["chat"],
                      access={"free_tier": False, "local_capable": False, "cost_input": 3.0, "cost_output": 15.0,
                              "prices_as_of": "2026-01-01"})
    return str(write_registry(tmp_path / "r.toml", priced, local, anthropic))


@pytest.fixture
def chat(server, cli, tmp_path):  # noqa: F811
    registry = _registry(tmp_path)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"], usage=(1_000_000, 1_000_000)))

    def run(name: str, *extra: str):
        r = cli("--registry", registry, "chat", "--api-base", f"{server.url}/v1", "-m", name, "--json", *extra, "Hi")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout), server.calls("/v1/chat/completions")[-1]

    return run


def test_a_registry_model_keeps_its_defaults_and_prices_at_another_address(chat):
    data, request = chat("t/priced", "--debug")
    assert request.body["model"] == "upstream-name" and request.body["temperature"] == 0.3
    assert data["id"] == "t/priced" and data["cost"] == pytest.approx(10.0)


def test_debug_says_where_the_registry_model_went(server, cli, tmp_path):  # noqa: F811
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))
    r = cli("--registry", _registry(tmp_path), "chat", "--api-base", f"{server.url}/v1", "-m", "t/priced",
            "--debug", "Hi")
    assert r.exit_code == 0, r.output
    assert (f"debug: name: 't/priced': registry name at --api-base {server.url}/v1 → t/priced, "
            "deployment api-base (openai-compatible)") in r.stderr


def test_a_user_alias_for_a_registry_model_keeps_the_entry_too(chat):
    get_paths().config_file.parent.mkdir(parents=True, exist_ok=True)
    get_paths().config_file.write_text('[aliases]\nfast = { model = "t/priced" }\n')
    data, request = chat("fast")
    assert request.body["model"] == "upstream-name" and data["cost"] == pytest.approx(10.0)


def test_a_model_without_an_openai_deployment_is_asked_for_by_the_name_given(chat):
    data, request = chat("t/local")
    assert request.body["model"] == "t/local" and request.body["top_p"] == 0.5 and data["cost"] is None
    data, request = chat("t/other-wire")  # the model's own prices: the server serves that model
    assert request.body["model"] == "t/other-wire" and data["cost"] == pytest.approx(18.0)


def test_a_name_the_registry_does_not_know_is_the_servers_as_before(chat):
    data, request = chat("served-name")
    assert request.body["model"] == "served-name" and "temperature" not in request.body
    assert data["id"] == "served-name" and data["cost"] is None


def test_a_registry_that_cannot_be_read_leaves_the_name_to_the_server(server, cli, tmp_path):  # noqa: F811
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))
    broken = tmp_path / "broken.toml"
    broken.write_text("[[models]\n")
    r = cli("--registry", str(broken), "chat", "--api-base", f"{server.url}/v1", "-m", "t/priced", "Hi")
    assert r.exit_code == 0, r.output
    assert server.calls("/v1/chat/completions")[0].body["model"] == "t/priced"


def test_the_registry_entry_is_copied_not_changed(tmp_path):
    registry = load_registry(_registry(tmp_path))
    target = Resolver(registry).resolve(parse_ref("t/priced", api_base="http://127.0.0.1:9/v1"))
    assert target.source == "registry" and target.entry is registry.get("t/priced")
    assert (target.deployment.kind, target.deployment.api_base) == ("openai-compatible", "http://127.0.0.1:9/v1")
    original = registry.get("t/priced").deployments[0]
    assert (original.kind, original.api_base) == ("openai", None)


def test_a_completion_only_model_is_still_refused_for_chat(server, cli, tmp_path):  # noqa: F811
    base = write_registry(tmp_path / "base.toml", model("t/base", {"id": "oc", "kind": "openai-compatible",
                                                                   "model": "b", "api_base": "http://127.0.0.1:9/v1"},
                                                          access={"free_tier": True, "local_capable": True}))
    r = cli("--registry", str(base), "chat", "--api-base", f"{server.url}/v1", "-m", "t/base", "Hi")
    assert r.exit_code == 2 and "base model for text completion" in r.output, r.output
    assert server.requests == []
