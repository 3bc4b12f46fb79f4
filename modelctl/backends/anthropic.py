"""Anthropic's Messages API (`POST /v1/messages`), streamed as server-sent events:

    message_start (input and cache tokens) ─► content_block_delta (thinking_delta…, text_delta…) ─► message_delta
    (stop_reason, output tokens) ─► message_stop        (ping: keep-alive; error: mid-stream)

The system prompt travels apart from the turns; `max_tokens` is required (the registry's
`max_output_tokens`, at most 4096, when not given); token counting has its own endpoint.
Structured output is a forced tool call: the tool's input (`input_json_delta` events, or the
`tool_use` block of a whole answer) is the answer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import quote

from modelctl.backends.api import ApiBackend, StreamState, split_system
from modelctl.backends.base import FINISH_LENGTH, FINISH_STOP, Chunk, GenerationParams, Message, ResponseFormat, Usage
from modelctl.backends.images import anthropic_turns
from modelctl.backends.params import param_table, request_fields
from modelctl.errors import BackendError
from modelctl.keys import require_key
from modelctl.transport.http_client import ErrorContext, LineStream, error
from modelctl.transport.server_text import one_line, provider_message
from modelctl.transport.sse import Event
from modelctl.transport.wire import Wire

if TYPE_CHECKING:
    from modelctl.registry import Deployment

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

# max_tokens is required: the default stands in when it is not set.
PARAMETERS = param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p", top_k="top_k",
                         stop="stop_sequences", seed=None, repeat_penalty=None)

# Extended thinking: the tokens the model may think for, per --reasoning-effort (1024 is the least
# Anthropic takes); max_tokens counts them too, so it is raised to leave room for an answer.
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
DEFAULT_EFFORT = "medium"

# `tool_use`: the model called a tool, as structured output forces it to.
STOP_REASONS = {"end_turn": FINISH_STOP, "stop_sequence": FINISH_STOP, "tool_use": FINISH_STOP,
                "max_tokens": FINISH_LENGTH, "model_context_window_exceeded": FINISH_LENGTH}


def _usage(data: Any, wire: Wire, start: dict[str, Any] | None = None) -> Usage | None:
    """The usage of an answer, or of a `message_delta` event over `start` (message_start's usage:
    the delta may leave out the input counts). Anthropic counts `input_tokens` after the last
    cache breakpoint only: the prompt is those plus the tokens read from the cache and written
    to it; a cache count that is no count is dropped."""
    data = {**(start or {}), **{k: v for k, v in wire.obj(data, "usage").items() if v is not None}}
    prompt = wire.count(data.get("input_tokens"), "usage.input_tokens")
    out = wire.count(data.get("output_tokens"), "usage.output_tokens")
    if prompt is None or out is None:
        return None
    read, written = (wire.detail_count(data.get(k)) for k in ("cache_read_input_tokens", "cache_creation_input_tokens"))
    prompt += (read or 0) + (written or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=out).with_cache(read, written)


def _reason(value: Any, wire: Wire) -> str | None:
    reason = wire.reason(value, "stop_reason")
    return STOP_REASONS.get(reason, reason) if reason else None


EPHEMERAL = {"type": "ephemeral"}  # Anthropic's cache of 5 minutes, renewed by each read


def cache_breakpoints(body: dict[str, Any]) -> None:
    """`--cache`: cache breakpoints (`cache_control`) on the system prompt and on the last user
    turn, 2 of the 4 Anthropic allows. The request writes the prefix up to the last user turn to
    the cache; the next turn of the chat reads it back (Anthropic looks back from a breakpoint for
    the longest prefix it has cached), and pays the cache-read price for it. A prefix shorter
    than the model's least cacheable length (1,024 tokens on most models) is simply not cached."""
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": EPHEMERAL}]
    last = next((t for t in reversed(body["messages"]) if t["role"] == "user"), None)
    if last is None:
        return
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if blocks:
        blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
        last["content"] = blocks


def forced_tool(fmt: ResponseFormat) -> dict[str, Any]:
    """Structured output the way Anthropic documents it: one tool whose input schema is the
    schema, and `tool_choice` forcing the model to call it; its input is the answer."""
    tool = {"name": fmt.name, "description": "Give the answer as JSON that matches the input schema.",
            "input_schema": fmt.json_schema()}
    return {"tools": [tool], "tool_choice": {"type": "tool", "name": fmt.name}}


