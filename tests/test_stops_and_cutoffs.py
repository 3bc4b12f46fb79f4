"""Stop strings as users type them (the escapes \\n, \\t, \\r, \\\\, \\uXXXX; real new lines) wherever
they come from — flags, config.toml, an alias, /set — and the line that says an answer was cut
off (one-shot as in the REPL), reasoning models cut off while thinking included. The requests
go to a loopback OpenAI-compatible server, which records what was sent."""

from __future__ import annotations

import json

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from registries import model, write_registry

from modelctl.backends.stops import unescape_stop
from modelctl.errors import UsageError

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize("typed, meant", [
    ("\\n\\n", "\n\n"), ("\\n", "\n"), ("\n", "\n"), ("\n\n", "\n\n"), (" ", " "), ("\t", "\t"),
    ("\\t|\\r\\n", "\t|\r\n"), ("\\\\n", "\\n"), ("a\\\\\\nb", "a\\\nb"), ("\\\\\\\\", "\\\\"),
    ("\\u00e9\\u2028", "é\u2028"), ("\\u00E9", "é"), ("\\u12", "\\u12"), ("\\uZZZZ", "\\uZZZZ"),
    ("\\x41 \\e \\N", "\\x41 \\e \\N"), ("end\\", "end\\"), ("<|im_end|>", "<|im_end|>"),
    ("Ü\\nß", "Ü\nß"), ("", ""),
])
def test_the_escapes(typed, meant):
    assert unescape_stop(typed) == meant


@pytest.mark.parametrize("typed", ["\\ud800", "\\uDFFF", "x\\udc00y"])
def test_half_a_utf16_pair_is_refused_naming_where(typed):
    with pytest.raises(UsageError, match=r"^--stop: \\u[dD]"):
        unescape_stop(typed, "--stop")


@pytest.fixture
def served():
    server = FakeServer().start()
    server.route("POST", CHAT, openai_wire.chat_stream(["Hello"]))
    server.route("POST", "/v1/completions", openai_wire.completion("Hello"))
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path, served):
    """A registry model on the loopback server, and its key."""
    registry = write_registry(tmp_path / "registry.toml", model(
        "t/srv", {"kind": "openai-compatible", "model": "m", "api_base": f"{served.url}/v1"}, tasks=["chat"],
        access={"free_tier": True, "local_capable": True}))
    return {"MODELCTL_REGISTRY": str(registry), "OPENAI_API_KEY": FAKE_KEY}


def sent_stops(served) -> list[str] | None:
    return served.calls(CHAT)[-1].body.get("stop")


@pytest.mark.parametrize("flags, stops", [
    (["--stop", "\\n\\n"], ["\n\n"]),
    (["--stop", "\n"], ["\n"]),  # a real new line is a value, not an empty one
    (["--stop", " "], [" "]),
    (["--stop", "\\n", "--stop", "END", "--stop", "\\\\n"], ["\n", "END", "\\n"]),
    (["--stop", "\\tx\\u0041"], ["\txA"]),
])
def test_stop_flags_reach_the_request(run_modelctl, served, env, flags, stops):
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", *flags, "Hi", env=env)
    assert r.returncode == 0, r.stderr
    assert sent_stops(served) == stops


@pytest.mark.parametrize("value", ["", "\\ud800"])
def test_a_stop_that_is_empty_or_no_text_is_refused(run_modelctl, served, env, value):
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "--stop", value, "Hi", env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--stop" in r.stderr, r.stderr
    assert served.calls(CHAT) == []


def test_complete_reads_the_same_escapes(run_modelctl, served, env):
    r = run_modelctl("complete", "-m", "t/srv", "--no-log", "--stop", "\\n\\n", "--stop", "\n", "def f():", env=env)
    assert r.returncode == 0, r.stderr
    assert served.calls("/v1/completions")[-1].body["stop"] == ["\n\n", "\n"]


def test_config_and_alias_stops_read_the_same_escapes(run_modelctl, served, env):
    """`config set chat.stop '\\n\\n'` (stored as typed) and an alias's stop mean what --stop means;
    a TOML string that already holds a new line stays one."""
    # TOML: a backslash and an n twice (read as --stop reads it), and TOML's own escape of a new line
    assert run_modelctl("config", "set", "chat.stop", '["\\\\n\\\\n", "\\n"]', env=env).returncode == 0
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "--stop", "\\r", "Hi", env=env)
    assert r.returncode == 0, r.stderr
    assert sent_stops(served) == ["\n\n", "\n", "\r"]  # the flag's add to the config's
    assert run_modelctl("alias", "set", "terse", "t/srv", "-o", "stop=\\t", env=env).returncode == 0
    r = run_modelctl("chat", "-m", "terse", "--no-log", "--stop", "\\r", "Hi", env=env)
    assert r.returncode == 0, r.stderr
    assert sent_stops(served) == ["\t", "\r"]  # an alias's stop stands for the config's, as its other defaults
    stored = json.loads(run_modelctl("config", "get", "chat.stop", "--json", env=env).stdout)
    assert stored == ["\\n\\n", "\n"]  # kept as typed; read as new lines when used


