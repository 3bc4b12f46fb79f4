"""Typing while an answer streams, in a real terminal (pexpect), with what the session leaves on
the screen and in its scrollback read back through a terminal emulator (pyte).

The answer comes from a loopback server in OpenAI's wire format that holds the stream open after
its first words until the test has typed: the keys reach the terminal while the answer is being
drawn, as a person typing ahead would send them."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest
from providers import openai_wire

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

PROMPT = ">>> "
COLUMNS, ROWS = 100, 30
CHAT_PATH = "/v1/chat/completions"


def spawn(server, home: Path, *args: str):
    env = dict(os.environ, MODELCTL_HOME=str(home), TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    env.pop("NO_COLOR", None)
    exe = Path(sys.executable).with_name("modelctl")
    child = pexpect.spawn(str(exe), ["chat", "--api-base", f"{server.url}/v1", "-m", "served", *args],
                          env=env, encoding="utf-8", timeout=60, dimensions=(ROWS, COLUMNS))
    child.logfile_read = io.StringIO()
    child.expect_exact(PROMPT)
    return child


def leave(child) -> None:
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)


def scrollback(child) -> list[str]:
    """Every line the session left, the scrolled-off ones first, as a terminal shows them."""
    screen = pyte.HistoryScreen(COLUMNS, ROWS, history=10_000)
    pyte.Stream(screen).feed(child.logfile_read.getvalue())
    gone = ["".join(line[x].data for x in range(COLUMNS)).rstrip() for line in screen.history.top]
    return [line for line in gone + [row.rstrip() for row in screen.display] if line]


def index_of(lines: list[str], text: str) -> int:
    found = [i for i, line in enumerate(lines) if text in line]
    assert len(found) == 1, f"{text!r} is on {len(found)} lines of:\n" + "\n".join(lines)
    return found[0]


def test_lines_typed_during_an_answer_are_kept_and_run_in_order(server, tmp_path):
    typed = threading.Event()
    server.route(
        "POST", CHAT_PATH,
        # role, reasoning, "First ": then the answer waits until the test has typed
        openai_wire.chat_stream(["First ", "answer ", "ends here."], reasoning=("Let me think.",),
                                reasoning_tokens=4, hold=(3, typed)),
        openai_wire.chat_stream(["Second answer."]),
        openai_wire.chat_stream(["Third answer."]),
    )
    child = spawn(server, tmp_path / "home")
    try:
        child.sendline("Hello")
        child.expect_exact("First")  # the answer is streaming
        child.send("/set temperature 0\r")
        child.send("and then?\r")
        child.send("part onx\x7fe")  # an unfinished line, edited with backspace
        typed.set()
        child.expect_exact("Second answer.")
        child.expect_exact(PROMPT + "part one")  # the unfinished line waits at the prompt
        child.sendline(" more")
        child.expect_exact("Third answer.")
        leave(child)
    finally:
        child.close(force=True)

    first, second, third = (r.body for r in server.calls(CHAT_PATH))
    assert "temperature" not in first
    assert second["temperature"] == 0  # the /set typed during the first answer, before the next question
    assert second["messages"][-3:] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "First answer ends here."},  # its reasoning is not sent back
        {"role": "user", "content": "and then?"},
    ]
    assert third["messages"][-1] == {"role": "user", "content": "part one more"}

    # Each answer once, no key echoed into it, the typed lines after it as if typed at the prompt;
    # the reasoning is hidden behind one line.
    assert scrollback(child)[1:] == [
        f"{PROMPT}Hello", "First answer ends here.", "[thought for 4 tokens]",
        f"{PROMPT}/set temperature 0", "temperature = 0.0", f"{PROMPT}and then?", "Second answer.",
        f"{PROMPT}part one more", "Third answer.", f"{PROMPT}/exit",
    ]


def test_think_show_dims_the_reasoning_before_the_answer(server, tmp_path):
    server.route("POST", CHAT_PATH, openai_wire.chat_stream(["The answer."], reasoning=("Weighing ", "it up.")))
    child = spawn(server, tmp_path / "home", "--think", "show")
    try:
        child.sendline("Why?")
        child.expect_exact("The answer.")
        leave(child)
    finally:
        child.close(force=True)
    raw = child.logfile_read.getvalue()
    assert "\x1b[2mWeighing \x1b[22m\x1b[2mit up.\x1b[22m" in raw
    lines = scrollback(child)
    assert index_of(lines, "Weighing it up.") < index_of(lines, "The answer.")
    assert not any("thought for" in line for line in lines)


@pytest.mark.parametrize(("typed", "lines", "partial"), [
    ("one\rtwo\r", ["one", "two"], ""),
    ("one\r\ntwo", ["one"], "two"),  # CR LF (a paste) is one line break
    ("hellp\x7f\x7flo\n", ["hello"], ""),  # backspace
    ("wrong words\x15right\n", ["right"], ""),  # Ctrl-U
    ("keep this word\x17that\n", ["keep this that"], ""),  # Ctrl-W
    ("up\x1b[A and\x1bOB left\x1b[1;5D\n", ["up and left"], ""),  # arrow keys are dropped
    ("\x01tab\there\x02", [], "tab\there"),  # other control keys too; a tab stays
])
def test_typed_keys_are_edited_as_a_terminal_edits_lines(typed, lines, partial):
    from modelctl.chat.typeahead import edit

    assert edit(typed) == (lines, partial)
