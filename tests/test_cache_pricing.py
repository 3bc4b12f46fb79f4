"""Exact cost with prompt caching: the registry's cached-input and batch prices (validated, shown,
exported), the cached-token counts each provider reports in its own wire format (loopback
servers), their cost, counts that cannot be true, and the history and `usage` showing what the
cache saved."""

from __future__ import annotations

import json
import math

import pytest
from providers import anthropic_wire, gemini_wire, mistral_wire, openai_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry

from modelctl.registry.pricing import Price, cost

PRICES = {"cost_input": 2.0, "cost_output": 8.0, "cost_cache_read": 0.5, "cost_cache_write": 2.5}


def _registry(tmp_path, deployment, access_prices=PRICES, **fields):
    access = {"free_tier": False, "local_capable": False, **access_prices}
    return str(write_registry(tmp_path / "r.toml", model("test/cached", deployment, tasks=["chat"],
                                                         access=access, **fields)))


def test_cost_prices_cached_tokens_at_the_cache_price_else_the_input_price():
    price = Price(2.0, 8.0, cache_read=0.5, cache_write=2.5)
    assert cost(price, 1000, 100, cache_read=600, cache_write=300) == pytest.approx(
        (100 * 2.0 + 600 * 0.5 + 300 * 2.5 + 100 * 8.0) / 1e6)
    unknown = Price(2.0, 8.0)  # no cache price in the registry: cached tokens cost the input price
    assert cost(unknown, 1000, 100, cache_read=600) == cost(unknown, 1000, 100)


def test_cache_and_batch_prices_are_validated_shown_and_exported(cli, tmp_path):
    deployment = {"kind": "openai", "model": "gpt-4o-mini", "cost_batch_input": 1.0, "cost_batch_output": 4.0}
    registry = _registry(tmp_path, deployment)
    shown = cli("--registry", registry, "show", "test/cached")
    assert shown.exit_code == 0, shown.output
    assert "in $2, out $8 per 1M tokens; cached input $0.5; cache write $2.5" in shown.stdout
    assert "batch in $1; batch out $4" in shown.stdout
    exported = json.loads(cli("--registry", registry, "show", "test/cached", "--json").stdout)
    assert exported["access"]["cost_cache_read"] == 0.5 and exported["access"]["cost_cache_write"] == 2.5
    assert exported["deployments"][0]["cost_batch_output"] == 4.0
    for bad in (-0.1, math.inf, math.nan, "0.5", True):
        path = _registry(tmp_path, {"kind": "openai", "model": "gpt-4o-mini"}, {"cost_cache_read": bad})
        r = cli("--registry", path, "registry", "validate")
        assert r.exit_code != 0 and "access.cost_cache_read" in r.output, (bad, r.output)


# (name, deployment for the server URL, chat path, the answer with 1000 prompt tokens of which
# 600 read from the cache and, for Anthropic, 300 written to it; 100 output tokens)
PROVIDERS = [
    ("openai", lambda url: {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{url}/v1"},
     "/v1/chat/completions", "OPENAI_API_KEY",
     lambda: openai_wire.chat_stream(["Hi"], usage=(1000, 100), prompt_details={"cached_tokens": 600, "audio_tokens": 0}),
     (600, None)),
    ("mistral", lambda url: {"kind": "mistral", "model": mistral_wire.MODEL, "api_base": f"{url}/v1"},
     "/v1/chat/completions", "MISTRAL_API_KEY",
     lambda: mistral_wire.chat_stream(["Hi"], usage=(1000, 100), prompt_details={"cached_tokens": 600}),
     (600, None)),
    # Anthropic's input_tokens are those after the last breakpoint: 100 + 600 read + 300 written
    ("anthropic", lambda url: {"kind": "anthropic", "model": anthropic_wire.MODEL, "api_base": url},
     "/v1/messages", "ANTHROPIC_API_KEY",
     lambda: anthropic_wire.message_stream(["Hi"], input_tokens=100, output_tokens=100, cache={
         "cache_read_input_tokens": 600, "cache_creation_input_tokens": 300}),
     (600, 300)),
    ("anthropic-final-usage", lambda url: {"kind": "anthropic", "model": anthropic_wire.MODEL, "api_base": url},
     "/v1/messages", "ANTHROPIC_API_KEY",
     lambda: anthropic_wire.message_stream(["Hi"], input_tokens=100, output_tokens=100, cache={
         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}, final_usage={
         "input_tokens": 100, "cache_read_input_tokens": 600, "cache_creation_input_tokens": 300}),
     (600, 300)),
    ("gemini", lambda url: {"kind": "gemini", "model": gemini_wire.MODEL, "api_base": f"{url}/v1beta"},
     f"/v1beta/models/{gemini_wire.MODEL}:streamGenerateContent", "GEMINI_API_KEY",
     lambda: gemini_wire.stream(["Hi"], usage=(1000, 100), cached=600),
     (600, None)),
]


@pytest.mark.parametrize("name, deployment, path, key_env, reply, cached", PROVIDERS, ids=[p[0] for p in PROVIDERS])
def test_each_providers_cached_tokens_give_the_exact_cost(cli, server, provider_env, tmp_path,
                                                          name, deployment, path, key_env, reply, cached):
    provider_env.setenv(key_env, FAKE_KEY)
    server.route("POST", path, reply())
    r = cli("--registry", _registry(tmp_path, deployment(server.url)), "chat", "-m", "test/cached", "--json", "Hi")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    read, written = cached
    assert data["usage"]["prompt_tokens"] == 1000 and data["usage"]["cached_tokens"] == read
    assert data["usage"].get("cache_write_tokens") == written
    fresh = 1000 - read - (written or 0)
    expected = (fresh * 2.0 + read * 0.5 + (written or 0) * 2.5 + 100 * 8.0) / 1e6
    assert data["cost"] == pytest.approx(expected)
    assert data["cache_saved"] == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6 - expected)


