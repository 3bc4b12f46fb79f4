"""Anthropic's Messages API (`POST /v1/messages`), streamed as server-sent events:

    message_start (input tokens) ─► content_block_delta (text_delta)… ─► message_delta
    (stop_reason, output tokens) ─► message_stop        (ping: keep-alive; error: mid-stream)

The system prompt travels apart from the turns; `max_tokens` is required (the registry's
`max_output_tokens`, at most 4096, when not given); token counting has its own endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import quote

from modelctl.backends.api import ApiBackend, StreamState, split_system
from modelctl.backends.base import FINISH_LENGTH, FINISH_STOP, GenerationParams, Message, Usage
from modelctl.backends.http import ErrorContext, Event, LineStream, error, provider_message
from modelctl.errors import BackendError
from modelctl.keys import require_key

if TYPE_CHECKING:
    from modelctl.registry import Deployment

ANTHROPIC_API_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

STOP_REASONS = {"end_turn": FINISH_STOP, "stop_sequence": FINISH_STOP, "max_tokens": FINISH_LENGTH,
                "model_context_window_exceeded": FINISH_LENGTH}


def _usage(data: Any, input_tokens: int | None = None) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = data.get("input_tokens", input_tokens)
    if isinstance(prompt, int):
        prompt += sum(data.get(k) or 0 for k in ("cache_creation_input_tokens", "cache_read_input_tokens"))
    out = data.get("output_tokens")
    if isinstance(prompt, int) and isinstance(out, int):
        return Usage(prompt_tokens=prompt, completion_tokens=out)
    return None


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
        body: dict[str, Any] = {
            "model": self.deployment.model,
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "messages": turns,
        }
        if system:
            body["system"] = system
        for name in ("temperature", "top_p", "top_k"):
            if getattr(params, name) is not None:
                body[name] = getattr(params, name)
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        self.note_ignored([n for n in ("seed", "repeat_penalty") if getattr(params, n) is not None])
        if stream:
            body["stream"] = True
        return {**body, **options}

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        return f"{self.base}/v1/messages", None

    def read_whole(self, data: Any) -> tuple[str, StreamState]:
        blocks = data.get("content") if isinstance(data, dict) else None
        if not isinstance(blocks, list):
            raise error(BackendError, f"Anthropic answered without content: {provider_message(data, str(data))}")
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        reason = data.get("stop_reason") or "end_turn"
        return text, StreamState(finish_reason=STOP_REASONS.get(reason, reason), usage=_usage(data.get("usage")))

    def read_event(self, event: Event, state: StreamState, lines: LineStream) -> list[str]:
        if event.event == "ping":
            return []
        try:
            data = event.json()
        except ValueError:
            raise lines.interrupted(f"unreadable event from Anthropic: {event.data[:120]!r}") from None
        kind = data.get("type") if isinstance(data, dict) else None
        if event.event == "error" or kind == "error":
            raise lines.interrupted(f"Anthropic reported an error: {provider_message(data)}")
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            state.extra["input_tokens"] = usage.get("input_tokens")
            state.usage = _usage(usage)
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [delta["text"]]
        elif kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                state.finish_reason = STOP_REASONS.get(reason, reason)
            usage = _usage(data.get("usage"), state.extra.get("input_tokens"))
            if usage is not None:
                state.usage = usage
        elif kind == "message_stop":
            state.done = True
            state.finish_reason = state.finish_reason or FINISH_STOP
        return []

    def count_tokens(self, messages: Sequence[Message]) -> int:
        system, turns = split_system(messages)
        body: dict[str, Any] = {"model": self.deployment.model, "messages": turns}
        if system:
            body["system"] = system
        assert self.http is not None
        data = self.http.request_json("POST", f"{self.base}/v1/messages/count_tokens", body)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise error(BackendError, "Anthropic answered the token count without input_tokens")
        return data["input_tokens"]

    def live_info(self) -> dict[str, Any]:
        data = self.live_request("GET", f"{self.base}/v1/models/{quote(self.model_id, safe='')}")
        return {k: v for k, v in data.items() if k != "type"} if isinstance(data, dict) else {}
