"""The protocol every backend implements, and the values that cross it.

A backend turns a conversation (a list of `{"role": ..., "content": ...}` messages, roles
`system`, `user`, `assistant`) and `GenerationParams` into a stream of `Chunk`s: text deltas,
then one final chunk with the finish reason, token usage and timings. The chat loop, the renderer
and the history see only these values, so they never branch on the provider.

`Backend` is everything the chat loop asks of any provider. `LocalBackend` adds what only a model
loaded in this process has (its conversation template, the rendered prompt and its tokens, the
context window); `is_local(backend)` says which one a caller holds, in a way type checkers follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import (
    TYPE_CHECKING,
    Any,
    Iterator,
    Mapping,
    Protocol,
    Sequence,
    TypeGuard,
    get_args,
    get_type_hints,
    runtime_checkable,
)

from modelctl.errors import BackendError, UsageError

if TYPE_CHECKING:
    from typing_extensions import Self

    from modelctl.templates.types import ChatTemplate, RenderedPrompt

# A message of a conversation: {"role", "content"}, and with tools (see ToolCall) an assistant's
# "tool_calls" ([{"id", "name", "arguments"}]) or a tool result's "tool_call_id" and "name".
Message = Mapping[str, Any]

# Why a generation ended.
FINISH_STOP = "stop"  # end-of-generation token or stop string
FINISH_LENGTH = "length"  # max_tokens or the context window
FINISH_INTERRUPTED = "interrupted"  # the caller stopped reading (Ctrl-C)
FINISH_TOOL_CALLS = "tool_calls"  # the model asks for tools to be called (Chunk.tool_calls)

# `GenerationParams.tool_choice`, besides a tool's name.
TOOL_CHOICES: tuple[str, ...] = ("auto", "none", "required")


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model is told of it: its name (unique among the tools of one request), what it
    does, and a JSON Schema (an object) of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def function(self) -> dict[str, Any]:
        """{"name", "description", "parameters"}: the function object most providers take."""
        return {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}

    def openai(self) -> dict[str, Any]:
        """OpenAI's (and a Jinja chat template's) form: {"type": "function", "function": {...}}."""
        return {"type": "function", "function": self.function()}


@dataclass(frozen=True)
class ToolCall:
    """A call a model asked for. `arguments` is the JSON text as the model wrote it (it may not be
    valid: `arguments_json` says so); `id` pairs the call with its result."""

    id: str
    name: str
    arguments: str = "{}"

    def arguments_json(self) -> dict[str, Any]:
        """The arguments as a JSON object; BackendError naming the tool when they are not one."""
        import json  # noqa: PLC0415 (json: only where a call is read)

        try:
            value = json.loads(self.arguments or "{}")
        except (ValueError, RecursionError):
            raise BackendError(f"the model called {self.name} with arguments that are not JSON: "
                               f"{self.arguments[:200]!r}") from None
        if not isinstance(value, dict):
            raise BackendError(f"the model called {self.name} with arguments that are not a JSON object")
        return value

    def to_dict(self) -> dict[str, str]:
        """The message form (an assistant message's "tool_calls" item)."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ToolCall":
        return cls(str(data.get("id", "")), str(data.get("name", "")), str(data.get("arguments", "{}")))


@dataclass(frozen=True)
class ResponseFormat:
    """The answer must be JSON: an object of any shape (`schema` None, `--json-mode`) or a value
    that validates against the JSON Schema `schema` (`--schema`). Each backend asks for it in its
    provider's own way; the caller validates what comes back."""

    schema: Mapping[str, Any] | None = None
    # The name providers want for the schema (OpenAI's json_schema, Anthropic's forced tool).
    name = "answer"

    def json_schema(self) -> dict[str, Any]:
        """The schema to send: `schema`, or any JSON object for `--json-mode`."""
        return dict(self.schema) if self.schema is not None else {"type": "object"}


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and stopping parameters. None means "the backend's or model's default".

    `extra` carries provider-specific parameters verbatim (`-o KEY=VALUE` on the command line);
    `response_format`, when set, asks for a JSON answer (structured output).
    `think` (False: `--no-think`) and `reasoning_effort` ("low", "medium", "high") steer a model
    that reasons; each backend maps them to its provider's switch (REASONING_PARAMS).
    `cache` (`--cache`) asks a provider whose prompt cache must be asked for (Anthropic) to cache
    the prompt's prefix; the others cache by themselves, and a local model reuses its prefix.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float | None = None
    think: bool | None = None
    reasoning_effort: str | None = None
    cache: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    response_format: ResponseFormat | None = None
    tools: tuple[ToolSpec, ...] = ()  # the tools the model may call
    tool_choice: str | None = None  # TOOL_CHOICES or a tool's name; None: the provider's default (auto)

    def overlay(self, **changes: Any) -> "GenerationParams":
        """A copy with every change that is not None (or empty) applied: layering of defaults.

        `stop` values accumulate; `extra` tables merge, later keys winning.
        """
        updates: dict[str, Any] = {}
        for f in fields(self):
            value = changes.pop(f.name, None)
            if value is None or value == () or value == {} or value == []:
                continue
            if f.name == "stop":
                value = tuple(dict.fromkeys((*self.stop, *value)))
            elif f.name == "extra":
                value = {**self.extra, **value}
            updates[f.name] = value
        if changes:
            raise TypeError(f"unknown generation parameter(s): {', '.join(sorted(changes))}")
        return replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["stop"] = list(self.stop)
        data["extra"] = dict(self.extra)
        if self.response_format is None:  # saved conversations and `/set` keep their shape
            del data["response_format"]
        else:
            data["response_format"] = {"schema": self.response_format.schema}
        del data["tools"]  # the tools are told apart (history: the turn's tool calls)
        if self.tool_choice is None:
            del data["tool_choice"]
        return data


# The parameters for reasoning: no provider takes them as one request field each (Anthropic and
# Gemini take an object, a local model a template variable), so each backend maps them itself.
REASONING_PARAMS: tuple[str, ...] = ("think", "reasoning_effort")
REASONING_EFFORTS: tuple[str, ...] = ("low", "medium", "high")

# The sampling parameters by name (every field of GenerationParams but `extra`, `response_format`,
# `cache` and the reasoning ones): what the flags, config.toml, the registry's defaults, `/set`
# and each provider's parameter table name.
PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(GenerationParams)
                                     if f.name not in ("extra", "response_format", "cache", "tools", "tool_choice")
                                     and f.name not in REASONING_PARAMS)


