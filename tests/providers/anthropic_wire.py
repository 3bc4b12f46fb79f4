"""Anthropic's Messages API: the named server-sent events (`message_start`,
`content_block_start`, `ping`, `content_block_delta` with `text_delta`, `content_block_stop`,
`message_delta` with `stop_reason` and output tokens, `message_stop`; `error` mid-stream) and
errors as `{"type": "error", "error": {"type", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from providers.server import Reply

MODEL = "claude-3-5-haiku-20241022"


def events(texts: list[str], stop_reason: str = "end_turn", input_tokens: int = 12, output_tokens: int = 6,
           thinking: tuple[str, ...] = (), cache: dict[str, Any] | None = None,
           final_usage: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The events of one answer; with `thinking`, an extended-thinking block (thinking_delta
    events, then its signature) comes before the text block. `cache` adds to message_start's
    usage (`cache_read_input_tokens`, `cache_creation_input_tokens`), `final_usage` to
    message_delta's (newer API versions repeat the input counts there)."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
            "model": MODEL, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **(cache or {})}}}),
    ]
    index = 0
    if thinking:
        out.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "thinking", "thinking": ""}}))
        out += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "thinking_delta", "thinking": t}}) for t in thinking]
        out += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0})]
        index = 1
    out += [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    out += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                     "delta": {"type": "text_delta", "text": t}}) for t in texts]
    out += [
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens, **(final_usage or {})}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [(name, json.dumps(data)) for name, data in out]


def message_stream(texts: list[str], stop_reason: str = "end_turn", *, drop_after: int | None = None,
                   headers: dict | None = None, thinking: tuple[str, ...] = (), **usage: Any) -> Reply:
    return Reply(events=events(texts, stop_reason, thinking=thinking, **usage), drop_after=drop_after,
                 headers=headers or {})


def error_event(type: str, message: str) -> tuple[str, str]:
    return ("error", json.dumps({"type": "error", "error": {"type": type, "message": message}}))


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def error(status: int, message: str, *, headers: dict | None = None) -> Reply:
    return Reply(status, json={"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
                               "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}, headers=headers or {})


def message(text: str, stop_reason: str = "end_turn", usage: tuple[int, int] = (12, 6)) -> Reply:
    return Reply(json={"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": MODEL,
                       "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
                       "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}})


def model() -> Reply:
    return Reply(json={"type": "model", "id": MODEL, "display_name": "Claude Haiku 3.5",
                       "created_at": "2024-10-22T00:00:00Z"})


def tool_events(name: str, partial_json: list[str], input_tokens: int = 40, output_tokens: int = 9) -> list[tuple[str, str]]:
    """A forced tool call streamed: a `tool_use` block whose input arrives as `input_json_delta`
    pieces, and stop_reason `tool_use`."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "content": [], "model": MODEL,
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": name, "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ]
    out += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "input_json_delta", "partial_json": p}}) for p in partial_json]
    out += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [(event, json.dumps(data)) for event, data in out]


def tool_stream(name: str, partial_json: list[str]) -> Reply:
    return Reply(events=tool_events(name, partial_json))


def tool_message(name: str, tool_input: Any) -> Reply:
    """A whole answer that is a tool call (`stream: false`)."""
    return Reply(json={"id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": MODEL,
                       "content": [{"type": "tool_use", "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "name": name,
                                    "input": tool_input}],
                       "stop_reason": "tool_use", "stop_sequence": None,
                       "usage": {"input_tokens": 40, "output_tokens": 9}})


# --- answers of several content blocks (text, thinking, tool calls), for tool calling ---------------


def text_block(*pieces: str) -> dict[str, Any]:
    return {"type": "text", "pieces": list(pieces)}


def tool_block(id: str, name: str, *pieces: str, start_input: Any = None) -> dict[str, Any]:
    """A `tool_use` block whose input arrives as `input_json_delta` pieces (the first one empty, as
    Anthropic sends it); `start_input`: what content_block_start says its input is ({} by default)."""
    return {"type": "tool_use", "id": id, "name": name, "pieces": list(pieces),
            "start_input": {} if start_input is None else start_input}


def thinking_block(*pieces: str, signature: str = "EqQBCgIYAhIM1gbcDa9GJwZA") -> dict[str, Any]:
    return {"type": "thinking", "pieces": list(pieces), "signature": signature}


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    def delta(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})

    kind = block["type"]
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [delta({"type": "text_delta", "text": p}) for p in block["pieces"]]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": p}) for p in block["pieces"]]
        deltas.append(delta({"type": "signature_delta", "signature": block["signature"]}))
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": block["start_input"]}
        deltas = [delta({"type": "input_json_delta", "partial_json": p}) for p in ["", *block["pieces"]]]
    return [("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
            *deltas, ("content_block_stop", {"type": "content_block_stop", "index": index})]


def blocks_events(blocks: list[dict[str, Any]], stop_reason: str = "tool_use", input_tokens: int = 40,
                  output_tokens: int = 9) -> list[tuple[str, str]]:
    """The events of an answer made of `blocks` (text_block, tool_block, thinking_block), in order."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "content": [], "model": MODEL,
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        out += _block_events(index, block)
    out += [
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [(event, json.dumps(data)) for event, data in out]


def blocks_stream(blocks: list[dict[str, Any]], stop_reason: str = "tool_use", *,
                  drop_after: int | None = None) -> Reply:
    return Reply(events=blocks_events(blocks, stop_reason), drop_after=drop_after)


def blocks_message(content: list[dict[str, Any]], stop_reason: str = "tool_use") -> Reply:
    """A whole answer (`stream: false`) whose content blocks are given as Anthropic writes them."""
    return Reply(json={"id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": MODEL,
                       "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                       "usage": {"input_tokens": 40, "output_tokens": 9}})
