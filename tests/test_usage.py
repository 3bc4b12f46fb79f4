"""`modelctl usage`: token and cost totals from the history, summed over turns that separate
processes logged (a loopback OpenAI-compatible server with registry prices)."""

from __future__ import annotations

import json
import time

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry

CHAT = "/v1/chat/completions"


@pytest.fixture
def registry(server, provider_env, tmp_path):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    api = {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"}
    priced = model("test/priced", api, tasks=["chat"],
                   access={"free_tier": False, "local_capable": False, "cost_input": 2.0, "cost_output": 8.0})
    free = model("test/free", api, tasks=["chat"], access={"free_tier": True, "local_capable": False})
    return str(write_registry(tmp_path / "r.toml", priced, free))


def test_cost_totals_across_processes(server, registry, run_modelctl):
    server.route("POST", CHAT, openai_wire.chat_stream(["a"], usage=(1000, 100)),
                 openai_wire.chat_stream(["b"], usage=(2000, 300)),
                 openai_wire.chat_stream(["c"], usage=(500, 50)))
    for name in ("test/priced", "test/priced", "test/free"):
        r = run_modelctl("--registry", registry, "chat", "-m", name, "question")
        assert r.returncode == 0, r.stderr
    r = run_modelctl("usage", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows = {row["model"]: row for row in report["rows"]}
    assert rows["test/priced"]["turns"] == 2 and rows["test/priced"]["prompt_tokens"] == 3000
    assert rows["test/priced"]["completion_tokens"] == 400
    # (1000 * 2 + 100 * 8) / 1e6 + (2000 * 2 + 300 * 8) / 1e6
    assert rows["test/priced"]["cost"] == pytest.approx(0.0092)
    assert rows["test/free"]["cost"] is None and rows["test/free"]["priced_turns"] == 0
    assert report["total"] == {"turns": 3, "prompt_tokens": 3500, "completion_tokens": 450, "cached_tokens": 0,
                               "cost": pytest.approx(0.0092), "priced_turns": 2, "cache_saved": None}

    by_day = json.loads(run_modelctl("usage", "--by", "day", "--since", "1d", "--json").stdout)
    assert [row["day"] for row in by_day["rows"]] == [time.strftime("%Y-%m-%d")]
    assert by_day["rows"][0]["turns"] == 3
    table = run_modelctl("usage").stdout
    assert "test/priced" in table and "$0.0092" in table and "3,500" in table


def test_usage_since_and_bad_flags(cli):
    r = cli("usage", "--since", "2999-01-01", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == []
    r = cli("usage")
    assert r.exit_code == 0 and "no turns in the history" in r.stderr
    r = cli("usage", "--by", "week")
    assert r.exit_code == 2 and "--by 'week': expected model or day" in r.output
    r = cli("usage", "--since", "last tuesday")
    assert r.exit_code == 2 and "--since 'last tuesday'" in r.output
