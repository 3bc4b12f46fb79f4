"""OpenAI, Azure OpenAI, and any OpenAI-compatible server (vLLM, TGI, llama.cpp's server,
LM Studio, LocalAI, Ollama's `/v1`): chat completions with server-sent events, one-shot answers
(`-o stream=false`), embeddings.

The three kinds differ only in where requests go and how the key travels:

| kind | URL | key |
|---|---|---|
| `openai` | `{api_base or https://api.openai.com/v1}/chat/completions` | `Authorization: Bearer` |
| `azure-openai` | `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…` | `api-key` |
| `openai-compatible` | `{api_base}/chat/completions` | `Authorization: Bearer`, when there is a key |

Streaming asks for `stream_options.include_usage`, so the last event carries token usage
(servers that ignore it simply report none). Tools, the conversation's calls and results, and the
calls of an answer (streamed deltas assembled) are OpenAI's format, in `tool_wire`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence
from urllib.parse import quote

from modelctl.backends.api import ApiBackend, StreamState, pop_stream_flag
from modelctl.backends.base import FINISH_LENGTH, FINISH_STOP, Chunk, GenerationParams, Message, ResponseFormat, Usage
from modelctl.backends.params import param_table, request_fields
from modelctl.backends.tool_wire import OPENAI_FORM, MessageForm, openai_messages, refuse_tools, tool_fields
from modelctl.errors import BackendError, UsageError
from modelctl.keys import find_key, require_key
from modelctl.transport.http_client import ErrorContext, LineStream, error
from modelctl.transport.server_text import one_line, provider_message
from modelctl.transport.sse import Event
from modelctl.transport.wire import Wire

if TYPE_CHECKING:
    from modelctl.registry import Deployment

OPENAI_API_BASE = "https://api.openai.com/v1"

FINISH_REASONS = {"stop": FINISH_STOP, "length": FINISH_LENGTH, "eos": FINISH_STOP, "model_length": FINISH_LENGTH}

# The request field of each generation parameter, per kind; None: the service has no such parameter.
PARAMETERS: dict[str, dict[str, str | None]] = {
    "openai": param_table(max_tokens="max_completion_tokens", temperature="temperature", top_p="top_p",
                          seed="seed", stop="stop", top_k=None, repeat_penalty=None),
    "azure-openai": param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p",
                                seed="seed", stop="stop", top_k=None, repeat_penalty=None),
    # llama.cpp's server and LocalAI spell these so; vLLM takes -o repetition_penalty=…
    "openai-compatible": param_table(max_tokens="max_tokens", temperature="temperature", top_p="top_p",
                                     seed="seed", stop="stop", top_k="top_k", repeat_penalty="repeat_penalty"),
}


# Where servers put the reasoning they send apart from the answer: DeepSeek, llama.cpp's server
# and vLLM say `reasoning_content`; OpenRouter, Ollama's /v1 and newer vLLM say `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def read_usage(data: Any, wire: Wire) -> Usage | None:
    """`usage` of an answer: both counts (and the reasoning tokens among them, where told), else
    none. `prompt_tokens_details.cached_tokens` (OpenAI, Azure, Mistral, vLLM) are the prompt
    tokens read from the provider's cache; a value that is no count of them is dropped."""
    data = wire.obj(data, "usage")
    prompt = wire.count(data.get("prompt_tokens"), "usage.prompt_tokens")
    completion = wire.count(data.get("completion_tokens"), "usage.completion_tokens")
    details = wire.obj(data.get("completion_tokens_details"), "usage.completion_tokens_details")
    reasoning = wire.count(details.get("reasoning_tokens"), "usage.completion_tokens_details.reasoning_tokens")
    if prompt is None or completion is None:
        return None
    prompt_details = data.get("prompt_tokens_details")
    cached = wire.detail_count(prompt_details.get("cached_tokens"), prompt) if isinstance(prompt_details, dict) else None
    return Usage(prompt_tokens=prompt, completion_tokens=completion, reasoning_tokens=reasoning).with_cache(cached)


