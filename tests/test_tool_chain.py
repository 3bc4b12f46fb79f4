"""The tool chain: calls decided (allow, ask, deny, no terminal), run, their results sent back in
the order of the calls, the chain and per-answer limits, and what the history keeps. The model is
scripted (ScriptedBackend); the tools are real: the built-ins and a functions file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelctl.backends.base import GenerationParams, ToolCall
from modelctl.backends.scripted import Script, ScriptedBackend
from modelctl.chat.approval import Approver, Remembered, ToolRefused
from modelctl.chat.history_log import TurnLog
from modelctl.chat.opening import Chat
from modelctl.chat.session import ChatSession
from modelctl.chat.tool_chain import ToolRunner
from modelctl.history import History
from modelctl.refs import Name
from modelctl.resolver import Target
from modelctl.tools.toolbox import Toolbox
from modelctl.version import __version__

FUNCTIONS = '''
import threading

SEEN = []


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    SEEN.append(threading.current_thread().name)
    return a + b


def fail(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(reason)
'''


@pytest.fixture
def functions_file(tmp_path) -> Path:
    path = tmp_path / "funcs.py"
    path.write_text(FUNCTIONS)
    return path


def chain(backend: ScriptedBackend, toolbox: Toolbox, approver: Approver | None = None, **limits):
    lines: list[str] = []
    runner = ToolRunner(toolbox, approver or Approver(), show=lines.append, notify=lines.append, **limits)
    session = ChatSession(backend)
    return session, runner, lines


def converse(session: ChatSession, runner: ToolRunner, question: str):
    reply = session.ask(question)
    "".join(reply)
    while runner.goes_on(reply):
        runner.run(session, reply)
        reply = session.resume()
        "".join(reply)
    return reply


def test_a_builtin_call_is_run_and_its_result_read_back(tmp_path):
    backend = ScriptedBackend([Script.calls(ToolCall("call_1", "modelctl_version", "{}"), text="Checking. "),
                               Script.text("It is ", "the version.")])
    with Toolbox.open(["builtin"]) as toolbox:
        session, runner, lines = chain(backend, toolbox)
        reply = converse(session, runner, "Which version?")
    assert reply.text == "It is the version."
    sent = backend.requests[1].messages
    assert sent[-2] == {"role": "assistant", "content": "Checking. ",
                        "tool_calls": [{"id": "call_1", "name": "modelctl_version", "arguments": "{}"}]}
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_1", "name": "modelctl_version", "content": __version__}
    assert runner.rounds == 1 and [r.decision for r in runner.records] == ["allowed"]
    assert any(line.startswith("tool call: modelctl_version({})") for line in lines)


def test_results_go_back_in_the_order_of_the_calls(functions_file):
    calls = [ToolCall(f"call_{i}", "add", json.dumps({"a": i, "b": 100})) for i in range(4)]
    backend = ScriptedBackend([Script.calls(*calls), Script.text("done")])
    with Toolbox.open([], [functions_file]) as toolbox:
        session, runner, _ = chain(backend, toolbox, Approver(yes=True))
        converse(session, runner, "sums")
    results = [m for m in backend.requests[1].messages if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in results] == [(f"call_{i}", str(i + 100)) for i in range(4)]


def test_unknown_tools_failures_and_the_cap_are_results_the_model_reads(functions_file):
    calls = [ToolCall("a", "nope", "{}"), ToolCall("b", "fail", '{"reason": "disk full"}'),
             ToolCall("c", "add", "not json"), ToolCall("d", "add", '{"a": 1, "b": 2}')]
    backend = ScriptedBackend([Script.calls(*calls), Script.text("sorry")])
    with Toolbox.open([], [functions_file]) as toolbox:
        session, runner, _ = chain(backend, toolbox, Approver(yes=True), max_calls=3)
        reply = converse(session, runner, "go")
    assert reply.text == "sorry"
    records = {r.call.id: r for r in runner.records}
    assert records["a"].decision == "unknown tool" and "there is no tool named 'nope'" in records["a"].result
    assert records["b"].is_error and "disk full" in records["b"].result
    assert records["c"].is_error
    assert records["d"].decision == "over the cap" and records["d"].is_error


def test_the_chain_stops_at_its_limit_and_says_so():
    loop = [Script.calls(ToolCall(f"c{i}", "modelctl_version", "{}")) for i in range(5)]
    backend = ScriptedBackend(loop)
    with Toolbox.open(["modelctl_version"]) as toolbox:
        session, runner, lines = chain(backend, toolbox, chain_limit=2)
        reply = converse(session, runner, "again and again")
    assert runner.rounds == 2 and len(backend.requests) == 3
    assert reply.tool_calls and any("the chain stops after 2 round trips" in line for line in lines)
    assert session.messages[-1]["tool_calls"][0]["id"] == "c2"  # asked for, not run


def test_a_call_needing_approval_with_no_terminal_is_refused(functions_file):
    backend = ScriptedBackend([Script.calls(ToolCall("c", "add", '{"a": 1, "b": 2}'))])
    with Toolbox.open([], [functions_file]) as toolbox:
        session, runner, _ = chain(backend, toolbox, Approver(ask=None))
        reply = session.ask("add")
        "".join(reply)
        with pytest.raises(ToolRefused, match="needs your approval.*no terminal") as refused:
            runner.run(session, reply)
    assert "--yes" in str(refused.value)


def test_config_denies_before_anyone_is_asked(functions_file, modelctl_home):
    (modelctl_home / "config").mkdir(exist_ok=True)
    (modelctl_home / "config" / "config.toml").write_text('[tools.add]\napprove = "deny"\n[tools]\napprove = "ask"\n')
    asked: list[str] = []
    backend = ScriptedBackend([Script.calls(ToolCall("c", "add", '{"a": 1, "b": 2}')), Script.text("ok")])
    with Toolbox.open([], [functions_file]) as toolbox:
        session, runner, _ = chain(backend, toolbox, Approver(yes=True, ask=lambda tool, call: asked.append(call.name) or "once"))
        converse(session, runner, "add")
    assert asked == [] and runner.records[0].decision == "denied"
    assert backend.requests[1].messages[-1]["content"] == "the user did not allow this call"


def test_always_is_remembered_for_that_origin_only(functions_file, tmp_path):
    answers = iter(["always"])
    asked: list[str] = []

    def ask(tool, call):
        asked.append(call.name)
        return next(answers)

    remembered = Remembered(tmp_path / "approvals.json")
    with Toolbox.open([], [functions_file]) as toolbox:
        tool = toolbox.get("add")
        call = ToolCall("c", "add", "{}")
        assert Approver(ask=ask, remembered=remembered).allows(tool, call)
        assert Approver(ask=None, remembered=remembered).allows(tool, call)  # a later run: no question
    other = tmp_path / "other" / "funcs.py"
    other.parent.mkdir()
    other.write_text(FUNCTIONS)
    with Toolbox.open([], [other]) as toolbox, pytest.raises(ToolRefused):
        Approver(ask=None, remembered=remembered).allows(toolbox.get("add"), ToolCall("c", "add", "{}"))
    assert asked == ["add"]


def test_session_answers_last_the_session_and_deny_denies(functions_file, tmp_path):
    answers = iter(["session", "deny"])
    approver = Approver(ask=lambda tool, call: next(answers), remembered=Remembered(tmp_path / "a.json"))
    with Toolbox.open([], [functions_file]) as toolbox:
        add, fail = toolbox.get("add"), toolbox.get("fail")
        assert approver.allows(add, ToolCall("1", "add", "{}"))
        assert approver.allows(add, ToolCall("2", "add", "{}"))  # not asked again
        assert not approver.allows(fail, ToolCall("3", "fail", "{}"))
    assert not (tmp_path / "a.json").exists()


def test_the_history_keeps_calls_and_results_and_continue_goes_on_from_them(functions_file):
    backend = ScriptedBackend([Script.calls(ToolCall("c1", "add", '{"a": 2, "b": 3}')), Script.text("5")])
    with History() as history, Toolbox.open([], [functions_file]) as toolbox:
        setup = Chat(Target(Name("scripted"), "scripted", "file", "a scripted model"), backend, GenerationParams())
        log = TurnLog(setup, history, notify=lambda line: None)
        session = ChatSession(backend, setup.params, on_turn=log)
        runner = ToolRunner(toolbox, Approver(yes=True))
        converse(session, runner, "2+3?")
        turns = history.turns()
        state = history.require(str(log.conversation)).messages
    assert turns[0]["tool_calls"] == [{"id": "c1", "name": "add", "arguments": '{"a": 2, "b": 3}'}]
    assert turns[1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "name": "add", "content": "5"}
    assert [m["role"] for m in state] == ["user", "assistant", "tool", "assistant"]


def test_a_forced_choice_holds_for_the_first_answer_only():
    backend = ScriptedBackend([Script.calls(ToolCall("c1", "modelctl_version", "{}")), Script.text("done"),
                               Script.calls(ToolCall("c2", "modelctl_version", "{}")), Script.text("again")])
    with Toolbox.open(["builtin"]) as toolbox:
        session, runner, _ = chain(backend, toolbox)
        session.params = session.params.overlay(tool_choice="modelctl_version")
        converse(session, runner, "version?")
        runner.start(session)  # the next question
        converse(session, runner, "and again?")
    assert [r.params.tool_choice for r in backend.requests] == ["modelctl_version", "auto"] * 2