def _number_params() -> dict[str, type]:
    hints = get_type_hints(GenerationParams)
    kinds = {name: [t for t in get_args(hints[name]) if t is not type(None)] for name in PARAM_NAMES}
    return {name: kind[0] for name, kind in kinds.items() if kind and kind[0] in (int, float)}


# The numeric ones, and the type of each (int or float): all of them but `stop`.
NUMBER_PARAMS: dict[str, type] = _number_params()


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer; `reasoning_tokens` (part of `completion_tokens`) where the
    provider reports them. Of `prompt_tokens`, `cached_tokens` were read from the provider's
    prompt cache (a local backend: the evaluated prefix it reused) and `cache_write_tokens`
    written to it (Anthropic), where told; set them with `with_cache`."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None

    def with_cache(self, read: int | None, written: int | None = None) -> "Usage":
        """This usage with the cache's counts, both dropped when together they are more than the
        prompt (a server's counts that cannot be true are not billed)."""
        if (read or 0) + (written or 0) > self.prompt_tokens:
            read = written = None
        return replace(self, cached_tokens=read, cache_write_tokens=written)

    def to_dict(self) -> dict[str, int]:
        counts = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        for name in ("reasoning_tokens", "cached_tokens", "cache_write_tokens"):
            value = getattr(self, name)
            if value is not None:
                counts[name] = value
        return counts


@dataclass(frozen=True)
class Timings:
    """Seconds and rates for one answer. `load_s` is the model load this answer paid for (0 when
    the model was already loaded); `prompt_eval_tokens` counts the prompt tokens actually
    evaluated (a local backend reuses what it evaluated on earlier turns)."""

    load_s: float | None = None
    first_token_s: float | None = None
    tokens_per_second: float | None = None
    prompt_eval_tokens: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer. The last chunk of a stream has `finish_reason` set (and
    usually no text); only it carries `usage` and `timings`. `reasoning` is what a provider sends
    apart as the model's reasoning (a `reasoning_content` delta, a `thinking` block); reasoning
    written into the text itself (`<think>…</think>`) is parted later, by the chat session."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # on the final chunk (finish_reason "tool_calls"), whole

    @property
    def final(self) -> bool:
        return self.finish_reason is not None


