"""The history database itself, with real SQLite: migrations, writes, search, removal, totals,
export, writers in several processes at once, and prices from the registry."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time

import pytest

from modelctl.errors import NotFoundError, UsageError
from modelctl.history import SCHEMA_VERSION, History, HistoryError, Turn
from modelctl.history.export import to_jsonl, to_markdown
from modelctl.history.schema import connect
from modelctl.history.when import parse_age, parse_since
from modelctl.redaction import redact_data


def turn(prompt: str, answer: str, *, model: str = "m", system: str | None = None, earlier=(), **fields) -> Turn:
    head = [{"role": "system", "content": system}] if system else []
    return Turn(messages=head + list(earlier) + [{"role": "user", "content": prompt}], answer=answer, model=model,
                **fields)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as history:
        yield history


def test_a_new_database_is_current_wal_and_private(tmp_path):
    path = tmp_path / "d" / "history.sqlite3"
    with History(path) as history:
        conn = history.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        history.add_turn(turn("private", "yes"))
        files = list(path.parent.glob("history.sqlite3*"))  # the database, its WAL and shared memory
        assert len(files) == 3 and all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert path.parent.stat().st_mode & 0o077 == 0


def test_an_older_database_is_migrated_and_keeps_its_turns(tmp_path):
    path = tmp_path / "history.sqlite3"
    old = connect(path, steps=1)  # as the first release left it: no search index
    old.execute("INSERT INTO conversations (id, created, updated) VALUES (1, 1.0, 1.0)")
    old.execute("INSERT INTO turns (conversation_id, created, prompt, answer, messages)"
                " VALUES (1, 1.0, 'where is the lighthouse', 'on the cliff', '[]')")
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    old.close()
    with History(path) as history:
        assert history.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        found = history.search("lighthouse")
        assert [t["answer"] for t in found] == ["on the cliff"]


def test_a_database_from_a_newer_modelctl_is_refused(tmp_path):
    path = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match=rf"schema version {SCHEMA_VERSION + 1}; this modelctl knows up to "
                                           rf"{SCHEMA_VERSION} \(upgrade modelctl\)"):
        connect(path)


def test_a_file_that_is_not_a_database_is_one_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match=str(path)):
        History(path).open()


def test_turns_build_a_conversation_that_resumes(db):
    first = turn("Hi", "Hello!", system="Be brief.", prompt_tokens=5, completion_tokens=2)
    conv, t1 = db.add_turn(first, name="work")
    second = turn("More", "Sure.", system="Be brief.",
                  earlier=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    assert db.add_turn(second, conv)[0] == conv
    resumed = db.conversation("work")
    assert resumed is not None and resumed.id == conv and resumed.system == "Be brief."
    assert [m["content"] for m in resumed.messages] == ["Hi", "Hello!", "More", "Sure."]
    assert db.last_conversation().id == conv
    records = db.turns(conv)
    assert [r["prompt"] for r in records] == ["Hi", "More"] and records[0]["id"] == t1
    assert records[0]["session"] == "work" and records[0]["prompt_tokens"] == 5
    listed = db.conversations()
    assert listed[0]["turns"] == 2 and listed[0]["first_prompt"] == "Hi" and listed[0]["models"] == ["m"]


def test_a_session_name_is_unique(db):
    work, _ = db.add_turn(turn("a", "b"), name="work")
    other, _ = db.add_turn(turn("c", "d"))
    with pytest.raises(UsageError, match="session 'work' already exists"):
        db.save_conversation(None, [], conversation=other, name="work")
    # A chat that started the session at the same moment as another logs into the same one.
    assert db.add_turn(turn("e", "f"), name="work")[0] == work
    assert [t["prompt"] for t in db.turns(work)] == ["a", "e"]
    assert db.save_conversation("sys", [{"role": "user", "content": "x"}], conversation=other, name="other") == other
    assert db.conversation("other").messages == [{"role": "user", "content": "x"}]


def test_full_text_search_covers_prompts_answers_and_system_messages(db):
    db.add_turn(turn("tell me about penguins", "they live in the south"))
    db.add_turn(turn("weather?", "rainy", system="You are a meteorologist"))
    db.add_turn(turn("penguin recipes", "no"))
    assert {t["prompt"] for t in db.search("penguin*")} == {"tell me about penguins", "penguin recipes"}
    assert [t["prompt"] for t in db.search("south")] == ["tell me about penguins"]
    assert [t["prompt"] for t in db.search("meteorologist")] == ["weather?"]
    assert "[south]" in db.search("south")[0]["snippet"]
    assert db.search("penguins NOT south") == []
    # Text that is not FTS5 syntax is searched for as words.
    db.add_turn(turn("state-of-the-art", "x"))
    assert [t["prompt"] for t in db.search('state-of-the-art "')] == ["state-of-the-art"]
    assert db.search('"') == []
    with pytest.raises(UsageError, match="give words"):
        db.search("  ")


def test_removal_by_id_and_by_age(db):
    a, _ = db.add_turn(turn("one", "1"))
    b, _ = db.add_turn(turn("two", "2"))
    assert db.remove_conversations([a, 999]) == 1
    assert db.conversation(a) is None and db.search("one") == []
    db.conn.execute("UPDATE turns SET created = created - 40 * 86400")
    db.conn.execute("UPDATE conversations SET updated = updated - 40 * 86400")
    c, _ = db.add_turn(turn("three", "3"))
    assert db.count_older_than(time.time() - 30 * 86400) == 1
    assert db.remove_older_than(time.time() - 30 * 86400) == (1, 1)
    assert db.conversation(b) is None and db.conversation(c) is not None


def test_retention_prunes_old_turns_when_a_turn_is_written(db):
    db.add_turn(turn("old", "x"))
    db.conn.execute("UPDATE turns SET created = created - 3 * 86400")
    db.conn.execute("UPDATE conversations SET updated = updated - 3 * 86400")
    db.add_turn(turn("new", "y"), retention_days=2)
    assert [t["prompt"] for t in db.turns()] == ["new"]
    assert len(db.conversations()) == 1


def test_usage_totals_by_model_and_day(db):
    db.add_turn(turn("a", "b", model="x", prompt_tokens=10, completion_tokens=5, cost=0.5))
    db.add_turn(turn("c", "d", model="x", prompt_tokens=1, completion_tokens=1))
    db.add_turn(turn("e", "f", model="y", prompt_tokens=3, completion_tokens=4, cost=0.25))
    rows = {r["model"]: r for r in db.usage()}
    assert rows["x"] == {"model": "x", "turns": 2, "prompt_tokens": 11, "completion_tokens": 6, "cost": 0.5,
                         "priced_turns": 1, "cached_tokens": 0, "cache_saved": None}
    assert rows["y"]["cost"] == 0.25
    days = db.usage(by="day")
    assert len(days) == 1 and days[0]["turns"] == 3 and days[0]["day"] == time.strftime("%Y-%m-%d")
    assert db.usage(since=time.time() + 60) == []
    with pytest.raises(UsageError, match="--by 'week'"):
        db.usage(by="week")


def test_export_formats(db):
    conv, _ = db.add_turn(turn("# not a heading", "line one\n\nline two", system="sys"), name="s")
    db.add_turn(turn("again", "ok", system="sys", cost=0.001, prompt_tokens=1, completion_tokens=2), conv)
    turns = db.turns()
    lines = [json.loads(line) for line in to_jsonl(turns)]
    assert [t["prompt"] for t in lines] == ["# not a heading", "again"]
    assert lines[1]["messages"][-1] == {"role": "user", "content": "again"} and lines[1]["session"] == "s"
    md = "".join(to_markdown(turns))
    assert md.startswith(f"# Conversation {conv} (s)\n")
    assert "> # not a heading" in md and "> line one\n>\n> line two" in md
    assert md.count("**System:**") == 1 and "cost: $0.001000" in md


def test_migration_6_adds_the_key_label_and_what_each_label_spent(tmp_path):
    """A request to `serve` keeps the label of its API key; `spent` sums a label's costs since a
    time through an index that holds them (no table row is read)."""
    path = tmp_path / "history.sqlite3"
    old = connect(path, steps=5)
    old.execute("INSERT INTO conversations (id, created, updated) VALUES (1, 1.0, 1.0)")
    old.execute("INSERT INTO turns (conversation_id, created, prompt, answer, messages, cost)"
                " VALUES (1, 1.0, 'before', 'the key label', '[]', 0.5)")
    old.close()
    with History(path) as history:
        assert history.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (before,) = history.turns()
        assert "key_label" not in before  # a turn of the CLI: no key, no field
        history.add_turn(turn("a", "b", cost=0.25, key_label="alice"))
        history.add_turn(turn("c", "d", cost=0.125, key_label="alice"))
        history.add_turn(turn("e", "f", key_label="alice"))  # its price unknown
        history.add_turn(turn("g", "h", cost=4.0, key_label="bob"))
        history.add_turn(turn("i", "j", cost=8.0))
        assert history.spent("alice", 0.0) == 0.375 and history.spent("bob", 0.0) == 4.0
        assert history.spent("carol", 0.0) == 0.0 and history.spent("alice", time.time() + 60) == 0.0
        plan = " ".join(row[-1] for row in history.conn.execute(
            "EXPLAIN QUERY PLAN SELECT coalesce(sum(cost), 0.0) FROM turns WHERE key_label = ? AND created >= ?",
            ("alice", 0.0)))
        assert "COVERING INDEX turns_by_key_label" in plan
        records = history.turns()
    assert [r.get("key_label") for r in records] == [None, "alice", "alice", "alice", "bob", None]
    # The label is not a credential: the redaction every output passes through keeps it.
    assert redact_data(records[1])["key_label"] == "alice"
    assert "cost: $0.250000; key: alice" in "".join(to_markdown(records))


def test_migration_7_keeps_the_tools_an_answer_called(tmp_path):
    """An answer that called tools keeps its calls: in the turn, and in the conversation's state
    (so `--continue` goes on from them); a turn without calls has no such field."""
    path = tmp_path / "history.sqlite3"
    old = connect(path, steps=6)
    old.execute("INSERT INTO conversations (id, created, updated) VALUES (1, 1.0, 1.0)")
    old.execute("INSERT INTO turns (conversation_id, created, prompt, answer, messages) VALUES (1, 1.0, 'q', 'a', '[]')")
    old.close()
    calls = [{"id": "call_1", "name": "now", "arguments": '{"tz": "UTC"}'}]
    with History(path) as history:
        assert history.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 7
        conversation, _ = history.add_turn(Turn(messages=[{"role": "user", "content": "time?"}], answer="",
                                                tool_calls=calls))
        records = history.turns()
        state = history.require(str(conversation)).messages
    assert "tool_calls" not in records[0] and records[1]["tool_calls"] == calls
    assert state[-1] == {"role": "assistant", "content": "", "tool_calls": calls}


def test_unknown_conversation_is_not_found(db):
    with pytest.raises(NotFoundError, match="no session 'nope'"):
        db.require("nope")
    with pytest.raises(NotFoundError, match="no conversation 7"):
        db.require("7")


def _writer(path: str, worker: int, count: int) -> None:
    from pathlib import Path

    with History(Path(path)) as history:
        conv = None
        for i in range(count):
            conv, _ = history.add_turn(turn(f"worker {worker} turn {i}", "ok"), conv)


def run_processes(target, *arg_lists) -> None:
    """One spawned process per argument list, all started before any is waited for; each must
    exit 0."""
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=target, args=args) for args in arg_lists]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0


def test_writers_in_several_processes_lose_no_turn(tmp_path):
    path = tmp_path / "history.sqlite3"
    run_processes(_writer, *[(str(path), w, 25) for w in range(3)])
    with History(path) as history:
        assert len(history.turns()) == 75
        assert len(history.conversations()) == 3
        assert history.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _create_and_log(path: str, worker: int) -> None:
    from pathlib import Path

    with History(Path(path)) as history:
        history.add_turn(turn(f"worker {worker}", "ok"), name="s")


@pytest.mark.parametrize("attempt", range(3))
def test_processes_that_create_the_database_and_a_session_at_once_all_land(tmp_path, attempt):
    """The first use of a history, in several processes at once: creating the file, the switch
    to WAL, every migration and the session race, and no process fails or loses its turn."""
    path = tmp_path / "history.sqlite3"
    run_processes(_create_and_log, *[(str(path), w) for w in range(6)])
    with History(path) as history:
        assert sorted(t["prompt"] for t in history.turns()) == [f"worker {w}" for w in range(6)]
        assert [c["name"] for c in history.conversations()] == ["s"]


def test_ages_and_dates():
    assert parse_age("30d", "--older-than") == 30 * 86400
    assert parse_age("2W", "--older-than") == 14 * 86400 and parse_age("90m", "x") == 5400
    with pytest.raises(UsageError, match="--older-than '30 days'"):
        parse_age("30 days", "--older-than")
    assert parse_since("7d", "--since", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("2026-01-31", "--since") == time.mktime((2026, 1, 31, 0, 0, 0, 0, 0, -1))
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        parse_since("yesterday", "--since")


def test_prices_from_the_registry(tmp_path):
    from registries import model, write_registry

    from modelctl.registry import load_registry
    from modelctl.registry.pricing import Price, cost, deployment_price

    priced = model("p/m", {"kind": "openai", "model": "m"},
                   {"kind": "mistral", "id": "cheap", "model": "m", "cost_output": 1.0},
                   access={"free_tier": False, "local_capable": False, "cost_input": 2.0, "cost_output": 8.0})
    free = model("p/free", {"kind": "openai", "model": "f"})
    reg = load_registry(write_registry(tmp_path / "r.toml", priced, free))
    entry = reg.get("p/m")
    assert deployment_price(entry, entry.deployment("openai")) == Price(2.0, 8.0)
    assert deployment_price(entry, entry.deployment("cheap")) == Price(2.0, 1.0)  # overrides one by one
    assert deployment_price(reg.get("p/free"), reg.get("p/free").deployment()) is None
    assert deployment_price(None, None) is None
    assert cost(Price(2.0, 8.0), 1_000_000, 500_000) == pytest.approx(6.0)
    assert cost(Price(2.0, 8.0), 1200, 300) == pytest.approx(0.0048)


def _asked(system: str | None, *texts: str) -> list[dict]:
    """A request: the system message, then user and assistant messages in turn."""
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]


def test_a_request_that_goes_on_from_a_conversation_is_found_in_it(db):
    first = _asked("Be brief.", "Hi")
    conv, _ = db.add_turn(Turn(messages=first, answer="Hello.", model="m", key_label="alice"))
    other, _ = db.add_turn(Turn(messages=_asked(None, "Hi"), answer="Hello.", model="m", key_label="alice"))
    since = time.time() - 60
    going_on = _asked("Be brief.", "Hi", "Hello.", "And then?")
    assert db.continued(going_on, "alice", since) == conv
    assert db.continued(_asked(None, "Hi", "Hello.", "And then?"), "alice", since) == other  # no system: the other
    db.add_turn(Turn(messages=going_on, answer="Then this.", model="m", key_label="alice"), conv)
    assert db.continued(going_on + [{"role": "assistant", "content": "Then this."},
                                    {"role": "user", "content": "More."}], "alice", since) == conv
    # what does not go on from it: a changed answer or system, the same messages and no more
    assert db.continued(_asked("Be brief.", "Hi", "Hullo.", "And then?"), "alice", since) is None
    assert db.continued(_asked("Be long.", "Hi", "Hello.", "And then?"), "alice", since) is None
    assert db.continued(going_on[:-1] + [{"role": "assistant", "content": "Then this."}], "alice", since) is None
    # another key's, or no key's, or one from before `since`
    assert db.continued(going_on, "bob", since) is None and db.continued(going_on, None, since) is None
    assert db.continued(going_on, "alice", time.time() + 60) is None
    assert db.continued([], "alice", since) is None


def test_a_conversation_without_keys_is_continued_by_a_request_without_one(db):
    conv, _ = db.add_turn(Turn(messages=_asked(None, "Hi"), answer="Hello.", model="m"))
    db.add_turn(Turn(messages=_asked(None, "Other"), answer="Yes.", model="m", key_label="alice"))
    assert db.continued(_asked(None, "Hi", "Hello.", "Go on."), None, time.time() - 60) == conv
    assert db.continued(_asked(None, "Other", "Yes.", "Go on."), None, time.time() - 60) is None


def test_a_conversation_named_by_the_client_is_continued_however_old(db):
    conv, _ = db.add_turn(Turn(messages=_asked(None, "Hi"), answer="Hello.", model="m", key_label="alice"))
    other, _ = db.add_turn(Turn(messages=_asked(None, "Hi"), answer="Hello.", model="m", key_label="alice"))
    going_on = _asked(None, "Hi", "Hello.", "Go on.")
    later = time.time() + 3600  # both are older than the window
    assert db.continued(going_on, "alice", later) is None
    assert db.continued(going_on, "alice", later, conversation=conv) == conv
    assert db.continued(going_on, "alice", later, conversation=other) == other
    assert db.continued(going_on, "bob", later, conversation=conv) is None  # not bob's
    assert db.continued(_asked(None, "Bye", "Hello.", "Go on."), "alice", later, conversation=conv) is None


def test_migration_8_hashes_the_state_of_conversations_written_from_then_on(tmp_path):
    """A conversation from before is found only when named; one written after, by its hash."""
    path = tmp_path / "history.sqlite3"
    old = connect(path, steps=7)
    old.execute("INSERT INTO conversations (id, created, updated, messages) VALUES (1, ?, ?, ?)",
                (time.time(), time.time(), json.dumps(_asked(None, "Hi", "Hello."))))
    old.execute("INSERT INTO turns (conversation_id, created, prompt, answer, messages) VALUES (1, 1.0, 'Hi', 'Hello.',"
                " '[]')")
    old.close()
    going_on = _asked(None, "Hi", "Hello.", "Go on.")
    with History(path) as history:
        assert history.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 8
        assert history.continued(going_on, None, 0.0) is None
        assert history.continued(going_on, None, 0.0, conversation=1) == 1
        history.add_turn(Turn(messages=going_on, answer="Gone.", model="m"), 1)
        assert history.continued(going_on + [{"role": "assistant", "content": "Gone."},
                                             {"role": "user", "content": "On."}], None, 0.0) == 1
