"""`tokens` and `--max-cost` price a conversation's start at the cache-read price when the history
shows it sent to the same model and deployment within the provider's cache lifetime
(`chat/cache_estimate.py`), and in full otherwise."""

from __future__ import annotations

import sqlite3

import pytest
from providers import openai_wire
from registries import model, write_registry

from modelctl.chat.cache_estimate import CACHE_RULES, cached_tokens
from modelctl.chat.selector import Constraints, select_services
from modelctl.chat.tokens import token_report
from modelctl.config import get_paths
from modelctl.history import History, Turn
from modelctl.history.schema import connect
from modelctl.history.store import prefix_hashes
from modelctl.registry import load_registry
from modelctl.registry.loader import build_model_list, load_file
from modelctl.registry.registry import Registry

CHAT = "/v1/chat/completions"
SYSTEM = "You answer questions about the attached manual. " + "The manual says many things. " * 300
PRICES = {"cost_input": 1000.0, "cost_output": 0.0, "cost_cache_read": 100.0}
FIRST = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is chapter 1 about?"}]
CONVERSATION = [*FIRST, {"role": "assistant", "content": "Installation."}, {"role": "user", "content": "And 2?"}]


@pytest.fixture
def registry(tmp_path, server):
    return write_registry(
        tmp_path / "registry.toml",
        model("t/cached", {"kind": "openai", "model": "gpt-4o", "api_base": f"{server.url}/v1", **PRICES},
              {"kind": "azure-openai", "model": "gpt-4o", "deployment": "east", "endpoint": "https://x.example",
               "api_version": "2024-10-21", **PRICES},
              tasks=["chat"], context_window=128000, access={"free_tier": False, "local_capable": False}),
        model("t/claude", {"kind": "anthropic", "model": "claude-sonnet-4-5", "api_base": server.url, **PRICES},
              tasks=["chat"], context_window=200000, access={"free_tier": False, "local_capable": False}),
    )


def _log(model_id: str, deployment: str, kind: str, messages: list, **counts: int) -> None:
    with History() as h:
        h.add_turn(Turn(messages=messages, answer="Installation.", model=model_id, deployment=deployment,
                        deployment_kind=kind, **counts))


def _costs(registry, model_id: str = "t/cached") -> dict:
    report = token_report(model_id, CONVERSATION, registry=load_registry(extra=registry), max_tokens=1)
    return {c.deployment: c for c in report.costs}


def _age_turns(seconds: float) -> None:
    conn = sqlite3.connect(get_paths().history_db)
    with conn:
        conn.execute("UPDATE turns SET created = created - ?", (seconds,))
    conn.close()


def test_without_history_the_prompt_is_priced_in_full(registry):
    costs = _costs(registry)
    assert all(c.cached_tokens == 0 for c in costs.values())
    assert not get_paths().history_db.exists()  # asking made no database


def test_a_prefix_sent_recently_is_priced_as_cached_on_that_deployment_only(registry):
    full = _costs(registry)["openai"]
    _log("t/cached", "openai", "openai", FIRST)
    costs = _costs(registry)
    hit, other = costs["openai"], costs["azure-openai"]
    assert hit.cached_tokens >= 1024 and (hit.cached_tokens - 1024) % 128 == 0
    assert hit.input_usd == pytest.approx(full.input_usd - hit.cached_tokens * 900 / 1e6)
    assert other.cached_tokens == 0 and other.input_usd == full.input_usd


def test_a_prefix_older_than_the_cache_lifetime_or_of_another_model_is_not_cached(registry):
    _log("t/cached", "openai", "openai", FIRST)
    _age_turns(CACHE_RULES["openai"].lifetime_s + 1)
    assert _costs(registry)["openai"].cached_tokens == 0
    _log("t/other", "openai", "openai", FIRST)
    assert _costs(registry)["openai"].cached_tokens == 0


def test_a_different_start_or_a_request_that_is_not_a_start_of_this_one_is_not_cached(registry):
    _log("t/cached", "openai", "openai", [{"role": "system", "content": SYSTEM + "!"}, FIRST[1]])
    assert _costs(registry)["openai"].cached_tokens == 0
    # The same conversation sent whole before: its start may well be cached, but the history
    # knows only whole requests, and this one is no start of the conversation before its last
    # user turn: priced in full (a saving missed, none invented).
    _log("t/cached", "openai", "openai", CONVERSATION)
    assert _costs(registry)["openai"].cached_tokens == 0


