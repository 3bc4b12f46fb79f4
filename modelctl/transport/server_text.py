"""A server's own words, made fit for modelctl's messages: on one line, control characters shown
as escapes (a server never drives the terminal), at most `MESSAGE_CHARS` long; and the human
message inside an error body, whatever shape the provider gives it."""

from __future__ import annotations

import json
import re
from typing import Any

from modelctl.terminal_text import escape_controls
from modelctl.transport import wire

MESSAGE_CHARS = 300  # the most of a server's own words an error message quotes


def provider_message(body: Any, text: str = "") -> str:
    """The human message inside an error body, in any of the shapes providers document:
    `{"error": {"message": ...}}` (OpenAI, Azure, Anthropic, Gemini), `{"message": ...}`
    (Mistral), `{"error": "..."}` (Hugging Face, Ollama), `{"detail": ...}` (FastAPI servers);
    else the start of the body's text. On one line, at most MESSAGE_CHARS long, control
    characters shown as escapes (a server's words never drive the terminal)."""
    return one_line(_message(body) or (body is None and _salvaged(text)) or text or _shown(body))


def _shown(body: Any) -> str:
    """A body with no message in it, as JSON (cut), so that an error still says what came."""
    if body is None:
        return ""
    try:
        return json.dumps(body, ensure_ascii=False, default=str)[: MESSAGE_CHARS * 4]
    except (TypeError, ValueError, RecursionError):
        return type(body).__name__


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A server's words, safe to put in a message: one line, escapes for control characters,
    at most `limit` characters."""
    text = escape_controls(" ".join(wire.clean_text(text[: limit * 4]).split()))
    return text[:limit] + ("…" if len(text) > limit else "")


_MESSAGE_FIELD = re.compile(r'"(?:message|detail|error)"\s*:\s*"((?:[^"\\]|\\.){1,1200})')


def _salvaged(text: str) -> str:
    """The message of a JSON error body that does not parse because it was cut short (error
    bodies are read up to `response_limits.ERROR_BODY_BYTES`)."""
    m = _MESSAGE_FIELD.search(text[:8192])
    if not m:
        return ""
    try:
        message: str = json.loads(f'"{m[1]}"')  # a JSON string literal
        return message
    except ValueError:  # cut inside an escape
        return m[1]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg")
            if msg:
                return _flatten(msg)
        elif isinstance(err, str) and err:
            return err
        for key in ("message", "detail", "error_description", "msg"):
            if body.get(key):
                return _flatten(body[key])
    elif isinstance(body, list) and body:
        return _message(body[0])
    return ""


def _flatten(msg: Any, depth: int = 0) -> str:
    if isinstance(msg, str):
        return msg
    if depth > 8:  # validation details nest a little; a hostile body may nest a lot
        return "…"
    if isinstance(msg, list):  # FastAPI/pydantic validation details
        parts = []
        for item in msg[:20]:
            if isinstance(item, dict) and "msg" in item:
                loc = item.get("loc")
                where = ".".join(str(x) for x in loc if x != "body") if isinstance(loc, list) else ""
                text = _flatten(item["msg"], depth + 1)
                parts.append(f"{where}: {text}" if where else text)
            else:
                parts.append(_flatten(item, depth + 1))
        return "; ".join(parts)
    if isinstance(msg, dict):
        if "detail" in msg:
            return _flatten(msg["detail"], depth + 1)
        if "message" in msg:
            return _flatten(msg["message"], depth + 1)
    try:
        return json.dumps(msg, ensure_ascii=False)[: MESSAGE_CHARS * 4]
    except (ValueError, RecursionError):
        return wire.kind(msg)
