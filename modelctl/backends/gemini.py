"""Google's Gemini API (`https://generativelanguage.googleapis.com/v1beta`).

Chat is `models/{model}:streamGenerateContent?alt=sse`: each event is a whole
`GenerateContentResponse` (candidates with text parts, a `finishReason` on the last, and
`usageMetadata`). The key travels in the `x-goog-api-key` header, never in the URL. Turns are
`contents` with roles `user` and `model`; the system prompt is `systemInstruction`. Embeddings
use `:batchEmbedContents`, token counts `:countTokens`. Structured output is
`generationConfig.responseMimeType` "application/json" and `responseSchema` (`response_schema`).

Tools are `tools: [{functionDeclarations: [{name, description, parameters}]}]`, the parameters'
schema in the form of `responseSchema` (a schema that has no such form goes whole as
`parametersJsonSchema`; one with no parameters goes without, as Gemini wants), and the tool choice
`toolConfig.functionCallingConfig` (mode AUTO, NONE or ANY, with `allowedFunctionNames` for a named
tool). Calls arrive whole as `functionCall` parts ({name, args}), several in one answer maybe, with
no id: each gets `call_<n>`. Sent back, calls are `functionCall` parts of the model's turn and their
results `functionResponse` parts ({name, response: {content}}) of one user turn, in the order of
the calls. A call's `thoughtSignature` (Gemini 3 refuses the calls of the current turn without
theirs) and an id Gemini gave go back with it while this backend lives; a call of the current turn
whose signature is not known gets the placeholder Gemini documents for calls it did not make.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import quote

from modelctl.backends.api import ApiBackend, StreamState, split_system
from modelctl.backends.base import (
    FINISH_LENGTH,
    FINISH_STOP,
    Chunk,
    GenerationParams,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from modelctl.backends.images import gemini_parts
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

GEMINI_API_BASE = "https://generativelanguage.googleapis.com/v1beta"

FINISH_REASONS = {"STOP": FINISH_STOP, "MAX_TOKENS": FINISH_LENGTH}
# The generationConfig field of each generation parameter.
PARAMETERS = param_table(temperature="temperature", top_p="topP", top_k="topK", max_tokens="maxOutputTokens",
                         seed="seed", stop="stopSequences", repeat_penalty=None)
# Request fields that sit beside generationConfig rather than inside it (for -o KEY=VALUE).
TOP_LEVEL = frozenset({"safetySettings", "tools", "toolConfig", "cachedContent", "labels"})


# thinkingConfig.thinkingBudget per --reasoning-effort (0, --no-think, turns thinking off where
# the model allows it).
THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}


def thinking_config(params: GenerationParams) -> dict[str, Any] | None:
    """generationConfig.thinkingConfig: the budget, and the model's thoughts sent back (as parts
    marked `thought`) when it is to think."""
    if params.think is False:
        return {"thinkingBudget": 0}
    if params.think or params.reasoning_effort:
        config: dict[str, Any] = {"includeThoughts": True}
        if params.reasoning_effort:
            config["thinkingBudget"] = THINKING_BUDGETS[params.reasoning_effort]
        return config
    return None
# Gemini's `responseSchema` is a subset of OpenAPI 3.0's Schema object: these keywords it takes
# as JSON Schema has them (`properties`, `items` and `anyOf` hold schemas in turn) ...
SCHEMA_KEYWORDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
    "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example"})
# ... these only loosen it, and are left out (the answer is validated against the whole schema) ...
LOOSENING = frozenset({"$schema", "$id", "$comment", "additionalProperties", "examples", "readOnly",
                       "writeOnly", "deprecated", "exclusiveMinimum", "exclusiveMaximum", "uniqueItems",
                       "multipleOf", "minContains", "maxContains", "contentMediaType", "contentEncoding"})
# ... and `const`, `oneOf` and a list of types have an equivalent. Any other keyword ($ref,
# allOf, not, if/then, …) is refused: Gemini would answer to another schema than the one given.


def response_schema(schema: Any, where: str = "") -> dict[str, Any]:
    """A JSON Schema in the form of Gemini's `responseSchema` (UsageError for a keyword it has
    no equivalent of, naming the keyword and where it is)."""
    if not isinstance(schema, dict):
        raise UsageError(f"Gemini's responseSchema needs a schema object at {where or '/'}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        at = f"{where}/{key}"
        if key in LOOSENING:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "oneOf":
            out["anyOf"] = [response_schema(s, f"{at}/{n}") for n, s in enumerate(value)]
        elif key == "type":
            out.update(_gemini_type(value, at))
        elif key not in SCHEMA_KEYWORDS:
            raise UsageError(f"Gemini's responseSchema has no '{key}' (at {at} of the schema)",
                             hint="write the schema without it (references resolved, no allOf/not)")
        elif key == "properties":
            out[key] = {name: response_schema(s, f"{at}/{name}") for name, s in value.items()}
        elif key == "items":
            out[key] = response_schema(value, at)
        elif key == "anyOf":
            out[key] = [response_schema(s, f"{at}/{n}") for n, s in enumerate(value)]
        else:
            out[key] = value
    return out


def _gemini_type(value: Any, where: str) -> dict[str, Any]:
    """`type` as Gemini writes it (`STRING`); `["string", "null"]` becomes `nullable`."""
    types = [value] if isinstance(value, str) else list(value)
    nullable = "null" in types
    types = [t for t in types if t != "null"]
    if len(types) != 1:
        raise UsageError(f"Gemini's responseSchema takes one type besides null, not {value} (at {where} of the schema)")
    return {"type": types[0].upper(), **({"nullable": True} if nullable else {})}


TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# The thoughtSignature Gemini documents for a call it did not make (or whose signature is lost).
UNSIGNED = "skip_thought_signature_validator"


def function_declaration(spec: ToolSpec) -> dict[str, Any]:
    """A tool as Gemini declares it. The parameters take `responseSchema`'s form where they have
    one; otherwise the schema goes as it is, as `parametersJsonSchema`. No parameters, no field:
    Gemini refuses an object schema without properties."""
    declaration: dict[str, Any] = {"name": spec.name, "description": spec.description}
    try:
        schema = response_schema(dict(spec.parameters))
    except UsageError:
        declaration["parametersJsonSchema"] = dict(spec.parameters)
        return declaration
    if schema.get("type") != "OBJECT" or schema.get("properties"):
        declaration["parameters"] = schema
    return declaration


def tool_fields(params: GenerationParams) -> dict[str, Any]:
    """`tools` and `toolConfig` of a request with tools."""
    choice = checked_choice(params)
    if not params.tools:
        return {}
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": [function_declaration(t) for t in params.tools]}]}
    if choice is not None:
        config = {"mode": TOOL_MODES[choice]} if choice in TOOL_MODES else {"mode": "ANY", "allowedFunctionNames": [choice]}
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields


def _call_key(call: ToolCall) -> tuple[str, str, str]:
    return call.id, call.name, call.arguments


def _usage(meta: Any, wire: Wire) -> Usage | None:
    meta = wire.obj(meta, "usageMetadata")
    prompt = wire.count(meta.get("promptTokenCount"), "usageMetadata.promptTokenCount")
    if prompt is None:
        return None
    thoughts = wire.count(meta.get("thoughtsTokenCount"), "usageMetadata.thoughtsTokenCount")
    out = (wire.count(meta.get("candidatesTokenCount"), "usageMetadata.candidatesTokenCount") or 0) + (thoughts or 0)
    cached = wire.detail_count(meta.get("cachedContentTokenCount"), prompt)  # part of promptTokenCount
    return Usage(prompt_tokens=prompt, completion_tokens=out, reasoning_tokens=thoughts).with_cache(cached)


def _finish(value: Any, wire: Wire) -> str | None:
    reason = wire.reason(value, "finishReason")
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    return FINISH_REASONS.get(reason, reason.lower())


class GeminiBackend(ApiBackend):
    label = "Gemini"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        key = require_key("gemini", key_env=deployment.key_env, explicit=api_key)
        super().__init__(deployment, key=key, **options)
        self.base = self.use_base(api_base or deployment.api_base or GEMINI_API_BASE)
        name = (deployment.model or "").removeprefix("models/")
        self.resource = f"models/{name}"
        self.model_url = f"{self.base}/models/{quote(name, safe='')}"
        ctx = ErrorContext(self.label, not_found=f"does not know the model '{name}'")
        self.http = self.make_client(ctx, {"x-goog-api-key": key.value or ""})
        self.call_extras = Replay()  # (id, name, arguments) of a call -> its signature and Gemini's id

    def contents(self, messages: Sequence[Message]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        system, turns = split_system(messages)
        # The current turn: what follows the user's last words (not a tool's).
        current = max((n for n, t in enumerate(turns) if t["role"] == "user"), default=-1)
        contents: list[dict[str, Any]] = []
        calls: list[ToolCall] = []  # those of the last model turn, which the results that follow answer
        for is_result, run in groupby(enumerate(turns), key=lambda item: item[1]["role"] == "tool"):
            if is_result:
                contents.append({"role": "user", "parts": self._response_parts([t for _, t in run], calls)})
                continue
            for n, turn in run:
                if turn["role"] == "assistant" and turn.get("tool_calls"):
                    calls = message_calls(turn)
                    contents.append({"role": "model", "parts": self._call_parts(turn, calls, n > current)})
                else:
                    contents.append({"role": "model" if turn["role"] == "assistant" else "user",
                                     "parts": gemini_parts(turn)})
        return ({"parts": [{"text": system}]} if system else None), contents

    def _call_parts(self, turn: Mapping[str, Any], calls: list[ToolCall], current: bool) -> list[dict[str, Any]]:
        """A model turn that called tools: its text, then a functionCall part per call."""
        parts: list[dict[str, Any]] = [{"text": turn["content"]}] if turn["content"] else []
        for n, call in enumerate(calls):
            extras = self.call_extras.get(_call_key(call)) or {}
            function = {"name": call.name, "args": call_input(call)}
            if extras.get("id"):
                function["id"] = call.id
            part: dict[str, Any] = {"functionCall": function}
            signature = extras.get("signature") or (UNSIGNED if n == 0 and current else None)
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def _response_parts(self, results: list[dict[str, Any]], calls: list[ToolCall]) -> list[dict[str, Any]]:
        """The results of a model turn's calls as functionResponse parts, in the order of the
        calls (Gemini pairs them by order and name)."""
        order = {c.id: n for n, c in enumerate(calls)}
        by_id = {c.id: c for c in calls}
        parts = []
        for result in sorted(results, key=lambda r: order.get(str(r.get("tool_call_id")), len(order))):
            call = by_id.get(str(result.get("tool_call_id")))
            name = call.name if call is not None else result.get("name")
            if not name:
                raise UsageError("a tool result that names no tool, nor a call of the turn before it")
            response: dict[str, Any] = {"name": name, "response": {"content": result["content"]}}
            if call is not None and (self.call_extras.get(_call_key(call)) or {}).get("id"):
                response["id"] = call.id
            parts.append({"functionResponse": response})
        return parts

    def request_body(self, messages: Sequence[Message], params: GenerationParams, stream: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        system, contents = self.contents(messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = system
        config, lacking = request_fields(params, PARAMETERS)
        self.note_ignored(lacking)
        thinking = thinking_config(params)
        if thinking is not None:
            config["thinkingConfig"] = thinking
        if params.response_format is not None:
            config["responseMimeType"] = "application/json"
            if params.response_format.schema is not None:
                config["responseSchema"] = response_schema(params.response_format.json_schema())
        body.update(tool_fields(params))
        for key, value in options.items():
            if key in TOP_LEVEL:
                body[key] = value
            else:
                config[key] = value
        if config:
            body["generationConfig"] = config
        return body

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        if stream:
            return f"{self.model_url}:streamGenerateContent", {"alt": "sse"}
        return f"{self.model_url}:generateContent", None

    def read_whole(self, data: Any) -> tuple[str, StreamState]:
        state = StreamState()
        parts = self._read(data, state, None)
        text = "".join(p for p in parts if isinstance(p, str))
        state.reasoning = "".join(p.reasoning for p in parts if isinstance(p, Chunk))
        if state.finish_reason is None:
            self._settle(state, FINISH_STOP)
        return text, state

    def read_event(self, event: Event, state: StreamState, lines: LineStream) -> list[str | Chunk]:
        try:
            data = event.json()
        except ValueError as exc:
            raise lines.interrupted(f"unreadable event from Gemini ({exc}): {one_line(event.data, 120)}") from None
        return self._read(data, state, lines)

    def _read(self, data: Any, state: StreamState, lines: LineStream | None) -> list[str | Chunk]:
        wire = self.wire
        data = wire.obj(data, "the answer", optional=False)
        if data.get("error"):
            why = f"Gemini reported an error: {provider_message(data)}"
            raise lines.interrupted(why) if lines else error(BackendError, why)
        usage = _usage(data.get("usageMetadata"), wire)
        if usage is not None:
            state.usage = usage
        candidates = wire.items(data.get("candidates"), "candidates")
        blocked = wire.reason(wire.obj(data.get("promptFeedback"), "promptFeedback").get("blockReason"), "blockReason")
        if blocked and not candidates:
            raise error(BackendError, f"Gemini refused the prompt ({blocked})")
        texts: list[str | Chunk] = []
        for cand in candidates:
            cand = wire.obj(cand, "a candidate", optional=False)
            if (wire.count(cand.get("index"), "a candidate's index") or 0) != 0:
                continue
            for part in wire.items(wire.obj(cand.get("content"), "a candidate's content").get("parts"), "parts"):
                part = wire.obj(part, "a part", optional=False)
                if part.get("functionCall") is not None:
                    self._add_call(part, state)
                    continue
                text = wire.text(part.get("text"), "the text of a part")
                if text:
                    texts.append(Chunk(reasoning=text) if part.get("thought") is True else text)
            reason = _finish(cand.get("finishReason"), wire)
            if reason:
                state.extra["reason"] = reason
        if "reason" in state.extra:  # settled again should a call come after the finish reason
            self._settle(state, state.extra["reason"])
        return texts

    def _add_call(self, part: dict[str, Any], state: StreamState) -> None:
        wire = self.wire
        call = wire.obj(part.get("functionCall"), "a functionCall", optional=False)
        args = wire.obj(call.get("args"), "a functionCall's args")
        calls = gatherer(state, wire)
        calls.add(call.get("id"), call.get("name"), json.dumps(args, ensure_ascii=False) if args else "")
        extras = {"id": bool(call.get("id")), "signature": wire.text(part.get("thoughtSignature"), "a thoughtSignature")}
        if any(extras.values()):
            state.extra.setdefault("call_extras", {})[len(calls) - 1] = extras

    def _settle(self, state: StreamState, reason: str) -> None:
        """The answer's calls settled, and what goes back with each kept."""
        gatherer(state, self.wire).settle(state, reason)
        for n, extras in state.extra.get("call_extras", {}).items():
            if n < len(state.tool_calls):
                self.call_extras.keep(_call_key(state.tool_calls[n]), extras)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        system, contents = self.contents(messages)
        if system:
            body: dict[str, Any] = {"generateContentRequest": {"model": self.resource, "contents": contents,
                                                               "systemInstruction": system}}
        else:
            body = {"contents": contents}
        assert self.http is not None
        data = self.http.request_json("POST", f"{self.model_url}:countTokens", body)
        count = self.wire.count(self.wire.obj(data, "the answer", optional=False).get("totalTokens"), "totalTokens")
        if count is None:
            raise error(BackendError, "Gemini answered the token count without totalTokens")
        return count

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body = {"requests": [{"model": self.resource, "content": {"parts": [{"text": t}]}} for t in texts]}
        assert self.http is not None
        data = self.http.request_json("POST", f"{self.model_url}:batchEmbedContents", body)
        wire = self.wire
        items = wire.items(wire.obj(data, "the answer", optional=False).get("embeddings"), "embeddings")
        vectors = [wire.obj(item, "an embedding", optional=False).get("values") for item in items]
        return wire.vectors(vectors, len(texts))

    def live_info(self) -> dict[str, Any]:
        data = self.live_request("GET", self.model_url)
        keep = ("name", "baseModelId", "version", "displayName", "description", "inputTokenLimit",
                "outputTokenLimit", "supportedGenerationMethods")
        return {k: data[k] for k in keep if isinstance(data, dict) and data.get(k) is not None}
