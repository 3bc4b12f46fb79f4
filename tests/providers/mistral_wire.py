"""Mistral's API: OpenAI-shaped chunks whose last one carries `usage` unasked, then
`data: [DONE]`; errors as `{"object": "error", "message", "type", "param", "code"}` (and a bare
`{"message": "Unauthorized"}` for a bad key)."""

from __future__ import annotations

import json
from typing import Any

from providers.server import Reply

MODEL = "mistral-small-latest"


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
    data = {"id": "cmpl-e5cc70bb28c444948073e77776eb30ef", "object": "chat.completion.chunk",
            "created": 1_702_256_327, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage:
        data["usage"] = usage
    return data


def thinking(text: str) -> dict[str, Any]:
    """A delta of a Magistral model's reasoning: a content list with a `thinking` part."""
    return {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": text}]}]}


def chat_stream(texts: list[str], finish: str = "stop", usage: tuple[int, int] = (10, 3), *,
                drop_after: int | None = None, headers: dict | None = None, thoughts: tuple[str, ...] = (),
                prompt_details: Any = None) -> Reply:
    """`prompt_details`: usage.prompt_tokens_details, where Mistral's prompt caching reports
    `cached_tokens`."""
    usage_data: dict[str, Any] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    if prompt_details is not None:
        usage_data["prompt_tokens_details"] = prompt_details
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk(thinking(t)) for t in thoughts]
    chunks += [_chunk({"content": t}) for t in texts[:-1]]
    chunks.append(_chunk({"content": texts[-1] if texts else ""}, finish, usage_data))
    events = [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]
    return Reply(events=events, drop_after=drop_after, headers=headers or {})


def error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
          headers: dict | None = None) -> Reply:
    if status == 401:
        return Reply(401, json={"message": message, "request_id": "5a7d2bd3c0bd1a0b"}, headers=headers or {})
    return Reply(status, json={"object": "error", "message": message, "type": type, "param": None, "code": code},
                 headers=headers or {})


def embeddings(vectors: list[list[float]]) -> Reply:
    return Reply(json={"id": "embd-aad6fc62b17349b192ef09225058bc45", "object": "list",
                       "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
                       "model": "mistral-embed", "usage": {"prompt_tokens": 9, "total_tokens": 9}})


def model() -> Reply:
    return Reply(json={"id": MODEL, "object": "model", "created": 1_711_430_400, "owned_by": "mistralai",
                       "capabilities": {"completion_chat": True, "function_calling": True},
                       "name": "mistral-small-2409", "description": "Small model", "max_context_length": 32768,
                       "aliases": ["mistral-small-2409"], "deprecation": None, "type": "base"})


def tool_call_stream(calls: list[tuple[str, str, str]], text: str = "", usage: tuple[int, int] = (80, 20)) -> Reply:
    """Mistral's streamed tool calls: each call whole (id of 9 letters or digits, name, arguments
    as JSON text) in one delta, with the finish reason `tool_calls` and the usage."""
    items = [{"id": i, "function": {"name": n, "arguments": a}, "index": k} for k, (i, n, a) in enumerate(calls)]
    usage_data = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    chunks = [_chunk({"role": "assistant", "content": text}),
              _chunk({"content": "", "tool_calls": items}, "tool_calls", usage_data)]
    return Reply(events=[(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")])
