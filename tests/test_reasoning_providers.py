"""Reasoning from each provider, parted from the answer: the fields and blocks each sends it in
(OpenAI-compatible `reasoning_content`, Anthropic `thinking` blocks, Gemini `thought` parts,
Ollama `message.thinking`, `<think>` tags in the text), --json's `reasoning`, what a pipe gets,
and --no-think / --reasoning-effort in each provider's request. Loopback servers speak each
provider's documented wire format."""

from __future__ import annotations

import json

import pytest
from providers import anthropic_wire, gemini_wire, mistral_wire, ollama_wire, openai_wire
from providers.kits import KIT

from modelctl.backends.base import GenerationParams
from modelctl.chat.session import ChatSession

COMPATIBLE, ANTHROPIC, GEMINI, OLLAMA = (KIT[k] for k in ("openai-compatible", "anthropic", "gemini", "ollama"))
OPENAI, MISTRAL = KIT["openai"], KIT["mistral"]
CHAT = "/v1/chat/completions"


def ask(backend, params=GenerationParams()):
    session = ChatSession(backend, params)
    reply = session.ask("Why is the sky blue?")
    splits = list(reply.splits())
    return reply, splits, session


def test_openai_compatible_reasoning_content(server, open_kit):
    server.route("POST", COMPATIBLE.chat_path, openai_wire.chat_stream(
        ["Rayleigh ", "scattering."], reasoning=("Light ", "scatters."), reasoning_tokens=5))
    reply, splits, session = ask(open_kit(COMPATIBLE))
    assert reply.text == "Rayleigh scattering." and reply.reasoning == "Light scatters."
    assert reply.reasoning_tokens == 5 and reply.usage.to_dict()["reasoning_tokens"] == 5
    assert [s.reasoning for s in splits if s.reasoning] == ["Light ", "scatters."]
    assert session.messages[-1] == {"role": "assistant", "content": "Rayleigh scattering."}


def test_think_tags_in_a_servers_text(server, open_kit):
    """A server that leaves the tags in the content (no reasoning parser): parted all the same."""
    server.route("POST", COMPATIBLE.chat_path, openai_wire.chat_stream(["<thi", "nk>Short", " thought</th", "ink>\n\nBlue."]))
    reply, _, session = ask(open_kit(COMPATIBLE))
    assert (reply.reasoning, reply.text) == ("Short thought", "Blue.")
    assert reply.reasoning_tokens is None  # a server's chunks are not tokens, and none were counted
    assert session.messages[-1]["content"] == "Blue."


def test_anthropic_thinking_blocks(server, open_kit):
    server.route("POST", ANTHROPIC.chat_path, anthropic_wire.message_stream(["Blue."], thinking=("Hmm, ", "light.")))
    reply, _, _ = ask(open_kit(ANTHROPIC), GenerationParams(reasoning_effort="low", max_tokens=500))
    assert (reply.reasoning, reply.text) == ("Hmm, light.", "Blue.")
    body = server.calls(ANTHROPIC.chat_path)[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 1524  # the budget counts against max_tokens: room is left for the answer


def test_gemini_thought_parts(server, open_kit):
    server.route("POST", GEMINI.chat_path, gemini_wire.stream(["Blue."], thoughts=("Scattering.",), thoughts_tokens=7))
    reply, _, _ = ask(open_kit(GEMINI), GenerationParams(think=True))
    assert (reply.reasoning, reply.text, reply.reasoning_tokens) == ("Scattering.", "Blue.", 7)
    assert server.calls(GEMINI.chat_path)[0].body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}


def test_mistral_thinking_parts(server, open_kit):
    server.route("POST", MISTRAL.chat_path, mistral_wire.chat_stream(["Blue."], thoughts=("Scatter", "ing.")))
    reply, _, _ = ask(open_kit(MISTRAL), GenerationParams(reasoning_effort="low"))
    assert (reply.reasoning, reply.text) == ("Scattering.", "Blue.")
    assert "reasoning_effort" not in server.calls(MISTRAL.chat_path)[0].body  # Mistral has no such field


