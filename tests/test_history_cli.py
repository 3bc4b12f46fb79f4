"""`modelctl chat` logs every turn, and `modelctl history` reads them back: across processes,
resumed with --continue and --session (on a loopback OpenAI-compatible server, and from the real
Gemma model to the server), redacted, removed and exported."""

from __future__ import annotations

import json
import sqlite3

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry

CHAT = "/v1/chat/completions"


@pytest.fixture
def priced(server, provider_env, tmp_path):
    """A registry whose model `test/priced` is served by the loopback server at $2/$8 per 1M
    tokens; the key comes from OPENAI_API_KEY."""
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    entry = model("test/priced", {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"},
                  tasks=["chat"], access={"free_tier": False, "local_capable": False,
                                          "cost_input": 2.0, "cost_output": 8.0})
    return str(write_registry(tmp_path / "priced.toml", entry))


def history_db(home):
    return sqlite3.connect(home / "data" / "history.sqlite3")


def test_turns_are_logged_across_processes_and_continued(server, priced, run_modelctl, modelctl_home):
    server.route("POST", CHAT, openai_wire.chat_stream(["Paris", "."], usage=(1200, 300)),
                 openai_wire.chat_stream(["About 2 million."], usage=(1500, 400)),
                 openai_wire.chat_stream(["Blue."], usage=(10, 2)))
    first = run_modelctl("--registry", priced, "chat", "-m", "test/priced", "-s", "Be brief.",
                         "Capital of France?", "--json")
    assert first.returncode == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["cost"] == pytest.approx(0.0048) and one["turn"] == 1 and one["conversation"] == 1
    second = run_modelctl("--registry", priced, "chat", "-m", "test/priced", "--continue", "Its population?")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "About 2 million.\n"
    # The second process sent the first process's conversation again, system message included.
    assert server.calls(CHAT)[1].body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "Its population?"}]
    third = run_modelctl("--registry", priced, "chat", "-m", "test/priced", "Sky colour?", "--debug")
    assert third.returncode == 0 and "debug: cost: $0.000036" in third.stderr

    listed = run_modelctl("history", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    conversations = json.loads(listed.stdout)
    assert [(c["id"], c["turns"], c["first_prompt"]) for c in conversations] == [
        (2, 1, "Sky colour?"), (1, 2, "Capital of France?")]
    assert conversations[1]["cost"] == pytest.approx(0.0048 + 0.0062) and conversations[1]["models"] == ["test/priced"]
    shown = json.loads(run_modelctl("history", "show", "1", "--json").stdout)
    turn = shown["turns"][1]
    assert turn["answer"] == "About 2 million." and turn["finish_reason"] == "stop"
    assert turn["deployment"] == "openai" and turn["deployment_kind"] == "openai" and turn["template"] is None
    assert (turn["prompt_tokens"], turn["completion_tokens"]) == (1500, 400) and turn["system"] == "Be brief."
    assert shown["messages"][-1] == {"role": "assistant", "content": "About 2 million."}


def test_a_session_begun_on_gemma_continues_on_a_server(model_path, server, run_modelctl):
    server.route("POST", CHAT, openai_wire.chat_stream(["Noted."], usage=(30, 2)))
    local = run_modelctl("chat", "-m", str(model_path), "--session", "trip", "-n", "4", "--temperature", "0",
                         "Remember the word heliotrope.", "--json")
    assert local.returncode == 0, local.stderr
    gemma_answer = json.loads(local.stdout)["text"]
    assert json.loads(local.stdout)["cost"] is None  # a local model costs nothing the registry knows
    remote = run_modelctl("chat", "--api-base", f"{server.url}/v1", "-m", "served", "--api-key", FAKE_KEY,
                          "--session", "trip", "Which word?")
    assert remote.returncode == 0, remote.stderr
    assert server.calls(CHAT)[0].body["messages"] == [
        {"role": "user", "content": "Remember the word heliotrope."}, {"role": "assistant", "content": gemma_answer},
        {"role": "user", "content": "Which word?"}]
    turns = json.loads(run_modelctl("history", "show", "trip", "--json").stdout)["turns"]
    assert [(t["model"], t["deployment_kind"]) for t in turns] == [
        (turns[0]["model"], "llama.cpp"), ("served", "openai-compatible")]
    assert turns[0]["template"] == "gemma" and turns[0]["timings"]["first_token_s"] is not None


def test_secrets_are_redacted_before_anything_is_written(server, priced, cli, modelctl_home):
    server.route("POST", CHAT, openai_wire.chat_stream([f"Your key {FAKE_KEY} is safe"]))
    r = cli("--registry", priced, "chat", "-m", "test/priced", "-s", "Fetch https://bob:hunter2pass@example.com/x",
            f"my key is {FAKE_KEY}", "-o", f"user_token={FAKE_KEY}")
    assert r.exit_code == 0, r.output
    data = b"".join(p.read_bytes() for p in (modelctl_home / "data").glob("history.sqlite3*"))
    assert b"my key is" in data or b"Fetch" in data  # the turn is there (in the database or its WAL)
    assert FAKE_KEY.encode() not in data and b"hunter2pass" not in data
    turn = json.loads(cli("history", "show", "1", "--json").stdout)["turns"][0]
    assert turn["prompt"] == "my key is ***" and turn["answer"] == "Your key *** is safe"
    assert "hunter2pass" not in turn["system"] and turn["params"]["extra"]["user_token"] == "***"


def test_no_log_and_the_history_config(server, priced, cli, modelctl_home):
    server.route("POST", CHAT, openai_wire.chat_stream(["ok"]))
    assert cli("--registry", priced, "chat", "-m", "test/priced", "--no-log", "Hi", "--json").exit_code == 0
    assert json.loads(cli("history", "list", "--json").stdout) == []
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[history]\nlog = false\n")
    from modelctl.config import _load_user_config

    _load_user_config.cache_clear()
    r = cli("--registry", priced, "chat", "-m", "test/priced", "Hi", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["turn"] is None
    assert json.loads(cli("history", "list", "--json").stdout) == []
    config.write_text("[history]\nlog = 'no'\n")
    _load_user_config.cache_clear()
    r = cli("--registry", priced, "chat", "-m", "test/priced", "Hi")
    assert r.exit_code == 2 and "history.log must be true or false" in r.output
    config.write_text("[history]\nretention_days = -1\n")
    _load_user_config.cache_clear()
    r = cli("--registry", priced, "chat", "-m", "test/priced", "Hi")
    assert r.exit_code == 2 and "history.retention_days must be at least 0" in r.output


def test_resuming_what_is_not_there(cli, server, priced):
    r = cli("--registry", priced, "chat", "-m", "test/priced", "--continue", "Hi")
    assert r.exit_code == 2 and "nothing to continue" in r.output
    r = cli("--registry", priced, "chat", "-m", "test/priced", "--continue", "--session", "a", "Hi")
    assert r.exit_code == 2 and "--continue and --session" in r.output
    r = cli("--registry", priced, "chat", "-m", "test/priced", "--session", "42", "Hi")
    assert r.exit_code == 2 and "session name '42'" in r.output
    r = cli("--registry", priced, "chat", "-m", "test/priced", "--session", "notes\x1b]0;x\x07", "Hi")
    assert r.exit_code == 2 and "holds control characters" in r.stderr and "\x1b" not in r.stderr
    assert cli("history", "show", "nope").exit_code == 4
    assert server.requests == []


def test_a_history_that_cannot_be_written_does_not_stop_the_chat(server, priced, cli, modelctl_home):
    server.route("POST", CHAT, openai_wire.chat_stream(["still here"]))
    (modelctl_home / "data").mkdir()
    (modelctl_home / "data" / "history.sqlite3").write_bytes(b"garbage" * 1000)
    r = cli("--registry", priced, "chat", "-m", "test/priced", "Hi")
    assert r.exit_code == 0 and r.stdout == "still here\n"
    assert "warning: history database" in r.stderr and "not logged" in r.stderr
    r = cli("history", "list")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "move the file away" in r.stderr


def _chats(cli, priced, *args_list):
    for args in args_list:
        r = cli("--registry", priced, "chat", "-m", "test/priced", *args)
        assert r.exit_code == 0, r.output


def test_rm_by_id_session_and_age(server, priced, cli, modelctl_home):
    server.route("POST", CHAT, openai_wire.chat_stream(["ok"]))
    _chats(cli, priced, ["one"], ["two"], ["--session", "keep", "three"], ["four"])
    r = cli("history", "rm", "1", input="n\n")
    assert r.exit_code == 1 and "Remove 1 conversation (1 turn)?" in r.stderr and "nothing removed" in r.stderr
    r = cli("history", "rm", "1", "2", input="y\n")
    assert r.exit_code == 0 and "removed 2 conversations, 2 turns" in r.stdout
    r = cli("history", "rm", "--session", "keep", "--yes", "--json")
    assert json.loads(r.stdout) == {"turns": 1, "conversations": 1, "ids": [3]}
    _chats(cli, priced, ["five"])
    with history_db(modelctl_home) as db:  # conversation 4 happened 40 days ago
        db.execute("UPDATE turns SET created = created - 40 * 86400 WHERE conversation_id = 4")
        db.execute("UPDATE conversations SET updated = updated - 40 * 86400 WHERE id = 4")
    r = cli("history", "rm", "--older-than", "30d", "--yes")
    assert r.exit_code == 0 and "removed 1 conversation, 1 turn\n" == r.stdout
    assert [c["first_prompt"] for c in json.loads(cli("history", "list", "--json").stdout)] == ["five"]
    assert cli("history", "rm", "99", "--yes").exit_code == 4
    r = cli("history", "rm", "--yes")
    assert r.exit_code == 2 and "give conversation ids, --session NAME or --older-than AGE" in r.output
    r = cli("history", "rm", "--older-than", "soon", "--yes")
    assert r.exit_code == 2 and "--older-than 'soon'" in r.output


def test_search_and_export(server, priced, cli, tmp_path):
    server.route("POST", CHAT, openai_wire.chat_stream(["Penguins live in the south."]),
                 openai_wire.chat_stream(["Bring a coat."]))
    _chats(cli, priced, ["--session", "birds", "Where do penguins live?"], ["What to wear?"])
    found = json.loads(cli("history", "search", "south", "--json").stdout)
    assert [(t["session"], t["prompt"]) for t in found] == [("birds", "Where do penguins live?")]
    assert "[south]" in found[0]["snippet"]
    table = cli("history", "search", "coat").stdout
    assert "What" not in table and "[coat]" in table
    lines = cli("history", "export").stdout.splitlines()
    assert [json.loads(line)["answer"] for line in lines] == ["Penguins live in the south.", "Bring a coat."]
    r = cli("history", "export", "birds", "--format", "markdown", "-o", str(tmp_path / "birds.md"))
    assert r.exit_code == 0 and "exported 1 turn to" in r.stderr
    md = (tmp_path / "birds.md").read_text()
    assert md.startswith("# Conversation 1 (birds)") and "> Where do penguins live?" in md and "coat" not in md
    assert cli("history", "export", "--format", "pdf").exit_code == 2


def test_export_json_is_one_array_of_the_turns_show_json_has(server, priced, cli, tmp_path):
    server.route("POST", CHAT, openai_wire.chat_stream(["Penguins live in the south."]),
                 openai_wire.chat_stream(["Bring a coat."]), openai_wire.chat_stream(["Tea."]))
    _chats(cli, priced, ["--session", "birds", "Where do penguins live?"], ["--session", "birds", "What to wear?"],
           ["A drink?"])
    everything = json.loads(cli("history", "export", "--json").stdout)
    assert [t["answer"] for t in everything] == ["Penguins live in the south.", "Bring a coat.", "Tea."]
    shown = json.loads(cli("history", "show", "birds", "--json").stdout)["turns"]
    assert json.loads(cli("history", "export", "birds", "--json").stdout) == shown == everything[:2]
    assert json.loads(cli("history", "export", "2", "birds", "--json").stdout) == everything[2:] + shown
    r = cli("history", "export", "--json", "-o", str(tmp_path / "all.json"))
    assert r.exit_code == 0 and r.stdout == "" and "exported 3 turns to" in r.stderr
    assert json.loads((tmp_path / "all.json").read_text()) == everything
    lines = cli("history", "export", "--format", "json").stdout.splitlines()  # json: JSON lines, as before
    assert [json.loads(line) for line in lines] == everything
    for fmt in ("jsonl", "markdown", "md"):
        r = cli("history", "export", "--json", "--format", fmt)
        assert r.exit_code == 2 and "--json and --format" in r.stderr and r.stdout == ""
    assert cli("history", "export", "nobody", "--json").exit_code == 4


def test_a_session_saved_without_turns_is_resumed(server, priced, cli, modelctl_home):
    from modelctl.history import History

    with History() as history:  # as `/save draft` leaves it in a chat that is not logged
        history.save_conversation("Be terse.", [{"role": "user", "content": "Hi"},
                                                {"role": "assistant", "content": "Hello."}], name="draft")
    r = cli("history", "show", "draft")
    assert r.exit_code == 0 and "has no logged turns; --json shows its 2 saved messages" in r.stderr
    with History() as history:  # one message is one message
        history.save_conversation(None, [{"role": "user", "content": "Only this"}], name="single")
    assert "--json shows its 1 saved message\n" in cli("history", "show", "single").stderr
    server.route("POST", CHAT, openai_wire.chat_stream(["Fine."]))
    assert cli("--registry", priced, "chat", "-m", "test/priced", "--session", "draft", "How are you?").exit_code == 0
    assert server.calls(CHAT)[0].body["messages"] == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "How are you?"}]
    assert "> How are you?" in cli("history", "show", "draft").stdout


def test_an_answer_cut_off_is_logged_with_its_error(server, priced, cli, provider_env):
    provider_env.setenv("MODELCTL_RETRIES", "0")
    server.route("POST", CHAT, openai_wire.chat_stream(["Half ", "an ", "answer"], drop_after=3))
    r = cli("--registry", priced, "chat", "-m", "test/priced", "Tell me", "--json")
    assert r.exit_code == 7, r.output
    printed = json.loads(r.stdout)
    assert printed["finish_reason"] == "interrupted" and printed["turn"] == 1
    turn = json.loads(cli("history", "show", "1", "--json").stdout)["turns"][0]
    assert turn["finish_reason"] == "interrupted" and turn["answer"] == printed["text"] and turn["answer"]
    assert turn["error"] == printed["error"] and turn["cost"] is None  # no usage was reported