@runtime_checkable
class Backend(Protocol):
    """What the chat loop needs from a provider."""

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """Stream the assistant's answer to `messages`. Closing the iterator early stops the
        generation (the partial answer stays valid)."""
        ...

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        """Stream the continuation of `text`, with no conversation template (`modelctl complete`).
        Raises UsageError where the service has no text-completion endpoint."""
        ...

    def describe(self) -> dict[str, Any]:
        """Service metadata: `model_id`, `kind`, endpoint or file, and any other attributes."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens `messages` would cost. May raise BackendError where unsupported."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text. May raise BackendError where unsupported."""
        ...

    def set_debug(self, enabled: bool) -> None:
        """Turn on or off the backend's own description of its requests (`/debug on|off`). A
        server or API backend describes each request it sends; one with nothing of its own to
        describe ignores this."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class LocalBackend(Backend, Protocol):
    """A model loaded in this process (llama.cpp): modelctl renders its prompt with a conversation
    template and tokenizes it, so there is more to show and to change than for a service."""

    template: "ChatTemplate | None"  # may be replaced between turns (`/template`)
    last_rendered: "RenderedPrompt | None"  # the prompt of the last `chat()`, for --debug
    last_prompt_tokens: list[int]  # its tokens

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (loading is lazy)."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens a prompt and its answer may take together."""
        ...

    def load(self) -> object:
        """Load the model (once); chat() would load it too, this lets a caller say so first."""
        ...

    def compute_description(self) -> str:
        """Where the layers run: 'CPU', 'GPU (CUDA, 19/19 layers)', and the buffer path."""
        ...

    def render(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> "RenderedPrompt":
        """The template's rendering of `messages`, ready for a generation prompt; `variables` are
        template variables (`template_variables(params)`)."""
        ...

    def tokenize_rendered(self, rendered: "RenderedPrompt") -> list[int]:
        """The tokens of a rendered prompt, as `chat()` evaluates them."""
        ...

    def forget(self) -> None:
        """Drop the evaluated tokens: the next prompt is evaluated from its first token."""
        ...


def template_variables(params: GenerationParams) -> dict[str, Any]:
    """What `params` tell a local model's template: the reasoning switches (Qwen3's
    `enable_thinking`, Granite's `thinking`, gpt-oss's `reasoning_effort`; a template ignores those
    it does not read) and, unless the tool choice is none, the tools' definitions (`tools`)."""
    variables: dict[str, Any] = {}
    if params.think is not None:
        variables["enable_thinking"] = variables["thinking"] = params.think
    if params.reasoning_effort is not None:
        variables["reasoning_effort"] = params.reasoning_effort
    if params.tools and params.tool_choice != "none":
        variables["tools"] = [tool.openai() for tool in params.tools]
    return variables


def is_local(backend: Backend) -> TypeGuard[LocalBackend]:
    """Whether `backend` runs the model in this process (and so has a template, a rendered
    prompt and tokens to show)."""
    return isinstance(backend, LocalBackend)


def serving(backend: Backend) -> Backend:
    """The backend that answers now: `backend`, or the one inside a `RoutingBackend`
    (`--fallback`, `--max-cost`), which is local or not as the model it holds is."""
    while isinstance(backend, RoutingBackend):
        backend = backend.current
    return backend


def template_name(backend: Backend) -> str | None:
    """The name of the conversation template `backend` renders with; None for a server or API."""
    backend = serving(backend)
    if is_local(backend) and backend.template is not None:
        return backend.template.name
    return None


class BaseBackend:
    """Defaults for the optional parts of the protocol."""

    kind = "unknown"

    def count_tokens(self, messages: Sequence[Message]) -> int:
        raise BackendError(f"the {self.kind} backend cannot count tokens")

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        raise UsageError(f"{self.kind} deployments have no text-completion endpoint",
                         hint="use `modelctl chat`, or a deployment of another kind with --deployment")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise BackendError(f"the {self.kind} backend does not compute embeddings")

    def set_debug(self, enabled: bool) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collect(chunks: Iterator[Chunk]) -> tuple[str, Chunk]:
    """Drain a stream: the whole text and the final chunk."""
    parts: list[str] = []
    final = Chunk(finish_reason=FINISH_STOP)
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.final:
            final = chunk
    return "".join(parts), final


class RoutingBackend(BaseBackend):
    """A backend that decides how a request is sent (to which service, whether at all) and hands
    it to `current`, which does the rest; `serving()` looks through it."""

    current: Backend

    def describe(self) -> dict[str, Any]:
        return self.current.describe()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.current.count_tokens(messages)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.current.embed(texts)

    def set_debug(self, enabled: bool) -> None:
        self.current.set_debug(enabled)

    def close(self) -> None:
        self.current.close()