def read_reasoning(message: dict[str, Any], wire: Wire) -> str:
    """The reasoning a message or delta carries apart from its text: a reasoning field, or the
    `thinking` parts of a content list (Mistral's Magistral models answer so)."""
    fields = "".join(wire.text(message.get(name), f"the answer's {name}") or "" for name in REASONING_FIELDS)
    content = message.get("content")
    if not isinstance(content, list):
        return fields
    thoughts = [wire.obj(part, "a part of the answer's content", optional=False).get("thinking") for part in content]
    return fields + "".join(read_content(t, wire, "a thinking part") or "" for t in thoughts if t is not None)


def reasoning_fields(params: GenerationParams, kind: str) -> tuple[dict[str, Any], list[str]]:
    """(request fields for --reasoning-effort and --no-think, names the service has no field for).
    OpenAI takes `reasoning_effort` (Mistral, which shares this backend, neither); an OpenAI-compatible server (vLLM, llama.cpp's) also passes
    `chat_template_kwargs` to its template, where Qwen3's reads `enable_thinking`. DeepSeek thinks
    or not by model (deepseek-reasoner, deepseek-chat)."""
    found: dict[str, Any] = {}
    lacking: list[str] = []
    if params.reasoning_effort is not None:
        if kind in PARAMETERS:
            found["reasoning_effort"] = params.reasoning_effort
        else:
            lacking.append("reasoning_effort")
    if params.think is not None:
        if kind == "openai-compatible":
            found["chat_template_kwargs"] = {"enable_thinking": params.think}
        else:
            lacking.append("think")
    return found, lacking


def finish_reason(value: str | None) -> str | None:
    return None if value is None else FINISH_REASONS.get(value, value)


def read_content(value: Any, wire: Wire, what: str = "the answer's content") -> str | None:
    """A message's content: text, or a list of parts whose text parts are joined (Mistral's
    reasoning models answer so)."""
    if not isinstance(value, list):
        return wire.text(value, what)
    texts = []
    for part in value:
        part = wire.obj(part, f"a part of {what}", optional=False)
        if part.get("type", "text") == "text":
            texts.append(wire.text(part.get("text"), f"a text part of {what}") or "")
    return "".join(texts)


def first_choice(choices: Any, wire: Wire) -> dict[str, Any] | None:
    """The choice with index 0 among `choices` (n=1 is what is asked for), or None."""
    for choice in wire.items(choices, "choices"):
        choice = wire.obj(choice, "a choice", optional=False)
        if (wire.count(choice.get("index"), "a choice's index") or 0) == 0:
            return choice
    return None


