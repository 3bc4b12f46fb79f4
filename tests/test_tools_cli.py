"""`modelctl chat` with tools, as a user runs it: a model at a loopback OpenAI server that calls
tools, real tools (built-ins, a functions file), approval at a real terminal (pexpect) and refusal
without one, one `--json` object for the whole exchange, and the history it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from terminal_run import MODELCTL, ROWS, terminal_env

from modelctl.version import __version__

CHAT = "/v1/chat/completions"
FUNCTIONS = '''
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b
'''


@pytest.fixture
def upstream(modelctl_home):
    server = FakeServer().start()
    (modelctl_home / "config").mkdir(exist_ok=True)
    (modelctl_home / "config" / "config.toml").write_text(f'[api_base]\nopenai = "{server.url}/v1"\n')
    yield server
    server.stop()


def call_then_answer(server: FakeServer, name: str, arguments: str, answer: str) -> None:
    server.route("POST", CHAT,
                 openai_wire.tool_call_stream(openai_wire.call_deltas(0, "call_1", name, [arguments[:3], arguments[3:]]),
                                              texts=("Let me check. ",)),
                 openai_wire.chat_stream([answer]))


def run(modelctl_home, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1", OPENAI_API_KEY=FAKE_KEY, **(env or {}))
    return subprocess.run([sys.executable, "-m", "modelctl", *args], capture_output=True, text=True, env=full,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_a_hosted_model_calls_a_builtin_and_answers(upstream, modelctl_home):
    call_then_answer(upstream, "modelctl_version", "{}", "You run it.")
    done = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "-T", "builtin", "Which version?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Let me check. \nYou run it.\n"  # each answer of the chain ends its line
    assert "tool call: modelctl_version({})" in done.stderr and f"tool result: modelctl_version: {__version__}" in done.stderr
    first, second = (r.body for r in upstream.calls(CHAT))
    assert [t["function"]["name"] for t in first["tools"]] == ["now", "modelctl_version"]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": __version__}
    listed = run(modelctl_home, "history", "list", "--json")
    assert listed.returncode == 0


def test_json_is_one_object_with_the_calls(upstream, modelctl_home):
    call_then_answer(upstream, "modelctl_version", "{}", "Done.")
    done = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "-T", "modelctl_version", "--json", "Which version?")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["text"] == "Done." and data["rounds"] == 1
    assert data["tool_calls"] == [{"id": "call_1", "name": "modelctl_version", "arguments": "{}", "decision": "allowed",
                                   "result": __version__, "is_error": False, "seconds": data["tool_calls"][0]["seconds"]}]


def test_each_round_trip_of_a_chain_is_priced_before_it_is_sent(upstream, modelctl_home):
    """--max-cost checks every request of a chain: a cap the question (with the tools' definitions)
    stays under, but the question resent with the call and its result does not, stops the chain
    before the second request, with the first answer and the call kept."""
    ask = ("chat", "-m", "gpt-4o-mini", "-T", "builtin", "-n", "5", "Which version?")
    first = json.loads(run(modelctl_home, *ask, "--dry-run", "--json").stdout)["cost_usd"]
    call_then_answer(upstream, "modelctl_version", "{}", "You run it.")
    done = run(modelctl_home, *ask, "--max-cost", f"{first * 1.001:.12f}")
    assert done.returncode == 2, done.stderr
    assert "--max-cost" in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr
    assert f"tool result: modelctl_version: {__version__}" in done.stderr
    assert len(upstream.calls(CHAT)) == 1  # the second round trip was never sent
    (kept,) = json.loads(run(modelctl_home, "history", "list", "--json").stdout)
    assert kept["turns"] == 1
    call_then_answer(upstream, "modelctl_version", "{}", "You run it.")
    done = run(modelctl_home, *ask, "--max-cost", f"{first * 2:.12f}")  # room for both: the chain ends
    assert done.returncode == 0 and done.stdout == "Let me check. \nYou run it.\n", done.stderr
    assert len(upstream.calls(CHAT)) == 3


def test_a_call_needing_approval_without_a_terminal_is_refused(upstream, modelctl_home, tmp_path):
    (tmp_path / "f.py").write_text(FUNCTIONS)
    call_then_answer(upstream, "add", '{"a": 2, "b": 3}', "5")
    done = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "--functions", str(tmp_path / "f.py"), "2+3?")
    assert done.returncode == 2
    assert "needs your approval" in done.stderr and "--yes" in done.stderr
    assert len(upstream.calls(CHAT)) == 1  # nothing was sent after the refusal
    call_then_answer(upstream, "add", '{"a": 2, "b": 3}', "5")
    allowed = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "--functions", str(tmp_path / "f.py"), "--yes", "2+3?")
    assert allowed.returncode == 0, allowed.stderr
    assert upstream.calls(CHAT)[-1].body["messages"][-1]["content"] == "5"


def test_tool_choice_names_a_tool_given(upstream, modelctl_home):
    done = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "-T", "now", "--tool-choice", "add", "hi")
    assert done.returncode == 2 and "--tool-choice 'add'" in done.stderr
    alone = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "--tool-choice", "required", "hi")
    assert alone.returncode == 2 and "needs tools" in alone.stderr
    unknown = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "-T", "no-such-tool", "hi")
    assert unknown.returncode == 4 and unknown.stderr.count("\n") == 1


@pytest.mark.parametrize(("answer", "runs"), [("o", True), ("d", False), ("a", True)])
def test_approval_at_a_real_terminal(upstream, modelctl_home, tmp_path, answer, runs):
    pexpect = pytest.importorskip("pexpect")
    (tmp_path / "f.py").write_text(FUNCTIONS)
    call_then_answer(upstream, "add", '{"a": 2, "b": 3}', "Five.")
    env = terminal_env(100, MODELCTL_HOME=str(modelctl_home), OPENAI_API_KEY=FAKE_KEY, NO_COLOR="1")
    child = pexpect.spawn(MODELCTL, ["chat", "-m", "gpt-4o-mini", "--functions", str(tmp_path / "f.py"), "2+3?"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(ROWS, 100))
    try:
        child.expect(r"the model calls add\(\{\"a\": 2, \"b\": 3\}\)")
        child.expect(r"Allow it\? \[o\]nce, this \[s\]ession, \[a\]lways, \[d\]eny: ")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        shown = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, shown
    sent = upstream.calls(CHAT)[-1].body["messages"][-1]
    assert sent["content"] == ("5" if runs else "the user did not allow this call")
    remembered = modelctl_home / "data" / "tool_approvals.json"
    assert remembered.exists() == (answer == "a")
    if answer == "a":  # the next run is not asked
        call_then_answer(upstream, "add", '{"a": 1, "b": 1}', "Two.")
        again = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "--functions", str(tmp_path / "f.py"), "1+1?")
        assert again.returncode == 0, again.stderr


def test_history_show_has_the_calls_and_their_results(upstream, modelctl_home):
    call_then_answer(upstream, "modelctl_version", "{}", "You run it.")
    assert run(modelctl_home, "chat", "-m", "gpt-4o-mini", "-T", "builtin", "Which version?").returncode == 0
    shown = run(modelctl_home, "history", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "**Tool calls:**\n\n- modelctl\\_version (call\\_1): \\{\\}" in shown.stdout
    assert "**Tool results:**" in shown.stdout and f"> {__version__}" in shown.stdout
    resumed = run(modelctl_home, "chat", "-m", "gpt-4o-mini", "--continue", "--dry-run", "--json", "And?")
    assert resumed.returncode == 0, resumed.stderr


def test_a_local_model_forced_to_call_runs_the_tool_and_goes_on(model_path, modelctl_home):
    done = run(modelctl_home, "chat", "-m", "gemma-3-270m", "-T", "now", "--tool-choice", "now", "--chain-limit", "1",
               "--max-tokens", "24", "--temperature", "0", "--json", "What time is it in Tokyo?",
               env={"MODELCTL_NO_SERVER": "1"})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (record, *_) = data["tool_calls"]
    assert data["rounds"] == 1 and record["name"] == "now" and record["decision"] == "allowed"
    assert not record["is_error"] and record["result"][:4].isdigit()  # an ISO 8601 time
    assert isinstance(json.loads(record["arguments"]), dict)  # the grammar made it a JSON object
    # The second round trip evaluated only what came after the first prompt and its call.
    assert data["usage"]["cached_tokens"] > data["timings"]["prompt_eval_tokens"]
