"""The JSON the web page of `modelctl serve` reads (/api/usage, /api/history, /api/history/{id},
/api/models), from a real server process whose history rows were made by real requests to a
hosted model (gpt-4o-mini at a loopback server speaking OpenAI's wire format): who sees which
turns and budgets, the contract's fields, bounded parameters. Then the aggregation itself, on a
real history database, and `modelctl usage --chart` in a pipe and at a terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from typing import Any, Iterator

import httpx
import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from serve_clients import HANG_S, hosted_home, serve_warm
from serve_process import ServeProcess, serve_env

from modelctl.cli.bars import bar, chart
from modelctl.history import History, Turn
from modelctl.history.totals import days_back, every_day, total
from modelctl.serve.auth import ApiKey
from modelctl.serve.data_routes import usage_report

CHAT = "/v1/chat/completions"
HOSTED = "gpt-4o-mini"  # USD 0.15 / 0.60 per 1M tokens in the registry
ALICE = "alice-web-data-0123456789"
BOB = "bob-web-data-abcdefghijkl"
USAGE = (1000, 200)  # the upstream's token counts for every answer
TURN_COST = (1000 * 0.15 + 200 * 0.60) / 1e6
ROUTES = ("/api/usage", "/api/history", "/api/history/1", "/api/models")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    server = FakeServer().start()
    server.route("POST", CHAT, openai_wire.chat_stream(["Blue", " it is."], usage=USAGE))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream) -> Iterator[ServeProcess]:
    """A server with two keys (alice with budgets, bob without) and three turns: alice's two, bob's one."""
    home = hosted_home(tmp_path_factory, "web-data", upstream.url)
    keys = home / "keys.toml"
    keys.write_text(f'[keys.alice]\nkey = "{ALICE}"\nbudget_day = 1.0\nbudget_month = 5.0\n'
                    f'[keys.bob]\nkey = "{BOB}"\n')
    keys.chmod(0o600)
    proc = serve_warm(home, "--keys-file", str(keys), key=FAKE_KEY).start()
    try:
        with httpx.Client(timeout=HANG_S) as client:
            for key, question in ((ALICE, "Which colour is the sky?"), (ALICE, "And the sea?"),
                                  (BOB, "Which colour is grass?")):
                answer = client.post(f"{proc.base}/chat/completions", headers=bearer(key),
                                     json={"model": HOSTED, "messages": [{"role": "user", "content": question}]})
                assert answer.status_code == 200, answer.text
        yield proc
    finally:
        assert proc.stop() == 0, proc.stderr


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def get(proc: ServeProcess, path: str, key: str | None, **params: Any) -> httpx.Response:
    return httpx.get(proc.url + path, params=params, headers=bearer(key) if key else {}, timeout=HANG_S)


def ok(proc: ServeProcess, path: str, key: str | None, **params: Any) -> Any:
    response = get(proc, path, key, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


# --- /api/usage -------------------------------------------------------------------------------------


def test_usage_with_the_local_token_counts_every_turn_and_every_budget(served):
    report = ok(served, "/api/usage", served.token)
    days = report["days"]
    assert len(days) == 30 and days[-1]["date"] == date.today().isoformat()
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)  # oldest first, each day once
    assert all(set(d) == {"date", "turns", "prompt_tokens", "completion_tokens", "cost"} for d in days)
    assert days[-1]["turns"] == 3 and days[-1]["prompt_tokens"] == 3000 and days[-1]["completion_tokens"] == 600
    assert days[-1]["cost"] == pytest.approx(3 * TURN_COST)
    assert all(d["turns"] == 0 and d["cost"] is None for d in days[:-1])
    assert report["models"] == [{"model": HOSTED, "turns": 3, "prompt_tokens": 3000, "completion_tokens": 600,
                                 "cost": pytest.approx(3 * TURN_COST)}]
    assert report["total"] == {"turns": 3, "prompt_tokens": 3000, "completion_tokens": 600,
                               "cost": pytest.approx(3 * TURN_COST)}
    budgets = {b["label"]: b for b in report["budgets"]}
    assert budgets["alice"] == {"label": "alice", "budget_day": 1.0, "budget_month": 5.0,
                                "spent_day": pytest.approx(2 * TURN_COST), "spent_month": pytest.approx(2 * TURN_COST),
                                "left_day": pytest.approx(1.0 - 2 * TURN_COST),
                                "left_month": pytest.approx(5.0 - 2 * TURN_COST)}
    assert budgets["bob"]["budget_day"] is None and budgets["bob"]["left_month"] is None
    assert budgets["bob"]["spent_day"] == pytest.approx(TURN_COST)


def test_a_key_sees_only_its_own_turns_and_budget(served):
    alice = ok(served, "/api/usage", ALICE, days=1)
    assert len(alice["days"]) == 1 and alice["total"]["turns"] == 2
    assert [b["label"] for b in alice["budgets"]] == ["alice"]
    bob = ok(served, "/api/usage", BOB, days=366)
    assert len(bob["days"]) == 366 and bob["total"]["turns"] == 1 and bob["models"][0]["turns"] == 1
    assert [b["label"] for b in bob["budgets"]] == ["bob"]


# --- /api/history -----------------------------------------------------------------------------------


def test_history_lists_a_keys_own_conversations_only(served):
    everyone = ok(served, "/api/history", served.token)["conversations"]
    assert [c["preview"] for c in everyone] == ["Which colour is grass?", "And the sea?", "Which colour is the sky?"]
    first = everyone[0]
    assert set(first) == {"id", "name", "updated", "model", "turns", "preview"}
    assert first["model"] == HOSTED and first["turns"] == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT.*", first["updated"])
    alice = ok(served, "/api/history", ALICE)["conversations"]
    assert [c["preview"] for c in alice] == ["And the sea?", "Which colour is the sky?"]
    assert [c["preview"] for c in ok(served, "/api/history", BOB)["conversations"]] == ["Which colour is grass?"]
    assert len(ok(served, "/api/history", served.token, limit=1)["conversations"]) == 1


@pytest.mark.parametrize("words, key, found", [
    ("colour", None, ["Which colour is grass?", "Which colour is the sky?"]),
    ("colour", ALICE, ["Which colour is the sky?"]),
    ("col sky", None, ["Which colour is the sky?"]),  # every word, as a word's start
    ("blue", BOB, ["Which colour is grass?"]),  # the answer's words count too
    ('sea" OR "-', None, []),  # FTS5 syntax is taken as plain words
    ("%", None, []),
])
def test_history_search_words(served, words, key, found):
    listed = ok(served, "/api/history", key or served.token, q=words)["conversations"]
    assert [c["preview"] for c in listed] == found


def test_a_conversation_as_history_show_prints_it_to_its_owner_only(served):
    by_preview = {c["preview"]: c["id"] for c in ok(served, "/api/history", served.token)["conversations"]}
    sky, grass = by_preview["Which colour is the sky?"], by_preview["Which colour is grass?"]
    shown = ok(served, f"/api/history/{sky}", ALICE)
    cli = subprocess.run([sys.executable, "-m", "modelctl", "history", "show", str(sky), "--json"],
                         capture_output=True, text=True, env=serve_env(served.home), timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert shown == json.loads(cli.stdout)
    assert shown["messages"][-1] == {"role": "assistant", "content": "Blue it is."}
    turn = shown["turns"][0]
    assert (turn["model"], turn["prompt"], turn["answer"], turn["key_label"]) == (
        HOSTED, "Which colour is the sky?", "Blue it is.", "alice")
    assert turn["cost"] == pytest.approx(TURN_COST) and turn["prompt_tokens"] == 1000
    assert ok(served, f"/api/history/{grass}", served.token)["turns"][0]["key_label"] == "bob"
    for key, ref in ((ALICE, grass), (BOB, sky), (ALICE, "999999"), (ALICE, "abc"), (ALICE, "9" * 40), (ALICE, "²")):
        refused = get(served, f"/api/history/{ref}", key)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


# --- /api/models ------------------------------------------------------------------------------------


def cli_ids(proc: ServeProcess, *flags: str) -> list[str]:
    listed = subprocess.run([sys.executable, "-m", "modelctl", "list", *flags, "--json"], capture_output=True,
                            text=True, env=serve_env(proc.home), timeout=120)
    assert listed.returncode == 0, listed.stderr
    return [m["id"] for m in json.loads(listed.stdout)]


@pytest.mark.parametrize("params, flags", [
    ({}, ()),
    ({"local": "1"}, ("--local",)),
    ({"free": "true", "task": "chat"}, ("--free", "--task", "chat")),
    ({"provider": "OpenAI"}, ("--provider", "OpenAI")),
])
def test_models_are_the_registry_as_list_filters_it(served, params, flags):
    models = ok(served, "/api/models", ALICE, **params)["models"]
    assert [m["id"] for m in models] == cli_ids(served, *flags)
    for m in models:
        assert set(m) == {"id", "name", "provider", "context_window", "pricing", "local", "free", "tasks", "status"}
        assert (not params.get("local") or m["local"]) and (not params.get("free") or m["free"])


def test_models_searched_and_priced(served):
    models = ok(served, "/api/models", ALICE, q=HOSTED, limit=3)["models"]
    assert len(models) <= 3 and models[0]["id"] == HOSTED
    assert models[0]["pricing"] == {"input": 0.15, "output": 0.60} and models[0]["local"] is False
    local = ok(served, "/api/models", ALICE, q="gemma 270m", local=1)["models"]
    assert local[0]["id"] == "google/gemma-3-270m" and local[0]["local"] is True and "chat" in local[0]["tasks"]
    assert ok(served, "/api/models", ALICE, q="!!!")["models"] == []


# --- auth and bounds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_a_key_when_the_server_has_keys(served, path):
    for headers in ({}, bearer("not-a-key-0123456789")):
        refused = httpx.get(served.url + path, headers=headers, timeout=HANG_S)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("path, params, param", [
    ("/api/usage", {"days": "0"}, "days"),
    ("/api/usage", {"days": "367"}, "days"),
    ("/api/usage", {"days": "-1"}, "days"),
    ("/api/usage", {"days": "9" * 400}, "days"),
    ("/api/history", {"limit": "501"}, "limit"),
    ("/api/history", {"limit": "ten"}, "limit"),
    ("/api/history", {"q": "x" * 201}, "q"),
    ("/api/models", {"local": "maybe"}, "local"),
    ("/api/models", {"task": "juggling"}, "task"),
    ("/api/models", {"limit": "0"}, "limit"),
])
def test_bad_parameters_are_400s_naming_them(served, path, params, param):
    refused = get(served, path, ALICE, **params)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == param and refused.json()["error"]["type"] == "invalid_request_error"


def test_a_keyless_server_shows_everything_to_anyone(served, upstream):
    with ServeProcess(served.home, env={"OPENAI_API_KEY": FAKE_KEY}) as keyless:
        report = ok(keyless, "/api/usage", None, days=7)
        assert report["total"]["turns"] == 3 and report["budgets"] == []
        assert len(ok(keyless, "/api/history", None)["conversations"]) == 3
        assert keyless.stop() == 0


# --- the aggregation, on a real history database ------------------------------------------------------


def logged(history: History, model: str | None, cost: float | None, label: str | None, days_ago: int = 0) -> None:
    """A turn in `history`, dated `days_ago` days before now."""
    _, turn = history.add_turn(Turn(messages=[{"role": "user", "content": "q"}], answer="a", model=model,
                                    prompt_tokens=10, completion_tokens=5, cost=cost, key_label=label))
    if days_ago:
        history.conn.execute("UPDATE turns SET created = created - ? WHERE id = ?", (days_ago * 86400, turn))


def test_usage_report_days_models_and_totals(tmp_path):
    path = tmp_path / "h.sqlite3"
    with History(path) as history:
        logged(history, "a", 0.5, "alice")
        logged(history, "b", None, "alice")
        logged(history, "c", 0.1, "bob", days_ago=2)
        logged(history, "c", 0.2, None, days_ago=2)
        logged(history, "a", 9.0, "alice", days_ago=10)  # before the period
    report = usage_report(History(path), 3, None, [ApiKey("alice", budget_day=0.4)], now=time.time())
    assert [d["date"] for d in report["days"]] == [(date.today() - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert [(d["turns"], d["cost"]) for d in report["days"]] == [(2, pytest.approx(0.3)), (0, None), (2, 0.5)]
    assert [(m["model"], m["cost"]) for m in report["models"]] == [("a", 0.5), ("c", pytest.approx(0.3)), ("b", None)]
    assert report["total"] == {"turns": 4, "prompt_tokens": 40, "completion_tokens": 20, "cost": pytest.approx(0.8)}
    (budget,) = report["budgets"]
    assert budget["spent_day"] == 0.5 and budget["left_day"] == 0.0 and budget["left_month"] is None
    alice = usage_report(History(path), 3, "alice", [])
    assert alice["total"]["turns"] == 2 and [m["model"] for m in alice["models"]] == ["a", "b"]


def test_every_day_fills_the_period_and_totals_keep_unknown_costs_unknown():
    first, since = days_back(3, date(2026, 3, 1))
    assert first == date(2026, 2, 27) and time.localtime(since)[:5] == (2026, 2, 27, 0, 0)
    rows = [{"day": "2026-02-26", "turns": 9, "cost": 9.0}, {"day": "2026-02-28", "turns": 1, "cost": None}]
    days = every_day(rows, first, date(2026, 3, 1))
    assert [(d["day"], d["turns"], d["cost"]) for d in days] == [
        ("2026-02-27", 0, None), ("2026-02-28", 1, None), ("2026-03-01", 0, None)]
    assert total(days)["cost"] is None and total(days)["turns"] == 1
    assert total(rows)["cost"] == 9.0 and total([])["turns"] == 0


def test_a_conversation_with_another_keys_turn_is_nobodys_but_the_owners(tmp_path):
    with History(tmp_path / "h.sqlite3") as history:
        shared, _ = history.add_turn(Turn(messages=[{"role": "user", "content": "q"}], answer="a", key_label="alice"),
                                     name="shared")
        history.add_turn(Turn(messages=[{"role": "user", "content": "q2"}], answer="a", key_label="bob"), shared)
        empty = history.save_conversation(None, [], name="empty")
        assert not history.owned(shared, "alice") and not history.owned(shared, "bob")
        assert not history.owned(empty, "alice")
        assert history.conversations(key_label="alice") == []
        assert len(history.conversations()) == 2


# --- bars -----------------------------------------------------------------------------------------------


def test_bars_are_as_wide_as_the_room_in_blocks_or_hashes():
    rows = [("2026-03-01", 4.0, "$4.0000"), ("a-very-long-model-name-indeed", 1.0, "$1.0000"), ("none", 0.0, "$0")]
    for width in (40, 80, 200):
        for unicode in (True, False):
            lines = chart(rows, width, unicode=unicode)
            assert all(len(f"{ln.label} {ln.bar} {ln.value}") == width for ln in lines)
            assert lines[2].bar.strip() == ""
    ascii_lines = chart(rows, 60, unicode=False)
    assert set("".join(ln.bar for ln in ascii_lines)) <= {"#", " "} and ascii_lines[1].label.endswith("~")
    assert ascii_lines[0].bar.count("#") == len(ascii_lines[0].bar)  # the largest fills the room
    assert ascii_lines[1].bar.count("#") == round(len(ascii_lines[0].bar) / 4)
    assert bar(0.5, 3, unicode=True) == "█▌" and bar(0.001, 10, unicode=True) == "▏"
    assert bar(0.001, 10, unicode=False) == "#" and bar(1.0, 4, unicode=False) == "####"
    assert len(chart(rows, 5, unicode=True)[0].bar) >= 10  # a narrow terminal still gets a bar


# --- modelctl usage --chart -------------------------------------------------------------------------------


@pytest.fixture
def history_of_two_days(modelctl_home):
    with History() as history:
        logged(history, "gpt-4o-mini", 0.03, None)
        logged(history, "gemma-\x1b[31m-270m", None, None)
        logged(history, "gpt-4o-mini", 0.01, None, days_ago=3)


def test_chart_in_a_pipe_is_plain_and_as_wide_as_columns(history_of_two_days, run_modelctl):
    shown = run_modelctl("usage", "--by", "day", "--chart", env={"COLUMNS": "50"})
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Cost per day (3 turns, $0.0400 in all)"
    assert [ln.split()[0] for ln in lines[1:]] == [(date.today() - timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
    assert "\x1b" not in shown.stdout and "█" not in shown.stdout and all(len(ln) <= 50 for ln in lines)
    assert lines[1].count("#") and lines[2].count("#") == 0 and lines[4].count("#") > lines[1].count("#")
    by_model = run_modelctl("usage", "--chart", env={"COLUMNS": "80"}).stdout.splitlines()
    assert by_model[1].startswith("gpt-4o-mini") and by_model[2].startswith("gemma-\\x1b[31m-270m")
    assert run_modelctl("usage", "--json").stdout == run_modelctl("usage", "--json", env={"COLUMNS": "20"}).stdout


def test_chart_at_a_terminal_draws_blocks_in_colour_unless_no_color(history_of_two_days):
    from terminal_run import at_terminal

    shown = at_terminal(["usage", "--chart"], 70)
    assert "█" in shown and "\x1b[" in shown and "#" not in shown
    plain = at_terminal(["usage", "--chart"], 70, NO_COLOR="1")
    assert "#" in plain and "█" not in plain and "\x1b[3" not in plain


def test_chart_and_json_together_are_refused(cli):
    refused = cli("usage", "--chart", "--json")
    assert refused.exit_code == 2 and "--json and --chart" in refused.output