class OpenAIBackend(ApiBackend):
    """Chat completions and embeddings in OpenAI's wire format."""

    stream_usage = True  # ask for usage in the last event (stream_options.include_usage)
    tool_required = "required"  # tool_choice for "call a tool, any one"

    def __init__(self, deployment: "Deployment", *, api_base: str | None = None, api_key: str | None = None,
                 **options: Any) -> None:
        kind = deployment.kind
        if kind not in PARAMETERS:
            raise UsageError(f"the OpenAI backend does not serve '{kind}' deployments")
        if kind == "openai-compatible":
            key = find_key("openai-compatible", key_env=deployment.key_env, explicit=api_key)
        else:
            key = require_key(kind, key_env=deployment.key_env, explicit=api_key)
        super().__init__(deployment, key=key, **options)
        self.parameters = PARAMETERS[kind]
        self.query: dict[str, str] | None = None
        headers: dict[str, str] = {}
        model = deployment.model or ""
        if kind == "azure-openai":
            self.label = "Azure OpenAI"
            endpoint = api_base or deployment.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT", "")
            if not endpoint:
                raise UsageError(
                    "Azure OpenAI needs the resource's endpoint (https://NAME.openai.azure.com)",
                    hint="set AZURE_OPENAI_ENDPOINT, give the deployment an `endpoint`, or pass --api-base",
                )
            self.azure_deployment = deployment.deployment or model
            self.base = f"{self.use_base(endpoint)}/openai/deployments/{quote(self.azure_deployment, safe='')}"
            if not deployment.api_version:
                raise UsageError(f"Azure OpenAI deployment '{self.azure_deployment}' needs an api_version")
            self.query = {"api-version": deployment.api_version}
            headers["api-key"] = key.value or ""
            not_found = (f"has no deployment '{self.azure_deployment}' at {self.endpoint} "
                         f"(api-version {deployment.api_version})")
        elif kind == "openai":
            self.label = "OpenAI"
            self.base = self.use_base(api_base or deployment.api_base or OPENAI_API_BASE)
            headers["authorization"] = f"Bearer {key.value}"
            if deployment.organization:
                headers["openai-organization"] = deployment.organization
            not_found = f"does not know the model '{model}'"
        else:
            base = api_base or deployment.api_base
            if not base:
                raise UsageError(f"openai-compatible deployment of '{model}' has no api_base",
                                 hint="pass --api-base URL")
            self.base = self.use_base(base)
            self.label = f"the server at {self.endpoint}"
            if key.value:
                headers["authorization"] = f"Bearer {key.value}"
            not_found = f"has no model '{model}' (or no such endpoint; the base URL usually ends in /v1)"
        self.http = self.make_client(ErrorContext(self.label, not_found=not_found, key_hint=self._key_hint()), headers)

    def _key_hint(self) -> str | None:
        if self.key.source:
            return f"the key came from {self.key.source}"
        if self.kind == "openai-compatible":
            var = self.deployment.key_env or "OPENAI_API_KEY"
            return f"the server wants a key: pass --api-key or set {var}"
        return None

    # --- requests ------------------------------------------------------------------------------------

    def body_model(self) -> str | None:
        """The request's `model` field; None where the URL names the model (Azure OpenAI's deployment)."""
        return None if self.kind == "azure-openai" else self.deployment.model

    def request_body(self, messages: Sequence[Message], params: GenerationParams, stream: bool,
                     options: dict[str, Any]) -> dict[str, Any]:
        turns = openai_messages(messages, self.message_form())
        payload = {"messages": turns, **tool_fields(params, required=self.tool_required)}
        return self._body(payload, params, stream, options, self.parameters)

    def message_form(self) -> MessageForm:
        """How the service takes the conversation's tool calls and results."""
        return MessageForm(empty_content="") if self.kind == "openai-compatible" else OPENAI_FORM

    def _body(self, payload: dict[str, Any], params: GenerationParams, stream: bool, options: dict[str, Any],
              parameters: dict[str, str | None]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.body_model() is not None:
            body["model"] = self.body_model()
        body.update(payload)
        sampling, ignored = request_fields(params, parameters)
        body.update(sampling)
        thinking, lacking = reasoning_fields(params, self.kind)
        body.update(thinking)
        self.note_ignored(ignored + lacking)
        if params.response_format is not None:
            # A server that is not OpenAI's is most often llama.cpp's, which takes the schema as
            # `json_object` + `schema` (and refuses `json_schema`); vLLM and Ollama read it as JSON mode.
            form = "json_object" if self.kind == "openai-compatible" else "json_schema"
            body["response_format"] = response_format(params.response_format, schema_form=form)
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return {**body, **options}

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        """The continuation of `text` from the legacy `/completions` endpoint (base and instruct
        models on OpenAI-compatible servers; gpt-3.5-turbo-instruct at OpenAI and Azure OpenAI)."""
        refuse_tools(params, f"text completion at {self.label}")
        stream, options = pop_stream_flag(params.extra)
        # /completions takes max_tokens at every service (max_completion_tokens is chat's).
        parameters = {**self.parameters, "max_tokens": "max_tokens"}
        body = self._body({"prompt": text}, params, stream, options, parameters)
        return self.exchange(f"{self.base}/completions", self.query, body, stream)

    def chat_target(self, stream: bool) -> tuple[str, dict[str, str] | None]:
        return f"{self.base}/chat/completions", self.query

    def read_event(self, event: Event, state: StreamState, lines: LineStream) -> list[str | Chunk]:
        """The deltas of one `chat.completion.chunk` event: reasoning, then text."""
        if event.data.strip() == "[DONE]":  # the explicit end: a finish reason is not always sent before it
            state.done = True
            state.finish_reason = state.finish_reason or FINISH_STOP
            return []
        try:
            data = event.json()
        except ValueError as exc:
            why = f"unreadable event from {self.label} ({exc}): {one_line(event.data, 120)}"
            raise lines.interrupted(why) from None
        wire = self.wire
        data = wire.obj(data, "an event", optional=False)
        if data.get("error"):
            raise lines.interrupted(f"{self.label} reported an error: {provider_message(data)}")
        usage = read_usage(data.get("usage"), wire)
        if usage is not None:
            state.usage = usage
        choice = first_choice(data.get("choices"), wire)
        if choice is None:
            return []
        if "delta" in choice:
            delta = wire.obj(choice.get("delta"), "a choice's delta")
            state.calls.add_deltas(delta.get("tool_calls"), wire)
            content = read_content(delta.get("content"), wire)
            reasoning = read_reasoning(delta, wire)
        else:  # a text completion's choice
            content, reasoning = wire.text(choice.get("text"), "a choice's text"), None
        reason = wire.reason(choice.get("finish_reason"))
        if reason:
            state.finish_reason = finish_reason(reason)
        return [Chunk(reasoning=reasoning), content or ""] if reasoning else [content] if content else []

    def read_whole(self, data: Any) -> tuple[str, StreamState]:
        wire = self.wire
        data = wire.obj(data, "the answer", optional=False)
        choice = first_choice(data.get("choices"), wire)
        message: dict[str, Any] = {}
        if choice is not None and "text" in choice:  # a text completion
            text = wire.text(choice.get("text"), "a choice's text") or ""
        elif choice is None or not isinstance(choice.get("message"), dict):
            raise error(BackendError, f"{self.label} answered without a message: {provider_message(data)}")
        else:
            message = choice["message"]
            text = read_content(message.get("content"), wire) or ""
        reason = finish_reason(wire.reason(choice.get("finish_reason")))
        state = StreamState(finish_reason=reason or FINISH_STOP, usage=read_usage(data.get("usage"), wire),
                            reasoning=read_reasoning(message, wire))
        state.calls.add_whole(message.get("tool_calls"), wire)
        return text, state

    # --- embeddings and metadata -------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {"input": list(texts)}
        if self.body_model() is not None:
            body["model"] = self.body_model()
        assert self.http is not None
        data = self.http.request_json("POST", f"{self.base}/embeddings", body, params=self.query)
        return read_embeddings(data, len(texts), self.wire)

    def live_info(self) -> dict[str, Any]:
        if self.kind == "azure-openai":
            return {}
        if self.kind == "openai-compatible":
            data = self.live_request("GET", f"{self.base}/models")
            models = [m for m in self.wire.items(self.wire.obj(data, "the model list").get("data"), "data")
                      if isinstance(m, dict)]
            info: dict[str, Any] = {"served_models": [m.get("id") for m in models]}
            match = next((m for m in models if m.get("id") == self.model_id), None)
            if match:
                info.update({k: v for k, v in match.items() if k in ("id", "owned_by", "created", "max_model_len")})
            return info
        data = self.live_request("GET", f"{self.base}/models/{quote(self.model_id, safe='')}")
        return {k: v for k, v in data.items() if k != "object"} if isinstance(data, dict) else {}


def response_format(fmt: ResponseFormat, *, schema_form: str = "json_schema") -> dict[str, Any]:
    """`response_format` for a JSON answer: any JSON object (`json_object`), or a JSON Schema in
    OpenAI's form (`json_schema`: OpenAI, Azure, Mistral; Hugging Face's client translates it) or
    in llama.cpp's (`json_object` with `schema`: its server and llama-cpp-python's). Not `strict`:
    OpenAI's strict mode refuses schemas without `additionalProperties: false` on every object;
    the answer is validated here in any case."""
    if fmt.schema is None:
        return {"type": "json_object"}
    if schema_form == "json_object":
        return {"type": "json_object", "schema": fmt.json_schema()}
    return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.json_schema()}}


def read_embeddings(data: Any, count: int, wire: Wire) -> list[list[float]]:
    """Vectors from an OpenAI-style `{"data": [{"index", "embedding"}]}` answer, in index order."""
    items = [wire.obj(item, "an embedding", optional=False)
             for item in wire.items(wire.obj(data, "the answer", optional=False).get("data"), "data")]
    indexed = sorted(((wire.count(item.get("index"), "an embedding's index") or 0, n), item)
                     for n, item in enumerate(items))
    return wire.vectors([item.get("embedding") for _, item in indexed], count)
