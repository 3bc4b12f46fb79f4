"""`--fallback` across providers: when a provider fails as a whole (5xx, 429, no connection, no
answer in time), its other models are skipped — said on stderr, recorded under route.skipped —
and the next service elsewhere is asked, instead of walking through every model of the provider
that is down. A failure of one model (a stream cut off before any text, 408) still tries the
next model at the same address. Two loopback servers: Mistral's wire format and OpenAI's."""

from __future__ import annotations

import json

import pytest
from providers import mistral_wire, openai_wire
from providers.kits import FAKE_KEY
from providers.server import closed_port_url
from registries import model, write_registry

CHAT = "/v1/chat/completions"
PAID = {"free_tier": False, "local_capable": False}
BIG = 9_000_000  # with --min-context, only these models are candidates (not the built-in registry's)


@pytest.fixture
def env(provider_env):
    provider_env.setenv("MISTRAL_API_KEY", FAKE_KEY)
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("MODELCTL_RETRIES", "0")
    provider_env.setenv("MODELCTL_READ_TIMEOUT", "0.5")


def registry(tmp_path, mistral_url: str, openai_url: str, models: int = 4) -> str:
    """`models` Mistral models, cheapest first, then one dearer OpenAI model on another server."""
    entries = [model(f"t/mistral-{i}", {"kind": "mistral", "model": f"m{i}", "api_base": f"{mistral_url}/v1",
                                        "cost_input": 0.1 + i / 100, "cost_output": 0.1},
                     tasks=["chat"], context_window=BIG, access=PAID) for i in range(models)]
    entries.append(model("t/gpt", {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{openai_url}/v1",
                                   "cost_input": 5.0, "cost_output": 15.0},
                         tasks=["chat"], context_window=BIG, access=PAID))
    return str(write_registry(tmp_path / "registry.toml", *entries))


def ask(cli, registry_path: str):
    return cli("--registry", registry_path, "chat", "-m", "auto", "--min-context", str(BIG), "--fallback", "--json",
               "--no-log", "Hi")


@pytest.mark.parametrize("status", [503, 500, 429])
def test_a_provider_failing_for_everything_is_left_at_once(cli, tmp_path, server, second_server, env, status):
    server.route("POST", CHAT, mistral_wire.error(status, "service unavailable"))
    second_server.route("POST", CHAT, openai_wire.chat_stream(["from ", "OpenAI"]))
    r = ask(cli, registry(tmp_path, server.url, second_server.url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "from OpenAI" and data["id"] == "t/gpt"
    assert len(server.calls(CHAT)) == 1 and len(second_server.calls(CHAT)) == 1  # not 4 Mistral requests
    assert data["route"]["skipped"] == ["t/mistral-1@mistral", "t/mistral-2@mistral", "t/mistral-3@mistral"]
    (switch,) = data["route"]["fallbacks"]
    assert switch["from"] == "t/mistral-0@mistral" and switch["to"] == "t/gpt@openai" and switch["status"] == status
    assert f"{server.url}" in r.stderr and "fails for every model" in r.stderr
    assert "skipping the other services there: t/mistral-1@mistral, t/mistral-2@mistral, t/mistral-3@mistral" \
        in r.stderr
    assert r.stderr.index("skipping the other services") < r.stderr.index("falling back to t/gpt@openai")


def test_many_skipped_are_counted(cli, tmp_path, server, second_server, env):
    server.route("POST", CHAT, mistral_wire.error(503, "down"))
    second_server.route("POST", CHAT, openai_wire.chat_stream(["ok"]))
    r = ask(cli, registry(tmp_path, server.url, second_server.url, models=12))
    assert r.exit_code == 0 and len(server.calls(CHAT)) == 1
    assert len(json.loads(r.stdout)["route"]["skipped"]) == 11
    assert "t/mistral-3@mistral and 8 more" in r.stderr


def test_a_provider_that_cannot_be_reached_is_left_at_once(cli, tmp_path, second_server, env):
    second_server.route("POST", CHAT, openai_wire.chat_stream(["ok"]))
    r = ask(cli, registry(tmp_path, closed_port_url(), second_server.url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "ok" and len(data["route"]["skipped"]) == 3
    assert "connection refused" in data["route"]["fallbacks"][0]["error"]


def test_when_the_only_other_provider_fails_too_the_last_error_is_the_answer(cli, tmp_path, server, second_server,
                                                                             env):
    server.route("POST", CHAT, mistral_wire.error(503, "down"))
    second_server.route("POST", CHAT, openai_wire.error(502, "bad gateway"))
    r = ask(cli, registry(tmp_path, server.url, second_server.url))
    assert r.exit_code == 7 and "502" in r.stderr
    assert len(server.calls(CHAT)) == 1 and len(second_server.calls(CHAT)) == 1


def test_a_failure_of_one_model_tries_the_next_at_the_same_address(cli, tmp_path, server, second_server, env):
    """A stream cut off before any text may be that model's alone: the next Mistral model is asked."""
    server.route("POST", CHAT, mistral_wire.chat_stream(["never"], drop_after=0), mistral_wire.chat_stream(["fine"]))
    second_server.route("POST", CHAT, openai_wire.chat_stream(["from OpenAI"]))
    r = ask(cli, registry(tmp_path, server.url, second_server.url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["id"] == "t/mistral-1" and data["text"] == "fine" and "skipped" not in data["route"]
    assert len(server.calls(CHAT)) == 2 and second_server.calls(CHAT) == []
