"""The OpenAI wire format of `modelctl serve` (modelctl/serve/wire.py): request bodies parsed and
checked into requests, every bad one an ApiError naming the field; response objects and SSE
events checked against the official `openai` package's own types, where it is installed."""

from __future__ import annotations

import base64
import copy
import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.backends.base import GenerationParams, ResponseFormat, ToolCall, Usage
from modelctl.backends.images import ImageMessage, images_of
from modelctl.serve.wire import (
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    ApiError,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    chat_chunk,
    chat_response,
    completion_id,
    embeddings_response,
    finish_reason_json,
    parse_chat,
    parse_completion,
    parse_embeddings,
    sse,
    text_chunk,
    text_response,
    usage_json,
)

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [USER], **fields}).encode()


def refused(parse: Any, data: bytes) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(data)
    return info.value


# --- bad bodies ----------------------------------------------------------------------------------

# (raw body, status, param): the body is not JSON the server can read.
RAW_BAD = [
    (b"", 400, None),
    (b"{", 400, None),
    (b"\xff\xfe{}", 400, None),  # not UTF-8
    (b'{"model": "m\xc3"}', 400, None),  # a cut UTF-8 sequence
    (b'{"model": "m", "messages": [], "temperature": NaN}', 400, None),
    (b'{"model": "m", "messages": [], "temperature": -Infinity}', 400, None),
    (b"[]", 400, None),
    (b'"text"', 400, None),
    (b"null", 400, None),
    (b'{"a":' * 65 + b"1" + b"}" * 65, 400, None),  # 65 levels
    (b"[" * 100_000 + b"]" * 100_000, 400, None),  # too deep for the parser itself
    (b'{"max_tokens": 1' + b"0" * 5000 + b"}", 400, None),  # past Python's int conversion limit
    (b"{" + b'"a":{},' * (2**20) + b'"b":1}', 413, None),  # more values than any request needs
]

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
MESSAGES = [USER, {"role": "assistant", "content": "yes"}]