def test_set_stop_in_the_repl_reads_the_escapes():
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.session import ChatSession

    session = ChatSession(None, GenerationParams())  # type: ignore[arg-type]  # /set touches no backend
    session.set_param("stop", "\\n\\n")
    session.set_param("stop", "\\\\n")
    assert session.params.stop == ("\n\n", "\\n")
    with pytest.raises(UsageError, match="/set stop"):
        session.set_param("stop", "\\ud800")
    assert session.set_param("stop", "none").stop == ()


# --- an answer cut off --------------------------------------------------------------------------------


def cut(served, **stream) -> None:
    served.route("POST", CHAT, openai_wire.chat_stream(finish="length", **stream))


def test_a_one_shot_answer_cut_at_max_tokens_says_so(run_modelctl, served, env):
    cut(served, texts=["Once upon", " a time"], usage=(9, 8))
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "Tell a story", env=env)
    assert r.returncode == 0 and r.stdout == "Once upon a time\n"
    assert r.stderr == "[stopped at max_tokens (8); --max-tokens N allows more]\n"
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "--no-stream", "Tell a story", env=env)
    assert r.stdout == "Once upon a time\n" and "stopped at max_tokens (8)" in r.stderr
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "--json", "Tell a story", env=env)
    assert r.stderr == "" and json.loads(r.stdout)["finish_reason"] == "length"  # said in the JSON


def test_complete_says_so_too(run_modelctl, served, env):
    served.route("POST", "/v1/completions", openai_wire.completion("Hello", finish="length", usage=(3, 4)))
    r = run_modelctl("complete", "-m", "t/srv", "--no-log", "-n", "4", "--no-stream", "Say", env=env)
    assert r.returncode == 0 and "[stopped at max_tokens (4); --max-tokens N allows more]" in r.stderr


def test_without_max_tokens_a_cut_answer_filled_the_context_window(run_modelctl, served, env):
    cut(served, texts=["and so on"], usage=(9, 8))
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "Tell a story", env=env)
    assert "[stopped: the context window is full; shorten the prompt" in r.stderr


def test_a_whole_answer_says_nothing(run_modelctl, served, env):
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "Hi", env=env)
    assert r.returncode == 0 and r.stderr == ""


def test_a_reasoning_model_cut_off_while_thinking_says_so(run_modelctl, served, env):
    """Nothing of an answer, only reasoning: stderr says so and how long it thought; exit 0 (the
    request was served as asked), and --json has finish_reason "length", the reasoning and no text."""
    cut(served, texts=[], reasoning=("Let me think", " about it"), reasoning_tokens=8, usage=(9, 8))
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "Is 1001 prime?", env=env)
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "[thought for 8 tokens]",
        "[stopped at max_tokens (8) while thinking (after 8 tokens of reasoning), before any answer; "
        "--max-tokens N allows more]",
    ]
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "--json", "Is 1001 prime?", env=env)
    data = json.loads(r.stdout)
    assert r.returncode == 0 and r.stderr == ""
    assert data["finish_reason"] == "length" and data["text"] == "" and data["reasoning"] == "Let me think about it"
    assert data["usage"]["reasoning_tokens"] == 8
    # shown as it comes (--think show): the reasoning, then the same line
    r = run_modelctl("chat", "-m", "t/srv", "--no-log", "-n", "8", "--think", "show", "Is 1001 prime?", env=env)
    assert "Let me think about it" in r.stderr and "while thinking" in r.stderr


def test_the_repl_and_one_shot_share_the_words():
    from types import SimpleNamespace

    from modelctl.chat.render import length_note

    reply = SimpleNamespace(usage=SimpleNamespace(completion_tokens=6), reasoning="", text="Hi", reasoning_tokens=None)
    assert length_note(reply, 6, more="/set max_tokens N", room="…") == \
        "[stopped at max_tokens (6); /set max_tokens N allows more]"
    reply.reasoning, reply.text = "hmm, well, so", " "
    assert length_note(reply, 6, more="--max-tokens N", room="…") == \
        "[stopped at max_tokens (6) while thinking (after about 3 words of reasoning), before any answer; " \
        "--max-tokens N allows more]"
    assert length_note(reply, 100, more="--max-tokens N", room="make room").startswith(
        "[stopped: the context window is full while thinking")
