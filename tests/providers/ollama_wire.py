"""Ollama's REST API: `/api/chat` streams JSON lines (the last has `done: true`, `done_reason`,
counts and durations in nanoseconds), `/api/tags`, `/api/show`, `/api/embed`, `/api/pull`, and
errors as `{"error": "..."}`."""

from __future__ import annotations

from typing import Any

from providers.server import Reply

TAG = "llama3.2:1b"
CREATED = "2024-11-21T10:00:00.000000Z"


def part(content: str, thinking: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    if thinking is not None:  # with `think`, the reasoning comes apart, in `message.thinking`
        message["thinking"] = thinking
    return {"model": TAG, "created_at": CREATED, "message": message, "done": False}


def final(reason: str = "stop", prompt: int = 26, completion: int = 4) -> dict[str, Any]:
    return {"model": TAG, "created_at": CREATED, "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": reason, "total_duration": 480_000_000, "load_duration": 200_000_000,
            "prompt_eval_count": prompt, "prompt_eval_duration": 80_000_000,
            "eval_count": completion, "eval_duration": 100_000_000}


def chat_stream(texts: list[str], reason: str = "stop", *, drop_after: int | None = None,
                headers: dict | None = None, thinking: tuple[str, ...] = ()) -> Reply:
    lines = [part("", t) for t in thinking] + [part(t) for t in texts] + [final(reason)]
    return Reply(lines=lines, drop_after=drop_after, headers=headers or {})


def chat_whole(text: str) -> Reply:
    data = final()
    data["message"]["content"] = text
    return Reply(json=data)


def error(status: int, message: str, *, headers: dict | None = None) -> Reply:
    return Reply(status, json={"error": message}, headers=headers or {})


def tags() -> Reply:
    return Reply(json={"models": [{
        "name": TAG, "model": TAG, "modified_at": "2024-11-20T09:00:00.0+00:00", "size": 1_321_098_329,
        "digest": "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878",
        "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                    "parameter_size": "1.2B", "quantization_level": "Q8_0"}}]})


TEMPLATE = "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"


def show() -> Reply:
    return Reply(json={
        "modelfile": "FROM llama3.2:1b", "parameters": 'stop "<|eot_id|>"', "template": TEMPLATE,
        "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                    "parameter_size": "1.2B", "quantization_level": "Q8_0"},
        "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
        "capabilities": ["completion", "tools"], "modified_at": "2024-11-20T09:00:00.0+00:00"})


def embed(vectors: list[list[float]]) -> Reply:
    return Reply(json={"model": "all-minilm", "embeddings": vectors, "total_duration": 14_143_917,
                       "load_duration": 1_019_500, "prompt_eval_count": 8})


def pull_stream() -> Reply:
    return Reply(lines=[
        {"status": "pulling manifest"},
        {"status": "pulling 74701a8c35f6", "digest": "sha256:74701a8c35f6", "total": 100, "completed": 40},
        {"status": "pulling 74701a8c35f6", "digest": "sha256:74701a8c35f6", "total": 100, "completed": 100},
        {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"},
    ])


def generate_stream(texts: list[str], reason: str = "length") -> Reply:
    """`/api/generate`'s lines: `response` instead of `message`."""
    lines = [{"model": TAG, "created_at": CREATED, "response": t, "done": False} for t in texts]
    last = final(reason, prompt=5, completion=len(texts))
    del last["message"]
    lines.append({**last, "response": ""})
    return Reply(lines=lines)


def tool_part(calls: list[tuple[str, dict[str, Any]]], ids: tuple[str, ...] = ()) -> dict[str, Any]:
    """A line whose message carries whole tool calls ((name, arguments as an object) each; `ids`
    where the server gives them)."""
    data = part("")
    data["message"]["tool_calls"] = [
        {**({"id": ids[k]} if k < len(ids) else {}), "function": {"index": k, "name": n, "arguments": a}}
        for k, (n, a) in enumerate(calls)]
    return data


def tool_call_stream(lines: list[dict[str, Any]], texts: tuple[str, ...] = (), *, drop_after: int | None = None) -> Reply:
    """Text lines, then `lines` (tool_part), then the last line (done_reason stop, as Ollama ends
    an answer with calls)."""
    return Reply(lines=[part(t) for t in texts] + lines + [final("stop")], drop_after=drop_after)
