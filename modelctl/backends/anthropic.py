"""Anthropic's Messages API (`POST /v1/messages`), streamed as server-sent events:

    message_start (input and cache tokens) ─► content_block_delta (thinking_delta…, text_delta…) ─► message_delta
    (stop_reason, output tokens) ─► message_stop        (ping: keep-alive; error: mid-stream)

The system prompt travels apart from the turns; `max_tokens` is required (the registry's
`max_output_tokens`, at most 4096, when not given); token counting has its own endpoint.
Structured output is a forced tool call: the tool's input (`input_json_delta` events, or the
`tool_use` block of a whole answer) is the answer.

Tools go as `tools` ({name, description, input_schema}) and `tool_choice` ({"type": "auto" | "any"
| "none"}, or {"type": "tool", "name"}). The model's calls are `tool_use` blocks (streamed: a
`content_block_start` with the id and name, then its input as `input_json_delta` pieces), and
stop_reason `tool_use`. Sent back, a call is a `tool_use` block of the assistant's turn (input: the
arguments as an object) and its result a `tool_result` block of the next user turn, the results of
one turn's calls together, in order. With extended thinking on, the thinking blocks that came
before the calls go back with them, unchanged (Anthropic requires it while tools are in use).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence
from urllib.parse import quote

from modelctl.backends.api import ApiBackend, StreamState, pop_stream_flag, split_system
from modelctl.backends.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    Chunk,
    GenerationParams,
    Message,
    ResponseFormat,
    ToolSpec,
    Usage,
)
from modelctl.backends.images import anthropic_content
from modelctl.backends.params import param_table, request_fields
from modelctl.backends.tool_calling import Replay, call_input, checked_choice, gatherer, message_calls
from modelctl.errors import BackendError, UsageError
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

# `tool_use`: the model called a tool (structured output's forced one: a plain stop).
STOP_REASONS = {"end_turn": FINISH_STOP, "stop_sequence": FINISH_STOP, "tool_use": FINISH_TOOL_CALLS,
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


TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def _tool(spec: ToolSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": spec.name, "input_schema": dict(spec.parameters)}
    if spec.description:
        tool["description"] = spec.description
    return tool


def tool_fields(params: GenerationParams, thinking: bool) -> dict[str, Any]:
    """`tools` and `tool_choice`: the request's tools, or --schema's forced tool. UsageError
    where Anthropic would refuse them: --schema with tools, a forced call while the model thinks."""
    choice = checked_choice(params)
    if params.response_format is not None:
        if params.tools:
            raise UsageError("Anthropic cannot take --schema with tools: its structured answer is a forced call "
                             "of a tool of its own, which leaves the model no choice of the others",
                             hint="use the tools without --schema, or --schema without tools")
        fields, forced = forced_tool(params.response_format), "a --schema answer"
    elif params.tools:
        fields = {"tools": [_tool(t) for t in params.tools]}
        if choice is not None:
            fields["tool_choice"] = TOOL_CHOICES.get(choice) or {"type": "tool", "name": choice}
        forced = f"the tool choice '{choice}'"
    else:
        return {}
    if thinking and fields.get("tool_choice", {}).get("type") in ("any", "tool"):
        raise UsageError(f"Anthropic does not force a tool call ({forced}) while the model thinks",
                         hint="leave out --think and --reasoning-effort, or pass --no-think")
    return fields


def thinking_field(params: GenerationParams) -> dict[str, Any] | None:
    """`thinking`: off for --no-think, on with a budget for --think / --reasoning-effort."""
    if params.think is False:
        return {"type": "disabled"}
    if params.think or params.reasoning_effort:
        return {"type": "enabled", "budget_tokens": THINKING_BUDGETS[params.reasoning_effort or DEFAULT_EFFORT]}
    return None


@dataclass
class _Thinking:
    """A thinking block of an answer as it arrives: the block, and the pieces of its thinking."""

    block: dict[str, Any]
    pieces: list[str] = field(default_factory=list)

    def whole(self) -> dict[str, Any]:
        if not self.pieces:
            return self.block
        return {**self.block, "thinking": (self.block.get("thinking") or "") + "".join(self.pieces)}


def _result_block(turn: Mapping[str, Any]) -> dict[str, Any]:
    call_id = turn.get("tool_call_id")
    if not call_id:
        raise UsageError("a tool result without the id of the call it answers")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if turn["content"]:
        block["content"] = turn["content"]
    return block


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
        self.thinking_blocks = Replay()  # the id of an answer's first call -> the thinking blocks before it

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        stream, options = pop_stream_flag(params.extra)
        body = self.request_body(messages, params, stream, options)
        url, query = self.chat_target(stream)
        # With --schema the forced tool's input is the answer's text; otherwise a tool_use is a call.
        structured = params.response_format is not None
        return self.exchange(url, query, body, stream, read_whole=partial(self.read_whole, structured=structured),
                             read_event=partial(self.read_event, structured=structured))

    def request_body(self, messages: Sequence[Message], params: GenerationParams, stream: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        system, turns = split_system(messages)
        fields, lacking = request_fields(replace(params, max_tokens=params.max_tokens or self.default_max_tokens),
                                         PARAMETERS)
        thinking = thinking_field(params)
        thinks = thinking is not None and thinking["type"] == "enabled"
        body: dict[str, Any] = {"model": self.deployment.model, "max_tokens": fields.pop("max_tokens"),
                                "messages": self.turns(turns, replay_thinking=thinks)}
        if system:
            body["system"] = system
        if params.cache:
            cache_breakpoints(body)
        body.update(fields)
        if thinking is not None:
            body["thinking"] = thinking
            if thinks and body["max_tokens"] <= thinking["budget_tokens"]:
                body["max_tokens"] += thinking["budget_tokens"]
        self.note_ignored(lacking)
        body.update(tool_fields(params, thinks))
        if stream:
            body["stream"] = True
        return {**body, **options}

    def turns(self, turns: list[dict[str, Any]], *, replay_thinking: bool = False) -> list[dict[str, Any]]:
        """The conversation as Messages API turns: a tool result is a `tool_result` block of a
        user turn (one turn for the results of one assistant turn), a call a `tool_use` block."""
        out: list[dict[str, Any]] = []
        results: list[dict[str, Any]] | None = None  # the blocks of the user turn of results being made
        for turn in turns:
            if turn["role"] == "tool":
                if results is None:
                    results = []
                    out.append({"role": "user", "content": results})
                results.append(_result_block(turn))
                continue
            results = None
            if turn["role"] == "assistant" and turn.get("tool_calls"):
                out.append({"role": "assistant", "content": self._call_blocks(turn, replay_thinking)})
            else:
                out.append({"role": turn["role"], "content": anthropic_content(turn)})
        return out

    def _call_blocks(self, turn: Mapping[str, Any], replay_thinking: bool) -> list[dict[str, Any]]:
        calls = message_calls(turn)
        blocks: list[dict[str, Any]] = list(self.thinking_blocks.get(calls[0].id) or ()) if replay_thinking else []
        if turn["content"]:
            blocks.append({"type": "text", "text": turn["content"]})
        return blocks + [{"type": "tool_use", "id": c.id, "name": c.name, "input": call_input(c)} for c in calls]

    def _settle(self, state: StreamState, reason: str | None) -> None:
        """The answer is over: its calls (and the thinking blocks to send back with them) settled."""
        gatherer(state, self.wire).settle(state, reason)
        thinking = state.extra.get("thinking")
        if state.tool_calls and thinking:
            self.thinking_blocks.keep(state.tool_calls[0].id, [t.whole() for t in thinking.values()])

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        return f"{self.base}/v1/messages", None

    def read_whole(self, data: Any, *, structured: bool = False) -> tuple[str, StreamState]:
        wire = self.wire
        data = wire.obj(data, "the answer", optional=False)
        if data.get("content") is None:
            raise error(BackendError, f"Anthropic answered without content: {provider_message(data)}")
        state = StreamState(usage=_usage(data.get("usage"), wire))
        texts: list[str] = []
        thoughts: list[str] = []
        for index, block in enumerate(wire.items(data.get("content"), "content")):
            block = wire.obj(block, "a content block", optional=False)
            if block.get("type") == "text":
                texts.append(wire.text(block.get("text"), "a text block") or "")
            elif block.get("type") in ("thinking", "redacted_thinking"):
                thoughts.append(wire.text(block.get("thinking"), "a thinking block") or "")
                state.extra.setdefault("thinking", {})[index] = _Thinking(block)
            elif block.get("type") == "tool_use":
                tool_input = json.dumps(wire.obj(block.get("input"), "a tool_use block's input"), ensure_ascii=False)
                if structured and block.get("name") == ResponseFormat.name:
                    texts.append(tool_input)
                else:
                    gatherer(state, wire).add(block.get("id"), block.get("name"), tool_input)
        state.reasoning = "".join(thoughts)
        self._settle(state, _reason(data.get("stop_reason"), wire) or FINISH_STOP)
        return "".join(texts), state

    def read_event(self, event: Event, state: StreamState, lines: LineStream, *,
                   structured: bool = False) -> list[str | Chunk]:
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
        elif kind == "content_block_start":
            self._block_start(data, state, structured)
        elif kind == "content_block_delta":
            return self._delta(data, state, structured)
        elif kind == "message_delta":
            reason = _reason(wire.obj(data.get("delta"), "delta").get("stop_reason"), wire)
            if reason:
                self._settle(state, reason)
            counted = _usage(data.get("usage"), wire, state.extra.get("start_usage"))
            if counted is not None:
                state.usage = counted
        elif kind == "message_stop":
            state.done = True
            if state.finish_reason is None:
                self._settle(state, FINISH_STOP)
        return []

    def _block_start(self, data: dict[str, Any], state: StreamState, structured: bool) -> None:
        """A tool call opens (the forced tool of --schema aside: its input is the text), or a
        thinking block that may have to go back with the calls that follow it."""
        wire = self.wire
        block = wire.obj(data.get("content_block"), "a content block")
        index = wire.count(data.get("index"), "a content block's index")
        if block.get("type") == "tool_use" and not (structured and block.get("name") == ResponseFormat.name):
            start = wire.obj(block.get("input"), "a tool_use block's input")
            gatherer(state, wire).add(block.get("id"), block.get("name"),
                                      json.dumps(start, ensure_ascii=False) if start else "", key=index)
        elif block.get("type") in ("thinking", "redacted_thinking"):
            state.extra.setdefault("thinking", {})[index] = _Thinking(dict(block))

    def _delta(self, data: dict[str, Any], state: StreamState, structured: bool) -> list[str | Chunk]:
        wire = self.wire
        delta = wire.obj(data.get("delta"), "delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = wire.text(delta.get("text"), "the text of a delta")
            return [text] if text else []
        thinking = state.extra.get("thinking", {}).get(data.get("index"))
        if kind == "thinking_delta":
            thought = wire.text(delta.get("thinking"), "the thinking of a delta")
            if thinking is not None and thought:
                thinking.pieces.append(thought)
            return [Chunk(reasoning=thought)] if thought else []
        if kind == "signature_delta" and thinking is not None:
            thinking.block["signature"] = wire.text(delta.get("signature"), "the signature of a delta")
        elif kind == "input_json_delta":
            piece = delta.get("partial_json")
            if not isinstance(piece, str):  # not wire.text: a piece may end inside a surrogate pair
                raise wire.wrong("the partial JSON of a delta", piece, "text")
            if gatherer(state, wire).extend(data.get("index"), piece):
                return []
            if not structured:
                raise wire.error("tool input for a content block that is no tool call")
            text = wire.text(piece, "the partial JSON of a delta")  # the forced tool's input: the JSON answer
            return [text] if text else []
        return []

    def count_tokens(self, messages: Sequence[Message]) -> int:
        system, turns = split_system(messages)
        body: dict[str, Any] = {"model": self.deployment.model, "messages": self.turns(turns)}
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
