"""`modelctl services` and `modelctl.chat.availability`: which deployments are usable now
(a key present, the GGUF file here, a server that answers), with each service's metadata."""

from __future__ import annotations

import json

import pytest
from providers import ollama_wire
from providers.kits import FAKE_KEY
from providers.server import Reply, closed_port_url
from registries import model, write_registry
from test_tokens import GEMMA_DEPLOYMENT

from modelctl.chat.availability import services, usable_services
from modelctl.registry import load_registry

LOCAL = {"free_tier": True, "local_capable": True}  # a server on a loopback address runs here


@pytest.fixture
def registry_file(tmp_path, server, second_server):
    server.route("GET", "/api/tags", ollama_wire.tags())
    second_server.route("GET", "/v1/models", Reply(401, json={"error": {"message": "key needed"}}))
    return write_registry(
        tmp_path / "registry.toml",
        model("test/gemma", GEMMA_DEPLOYMENT, tasks=["chat"], template="gemma"),
        model("test/absent", {"kind": "llama.cpp", "repo": "x/y-GGUF", "files": [{"quant": "Q4_K_M", "filename": "y.gguf"}]}),
        model("test/gpt", {"kind": "openai", "model": "gpt-4o-mini"},
              {"kind": "azure-openai", "model": "gpt-4o-mini", "deployment": "east-4o", "api_version": "2024-10-21"},
              access={"free_tier": False, "local_capable": False}),
        model("test/pulled", {"kind": "ollama", "tag": ollama_wire.TAG, "host": server.url}),
        model("test/not-pulled", {"kind": "ollama", "tag": "qwen9:400b", "host": server.url}),
        model("test/vllm", {"kind": "openai-compatible", "model": "m", "api_base": f"http://user:s3cret@{second_server.url[7:]}/v1"},
              access=LOCAL),
        model("test/down", {"kind": "openai-compatible", "model": "m", "api_base": f"{closed_port_url()}/v1"},
              access=LOCAL),
    )


def by_id(found):
    return {s.id: s for s in found}


def test_each_kind_of_deployment_is_checked_the_way_it_is_used(registry_file, provider_env, server, second_server):
    found = by_id(services(load_registry(str(registry_file))))
    assert found["test/gemma@llama.cpp"].usable and found["test/gemma@llama.cpp"].reason.startswith("file ")
    assert not found["test/absent@llama.cpp"].usable and "not on this machine" in found["test/absent@llama.cpp"].reason
    assert not found["test/gpt@openai"].usable and "OPENAI_API_KEY" in found["test/gpt@openai"].reason
    assert found["test/pulled@ollama"].usable and "HTTP 200" in found["test/pulled@ollama"].reason
    assert not found["test/not-pulled@ollama"].usable and "ollama pull qwen9:400b" in found["test/not-pulled@ollama"].reason
    assert found["test/vllm@openai-compatible"].usable  # a 401 is an answer: the server is there
    assert not found["test/down@openai-compatible"].usable
    assert "connection refused" in found["test/down@openai-compatible"].reason
    assert len(server.calls("/api/tags")) == 1  # one probe per server, shared by its deployments
    probe = second_server.calls("/v1/models")[0]
    assert probe.header("authorization") is None  # probes carry no credentials


def test_keys_make_api_deployments_usable(registry_file, provider_env, tmp_path):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    found = by_id(services(load_registry(str(registry_file))))
    assert found["test/gpt@openai"].usable and found["test/gpt@openai"].reason == "key from env OPENAI_API_KEY"
    azure = found["test/gpt@azure-openai"]
    assert not azure.usable and "AZURE_OPENAI_ENDPOINT" in azure.reason  # a key, but no endpoint
    provider_env.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    found = by_id(usable_services(load_registry(str(registry_file))))
    assert "test/gpt@azure-openai" in found and "test/absent@llama.cpp" not in found


def test_services_cli_lists_usable_deployments_with_their_metadata(cli, registry_file, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    r = cli("--registry", str(registry_file), "services", "--json")
    assert r.exit_code == 0, r.output
    data = {s["service"]: s for s in json.loads(r.stdout)}
    assert "test/absent@llama.cpp" not in data and "test/down@openai-compatible" not in data
    gpt = data["test/gpt@openai"]
    assert gpt["model_id"] == "gpt-4o-mini" and gpt["kind"] == "openai" and gpt["key_env"] == "OPENAI_API_KEY"
    assert gpt["usable"] is True and gpt["model"] == "test/gpt"
    vllm = data["test/vllm@openai-compatible"]
    assert "s3cret" not in r.stdout and vllm["endpoint"].startswith("http://")
    assert FAKE_KEY not in r.output
    r = cli("--registry", str(registry_file), "services", "--all", "--json")
    everything = {s["service"]: s for s in json.loads(r.stdout)}
    assert everything["test/absent@llama.cpp"]["usable"] is False
    r = cli("--registry", str(registry_file), "services", "--all", "-m", "test/gpt")
    assert r.exit_code == 0 and "east-4o" in r.stdout and "2024-10-21" in r.stdout and "no: " in r.stdout


def test_services_cli_refuses_an_unknown_model(cli, registry_file):
    r = cli("--registry", str(registry_file), "services", "-m", "test/nothing")
    assert r.exit_code == 4 and "test/nothing" in r.stderr and "Traceback" not in r.output
