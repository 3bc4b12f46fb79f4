"""What modelctl writes stays whole, whatever happens around it: chats that log into the same new
session at once all land; a history that cannot be written (a full disk, a damaged file, a lock
held too long, a read-only database) is a warning after the answer, never the chat's end; the
Markdown export keeps fields from shaping the document.

Real SQLite, real processes (a loopback OpenAI-compatible server answers the chats), real limits
on the file system (RLIMIT_FSIZE in the child, SQLite's own max_page_count)."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from providers import openai_wire

from modelctl.history import History, HistoryError, Turn
from modelctl.history.export import to_markdown

CHAT = "/v1/chat/completions"


def modelctl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelctl", *args]


def child_env(home, **extra: str) -> dict[str, str]:
    return {**os.environ, "MODELCTL_HOME": str(home), "NO_COLOR": "1", "MODELCTL_RETRIES": "0", **extra}


def history_path(home):
    return home / "data" / "history.sqlite3"


def disk_room(limit: int | None):
    """A `preexec_fn` for a child whose files may grow to `limit` bytes and no further, as on a
    disk with that much room left (RLIMIT_FSIZE, with SIGXFSZ ignored so that a write past it
    fails with EFBIG instead of killing the child); None: no limit."""
    if limit is None:
        return None

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def turn(prompt: str, answer: str = "ok", **fields) -> Turn:
    return Turn(messages=[{"role": "user", "content": prompt}], answer=answer, **fields)


# --- chats that start the same session at once ---------------------------------------------------


@pytest.mark.parametrize("session, existing_db", [("same", False), ("Ünïcode session ☂", True)])
def test_chats_that_start_the_same_session_at_once_all_land(server, modelctl_home, session, existing_db):
    """Six chat processes start the same new session; the server answers none of them until all
    six have asked, so every one logs its turn at the same moment."""
    chats = 6
    if existing_db:
        with History(history_path(modelctl_home)) as history:
            history.add_turn(turn("an earlier chat"))
    server.route("POST", CHAT, openai_wire.chat_stream(["answer"]))
    server.routes[f"POST {CHAT}"][0].hold = (0, threading.Barrier(chats))  # type: ignore[assignment]
    procs = [subprocess.Popen(modelctl_cmd("chat", "--api-base", f"{server.url}/v1", "-m", "m",
                                           "--session", session, f"question {i}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(modelctl_home))
             for i in range(chats)]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    assert [(code, out, err) for (out, err), code in results] == [(0, "answer\n", "")] * chats
    with History(history_path(modelctl_home)) as history:
        found = history.require(session)
        assert sorted(t["prompt"] for t in history.turns(found.id)) == [f"question {i}" for i in range(chats)]
        assert len(history.conversations()) == 1 + existing_db
        assert history.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- a history that cannot be written ------------------------------------------------------------


def _filled(history: History) -> None:
    """SQLite's own limit on the database's pages: the next page it needs is SQLITE_FULL."""
    pages = history.conn.execute("PRAGMA page_count").fetchone()[0]
    history.conn.execute(f"PRAGMA max_page_count = {pages}")


def _read_only(history: History) -> None:
    history.conn.execute("PRAGMA query_only = 1")


@pytest.mark.parametrize("damage, said", [
    (_filled, "the disk is full"),
    (_read_only, "read-only"),
])
def test_a_failed_write_is_one_history_error_and_leaves_nothing(tmp_path, damage, said):
    with History(tmp_path / "history.sqlite3") as history:
        conv, _ = history.add_turn(turn("kept"), name="s")
        damage(history)
        for attempt in (turn("lost", "x" * 100_000), turn("lost too", "z" * 20_000)):
            with pytest.raises(HistoryError, match=said):
                history.add_turn(attempt, conv)
            with pytest.raises(HistoryError, match=said):
                history.add_turn(attempt, name="new session")
        assert [t["prompt"] for t in history.turns()] == ["kept"]
        assert [c["name"] for c in history.conversations()] == ["s"]


def test_a_lock_held_too_long_is_one_history_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as history:
        history.add_turn(turn("kept"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with History(path, busy_timeout=0.05) as history, pytest.raises(HistoryError, match="locked too long"):
            history.add_turn(turn("waits"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _big_answer(server, size: int = 300_000):
    server.route("POST", CHAT, openai_wire.chat_stream(["y" * size]))


def _chat(server, home, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(modelctl_cmd("chat", "--api-base", f"{server.url}/v1", "-m", "m", *args),
                          capture_output=True, text=True, env=child_env(home), timeout=120,
                          preexec_fn=disk_room(limit))


@pytest.mark.parametrize("args", [("hi",), ("--session", "work", "hi"), ("--json", "hi")])
def test_a_disk_that_fills_while_logging_is_a_warning_after_the_answer(server, modelctl_home, args):
    """The answer is bigger than the disk allows the history to grow: the write fails inside its
    transaction, the answer stands and the chat exits 0."""
    _big_answer(server)
    done = _chat(server, modelctl_home, *args, limit=128 << 10)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["text"] if "--json" in args else done.stdout.rstrip("\n")
    assert answer == "y" * 300_000
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: warning: history database "), done.stderr
    assert "this chat is no longer logged" in lines[0] and "Traceback" not in done.stderr
    with History(history_path(modelctl_home)) as history:  # nothing half-written stayed
        assert history.turns() == []
        assert history.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("first_damaged_page", [1, 2, 4])
def test_a_damaged_database_is_a_warning_in_chat_and_one_error_in_history(server, modelctl_home, first_damaged_page):
    server.route("POST", CHAT, openai_wire.chat_stream(["fine"]))
    assert _chat(server, modelctl_home, "hi").returncode == 0
    path = history_path(modelctl_home)
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # the header stays: the damage is found when pages are read
        fh.seek(4096 * first_damaged_page)
        fh.write(b"\xa5" * (size - 4096 * first_damaged_page))
    done = _chat(server, modelctl_home, "again")
    assert done.returncode == 0 and done.stdout == "fine\n"
    assert done.stderr.startswith("modelctl: warning: history database ") and "damaged" in done.stderr
    listed = subprocess.run(modelctl_cmd("history", "list"), capture_output=True, text=True,
                            env=child_env(modelctl_home), timeout=60)
    assert listed.returncode == 1
    assert listed.stderr.startswith("modelctl: error: history database ") and "damaged" in listed.stderr
    assert "unexpected" not in listed.stderr and len(listed.stderr.splitlines()) == 1


@pytest.mark.parametrize("ref", ["²", "١٢", "99999999999999999999", "9223372036854775808"])
def test_ids_that_are_no_conversation_are_not_found(tmp_path, ref):
    from modelctl.errors import NotFoundError

    with History(tmp_path / "history.sqlite3") as history:
        history.add_turn(turn("a"))
        assert history.conversation(ref) is None
        with pytest.raises(NotFoundError, match="no (session|conversation)"):
            history.require(ref)


# --- the Markdown export -------------------------------------------------------------------------


HOSTILE_FIELDS = [
    "m\n\n# Injected heading\n",
    "m\r## also a heading",
    "model *bold* _it_ `code` [link](http://x.example) <b>html</b> &amp; ![img](x)",
    "m\u2028# after a line separator",
    "m \x1b[2J\x1b]0;title\x07",
    "m ###",
    "m | table | row |",
]


@pytest.mark.parametrize("hostile", HOSTILE_FIELDS)
def test_fields_in_the_markdown_export_are_text(hostile):
    from markdown_it import MarkdownIt

    turns = [{"conversation": 1, "session": hostile, "id": 7, "model": hostile, "created": "2025-01-01T00:00:00",
              "system": None, "prompt": "q", "answer": "a", "finish_reason": hostile, "prompt_tokens": None,
              "completion_tokens": None, "cost": None, "error": hostile}]
    text = "".join(to_markdown(turns))
    assert "\x1b" not in text and "\u2028" not in text and "\r" not in text
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    headings = [t.tag for t in tokens if t.type == "heading_open"]
    assert headings == ["h1", "h2"]  # the conversation and its one turn: nothing injected
    inline = [c for t in tokens if t.type == "inline" for c in t.children or []]
    assert not [c.type for c in inline if c.type not in ("text", "em_open", "em_close", "strong_open", "strong_close")]
    # The only emphasis is the export's own: **User:**, **Assistant:** and the tail around the
    # finish reason and the error.
    assert sum(c.type == "strong_open" for c in inline) == 2 and sum(c.type == "em_open" for c in inline) == 1
    assert not [t for t in tokens if t.type.startswith(("table", "html", "bullet_list", "hr"))]


# --- task outputs --------------------------------------------------------------------------------


def _task(server, home, cwd, *args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(modelctl_cmd(*args[:1], "--api-base", f"{server.url}/v1", *args[1:]), capture_output=True,
                          text=True, env=child_env(home), cwd=cwd, timeout=120, preexec_fn=disk_room(limit))


@pytest.mark.parametrize("asked", [1, 2, 10])
def test_a_server_answering_more_images_than_asked_for_makes_only_those(server, modelctl_home, tmp_path, asked):
    from providers import task_wire

    server.route("POST", "/v1/images/generations", task_wire.images(*[task_wire.png(8, 8)] * 500))
    done = _task(server, modelctl_home, tmp_path, "image", "-m", "my-sdxl", "-n", str(asked), "--json", "a cat")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["images"]) == asked
    assert len(list(tmp_path.iterdir())) == asked


@pytest.mark.parametrize("args, existing", [
    (("-o", "out.png"), None),
    (("-o", "out.png", "--force"), b"the old picture"),
    (("-o", "."), None),
    (("-n", "3"), None),
])
def test_an_output_that_does_not_fit_on_the_disk_leaves_no_file(server, modelctl_home, tmp_path, args, existing):
    """The disk takes 100 bytes of any file: the image (more) is not written, and neither an
    empty or short file nor a temporary one stays; a file --force would replace is as it was."""
    from providers import task_wire

    server.route("POST", "/v1/images/generations", task_wire.images(*[task_wire.png(64, 64)] * 3))
    if existing is not None:
        (tmp_path / "out.png").write_bytes(existing)
    done = _task(server, modelctl_home, tmp_path, "image", "-m", "my-sdxl", *args, "a cat", limit=100)
    assert done.returncode == 1
    assert done.stderr.startswith("modelctl: error: cannot write ") and "File too large" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    left = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert left == ({"out.png": existing} if existing is not None else {})


def test_a_transcript_of_more_segments_than_modelctl_reads_is_refused(server, modelctl_home, tmp_path):
    from providers import task_wire
    from providers.server import Reply

    from modelctl.tasks.results import MAX_ITEMS

    audio = tmp_path / "a.wav"
    audio.write_bytes(task_wire.wav())
    segments = [{"start": 0.0, "end": 0.1, "text": "a"}] * (MAX_ITEMS + 1)
    server.route("POST", "/v1/audio/transcriptions", Reply(json={"text": "a", "segments": segments}))
    done = _task(server, modelctl_home, tmp_path, "transcribe", "-m", "local-whisper", "--json", str(audio))
    assert done.returncode == 7 and done.stdout == ""
    assert f"100,001 segments, more than the {MAX_ITEMS:,} modelctl reads" in done.stderr


# --- stdout that cannot be written ---------------------------------------------------------------


STDOUT_COMMANDS = [
    ("--version",), ("--help",), ("chat", "--help"), ("list",), ("list", "--json"), ("search", "llama"),
    ("show", "gemma-3-270m"), ("show", "gemma-3-270m", "--json"), ("registry", "export"), ("templates",),
    ("history", "list", "--json"), ("history", "export"), ("usage", "--json"),
]


@pytest.mark.parametrize("args", STDOUT_COMMANDS, ids=" ".join)
def test_stdout_on_a_full_device_is_one_line_and_exit_1(modelctl_home, args):
    with History(history_path(modelctl_home)) as history:  # something for the history commands to print
        history.add_turn(turn("q", "a" * 10_000, model="m"))
    with open("/dev/full", "w") as full:
        done = subprocess.run(modelctl_cmd(*args), stdout=full, stderr=subprocess.PIPE, text=True,
                              env=child_env(modelctl_home), timeout=120)
    assert done.returncode == 1
    assert done.stderr == "modelctl: error: cannot write to stdout: No space left on device\n"


@pytest.mark.parametrize("args", [("--json",), (), ("--no-log",), ("--dry-run",)])
def test_a_chat_whose_stdout_is_full_is_one_line_and_exit_1(server, modelctl_home, args):
    server.route("POST", CHAT, openai_wire.chat_stream(["hello ", "world"]))
    with open("/dev/full", "w") as full:
        done = subprocess.run(modelctl_cmd("chat", "--api-base", f"{server.url}/v1", "-m", "m", *args, "hi"),
                              stdout=full, stderr=subprocess.PIPE, text=True, env=child_env(modelctl_home), timeout=120)
    assert (done.returncode, done.stderr) == (1, "modelctl: error: cannot write to stdout: No space left on device\n")


@pytest.mark.parametrize("args, limit", [(("list", "--json"), 100), (("list", "--json"), 20_000), (("list",), 100),
                                         (("registry", "export"), 5000), (("--help",), 100)])
def test_stdout_to_a_file_on_a_full_disk_is_one_line_and_exit_1(modelctl_home, tmp_path, args, limit):
    """The disk fills partway through what is written (one large write or many small ones): the
    error is said, not the output silently cut."""
    with open(tmp_path / "out", "w") as out:
        done = subprocess.run(modelctl_cmd(*args), stdout=out, stderr=subprocess.PIPE, text=True,
                              env=child_env(modelctl_home), timeout=120, preexec_fn=disk_room(limit))
    assert (done.returncode, done.stderr) == (1, "modelctl: error: cannot write to stdout: File too large\n")


# --- an error answer whose body never ends ---------------------------------------------------------


@pytest.fixture
def hostile():
    from hostile_server import HostileServer

    srv = HostileServer().start()
    yield srv
    srv.stop()


def _endless_error(status: int, then: str, ctype: str = "application/json"):
    """Headers with an error status, the start of a body, then pings forever or silence."""
    from hostile_server import Answer

    return Answer(status, {"Content-Type": ctype}, chunks=[b'{"error": {"message": "over'], then=then)


PRIMARY = {  # the failing service: its kind, the path it is asked at, how the registry addresses it
    "openai-compatible": ("/v1/chat/completions", lambda url: {"model": "m", "api_base": f"{url}/v1"}),
    "ollama": ("/api/chat", lambda url: {"tag": "m", "host": url}),
}


def _fallback_registry(tmp_path, kind: str, primary: str, backup: str) -> str:
    from registries import model, write_registry

    deployments = [{"id": "primary", "kind": kind, **PRIMARY[kind][1](primary)},
                   {"id": "backup", "kind": "openai-compatible", "model": "m", "api_base": f"{backup}/v1"}]
    return str(write_registry(tmp_path / "registry.toml",
                              model("t/m", *deployments, tasks=["chat"], context_window=4096,
                                    access={"free_tier": True, "local_capable": True})))


@pytest.mark.parametrize("kind, status, then, retries", [
    ("openai-compatible", 503, "ping", "0"), ("openai-compatible", 503, "hang", "0"),
    ("openai-compatible", 500, "ping", "0"), ("openai-compatible", 529, "hang", "0"),
    ("openai-compatible", 429, "ping", "0"), ("openai-compatible", 503, "ping", "1"),
    ("openai-compatible", 502, "hang", "1"), ("ollama", 503, "ping", "0"), ("ollama", 500, "hang", "1"),
])
def test_fallback_is_taken_for_an_error_whose_body_never_ends(hostile, second_server, modelctl_home, tmp_path,
                                                              kind, status, then, retries):
    path = PRIMARY[kind][0]
    hostile.answer(path, _endless_error(status, then))
    second_server.route("POST", CHAT, openai_wire.chat_stream(["from ", "backup"]))
    registry = _fallback_registry(tmp_path, kind, hostile.url, second_server.url)
    done = subprocess.run(modelctl_cmd("--registry", registry, "chat", "-m", "t/m", "-d", "primary", "--fallback",
                                       "--json", "Hi"), capture_output=True, text=True, timeout=60,
                          env=child_env(modelctl_home, MODELCTL_RETRIES=retries))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["text"] == "from backup" and data["route"]["fallbacks"][0]["status"] == status
    assert hostile.paths.count(path) == 1 + int(retries)


@pytest.mark.parametrize("ctype", ["application/json", "text/html"])
def test_an_error_whose_body_never_ends_is_reported_by_its_status(hostile, modelctl_home, ctype):
    hostile.answer("/v1/chat/completions", _endless_error(502, "ping", ctype))
    done = subprocess.run(modelctl_cmd("chat", "--api-base", f"{hostile.url}/v1", "-m", "m", "Hi"),
                          capture_output=True, text=True, timeout=60, env=child_env(modelctl_home))
    assert done.returncode == 7 and done.stdout == ""
    assert done.stderr.startswith("modelctl: error: ") and "server error (502)" in done.stderr
    assert len(done.stderr.splitlines()) == 1