# (fields over a good chat body, param named): each one wrong.
CHAT_BAD = [
    ({"model": None}, "model"),
    ({"model": 5}, "model"),
    ({"model": " "}, "model"),
    ({"model": "m" * 5000}, "model"),
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": {"role": "user"}}, "messages"),
    ({"messages": [USER] * (MAX_MESSAGES + 1)}, "messages"),
    ({"messages": [*MESSAGES, "hi"]}, "messages[2]"),
    ({"messages": [*MESSAGES, {"content": "hi"}]}, "messages[2].role"),
    ({"messages": [*MESSAGES, {"role": "robot", "content": "hi"}]}, "messages[2].role"),
    ({"messages": [*MESSAGES, {"role": True, "content": "hi"}]}, "messages[2].role"),
    ({"messages": [*MESSAGES, {"role": "user", "content": 5}]}, "messages[2].content"),
    ({"messages": [*MESSAGES, {"role": "user"}]}, "messages[2].content"),
    ({"messages": [*MESSAGES, {"role": "system", "content": None}]}, "messages[2].content"),
    ({"messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": PNG_URL}]}]},
     "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                  "image_url": {"url": "data:image/png;base64,!!!"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                  "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]},
     "messages[0].content[0].image_url.url"),  # base64 of "hello": no image
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * (28 * 2**20)}}]}]},
     "messages[0].content[0].image_url.url"),  # more than 20 MB
    ({"messages": [USER, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
    ({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]},
     "messages[1].tool_calls[0].function"),
    ({"messages": [USER, {"role": "assistant", "content": None,
                          "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 3}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools[0].function.name"),
    ({"tools": TOOLS * 2}, "tools[1].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
     "tools[0].function.parameters"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": {"name": "f"}}, "function_call"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"n": 2}, "n"),
    ({"n": 0}, "n"),
    ({"n": "1"}, "n"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2**31}, "max_tokens"),
    ({"max_tokens": 10.0}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"max_tokens": 5, "max_completion_tokens": 0}, "max_completion_tokens"),
    ({"temperature": False}, "temperature"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_k": 10**60}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"top_k": 0.5}, "top_k"),
    ({"seed": 2**40}, "seed"),
    ({"repeat_penalty": -1}, "repeat_penalty"),
    ({"frequency_penalty": 3}, "frequency_penalty"),
    ({"presence_penalty": -2.5}, "presence_penalty"),
    ({"presence_penalty": True}, "presence_penalty"),
    ({"stop": 5}, "stop"),
    ({"stop": ["a", 5]}, "stop[1]"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": ""}, "stop"),
    ({"stop": ["x" * 4097]}, "stop[0]"),
    ({"reasoning_effort": "max"}, "reasoning_effort"),
    ({"reasoning_effort": 1}, "reasoning_effort"),
    ({"think": "yes"}, "think"),
    ({"stream": "true"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"stream_options": True}, "stream_options"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"user": 42}, "user"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {}}, "response_format.type"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": 5, "schema": {}}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "thing"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"$ref": "https://x/s.json"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "("}}}},
     "response_format.json_schema.schema"),
]

COMPLETION_BAD = [
    ({"prompt": None}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": [[1, 2], [3]]}, "prompt"),
    ({"prompt": [None]}, "prompt[0]"),
    ({"suffix": "end"}, "suffix"),
    ({"echo": "yes"}, "echo"),
    ({"best_of": 3}, "best_of"),
    ({"n": 2}, "n"),
    ({"logprobs": 2}, "logprobs"),
    ({"max_tokens": True}, "max_tokens"),
    ({"stop": [""]}, "stop[0]"),
    ({"model": None}, "model"),
]

EMBEDDING_BAD = [
    ({"input": None}, "input"),
    ({"input": []}, "input"),
    ({"input": 5}, "input"),
    ({"input": [1, 2, 3]}, "input"),
    ({"input": [[1, 2]]}, "input"),
    ({"input": ["a", 5]}, "input[1]"),
    ({"input": ["a", ""]}, "input[1]"),
    ({"input": ""}, "input"),
    ({"input": ["a"] * (MAX_EMBEDDING_INPUTS + 1)}, "input"),
    ({"encoding_format": "int8"}, "encoding_format"),
    ({"encoding_format": 1}, "encoding_format"),
    ({"dimensions": 256}, "dimensions"),
    ({"model": []}, "model"),
]


@pytest.mark.parametrize("parse", [parse_chat, parse_completion, parse_embeddings])
@pytest.mark.parametrize("data, status, param", RAW_BAD, ids=range(len(RAW_BAD)))
def test_unreadable_bodies(parse: Any, data: bytes, status: int, param: str | None) -> None:
    error = refused(parse, data)
    assert (error.status, error.param) == (status, param)
    assert error.body()["error"]["type"] == "invalid_request_error"
    assert "\n" not in error.message and len(error.message) < 300


@pytest.mark.parametrize("parse", [parse_chat, parse_completion])
def test_a_number_too_large_for_a_float(parse: Any) -> None:
    data = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "x", "top_p": 1e999}'
    error = refused(parse, data)
    assert (error.status, error.param, error.message) == (400, "top_p", "top_p must be a finite number")


def _check_refusal(parse: Any, good: dict[str, Any], fields: dict[str, Any], param: str) -> ApiError:
    request = {**good, **fields}
    error = refused(parse, json.dumps(request).encode())
    assert (error.status, error.param) == (400, param), error.message
    shape = error.body()
    assert shape == {"error": {"message": error.message, "type": "invalid_request_error", "param": param,
                               "code": error.code}}
    assert error.message and "\n" not in error.message and len(error.message) < 400
    return error


@pytest.mark.parametrize("fields, param", CHAT_BAD, ids=[p for _, p in CHAT_BAD])
def test_bad_chat_requests(fields: dict[str, Any], param: str) -> None:
    _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, fields, param)


@pytest.mark.parametrize("fields, param", COMPLETION_BAD, ids=[p for _, p in COMPLETION_BAD])
def test_bad_completion_requests(fields: dict[str, Any], param: str) -> None:
    _check_refusal(parse_completion, {"model": "m", "prompt": "Once"}, fields, param)


@pytest.mark.parametrize("fields, param", EMBEDDING_BAD, ids=[p for _, p in EMBEDDING_BAD])
def test_bad_embedding_requests(fields: dict[str, Any], param: str) -> None:
    _check_refusal(parse_embeddings, {"model": "m", "input": "text"}, fields, param)


def test_tools_and_tool_messages_take_the_conversations_form() -> None:
    request = parse_chat(json.dumps({
        "model": "m", "tools": [{"type": "function", "function": {
            "name": "now", "description": "The time.", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "now"}},
        "messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": '{"tz": "UTC"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12:00"}]}).encode())
    assert [t.name for t in request.params.tools] == ["now"] and request.params.tool_choice == "now"
    assert request.messages[1] == {"role": "assistant", "content": "",
                                   "tool_calls": [{"id": "call_1", "name": "now", "arguments": '{"tz": "UTC"}'}]}
    assert request.messages[2] == {"role": "tool", "tool_call_id": "call_1", "name": "now", "content": "12:00"}


def test_tool_calls_are_openais_in_answers_and_streams() -> None:
    calls = (ToolCall("call_1", "now", '{"tz": "UTC"}'), ToolCall("call_2", "now", "{}"))
    whole = chat_response("chatcmpl-1", 1, "m", text="", reasoning=None, finish_reason="tool_calls", usage=None,
                          extra=None, tool_calls=calls)
    message = whole["choices"][0]["message"]
    assert message["content"] is None and whole["choices"][0]["finish_reason"] == "tool_calls"
    assert message["tool_calls"][1] == {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    delta = chat_chunk("chatcmpl-1", 1, "m", tool_calls=calls)["choices"][0]["delta"]
    assert [c["index"] for c in delta["tool_calls"]] == [0, 1]
    openai = pytest.importorskip("openai")
    openai.types.chat.ChatCompletion.model_validate(whole)
    openai.types.chat.ChatCompletionChunk.model_validate(chat_chunk("chatcmpl-1", 1, "m", tool_calls=calls))


def test_refusals_say_why() -> None:
    legacy = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, {"functions": TOOLS}, "functions")
    assert legacy.message.startswith("functions and function_call are the old form of tools")
    assert legacy.code == "unsupported_parameter"
    wrong = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES},
                           {"messages": [*MESSAGES, {"role": "user", "content": 5}]}, "messages[2].content")
    assert wrong.message == "messages[2].content must be a string or an array of content parts, not a number"
    assert wrong.code == "invalid_type"
    flag = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, {"max_tokens": True}, "max_tokens")
    assert flag.message == "max_tokens must be an integer, not a boolean"
    bound = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, {"max_completion_tokens": 0},
                           "max_completion_tokens")
    assert bound.message == "max_completion_tokens must be at least 1, not 0"
    image = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, "messages[0].content[0].image_url.url")
    assert image.message.startswith("images: only data: URLs")
    missing = _check_refusal(parse_chat, {"model": "m", "messages": MESSAGES}, {"model": None}, "model")
    assert (missing.message, missing.code) == ("model is required", "missing_required_parameter")
    assert "NaN" in refused(parse_chat, b'{"temperature": NaN}').message
    assert "4300" not in refused(parse_chat, b'{"seed": 1' + b"0" * 5000 + b"}").message


def test_api_error_types_by_status() -> None:
    assert ApiError(404, "no model").body()["error"]["type"] == "invalid_request_error"
    assert ApiError(401, "no key").type == "authentication_error"
    assert ApiError(429, "over budget", code="budget_exceeded").body()["error"]["code"] == "budget_exceeded"
    assert ApiError(502, "upstream").type == "server_error"
    assert ApiError(400, "x", type="custom").type == "custom"


# --- good bodies ---------------------------------------------------------------------------------


def test_chat_request_with_every_parameter() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    request = parse_chat(json.dumps({
        "model": "gemma-3-270m",
        "messages": [{"role": "developer", "content": "Be brief.", "name": "ops"},
                     {"role": "user", "content": "hi", "name": "ann"},
                     {"role": "assistant", "content": "hello", "reasoning_content": "they greet me"},
                     {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}],
        "max_completion_tokens": 64, "temperature": 0, "top_p": 0.9, "top_k": 40, "seed": -1, "stop": "\n\n",
        "repeat_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": 0, "reasoning_effort": "high",
        "stream": True, "stream_options": {"include_usage": True}, "user": "ann", "store": False,
        "metadata": {"a": "b"}, "parallel_tool_calls": True, "tools": [], "tool_choice": "none", "n": 1,
        "logprobs": False, "logit_bias": {}, "service_tier": "auto", "some_future_field": {"x": [1]},
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
    }).encode())
    fmt = ResponseFormat(schema=schema)
    assert request == ChatRequest(
        model="gemma-3-270m",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}, {"role": "user", "content": "one\ntwo"}],
        params=GenerationParams(max_tokens=64, temperature=0.0, top_p=0.9, top_k=40, seed=-1, stop=("\n\n",),
                                repeat_penalty=1.1, reasoning_effort="high", extra={"frequency_penalty": 0.5},
                                response_format=fmt),
        stream=True, include_usage=True, response_format=fmt, user="ann")
    assert type(request.params.temperature) is float