def test_anthropic_counts_only_a_cache_the_earlier_request_used(registry):
    _log("t/claude", "anthropic", "anthropic", FIRST)  # no cache_control: nothing was cached
    assert _costs(registry, "t/claude")["anthropic"].cached_tokens == 0
    _log("t/claude", "anthropic", "anthropic", FIRST, cache_write_tokens=1500)
    assert _costs(registry, "t/claude")["anthropic"].cached_tokens >= 1024


def test_a_short_prefix_is_below_the_smallest_cached_prompt():
    assert cached_tokens("openai", 1000, 5000) == 0
    assert cached_tokens("openai", 1300, 5000) == 1280
    assert cached_tokens("anthropic", 1300, 1200) == 1200
    assert cached_tokens("gemini", 5000, 5000) == 0  # no documented lifetime: never assumed


def test_max_cost_allows_a_turn_whose_start_is_cached(cli, registry, server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    server.route("POST", CHAT, openai_wire.chat_stream(["Installation."]))
    reg = ["--registry", str(registry)]
    r = cli(*reg, "chat", "-m", "t/cached", "-s", SYSTEM, "-n", "1", "What is chapter 1 about?")
    assert r.exit_code == 0, r.output
    r = cli(*reg, "chat", "-m", "t/cached", "--continue", "--max-cost", "1", "-n", "1", "And 2?")
    assert r.exit_code == 0, r.output
    assert len(server.calls(CHAT)) == 2
    _age_turns(CACHE_RULES["openai"].lifetime_s + 1)
    r = cli(*reg, "chat", "-m", "t/cached", "--continue", "--max-cost", "1", "-n", "1", "And 3?")
    assert r.exit_code == 2 and "--max-cost" in r.stderr and len(server.calls(CHAT)) == 2


def test_the_history_keeps_each_request_hash_and_migrates_old_databases(tmp_path):
    path = tmp_path / "old.sqlite3"
    connect(path, steps=4).close()  # before migration 5
    with History(path) as h:
        h.add_turn(Turn(messages=FIRST, answer="x", model="m"))
        stored = h.conn.execute("SELECT prompt_hash FROM turns").fetchone()[0]
    assert stored == prefix_hashes(FIRST)[-1] and prefix_hashes(CONVERSATION)[:2] == prefix_hashes(FIRST)


def test_auto_max_cost_prices_each_candidate_with_its_cached_start(registry, provider_env):
    provider_env.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    provider_env.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdef")
    reg = Registry(build_model_list(load_file(registry), str(registry)))  # the file's models only

    def select(**k):
        return select_services(CONVERSATION, Constraints(max_tokens=1, **k), registry=reg)

    full = {c.id: c.cost for c in select().candidates}
    _log("t/cached", "openai", "openai", FIRST)
    cached = {c.id: c.cost for c in select().candidates}
    hit = cached["t/cached@openai"]
    assert hit.cached_tokens >= 1024 and hit.total_usd < full["t/cached@openai"].total_usd
    assert cached["t/claude@anthropic"] == full["t/claude@anthropic"]  # no request of its own in the history
    limit = (hit.total_usd + full["t/cached@openai"].total_usd) / 2  # within it only with the cache
    within = select(max_cost=limit).candidates
    assert [c.id for c in within] == ["t/cached@openai"]
    assert f"({hit.cached_tokens} prompt tokens at the cache-read price)" in within[0].reasons[-2]
    _age_turns(CACHE_RULES["openai"].lifetime_s + 1)
    outside = select(max_cost=limit)
    assert not outside.candidates
    assert "--max-cost" in next(c for c in outside.rejected if c.id == "t/cached@openai").reasons[-1]


def test_a_history_that_cannot_be_read_prices_in_full_and_selection_goes_on(registry, provider_env):
    """The estimate may miss a saving, never fail the request: a damaged history knows of no cache."""
    provider_env.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    reg = Registry(build_model_list(load_file(registry), str(registry)))
    get_paths().history_db.parent.mkdir(parents=True, exist_ok=True)
    get_paths().history_db.write_bytes(b"not a database " * 100)
    assert all(c.cached_tokens == 0 for c in _costs(registry).values())
    chosen = select_services(CONVERSATION, Constraints(max_tokens=1), registry=reg).candidates
    assert "t/cached@openai" in [c.id for c in chosen] and all(c.cost.cached_tokens == 0 for c in chosen)