def test_ollama_thinking(server, open_kit):
    server.route("POST", OLLAMA.chat_path, ollama_wire.chat_stream(["Blue."], thinking=("Let me ", "see.")))
    reply, _, _ = ask(open_kit(OLLAMA), GenerationParams(reasoning_effort="high"))
    assert (reply.reasoning, reply.text) == ("Let me see.", "Blue.")
    assert server.calls(OLLAMA.chat_path)[0].body["think"] == "high"


@pytest.mark.parametrize(("kit", "params", "expected"), [
    (OPENAI, GenerationParams(reasoning_effort="medium"), {"reasoning_effort": "medium"}),
    (COMPATIBLE, GenerationParams(think=False), {"chat_template_kwargs": {"enable_thinking": False}}),
    (ANTHROPIC, GenerationParams(think=False), {"thinking": {"type": "disabled"}}),
    (GEMINI, GenerationParams(think=False), {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}),
    (GEMINI, GenerationParams(reasoning_effort="high"),
     {"generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 24576}}}),
    (OLLAMA, GenerationParams(think=False), {"think": False}),
])
def test_the_switches_in_each_request(server, open_kit, kit, params, expected):
    server.route("POST", kit.chat_path, kit.stream(["ok"]))
    ask(open_kit(kit), params)
    body = server.calls(kit.chat_path)[0].body
    assert {k: body.get(k) for k in expected} == expected


def test_openai_has_no_thinking_switch_and_sends_none(server, open_kit):
    server.route("POST", OPENAI.chat_path, openai_wire.chat_stream(["ok"]))
    ask(open_kit(OPENAI), GenerationParams(think=False))
    body = server.calls(OPENAI.chat_path)[0].body
    assert "chat_template_kwargs" not in body and "reasoning_effort" not in body


# --- the command line ---------------------------------------------------------------------------

def served(server, cli, *args):
    return cli("chat", "--api-base", f"{server.url}/v1", "-m", "served", "Why?", *args)


def test_json_has_the_reasoning_apart(server, cli):
    server.route("POST", CHAT, openai_wire.chat_stream(["Blue."], reasoning=("Think.",), reasoning_tokens=3))
    r = served(server, cli, "--json", "--reasoning-effort", "low")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "Blue." and data["reasoning"] == "Think."
    assert data["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "reasoning_tokens": 3}
    assert server.calls(CHAT)[0].body["reasoning_effort"] == "low"
    server.route("POST", CHAT, openai_wire.chat_stream(["Plain."]))
    data = json.loads(served(server, cli, "--json").stdout)
    assert data["reasoning"] is None and "reasoning_tokens" not in data["usage"]


@pytest.mark.parametrize("think", ["hide", "show"])
def test_piped_stdout_never_has_the_reasoning(server, cli, think):
    server.route("POST", CHAT, openai_wire.chat_stream(["Blue."], reasoning=("Secret ", "musing."), reasoning_tokens=3))
    r = served(server, cli, "--think", think)
    assert r.exit_code == 0, r.output
    assert r.stdout == "Blue.\n"
    if think == "hide":
        assert r.stderr == "[thought for 3 tokens]\n"
    else:
        assert r.stderr == "Secret musing.\n\n"


def test_reasoning_flags_are_checked(server, cli):
    r = served(server, cli, "--think", "loud")
    assert r.exit_code == 2 and "--think 'loud': expected show or hide" in r.stderr
    r = served(server, cli, "--reasoning-effort", "extreme")
    assert r.exit_code == 2 and "expected low, medium or high" in r.stderr
    r = served(server, cli, "--no-think", "--reasoning-effort", "low")
    assert r.exit_code == 2 and "contradict" in r.stderr
    assert not server.calls(CHAT)


def test_set_think_and_effort_in_a_session(server, open_kit):
    from modelctl.errors import UsageError

    session = ChatSession(open_kit(COMPATIBLE))
    assert session.set_param("think", "off").think is False
    assert session.set_param("reasoning-effort", "HIGH").reasoning_effort == "high"
    assert session.set_param("think", "none").think is None
    with pytest.raises(UsageError, match="reasoning_effort takes low, medium, high"):
        session.set_param("reasoning_effort", "max")