def test_chat_request_minimal() -> None:
    request = parse_chat(body())
    assert request == ChatRequest(model="m", messages=[USER], params=GenerationParams(), stream=False,
                                  include_usage=False, response_format=None, user=None)


@pytest.mark.parametrize("fields, expected", [
    ({"max_tokens": 7}, GenerationParams(max_tokens=7)),
    ({"max_tokens": 7, "max_completion_tokens": 9}, GenerationParams(max_tokens=9)),
    ({"max_tokens": None, "temperature": None, "stop": None}, GenerationParams()),
    ({"stop": ["a", "b"]}, GenerationParams(stop=("a", "b"))),
    ({"stop": []}, GenerationParams()),
    ({"temperature": 1}, GenerationParams(temperature=1.0)),
    ({"reasoning_effort": "none"}, GenerationParams(think=False)),
    ({"reasoning_effort": "minimal"}, GenerationParams(think=False)),
    ({"reasoning_effort": "low"}, GenerationParams(reasoning_effort="low")),
    ({"think": True}, GenerationParams(think=True)),
    ({"think": False}, GenerationParams(think=False)),
    ({"reasoning_effort": "none", "think": True}, GenerationParams(think=True)),
    ({"frequency_penalty": -2, "presence_penalty": 2}, GenerationParams(
        extra={"frequency_penalty": -2.0, "presence_penalty": 2.0})),
    ({"frequency_penalty": 0.0}, GenerationParams()),
    ({"seed": -(2**31)}, GenerationParams(seed=-(2**31))),
    ({"max_tokens": 2**31 - 1}, GenerationParams(max_tokens=2**31 - 1)),
])
def test_generation_parameters(fields: dict[str, Any], expected: GenerationParams) -> None:
    assert parse_chat(body(**fields)).params == expected
    assert parse_completion(json.dumps({"model": "m", "prompt": "x", **fields}).encode()).params == expected


