"""OpenAI's chat completions and embeddings wire format (also Azure OpenAI's, whose bodies are
the same): `chat.completion.chunk` events ending in `data: [DONE]`, a last chunk with empty
`choices` and the `usage` asked for by `stream_options.include_usage`, and errors as
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import json
from typing import Any

from providers.server import Reply

CREATED = 1_730_000_000


def chunk(content: str | None = None, finish: str | None = None, *, model: str = "gpt-4o-mini",
          role: str | None = None, reasoning: str | None = None) -> dict[str, Any]:
    """One `chat.completion.chunk`; `reasoning` as DeepSeek and llama.cpp's server send it
    (`reasoning_content`, beside a null content)."""
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["content"], delta["reasoning_content"] = None, reasoning
    return {
        "id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(prompt: int, completion: int, *, model: str = "gpt-4o-mini",
                reasoning_tokens: int | None = None, prompt_details: Any = None) -> dict[str, Any]:
    """The last chunk's `usage`; `prompt_details` as OpenAI sends it: `{"cached_tokens": N,
    "audio_tokens": 0}`, N prompt tokens read from the prompt cache."""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    if prompt_details is not None:
        usage["prompt_tokens_details"] = prompt_details
    return {
        "id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "system_fingerprint": "fp_44709d6fcb", "choices": [], "usage": usage,
    }


def chat_stream(texts: list[str], finish: str = "stop", usage: tuple[int, int] | None = (9, 2), *,
                drop_after: int | None = None, model: str = "gpt-4o-mini", headers: dict | None = None,
                reasoning: tuple[str, ...] = (), reasoning_tokens: int | None = None,
                hold: tuple[int, Any] | None = None, prompt_details: Any = None) -> Reply:
    """A streamed answer: the reasoning deltas (if any), then the text deltas."""
    chunks = [chunk("", role="assistant", model=model)]
    chunks += [chunk(reasoning=r, model=model) for r in reasoning]
    chunks += [chunk(t, model=model) for t in texts]
    chunks.append(chunk(finish=finish, model=model))
    if usage is not None:
        chunks.append(usage_chunk(*usage, model=model, reasoning_tokens=reasoning_tokens, prompt_details=prompt_details))
    events = [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]
    return Reply(events=events, drop_after=drop_after, headers=headers or {}, hold=hold)


def completion(text: str, finish: str = "stop", usage: tuple[int, int] = (9, 2), *, model: str = "gpt-4o-mini") -> Reply:
    return Reply(json={
        "id": "chatcmpl-AbC124", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    })


def error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
          param: str | None = None, headers: dict | None = None) -> Reply:
    return Reply(status, json={"error": {"message": message, "type": type, "param": param, "code": code}},
                 headers=headers or {})


def azure_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, json={"error": {"code": code, "message": message}})


def embeddings(vectors: list[list[float]], *, model: str = "text-embedding-3-small") -> Reply:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return Reply(json={"object": "list", "data": list(reversed(data)), "model": model,
                       "usage": {"prompt_tokens": 4, "total_tokens": 4}})


def model(model_id: str) -> Reply:
    return Reply(json={"id": model_id, "object": "model", "created": 1_715_367_049, "owned_by": "system"})


def text_chunk(text: str, finish: str | None = None, *, model: str = "served-model") -> dict[str, Any]:
    """A streamed event of the legacy `/completions` endpoint (`object: text_completion`)."""
    return {"id": "cmpl-9xY", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}


def text_stream(texts: list[str], finish: str = "length", usage: tuple[int, int] | None = (5, 3)) -> Reply:
    chunks = [text_chunk(t) for t in texts] + [text_chunk("", finish)]
    if usage is not None:
        chunks.append({**usage_chunk(*usage), "object": "text_completion"})
    return Reply(events=[(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")])


def text_completion(text: str, finish: str = "stop", usage: tuple[int, int] = (5, 3)) -> Reply:
    return Reply(json={"id": "cmpl-9xZ", "object": "text_completion", "created": CREATED, "model": "served-model",
                       "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
                       "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}})


# --- tool calls ---------------------------------------------------------------------------------------


def tool_item(index: int | None, call_id: str | None = None, name: str | None = None,
              arguments: str | None = None) -> dict[str, Any]:
    """One item of a delta's `tool_calls`: the first of a call carries its id, type and name
    (and empty arguments), the others a piece of the arguments. `index` None: a server that
    leaves it out."""
    item: dict[str, Any] = {} if index is None else {"index": index}
    if call_id is not None:
        item.update(id=call_id, type="function")
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    item["function"] = function
    return item


def call_deltas(index: int, call_id: str, name: str, pieces: list[str]) -> list[dict[str, Any]]:
    """A call as OpenAI streams it: id and name with empty arguments, then the arguments in `pieces`."""
    return [tool_item(index, call_id, name, "")] + [tool_item(index, arguments=p) for p in pieces]


def tool_chunk(items: list[dict[str, Any]], finish: str | None = None, *, model: str = "gpt-4o-mini") -> dict[str, Any]:
    data = chunk(finish=finish, model=model)
    data["choices"][0]["delta"] = {"tool_calls": items}
    return data


def tool_call_stream(deltas: list[Any], texts: tuple[str, ...] = (), finish: str = "tool_calls",
                     usage: tuple[int, int] | None = (9, 2), *, drop_after: int | None = None,
                     model: str = "gpt-4o-mini") -> Reply:
    """Text deltas, then one event per item of `deltas` (a `tool_calls` item, or a list of them
    sent in one event), then the finish reason, usage and `[DONE]`."""
    chunks = [chunk("", role="assistant", model=model)] + [chunk(t, model=model) for t in texts]
    chunks += [tool_chunk(d if isinstance(d, list) else [d], model=model) for d in deltas]
    chunks.append(chunk(finish=finish, model=model))
    if usage is not None:
        chunks.append(usage_chunk(*usage, model=model))
    events = [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]
    return Reply(events=events, drop_after=drop_after)


def tool_completion(calls: list[tuple[str, str, Any]], text: str | None = None, finish: str = "tool_calls") -> Reply:
    """A whole answer (`stream: false`) with `calls` ((id, name, arguments) each)."""
    message = {"role": "assistant", "content": text, "refusal": None,
               "tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                              for i, n, a in calls]}
    return Reply(json={
        "id": "chatcmpl-AbC125", "object": "chat.completion", "created": CREATED, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    })
