"""Tool calling on Anthropic's Messages API and Gemini's generateContent, against loopback servers
that speak each wire: the tools and the tool choice in the request, the calls of an answer
assembled (Anthropic's input streamed in pieces split anywhere, Gemini's whole calls spread over
events), parallel calls and text around them, the calls and their results sent back in each
provider's form, what goes back with a call (Anthropic's thinking blocks, Gemini's thought
signatures and ids), and what is refused: a choice of no tool, --schema with Anthropic tools, a
forced call while Claude thinks, a call without a name, too many calls, too large arguments."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from providers import anthropic_wire, gemini_wire
from providers.kits import KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, ResponseFormat, ToolCall, ToolSpec, collect
from modelctl.backends.tool_calling import MAX_ARGUMENT_BYTES, MAX_TOOL_CALLS
from modelctl.errors import BackendError, UsageError
from modelctl.transport.http_client import StreamInterrupted

ANTHROPIC, GEMINI = KIT["anthropic"], KIT["gemini"]
GEMINI_BASE = f"/v1beta/models/{gemini_wire.MODEL}"
GEMINI_STREAM, GEMINI_WHOLE = f"{GEMINI_BASE}:streamGenerateContent", f"{GEMINI_BASE}:generateContent"

WEATHER = ToolSpec("get_weather", "The weather in a city now.",
                   {"type": "object", "properties": {"city": {"type": "string", "description": "the city"},
                                                     "unit": {"type": ["string", "null"], "enum": ["C", "F", None]}},
                    "required": ["city"], "additionalProperties": False})
CLOCK = ToolSpec("get_time", "The time now.")  # no parameters
TOOLS = (WEATHER, CLOCK)
QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris and Rome?"}]
# Arguments with what a split can fall inside: escapes, quotes, backslashes, non-ASCII, a character
# beyond the BMP (a surrogate pair in UTF-16 and in JSON's \u escapes).
ARGS = {"city": "São Paulo 🌧", "note": 'say "hi" \\ then\nstop', "n": [1, 2.5, None], "deep": {"ok": True}}

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def utf16_pieces(text: str, cuts: list[int]) -> list[str]:
    """`text` cut at UTF-16 code units (so a cut may part a surrogate pair, as a server that splits
    its JSON escapes anywhere does)."""
    units = text.encode("utf-16-le", "surrogatepass")
    n = len(units) // 2
    bounds = [0, *sorted({c % (n + 1) for c in cuts}), n]
    return [units[2 * a:2 * b].decode("utf-16-le", "surrogatepass") for a, b in zip(bounds, bounds[1:])]


def results_of(calls: tuple[ToolCall, ...], *texts: str) -> list[dict]:
    return [{"role": "tool", "tool_call_id": c.id, "name": c.name, "content": t} for c, t in zip(calls, texts)]


def assistant(calls: tuple[ToolCall, ...], text: str = "") -> dict:
    return {"role": "assistant", "content": text, "tool_calls": [c.to_dict() for c in calls]}


def chunks_of(backend, messages, params) -> tuple[list[str], object]:
    texts, final = [], None
    for chunk in backend.chat(messages, params):
        if chunk.text:
            texts.append(chunk.text)
        if chunk.final:
            final = chunk
    return texts, final


# --- Anthropic: the request ---------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "expected"), [
    (None, None), ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ("get_time", {"type": "tool", "name": "get_time"}),
])
def test_anthropic_tools_and_each_tool_choice(server, open_kit, choice, expected):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["ok"]))
    collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS, tool_choice=choice)))
    body = server.requests[0].body
    assert body["tools"] == [
        {"name": "get_weather", "description": "The weather in a city now.", "input_schema": dict(WEATHER.parameters)},
        {"name": "get_time", "description": "The time now.", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body.get("tool_choice") == expected
    assert body["system"] == "Be brief." and body["messages"] == QUESTION[1:]


def test_anthropic_without_tools_sends_none_and_a_free_choice_nothing(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["ok"]))
    collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tool_choice="none")))
    assert "tools" not in server.requests[0].body and "tool_choice" not in server.requests[0].body


@pytest.mark.parametrize(("kit", "params", "message"), [
    (ANTHROPIC, GenerationParams(tools=TOOLS, tool_choice="get_news"), "the tool choice 'get_news' is no tool"),
    (GEMINI, GenerationParams(tools=TOOLS, tool_choice="get_news"), "the tool choice 'get_news' is no tool"),
    (ANTHROPIC, GenerationParams(tool_choice="required"), "'required' needs at least one tool"),
    (GEMINI, GenerationParams(tool_choice="get_time"), "the tool choice 'get_time' is no tool"),
    (ANTHROPIC, GenerationParams(tools=TOOLS, response_format=ResponseFormat({"type": "object"})),
     "Anthropic cannot take --schema with tools"),
    (ANTHROPIC, GenerationParams(tools=TOOLS, tool_choice="required", think=True),
     "Anthropic does not force a tool call (the tool choice 'required') while the model thinks"),
    (ANTHROPIC, GenerationParams(tools=TOOLS, tool_choice="get_time", reasoning_effort="low"),
     "Anthropic does not force a tool call (the tool choice 'get_time') while the model thinks"),
    (ANTHROPIC, GenerationParams(response_format=ResponseFormat({"type": "object"}), think=True),
     "Anthropic does not force a tool call (a --schema answer) while the model thinks"),
])
def test_requests_a_provider_would_refuse_are_usage_errors_before_sending(server, open_kit, kit, params, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        collect(open_kit(kit).chat(QUESTION, params))
    assert server.requests == []


def test_anthropic_thinking_leaves_the_choice_free(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["ok"]))
    collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS, tool_choice="auto", think=True)))
    body = server.requests[0].body
    assert body["tool_choice"] == {"type": "auto"} and body["thinking"]["type"] == "enabled"


# --- Anthropic: the calls of an answer ------------------------------------------------------------


def test_anthropic_text_then_parallel_calls_streamed(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.text_block("Let me ", "check."),
        anthropic_wire.tool_block("toolu_01A", "get_weather", '{"ci', 'ty": "Par', 'is"}'),
        anthropic_wire.tool_block("toolu_01B", "get_weather", '{"city"', ': "Rome", "unit": "C"}'),
        anthropic_wire.tool_block("toolu_01C", "get_time"),
    ]))
    texts, final = chunks_of(open_kit(ANTHROPIC), QUESTION, GenerationParams(tools=TOOLS))
    assert texts == ["Let me ", "check."]
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls == (ToolCall("toolu_01A", "get_weather", '{"city": "Paris"}'),
                                ToolCall("toolu_01B", "get_weather", '{"city": "Rome", "unit": "C"}'),
                                ToolCall("toolu_01C", "get_time", "{}"))
    assert final.usage.completion_tokens == 9


@PROPERTY
@given(cuts_a=st.lists(st.integers(0, 10_000), max_size=14), cuts_b=st.lists(st.integers(0, 10_000), max_size=14),
       ascii_only=st.booleans())
def test_anthropic_input_split_anywhere_is_assembled_exactly(server, open_kit, cuts_a, cuts_b, ascii_only):
    text = json.dumps(ARGS, ensure_ascii=ascii_only)
    other = json.dumps({"city": "Zürich", "unit": "F"}, ensure_ascii=not ascii_only)
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.tool_block("toolu_01A", "get_weather", *utf16_pieces(text, cuts_a)),
        anthropic_wire.tool_block("toolu_01B", "get_weather", *utf16_pieces(other, cuts_b)),
    ]))
    _, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert [c.arguments for c in final.tool_calls] == [text, other]
    assert final.tool_calls[0].arguments_json() == ARGS


def test_anthropic_input_split_inside_a_surrogate_pair_is_one_character(server, open_kit):
    text = json.dumps(ARGS, ensure_ascii=False)
    middle = len(text[:text.index("🌧")].encode("utf-16-le")) // 2 + 1  # between the pair's two halves
    pieces = utf16_pieces(text, [middle])
    assert pieces[0].endswith("\ud83c") and pieces[1].startswith("\udf27")
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.tool_block("toolu_01A", "get_weather", *pieces)]))
    _, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert final.tool_calls[0].arguments == text


def test_anthropic_whole_answer_with_calls(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_message([
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
    ]))
    text, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS, extra={"stream": "false"})))
    assert text == "Checking." and final.finish_reason == "tool_calls"
    assert final.tool_calls == (ToolCall("toolu_01A", "get_weather", '{"city": "Paris"}'),
                                ToolCall("toolu_01B", "get_time", "{}"))


def test_anthropic_a_tool_named_answer_is_a_call_without_schema(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.tool_block("toolu_01A", "answer", '{"x": 1}')]))
    text, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=(ToolSpec("answer"),))))
    assert text == "" and final.tool_calls == (ToolCall("toolu_01A", "answer", '{"x": 1}'),)


def test_anthropic_input_given_whole_at_the_block_start(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.tool_block("toolu_01A", "get_weather", start_input={"city": "Oslo"})]))
    _, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert final.tool_calls[0].arguments_json() == {"city": "Oslo"}


def test_anthropic_calls_of_an_answer_cut_at_max_tokens_are_not_given(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.text_block("Let me"), anthropic_wire.tool_block("toolu_01A", "get_weather", '{"city": "Pa')],
        stop_reason="max_tokens"))
    text, final = collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert text == "Let me" and final.finish_reason == "length" and final.tool_calls == ()


def test_anthropic_a_stream_cut_off_mid_call_is_interrupted(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.text_block("Checking."), anthropic_wire.tool_block("toolu_01A", "get_weather", '{"ci', 'ty": 1}')],
        drop_after=8))
    with pytest.raises(StreamInterrupted):
        collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))


# --- Anthropic: calls and results sent back -----------------------------------------------------------


def test_anthropic_calls_and_results_go_back_as_tool_use_and_tool_result_blocks(server, open_kit):
    backend = open_kit(ANTHROPIC)
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.text_block("Checking."),
        anthropic_wire.tool_block("toolu_01A", "get_weather", '{"city": "Paris"}'),
        anthropic_wire.tool_block("toolu_01B", "get_weather", '{"city": "Rome"}')]),
        anthropic_wire.message_stream(["Sunny in both."]))
    _, final = collect(backend.chat(QUESTION, GenerationParams(tools=TOOLS)))
    conversation = [*QUESTION, assistant(final.tool_calls, "Checking."),
                    *results_of(final.tool_calls, "18 °C, sun", ""), {"role": "user", "content": "And tomorrow?"}]
    text, last = collect(backend.chat(conversation, GenerationParams(tools=TOOLS)))
    assert text == "Sunny in both." and last.finish_reason == "stop" and last.tool_calls == ()
    assert server.requests[1].body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18 °C, sun"},
                                     {"type": "tool_result", "tool_use_id": "toolu_01B"}]},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_anthropic_results_of_two_turns_stay_in_two_user_turns(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["ok"]))
    first, second = ToolCall("toolu_1", "get_time"), ToolCall("toolu_2", "get_weather", "not json")
    conversation = [*QUESTION, assistant((first,)), *results_of((first,), "noon"),
                    assistant((second,)), *results_of((second,), "error: the arguments are not JSON")]
    collect(open_kit(ANTHROPIC).chat(conversation, GenerationParams(tools=TOOLS)))
    sent = server.requests[0].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[3]["content"] == [{"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]
    assert sent[4]["content"][0]["tool_use_id"] == "toolu_2"


def test_anthropic_a_result_without_its_call_id_is_refused(server, open_kit):
    conversation = [*QUESTION, assistant((ToolCall("toolu_1", "get_time"),)), {"role": "tool", "content": "noon"}]
    with pytest.raises(UsageError, match="a tool result without the id of the call it answers"):
        collect(open_kit(ANTHROPIC).chat(conversation, GenerationParams(tools=TOOLS)))


def test_anthropic_thinking_goes_back_with_the_calls_while_thinking(server, open_kit):
    backend = open_kit(ANTHROPIC)
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream([
        anthropic_wire.thinking_block("Two cities, ", "two calls.", signature="sig-A1"),
        anthropic_wire.tool_block("toolu_01A", "get_weather", '{"city": "Paris"}')]),
        anthropic_wire.message_stream(["Sunny."]))
    params = GenerationParams(tools=TOOLS, think=True)
    chunks = list(backend.chat(QUESTION, params))
    assert "".join(c.reasoning for c in chunks) == "Two cities, two calls."
    calls = chunks[-1].tool_calls
    conversation = [*QUESTION, assistant(calls), *results_of(calls, "sun")]
    collect(backend.chat(conversation, params))
    collect(backend.chat(conversation, GenerationParams(tools=TOOLS)))
    thinking = {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig-A1"}
    call = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    assert server.requests[1].body["messages"][1]["content"] == [thinking, call]
    assert server.requests[2].body["messages"][1]["content"] == [call]  # not thinking: not sent


def test_anthropic_thinking_of_a_whole_answer_goes_back_too(server, open_kit):
    backend = open_kit(ANTHROPIC)
    thinking = [{"type": "thinking", "thinking": "One call.", "signature": "sig-B"},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}]
    call = {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}
    server.route("POST", "/v1/messages", anthropic_wire.blocks_message([*thinking, call]),
                 anthropic_wire.message_stream(["Noon."]))
    params = GenerationParams(tools=TOOLS, reasoning_effort="low", extra={"stream": "false"})
    _, final = collect(backend.chat(QUESTION, params))
    collect(backend.chat([*QUESTION, assistant(final.tool_calls), *results_of(final.tool_calls, "12:00")],
                         GenerationParams(tools=TOOLS, reasoning_effort="low")))
    assert server.requests[1].body["messages"][1]["content"] == [*thinking, call]


def test_anthropic_count_tokens_takes_tool_turns(server, open_kit):
    server.route("POST", "/v1/messages/count_tokens", Reply(json={"input_tokens": 40}))
    call = ToolCall("toolu_1", "get_time")
    assert open_kit(ANTHROPIC).count_tokens([*QUESTION, assistant((call,)), *results_of((call,), "noon")]) == 40
    assert server.requests[0].body["messages"][2] == {
        "role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}]}


# --- Anthropic: what a server may not send ---------------------------------------------------------


@pytest.mark.parametrize(("blocks", "why"), [
    ([anthropic_wire.tool_block("toolu_01A", "", '{}')], "a tool call without a name"),
    ([anthropic_wire.tool_block(f"toolu_{n}", "get_time") for n in range(MAX_TOOL_CALLS + 1)],
     f"more than {MAX_TOOL_CALLS} tool calls in one answer"),
    ([anthropic_wire.tool_block("toolu_01A", "get_weather", '{"city": "', "x" * MAX_ARGUMENT_BYTES, '"}')],
     "the arguments of a call of get_weather exceed 1 MiB"),
    ([anthropic_wire.tool_block("toolu_01A", "get_time"), anthropic_wire.tool_block("toolu_01A", "get_time")],
     "two tool calls with the id 'toolu_01A'"),
])
def test_anthropic_calls_beyond_the_bounds_are_refused(server, open_kit, blocks, why):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_stream(blocks))
    with pytest.raises(StreamInterrupted, match=why):
        collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))


def test_anthropic_tool_input_for_a_text_block_is_refused(server, open_kit):
    events = anthropic_wire.blocks_events([anthropic_wire.text_block("Hi")], "end_turn")
    stray = ("content_block_delta", json.dumps({"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "input_json_delta", "partial_json": "{}"}}))
    server.route("POST", "/v1/messages", Reply(events=[*events[:4], stray, *events[4:]]))
    with pytest.raises(StreamInterrupted, match="tool input for a content block that is no tool call"):
        collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS)))


def test_anthropic_a_whole_answer_with_a_nameless_call_is_refused(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.blocks_message([{"type": "tool_use", "id": "t", "input": {}}]))
    with pytest.raises(BackendError, match="a tool call without a name"):
        collect(open_kit(ANTHROPIC).chat(QUESTION, GenerationParams(tools=TOOLS, extra={"stream": "false"})))


# --- Gemini: the request --------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "expected"), [
    (None, None), ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_gemini_function_declarations_and_each_tool_choice(server, open_kit, choice, expected):
    server.route("POST", GEMINI_STREAM, gemini_wire.stream(["ok"]))
    collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=TOOLS, tool_choice=choice)))
    body = server.requests[0].body
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "The weather in a city now.",
         "parameters": {"type": "OBJECT", "required": ["city"], "properties": {
             "city": {"type": "STRING", "description": "the city"},
             "unit": {"type": "STRING", "nullable": True, "enum": ["C", "F", None]}}}},
        {"name": "get_time", "description": "The time now."},  # no parameters: none sent
    ]}]
    assert body.get("toolConfig") == (None if expected is None else {"functionCallingConfig": expected})


def test_gemini_a_schema_beyond_its_subset_goes_as_json_schema(server, open_kit):
    schema = {"type": "object", "properties": {"when": {"$ref": "#/$defs/day"}}, "$defs": {"day": {"type": "string"}}}
    server.route("POST", GEMINI_STREAM, gemini_wire.stream(["ok"]))
    collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=(ToolSpec("plan", "Plan a day.", schema),))))
    (declaration,) = server.requests[0].body["tools"][0]["functionDeclarations"]
    assert declaration == {"name": "plan", "description": "Plan a day.", "parametersJsonSchema": schema}


def test_gemini_takes_a_schema_and_tools_together(server, open_kit):
    server.route("POST", GEMINI_STREAM, gemini_wire.stream(['{"a": 1}']))
    params = GenerationParams(tools=TOOLS, response_format=ResponseFormat({"type": "object"}))
    collect(open_kit(GEMINI).chat(QUESTION, params))
    body = server.requests[0].body
    assert body["generationConfig"]["responseSchema"] == {"type": "OBJECT"} and len(body["tools"]) == 1


# --- Gemini: the calls of an answer ---------------------------------------------------------------


def test_gemini_text_then_parallel_calls(server, open_kit):
    server.route("POST", GEMINI_STREAM, gemini_wire.parts_stream([
        [{"text": "Let me "}], [{"text": "check."}],
        [gemini_wire.function_call("get_weather", {"city": "Paris"}),
         gemini_wire.function_call("get_weather", {"city": "Rome"}), gemini_wire.function_call("get_time")]]))
    texts, final = chunks_of(open_kit(GEMINI), QUESTION, GenerationParams(tools=TOOLS))
    assert texts == ["Let me ", "check."]
    assert final.finish_reason == "tool_calls" and final.usage.prompt_tokens == 30
    assert final.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                                ToolCall("call_2", "get_weather", '{"city": "Rome"}'),
                                ToolCall("call_3", "get_time", "{}"))


@PROPERTY
@given(groups=st.lists(st.integers(0, 3), min_size=4, max_size=4), texts=st.lists(st.booleans(), min_size=4, max_size=4))
def test_gemini_calls_spread_over_events_keep_their_order(server, open_kit, groups, texts):
    """Four calls in events of any grouping, text here and there: call_1 … call_4 in order."""
    calls = [gemini_wire.function_call("get_weather", {"city": c, "args": ARGS}) for c in ("A", "B", "C", "D")]
    events: list[list[dict]] = []
    for call, size, text in zip(calls, groups, texts):
        if not events or size == 0:
            events.append([])
        events[-1] += [{"text": "·"}] * text + [call]
    server.route("POST", GEMINI_STREAM, gemini_wire.parts_stream(events))
    text, final = collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert text == "·" * sum(texts)
    assert [c.id for c in final.tool_calls] == ["call_1", "call_2", "call_3", "call_4"]
    assert [c.arguments_json()["city"] for c in final.tool_calls] == ["A", "B", "C", "D"]
    assert final.tool_calls[0].arguments_json()["args"] == ARGS


def test_gemini_whole_answer_with_calls(server, open_kit):
    server.route("POST", GEMINI_WHOLE, gemini_wire.parts_whole([
        {"text": "Checking."}, gemini_wire.function_call("get_time", {})]))
    text, final = collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=TOOLS, extra={"stream": "false"})))
    assert text == "Checking." and final.finish_reason == "tool_calls"
    assert final.tool_calls == (ToolCall("call_1", "get_time", "{}"),)


def test_gemini_calls_of_an_answer_cut_at_max_tokens_are_not_given(server, open_kit):
    server.route("POST", GEMINI_STREAM, gemini_wire.parts_stream(
        [[gemini_wire.function_call("get_time")]], finish="MAX_TOKENS"))
    _, final = collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert final.finish_reason == "length" and final.tool_calls == ()


# --- Gemini: calls and results sent back ----------------------------------------------------------


def test_gemini_calls_and_results_go_back_in_the_order_of_the_calls(server, open_kit):
    backend = open_kit(GEMINI)
    server.route("POST", GEMINI_STREAM, gemini_wire.parts_stream([[
        {"text": "Checking."}, gemini_wire.function_call("get_weather", {"city": "Paris"}),
        gemini_wire.function_call("get_time")]]), gemini_wire.stream(["Sunny at noon."]))
    _, final = collect(backend.chat(QUESTION, GenerationParams(tools=TOOLS)))
    weather, clock = final.tool_calls
    # The results come back in another order, and one without the tool's name.
    results = [{"role": "tool", "tool_call_id": clock.id, "content": "12:00"},
               {"role": "tool", "tool_call_id": weather.id, "name": "get_weather", "content": "sun"}]
    conversation = [*QUESTION, assistant(final.tool_calls, "Checking."), *results]
    text, last = collect(backend.chat(conversation, GenerationParams(tools=TOOLS)))
    assert text == "Sunny at noon." and last.finish_reason == "stop"
    assert server.requests[1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": "skip_thought_signature_validator"},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": "sun"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}}]},
    ]


def test_gemini_signatures_and_ids_go_back_with_their_calls(server, open_kit):
    backend = open_kit(GEMINI)
    server.route("POST", GEMINI_STREAM,
                 gemini_wire.parts_stream([[gemini_wire.function_call("get_time", signature="c2lnLTE=", id="fc-7")]]),
                 gemini_wire.parts_stream([[gemini_wire.function_call("get_weather", {"city": "Oslo"})]]),
                 gemini_wire.stream(["Done."]))
    _, first = collect(backend.chat(QUESTION, GenerationParams(tools=TOOLS)))
    assert first.tool_calls == (ToolCall("fc-7", "get_time", "{}"),)
    conversation = [*QUESTION, assistant(first.tool_calls), *results_of(first.tool_calls, "noon")]
    _, second = collect(backend.chat(conversation, GenerationParams(tools=TOOLS)))
    conversation += [assistant(second.tool_calls), *results_of(second.tool_calls, "snow"),
                     {"role": "user", "content": "Thanks."}]
    collect(backend.chat(conversation, GenerationParams(tools=TOOLS)))
    contents = server.requests[2].body["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "get_time", "args": {}, "id": "fc-7"},
                                     "thoughtSignature": "c2lnLTE="}]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "get_time", "response": {"content": "noon"},
                                                          "id": "fc-7"}}]
    # A call of a turn gone by: no placeholder signature (Gemini checks those of the current turn only).
    assert contents[3]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]


def test_gemini_a_result_naming_no_call_nor_tool_is_refused(server, open_kit):
    conversation = [*QUESTION, {"role": "tool", "tool_call_id": "call_9", "content": "noon"}]
    with pytest.raises(UsageError, match="a tool result that names no tool"):
        collect(open_kit(GEMINI).chat(conversation, GenerationParams(tools=TOOLS)))


# --- Gemini: what a server may not send ------------------------------------------------------------


@pytest.mark.parametrize(("parts", "why"), [
    ([gemini_wire.function_call(None, {"city": "Paris"})], "a tool call without a name"),
    ([gemini_wire.function_call("get_time")] * (MAX_TOOL_CALLS + 1), f"more than {MAX_TOOL_CALLS} tool calls"),
    ([gemini_wire.function_call("get_weather", {"city": "x" * MAX_ARGUMENT_BYTES})],
     "the arguments of a call of get_weather exceed 1 MiB"),
    ([gemini_wire.function_call("get_weather", ["Paris"])], "a functionCall's args is a list, not an object"),
])
def test_gemini_calls_beyond_the_bounds_are_refused(server, open_kit, parts, why):
    server.route("POST", GEMINI_STREAM, gemini_wire.parts_stream([parts]))
    with pytest.raises(StreamInterrupted, match=why):
        collect(open_kit(GEMINI).chat(QUESTION, GenerationParams(tools=TOOLS)))