@pytest.mark.parametrize("fmt, expected", [
    ({"type": "text"}, None),
    ({"type": "json_object"}, ResponseFormat()),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
     ResponseFormat(schema={"type": "array"})),
])
def test_response_formats(fmt: dict[str, Any], expected: ResponseFormat | None) -> None:
    request = parse_chat(body(response_format=fmt))
    assert request.response_format == expected == request.params.response_format


def test_stream_options() -> None:
    assert (parse_chat(body(stream=True)).stream, parse_chat(body(stream=True)).include_usage) == (True, False)
    request = parse_chat(body(stream=True, stream_options={"include_usage": False}))
    assert (request.stream, request.include_usage) == (True, False)
    assert parse_chat(body(stream_options=None)).include_usage is False


def test_content_parts_and_images() -> None:
    request = parse_chat(body(messages=[
        {"role": "system", "content": [{"type": "text", "text": "rules"}]},
        {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": "this?"},
                                     {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "DATA:image/jpeg;base64,"
                                                                              + base64.b64encode(PNG).decode()}}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": ""},
    ]))
    first, second, third, fourth, fifth, sixth = request.messages
    assert first == {"role": "system", "content": "rules"} and not isinstance(first, ImageMessage)
    assert second == {"role": "user", "content": "what is\nthis?"}
    (image,) = images_of(second)
    assert (image.media_type, image.data, image.url) == ("image/png", PNG, None)  # the bytes decide the type
    assert third == {"role": "assistant", "content": "a\nno"}
    assert fourth == {"role": "user", "content": ""} and images_of(fourth)[0].data == PNG
    assert fifth == {"role": "assistant", "content": ""}
    assert sixth == {"role": "user", "content": ""}


