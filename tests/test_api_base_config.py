"""The `[api_base]` table of config.toml moves every deployment of a kind, for every command that
reaches a server: each command below runs with the registry's own addresses and OLLAMA_HOST
pointing at a closed port, and config.toml pointing at one loopback server that records what
reached it."""

from __future__ import annotations

import pytest
from providers import anthropic_wire, ollama_wire, openai_wire, task_wire
from providers.server import Reply, closed_port_url
from registries import model, write_registry

from modelctl.config import get_paths

KEY = "sk-test-api-base-0123456789abcdef"
PAID = {"free_tier": False, "local_capable": False, "cost_input": 1.0, "cost_output": 2.0, "prices_as_of": "2026-01-01"}


@pytest.fixture
def run(cli, server, tmp_path, provider_env):
    nowhere = closed_port_url()
    provider_env.setenv("OLLAMA_HOST", nowhere)
    provider_env.setenv("ANTHROPIC_API_KEY", KEY)
    provider_env.setenv("OPENAI_API_KEY", KEY)
    provider_env.chdir(tmp_path)
    registry = write_registry(
        tmp_path / "r.toml",
        model("t/ollama", {"id": "ollama", "kind": "ollama", "tag": ollama_wire.TAG}, tasks=["chat"]),
        model("t/served", {"id": "vllm", "kind": "openai-compatible", "model": "served", "api_base": f"{nowhere}/v1"},
              tasks=["chat"], access={"free_tier": True, "local_capable": True}),
        model("t/counted", {"id": "anthropic", "kind": "anthropic", "model": anthropic_wire.MODEL},
              tasks=["chat"], access=PAID),
        model("t/painter", {"id": "openai", "kind": "openai", "model": "dall-e-3"}, tasks=["text-to-image"],
              category="task", access=PAID),
    )
    get_paths().config_file.parent.mkdir(parents=True, exist_ok=True)
    get_paths().config_file.write_text(
        f'[api_base]\nollama = "{server.url}"\nopenai-compatible = "{server.url}/v1"\n'
        f'anthropic = "{server.url}"\nopenai = "{server.url}/v1"\n')
    server.route("GET", "/api/tags", ollama_wire.tags())
    server.route("GET", "/api/version", Reply(json={"version": "0.9.0"}))
    server.route("POST", "/api/pull", ollama_wire.pull_stream())
    server.route("DELETE", "/api/delete", Reply(json={}))
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["Hi"]))
    server.route("GET", "/v1/models", Reply(json={"object": "list", "data": [{"id": "served", "object": "model"}]}))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["Hi"]))
    server.route("POST", "/v1/messages/count_tokens", Reply(json={"input_tokens": 14}))
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png()))

    def invoke(*args: str):
        result = cli("--registry", str(registry), *args)
        assert result.exit_code == 0, result.output
        assert KEY not in result.output
        return {(r.method, r.path) for r in server.requests}

    return invoke


@pytest.mark.parametrize("args, reached", [
    (["services", "--json"], {("GET", "/api/tags"), ("GET", "/v1/models")}),
    (["chat", "-m", "auto", "Hi"], {("GET", "/api/tags"), ("GET", "/v1/models")}),  # the selector's probes
    (["tokens", "-m", "t/counted", "--json", "Hi"], {("POST", "/v1/messages/count_tokens")}),
    (["image", "-m", "t/painter", "a cat"], {("POST", "/v1/images/generations")}),
    (["chat", "-m", "t/served", "Hi"], {("POST", "/v1/chat/completions")}),
    (["chat", "-m", "t/ollama", "Hi"], {("POST", "/api/chat")}),
    (["pull", "t/ollama", "-d", "ollama"], {("POST", "/api/pull")}),
    (["list", "--installed", "--json"], {("GET", "/api/tags")}),
    (["rm", "t/ollama", "--yes"], {("DELETE", "/api/delete")}),
    (["doctor", "--json"], {("GET", "/api/version")}),
    (["chat", "-m", ollama_wire.TAG, "Hi"], {("GET", "/api/tags"), ("POST", "/api/chat")}),  # a tag the server has
])
def test_every_command_that_reaches_a_server_goes_where_config_says(run, args, reached):
    assert reached <= run(*args)


def test_api_base_wins_over_the_config_table(run, second_server):
    second_server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))
    assert ("POST", "/v1/chat/completions") not in run("chat", "-m", "t/served", "--api-base",
                                                       f"{second_server.url}/v1", "Hi")
    assert second_server.calls("/v1/chat/completions")[0].body["model"] == "served"