class AnthropicBackend(ApiBackend):
    label = "Anthropic"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 max_output_tokens: int | None = None, **options: Any) -> None:
        key = require_key("anthropic", key_env=deployment.key_env, explicit=api_key)
        super().__init__(deployment, key=key, **options)
        self.base = self.use_base(api_base or deployment.api_base or ANTHROPIC_API_BASE).removesuffix("/v1")
        self.default_max_tokens = min(max_output_tokens or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS)
        headers = {"x-api-key": key.value or "", "anthropic-version": deployment.api_version or ANTHROPIC_VERSION}
        ctx = ErrorContext(self.label, not_found=f"does not know the model '{deployment.model}'")
        self.http = self.make_client(ctx, headers)

    def request_body(self, messages: Sequence[Message], params: GenerationParams, stream: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        system, turns = split_system(messages)
        fields, lacking = request_fields(replace(params, max_tokens=params.max_tokens or self.default_max_tokens),
                                         PARAMETERS)
        body: dict[str, Any] = {"model": self.deployment.model, "max_tokens": fields.pop("max_tokens"),
                                "messages": anthropic_turns(turns)}
        if system:
            body["system"] = system
        if params.cache:
            cache_breakpoints(body)
        body.update(fields)
        if params.think is False:
            body["thinking"] = {"type": "disabled"}
        elif params.think or params.reasoning_effort:
            budget = THINKING_BUDGETS[params.reasoning_effort or DEFAULT_EFFORT]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if body["max_tokens"] <= budget:
                body["max_tokens"] += budget
        self.note_ignored(lacking)
        if params.response_format is not None:
            body.update(forced_tool(params.response_format))
        if stream:
            body["stream"] = True
        return {**body, **options}

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        return f"{self.base}/v1/messages", None

    def read_whole(self, data: Any) -> tuple[str, StreamState]:
        wire = self.wire
        data = wire.obj(data, "the answer", optional=False)
        if data.get("content") is None:
            raise error(BackendError, f"Anthropic answered without content: {provider_message(data)}")
        texts: list[str] = []
        thoughts: list[str] = []
        for block in wire.items(data.get("content"), "content"):
            block = wire.obj(block, "a content block", optional=False)
            if block.get("type") == "text":
                texts.append(wire.text(block.get("text"), "a text block") or "")
            elif block.get("type") == "thinking":
                thoughts.append(wire.text(block.get("thinking"), "a thinking block") or "")
            elif block.get("type") == "tool_use" and block.get("name") == ResponseFormat.name:
                texts.append(json.dumps(block.get("input"), ensure_ascii=False))
        reason = _reason(data.get("stop_reason"), wire) or FINISH_STOP
        return "".join(texts), StreamState(finish_reason=reason, usage=_usage(data.get("usage"), wire),
                                           reasoning="".join(thoughts))

    def read_event(self, event: Event, state: StreamState, lines: LineStream) -> list[str | Chunk]:
        if event.event == "ping":
            return []
        try:
            data = event.json()
        except ValueError as exc:
            raise lines.interrupted(f"unreadable event from Anthropic ({exc}): {one_line(event.data, 120)}") from None
        wire = self.wire
        data = wire.obj(data, "an event", optional=False)
        kind = data.get("type")
        if event.event == "error" or kind == "error":
            raise lines.interrupted(f"Anthropic reported an error: {provider_message(data)}")
        if kind == "message_start":
            usage = wire.obj(wire.obj(data.get("message"), "message").get("usage"), "usage")
            state.extra["start_usage"] = usage
            state.usage = _usage(usage, wire)
        elif kind == "content_block_delta":
            delta = wire.obj(data.get("delta"), "delta")
            if delta.get("type") == "text_delta":
                text = wire.text(delta.get("text"), "the text of a delta")
                return [text] if text else []
            if delta.get("type") == "thinking_delta":
                thought = wire.text(delta.get("thinking"), "the thinking of a delta")
                return [Chunk(reasoning=thought)] if thought else []
            if delta.get("type") == "input_json_delta":  # the forced tool's input: the JSON answer
                text = wire.text(delta.get("partial_json"), "the partial JSON of a delta")
                return [text] if text else []
        elif kind == "message_delta":
            reason = _reason(wire.obj(data.get("delta"), "delta").get("stop_reason"), wire)
            if reason:
                state.finish_reason = reason
            counted = _usage(data.get("usage"), wire, state.extra.get("start_usage"))
            if counted is not None:
                state.usage = counted
        elif kind == "message_stop":
            state.done = True
            state.finish_reason = state.finish_reason or FINISH_STOP
        return []

    def count_tokens(self, messages: Sequence[Message]) -> int:
        system, turns = split_system(messages)
        body: dict[str, Any] = {"model": self.deployment.model,
                                "messages": anthropic_turns(turns)}
        if system:
            body["system"] = system
        assert self.http is not None
        data = self.http.request_json("POST", f"{self.base}/v1/messages/count_tokens", body)
        count = self.wire.count(self.wire.obj(data, "the answer", optional=False).get("input_tokens"), "input_tokens")
        if count is None:
            raise error(BackendError, "Anthropic answered the token count without input_tokens")
        return count

    def live_info(self) -> dict[str, Any]:
        data = self.live_request("GET", f"{self.base}/v1/models/{quote(self.model_id, safe='')}")
        return {k: v for k, v in data.items() if k != "type"} if isinstance(data, dict) else {}