def test_text_is_cleaned_as_chat_cleans_it() -> None:
    request = parse_chat(b'{"model": "m\\ud800", "messages": [{"role": "user", "content": "a\\udfffb"}], '
                         b'"stop": ["\\ud83d"], "user": "\\udc00"}')
    assert request.model == "m\ufffd"
    assert request.messages == [{"role": "user", "content": "a\ufffdb"}]
    assert request.params.stop == ("\ufffd",)
    assert request.user == "\ufffd"


def test_completion_requests() -> None:
    request = parse_completion(json.dumps({"model": "m", "prompt": ["Once upon"], "max_tokens": 5, "echo": True,
                                           "stream": True, "stream_options": {"include_usage": True},
                                           "suffix": None, "best_of": 1, "logprobs": None, "user": "u"}).encode())
    assert request == CompletionRequest(model="m", prompt="Once upon", params=GenerationParams(max_tokens=5),
                                        stream=True, include_usage=True, echo=True, user="u")
    assert parse_completion(b'{"model": "m", "prompt": ""}').prompt == ""
    assert parse_completion(b'{"model": "m", "prompt": "x"}').echo is False


def test_embedding_requests() -> None:
    assert parse_embeddings(b'{"model": "e", "input": "one"}') == EmbeddingRequest("e", ["one"], "float")
    request = parse_embeddings(json.dumps({"model": "e", "input": ["a", "b"], "encoding_format": "base64",
                                           "dimensions": None, "user": "u"}).encode())
    assert request == EmbeddingRequest("e", ["a", "b"], "base64", user="u")
    assert len(parse_embeddings(json.dumps({"model": "e", "input": ["a"] * MAX_EMBEDDING_INPUTS}).encode()).inputs) \
        == MAX_EMBEDDING_INPUTS


def test_bodies_up_to_64_levels_deep_are_read() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(30):  # the innermost schema at level 64
        schema = {"type": "object", "properties": {"a": schema}}
    fmt = {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema}}
    assert parse_chat(body(response_format=fmt)).response_format == ResponseFormat(schema=schema)
    assert parse_chat(body(extra=json.loads("[" * 63 + "]" * 63))).model == "m"  # the top level and 63 more
    assert refused(parse_chat, body(extra=json.loads("[" * 64 + "]" * 64))).message == \
        "the request body is nested more than 64 levels deep"


