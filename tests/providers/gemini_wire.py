"""Google's Gemini API (v1beta): `streamGenerateContent?alt=sse` events that are whole
`GenerateContentResponse`s (`candidates[].content.parts[].text`, `finishReason` on the last,
`usageMetadata`), and errors as `{"error": {"code", "message", "status", "details"}}` (a bad key is
400 INVALID_ARGUMENT with the reason API_KEY_INVALID)."""

from __future__ import annotations

import json
from typing import Any

from providers.server import Reply

MODEL = "gemini-2.0-flash"
STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 503: "UNAVAILABLE", 401: "UNAUTHENTICATED"}


def response(text: str | None, finish: str | None = None, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}] if text is not None else [], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    data: dict[str, Any] = {"candidates": [cand], "modelVersion": MODEL}
    if usage:
        data["usageMetadata"] = {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                 "totalTokenCount": sum(usage)}
    return data


def thought(text: str) -> dict[str, Any]:
    """A response holding a thought summary (asked for with thinkingConfig.includeThoughts)."""
    return {"candidates": [{"content": {"parts": [{"text": text, "thought": True}], "role": "model"}, "index": 0}],
            "modelVersion": MODEL}


def stream(texts: list[str], finish: str = "STOP", usage: tuple[int, int] = (8, 4), *,
           drop_after: int | None = None, headers: dict | None = None,
           thoughts: tuple[str, ...] = (), thoughts_tokens: int | None = None, cached: Any = None) -> Reply:
    """`cached`: the last response's `usageMetadata.cachedContentTokenCount` (the prompt tokens,
    among promptTokenCount, read from a context cache, implicit or explicit)."""
    items = [thought(t) for t in thoughts]
    items += [response(t, usage=(usage[0], 0)) for t in texts[:-1]]
    items.append(response(texts[-1] if texts else "", finish, usage))
    if thoughts_tokens is not None:
        items[-1]["usageMetadata"]["thoughtsTokenCount"] = thoughts_tokens
    if cached is not None:
        items[-1]["usageMetadata"]["cachedContentTokenCount"] = cached
    return Reply(events=[(None, json.dumps(i)) for i in items], drop_after=drop_after, headers=headers or {})


def error(status: int, message: str, *, details: list | None = None, headers: dict | None = None) -> Reply:
    body: dict[str, Any] = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
    if details:
        body["details"] = details
    return Reply(status, json={"error": body}, headers=headers or {})


def bad_key() -> Reply:
    return error(400, "API key not valid. Please pass a valid API key.", details=[{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])


def model() -> Reply:
    return Reply(json={"name": f"models/{MODEL}", "version": "2.0", "displayName": "Gemini 2.0 Flash",
                       "description": "Gemini 2.0 Flash", "inputTokenLimit": 1_048_576, "outputTokenLimit": 8192,
                       "supportedGenerationMethods": ["generateContent", "countTokens"], "temperature": 1.0})


# --- function calls ---------------------------------------------------------------------------------


def function_call(name: str | None, args: Any = None, *, signature: str | None = None,
                  id: str | None = None) -> dict[str, Any]:
    """A `functionCall` part (whole: Gemini sends no partial calls), with the `thoughtSignature`
    Gemini 3 puts on the first call of an answer, and an id where Gemini gives one."""
    call: dict[str, Any] = {}
    if name is not None:
        call["name"] = name
    if args is not None:
        call["args"] = args
    if id is not None:
        call["id"] = id
    part: dict[str, Any] = {"functionCall": call}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def parts_response(parts: list[dict[str, Any]], finish: str | None = None,
                   usage: tuple[int, int] | None = None) -> dict[str, Any]:
    data = response(None, finish, usage)
    data["candidates"][0]["content"]["parts"] = parts
    return data


def parts_stream(events: list[list[dict[str, Any]]], finish: str = "STOP", usage: tuple[int, int] = (30, 7), *,
                 drop_after: int | None = None) -> Reply:
    """An answer streamed as one event per list of parts (text parts: {"text": …}); the last event
    has the finish reason and the usage."""
    items = [parts_response(parts) for parts in events[:-1]]
    items.append(parts_response(events[-1], finish, usage))
    return Reply(events=[(None, json.dumps(i)) for i in items], drop_after=drop_after)


def parts_whole(parts: list[dict[str, Any]], finish: str = "STOP") -> Reply:
    return Reply(json=parts_response(parts, finish, (30, 7)))