HOSTILE = [{"cached_tokens": 1001}, {"cached_tokens": -1}, {"cached_tokens": "600"}, {"cached_tokens": True},
           {"cached_tokens": 2**70}, {"cached_tokens": 6.5}, "600", [600]]


@pytest.mark.parametrize("details", HOSTILE, ids=[repr(d) for d in HOSTILE])
def test_a_cached_count_that_cannot_be_true_is_dropped_and_the_answer_kept(cli, server, provider_env, tmp_path, details):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions",
                 openai_wire.chat_stream(["Hi"], usage=(1000, 100), prompt_details=details))
    registry = _registry(tmp_path, {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"})
    r = cli("--registry", registry, "chat", "-m", "test/cached", "--json", "Hi")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "Hi" and "cached_tokens" not in data["usage"]
    assert data["cost"] == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6) and data["cache_saved"] is None


@pytest.mark.parametrize("cache", [{"cache_read_input_tokens": -5}, {"cache_read_input_tokens": "9"},
                                   {"cache_creation_input_tokens": 2**60, "cache_read_input_tokens": None}])
def test_anthropics_hostile_cache_counts_are_dropped(cli, server, provider_env, tmp_path, cache):
    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["Hi"], input_tokens=100, output_tokens=10,
                                                                       cache=cache))
    registry = _registry(tmp_path, {"kind": "anthropic", "model": anthropic_wire.MODEL, "api_base": server.url})
    r = cli("--registry", registry, "chat", "-m", "test/cached", "--json", "Hi")
    assert r.exit_code == 0, r.output
    usage = json.loads(r.stdout)["usage"]
    assert usage["prompt_tokens"] == 100 and "cached_tokens" not in usage and "cache_write_tokens" not in usage


def test_history_and_usage_show_what_the_cache_saved(server, provider_env, tmp_path, run_modelctl):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions",
                 openai_wire.chat_stream(["a"], usage=(1000, 100), prompt_details={"cached_tokens": 0}),
                 openai_wire.chat_stream(["b"], usage=(2000, 100), prompt_details={"cached_tokens": 1024}))
    registry = _registry(tmp_path, {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"})
    for question in ("first", "second"):
        r = run_modelctl("--registry", registry, "chat", "-m", "test/cached", question)
        assert r.returncode == 0, r.stderr
    logged = [json.loads(line) for line in run_modelctl("history", "export").stdout.splitlines()]
    assert sorted(t["cached_tokens"] for t in logged) == [0, 1024]
    assert sorted(t["cache_saved"] for t in logged) == pytest.approx([0.0, 1024 * (2.0 - 0.5) / 1e6])
    saved = 1024 * (2.0 - 0.5) / 1e6
    report = json.loads(run_modelctl("usage", "--json").stdout)
    assert report["total"]["cached_tokens"] == 1024
    assert report["total"]["cache_saved"] == pytest.approx(saved)
    assert report["total"]["cost"] == pytest.approx((1000 * 2.0 + 976 * 2.0 + 1024 * 0.5 + 200 * 8.0) / 1e6)
    table = run_modelctl("usage").stdout
    assert "cached tokens" in table and "cache saved" in table and "1,024" in table and f"${saved:.4f}" in table


def test_cache_puts_anthropic_breakpoints_on_the_system_prompt_and_the_last_user_turn(cli, server, provider_env,
                                                                                      tmp_path):
    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/messages", *(anthropic_wire.message_stream(["Hi"]) for _ in range(4)))
    registry = _registry(tmp_path, {"kind": "anthropic", "model": anthropic_wire.MODEL, "api_base": server.url})
    for flags in (("--system", "Be brief.", "first"), ("--continue", "second")):
        r = cli("--registry", registry, "chat", "-m", "test/cached", "--cache", *flags)
        assert r.exit_code == 0, r.output
    body = server.calls("/v1/messages")[-1].body
    ephemeral = {"type": "ephemeral"}
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": ephemeral}]
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "second", "cache_control": ephemeral}]
    assert body["messages"][0]["content"] == "first"  # 2 breakpoints of the 4 Anthropic allows
    assert cli("config", "set", "chat.cache", "true").exit_code == 0  # [chat] cache = true does the same
    assert cli("--registry", registry, "chat", "-m", "test/cached", "Hi").exit_code == 0
    assert "cache_control" in json.dumps(server.calls("/v1/messages")[-1].body)
    assert cli("--registry", registry, "chat", "-m", "test/cached", "--no-cache", "Hi").exit_code == 0
    assert "cache_control" not in json.dumps(server.calls("/v1/messages")[-1].body)


def test_cache_is_accepted_and_changes_nothing_where_the_provider_caches_by_itself(cli, server, provider_env, tmp_path):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["a"]), openai_wire.chat_stream(["b"]))
    registry = _registry(tmp_path, {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"})
    bodies = []
    for flags in ((), ("--cache",)):
        r = cli("--registry", registry, "chat", "-m", "test/cached", *flags, "Hi")
        assert r.exit_code == 0, r.output
        bodies.append(server.calls("/v1/chat/completions")[-1].body)
    assert bodies[0] == bodies[1]