# --- arbitrary input -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats()
    | st.text(max_size=8) | st.sampled_from(["user", "assistant", "text", "image_url", "json_schema", "\ud800",
                                             PNG_URL, "data:x;base64,AAAA"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)

GOOD = {
    "chat": {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                     {"type": "image_url", "image_url": {"url": PNG_URL}}]}],
             "stop": ["x"], "stream_options": {"include_usage": True},
             "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}},
    "completion": {"model": "m", "prompt": ["x"], "echo": True, "max_tokens": 3},
    "embeddings": {"model": "m", "input": ["a", "b"], "encoding_format": "float"},
}
PARSERS = {"chat": parse_chat, "completion": parse_completion, "embeddings": parse_embeddings}
FIELDS = ["model", "messages", "prompt", "input", "max_tokens", "max_completion_tokens", "temperature", "top_p",
          "top_k", "seed", "stop", "repeat_penalty", "frequency_penalty", "presence_penalty", "reasoning_effort",
          "think", "stream", "stream_options", "response_format", "user", "n", "best_of", "echo", "suffix",
          "tools", "tool_choice", "logprobs", "encoding_format", "dimensions"]


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (its own included)."""
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found += _places(item, (*path, key))
    return found


def _parse_or_refuse(kind: str, data: bytes) -> None:
    try:
        PARSERS[kind](data)
    except ApiError as error:
        assert 400 <= error.status < 500
        assert error.message and "\n" not in error.message


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kind=st.sampled_from(sorted(PARSERS)), place=st.integers(min_value=0), value=json_values)
def test_any_value_anywhere_in_a_good_body(kind: str, place: int, value: Any) -> None:
    request = copy.deepcopy(GOOD[kind])
    places = _places(request)
    path = places[place % len(places)]
    if not path:
        request = value
    else:
        holder = request
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
    _parse_or_refuse(kind, json.dumps(request).encode())


@SETTINGS
@given(kind=st.sampled_from(sorted(PARSERS)), fields=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_any_fields(kind: str, fields: dict[str, Any]) -> None:
    _parse_or_refuse(kind, json.dumps({**GOOD[kind], **fields}).encode())


@SETTINGS
@given(kind=st.sampled_from(sorted(PARSERS)), data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes(kind: str, data: bytes) -> None:
    _parse_or_refuse(kind, data)


# --- responses -----------------------------------------------------------------------------------

EXTRA = {"model": "gemma-3-270m", "deployment": "local", "kind": "llama.cpp", "cost": 0.0, "cache_saved": None,
         "fallbacks": []}
USAGE = Usage(prompt_tokens=12, completion_tokens=5, reasoning_tokens=2, cached_tokens=8)


def _keys_known(obj: dict[str, Any], model: Any, also: tuple[str, ...] = ()) -> None:
    """Every key of `obj` is a field of the pydantic `model` (the types allow extras, so a
    misspelt key would pass validation unseen)."""
    assert set(obj) <= set(model.model_fields) | set(also), set(obj) - set(model.model_fields)


def test_ids() -> None:
    chat, text = completion_id("chat"), completion_id("text")
    assert chat.startswith("chatcmpl-") and len(chat) == len("chatcmpl-") + 24
    assert text.startswith("cmpl-") and len(text) == len("cmpl-") + 24 and int(text[5:], 16) >= 0
    assert completion_id("chat") != chat
    with pytest.raises(ValueError):
        completion_id("chatcmpl")


def test_finish_reasons() -> None:
    assert [finish_reason_json(r) for r in ("stop", "length", "interrupted", "content_filter", "end_turn", None)] == \
        ["stop", "length", "stop", "content_filter", "stop", "stop"]
    untold = chat_response("c", 0, "m", text="", reasoning=None, finish_reason=None, usage=None, extra=None)
    assert untold["choices"][0]["finish_reason"] == "stop"


def test_usage() -> None:
    assert usage_json(None) is None
    assert usage_json(Usage(3, 4)) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert usage_json(USAGE) == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                                 "prompt_tokens_details": {"cached_tokens": 8},
                                 "completion_tokens_details": {"reasoning_tokens": 2}}


def test_chat_response_is_openais() -> None:
    chat = pytest.importorskip("openai.types.chat")
    response = chat_response("chatcmpl-1", 1700000000, "gemma-3-270m", text="Hello", reasoning="thinking",
                             finish_reason="interrupted", usage=USAGE, extra=EXTRA)
    parsed = chat.ChatCompletion.model_validate(response)
    assert parsed.choices[0].message.content == "Hello"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 8
    assert response["choices"][0]["message"]["reasoning_content"] == "thinking"
    assert response["modelctl"] == EXTRA
    _keys_known(response, chat.ChatCompletion, ("modelctl",))
    _keys_known(response["choices"][0]["message"], chat.ChatCompletionMessage, ("reasoning_content",))
    bare = chat_response("chatcmpl-2", 0, "m", text="", reasoning=None, finish_reason="length", usage=None, extra=None)
    assert "modelctl" not in bare and "reasoning_content" not in bare["choices"][0]["message"]
    assert chat.ChatCompletion.model_validate(bare).choices[0].finish_reason == "length"


def test_chat_stream_is_openais() -> None:
    chat = pytest.importorskip("openai.types.chat")
    stream = [chat_chunk("chatcmpl-1", 5, "m", role=True),
              chat_chunk("chatcmpl-1", 5, "m", reasoning="hmm"),
              chat_chunk("chatcmpl-1", 5, "m", text="Hel"),
              chat_chunk("chatcmpl-1", 5, "m", text="lo"),
              chat_chunk("chatcmpl-1", 5, "m", finish_reason="length"),
              chat_chunk("chatcmpl-1", 5, "m", usage=USAGE, extra=EXTRA)]
    parsed = [chat.ChatCompletionChunk.model_validate(c) for c in stream]
    assert stream[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert stream[1]["choices"][0]["delta"] == {"reasoning_content": "hmm"}
    assert "".join(p.choices[0].delta.content or "" for p in parsed[:-1]) == "Hello"
    assert parsed[4].choices[0].finish_reason == "length" and stream[4]["choices"][0]["delta"] == {}
    assert stream[-1]["choices"] == [] and parsed[-1].usage is not None and parsed[-1].usage.total_tokens == 17
    assert stream[-1]["modelctl"] == EXTRA and all("modelctl" not in c for c in stream[:-1])
    assert all("usage" not in c for c in stream[:-1])
    for c in stream:
        _keys_known(c, chat.ChatCompletionChunk, ("modelctl",))
        for choice in c["choices"]:
            _keys_known(choice["delta"], chat.chat_completion_chunk.ChoiceDelta, ("reasoning_content",))


def test_text_completion_is_openais() -> None:
    types = pytest.importorskip("openai.types")
    response = text_response("cmpl-1", 9, "m", text="Once upon a time", finish_reason="stop", usage=Usage(2, 4),
                             extra=EXTRA)
    parsed = types.Completion.model_validate(response)
    assert parsed.choices[0].text == "Once upon a time" and parsed.usage is not None
    _keys_known(response, types.Completion, ("modelctl",))
    last = text_chunk("cmpl-1", 9, "m", text=" end", finish_reason="interrupted")
    assert types.Completion.model_validate(last).choices[0].finish_reason == "stop"
    middle = text_chunk("cmpl-1", 9, "m", text="a")
    assert middle["choices"] == [{"index": 0, "text": "a", "logprobs": None, "finish_reason": None}]
    usage = text_chunk("cmpl-1", 9, "m", usage=Usage(2, 4), extra=EXTRA)
    assert types.Completion.model_validate(usage).usage is not None and usage["choices"] == []


def test_embeddings_are_openais() -> None:
    vectors = [[0.5, -1.25, 3.0], [0.0, 1e-3, -2.5]]
    floats = embeddings_response("e", vectors, 7, "float")
    assert floats == {"object": "list", "model": "e", "usage": {"prompt_tokens": 7, "total_tokens": 7},
                      "data": [{"object": "embedding", "index": 0, "embedding": vectors[0]},
                               {"object": "embedding", "index": 1, "embedding": vectors[1]}]}
    encoded = embeddings_response("e", vectors, 7, "base64", extra=EXTRA)
    packed = base64.b64decode(encoded["data"][1]["embedding"])
    assert struct.unpack("<3f", packed) == pytest.approx(vectors[1], rel=1e-6)
    assert encoded["modelctl"] == EXTRA
    types = pytest.importorskip("openai.types")
    types.CreateEmbeddingResponse.model_validate(floats)
    _keys_known(floats, types.CreateEmbeddingResponse)


def test_sse_framing() -> None:
    assert sse("[DONE]") == b"data: [DONE]\n\n"
    chunk = chat_chunk("chatcmpl-1", 5, "m", text="héllo \"x\"\n")
    event = sse(chunk)
    assert event.startswith(b"data: {") and event.endswith(b"}\n\n") and event.count(b"\n") == 2
    assert b", " not in event and b": " not in event[6:] and "héllo".encode() in event
    assert json.loads(event[6:]) == chunk
    assert sse(chat_chunk("c", 1, "m", text="a\ud800b")) == sse(chat_chunk("c", 1, "m", text="a\ufffdb"))
    with pytest.raises(ValueError):
        sse("two\nlines")


def test_sse_events_parse_with_openais_client() -> None:
    """The client's own SSE decoder reads a whole stream of sse() events back into chunks."""
    decoder = pytest.importorskip("openai._streaming").SSEDecoder()
    stream = [chat_chunk("chatcmpl-1", 5, "m", role=True), chat_chunk("chatcmpl-1", 5, "m", text="hi ✓"),
              chat_chunk("chatcmpl-1", 5, "m", finish_reason="stop")]
    raw = b"".join(sse(c) for c in stream) + sse("[DONE]")
    events = list(decoder.iter_bytes(iter([raw[:7], raw[7:40], raw[40:]])))
    assert [e.data for e in events][-1] == "[DONE]"
    assert [json.loads(e.data) for e in events[:-1]] == stream
