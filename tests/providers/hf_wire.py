"""Hugging Face inference as a Text Generation Inference (TGI) server speaks it: the Messages API
at `/v1/chat/completions` (OpenAI-shaped chunks, usage when asked), feature extraction as a bare
list of vectors, `/info`, and errors as `{"error": "...", "error_type": "..."}`."""

from __future__ import annotations

import json
from typing import Any

from providers.server import Reply

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
    choices = [] if usage and content is None and finish is None else [
        {"index": 0, "delta": {"role": "assistant", "content": content or ""}, "logprobs": None, "finish_reason": finish}]
    return {"object": "chat.completion.chunk", "id": "", "created": 1_730_000_000, "model": MODEL,
            "system_fingerprint": "3.0.1-sha-bb9095a", "choices": choices, "usage": usage}


def chat_stream(texts: list[str], finish: str = "stop", usage: tuple[int, int] = (15, 3), *,
                drop_after: int | None = None, headers: dict | None = None) -> Reply:
    chunks = [_chunk(t) for t in texts]
    chunks.append(_chunk("", finish))
    chunks.append(_chunk(None, None, {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                      "total_tokens": sum(usage)}))
    events = [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]
    return Reply(events=events, drop_after=drop_after, headers=headers or {})


def error(status: int, message: str, *, error_type: str = "validation", headers: dict | None = None) -> Reply:
    return Reply(status, json={"error": message, "error_type": error_type}, headers=headers or {})


def info() -> Reply:
    return Reply(json={"model_id": MODEL, "model_sha": None, "model_pipeline_tag": "text-generation",
                       "max_concurrent_requests": 128, "max_best_of": 2, "max_stop_sequences": 4,
                       "max_input_tokens": 8191, "max_total_tokens": 8192, "validation_workers": 2,
                       "max_client_batch_size": 4, "router": "text-generation-router", "version": "3.0.1"})


def generate_stream(tokens: list[str], finish: str = "length", *, special_last: bool = False) -> Reply:
    """TGI's `/generate_stream` events: one token each; the last carries `generated_text` and
    `details`."""
    events = []
    for i, text in enumerate(tokens):
        last = i == len(tokens) - 1
        events.append({"index": i + 1,
                       "token": {"id": 1000 + i, "text": text, "logprob": -0.1, "special": special_last and last},
                       "generated_text": "".join(tokens) if last else None,
                       "details": {"finish_reason": finish, "generated_tokens": len(tokens), "seed": None}
                       if last else None})
    return Reply(events=[(None, json.dumps(e)) for e in events])


def generated(text: str, finish: str = "eos_token", tokens: int = 3) -> Reply:
    """TGI's `/generate` answer with details (a list of one, as the Inference API answers)."""
    return Reply(json=[{"generated_text": text,
                        "details": {"finish_reason": finish, "generated_tokens": tokens, "seed": None,
                                    "prefill": [], "tokens": []}}])


def tool_call_stream(deltas: list[dict[str, Any]], texts: tuple[str, ...] = (), finish: str = "tool_calls",
                     usage: tuple[int, int] = (40, 12), *, drop_after: int | None = None) -> Reply:
    """OpenAI-shaped chunks whose deltas carry `tool_calls` items (openai_wire.tool_item)."""
    chunks = [_chunk(t) for t in texts]
    for item in deltas:
        data = _chunk("")
        data["choices"][0]["delta"] = {"role": "assistant", "tool_calls": [item]}
        chunks.append(data)
    chunks.append(_chunk("", finish))
    chunks.append(_chunk(None, None, {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                      "total_tokens": sum(usage)}))
    events = [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]
    return Reply(events=events, drop_after=drop_after)


def tool_completion(calls: list[tuple[str, str, Any]]) -> Reply:
    """A whole answer with tool calls as TGI writes them: arguments as an object, not JSON text."""
    return Reply(json={
        "object": "chat.completion", "id": "", "created": 1_730_000_000, "model": MODEL,
        "system_fingerprint": "3.0.1-sha-bb9095a",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "tool_calls": [
                         {"id": i, "type": "function", "function": {"description": None, "name": n, "arguments": a}}
                         for i, n, a in calls]}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
    })
