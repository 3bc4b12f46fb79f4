"""A backend whose answers are written in advance: the test seam for code that uses a backend.

    backend = ScriptedBackend(["Hello!", Script.text("Blue", "."), Script.fail(BackendError("busy"))])
    session = ChatSession(backend)
    assert "".join(session.ask("Hi")) == "Hello!"
    assert backend.requests[0].messages == ({"role": "user", "content": "Hi"},)

Each request (`chat`, `complete`) takes the next prepared answer, a `Script`: chunks streamed in
order, then, if it has one, an error raised. An error with no chunks before it is raised by the
call itself, as a server's refusal is; after some chunks it is raised mid-stream, as a dropped
connection is. Every request is recorded (`requests`) for the caller to read. It is a real backend
with prepared output, in the spirit of httpx's `MockTransport`: code under test runs unchanged.

`ScriptedLocalBackend` is the in-process flavour (`is_local()` is true): it renders each
conversation with a real conversation template from `modelctl.templates`, so code that reads the
rendered prompt (`--debug`, a template that opens `<think>`) sees what a llama.cpp model would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, Union

from modelctl.backends.base import (
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    BaseBackend,
    Chunk,
    GenerationParams,
    Message,
    Timings,
    ToolCall,
    Usage,
    template_variables,
)
from modelctl.backends.images import carry_images
from modelctl.errors import BackendError
from modelctl.templates import resolve_template

if TYPE_CHECKING:
    from modelctl.templates.types import ChatTemplate, RenderedPrompt


@dataclass(frozen=True)
class Script:
    """One prepared answer: `chunks` streamed in order, then `error` raised (when set)."""

    chunks: tuple[Chunk, ...] = ()
    error: BaseException | None = None

    @classmethod
    def text(cls, *parts: str, reasoning: str = "", finish_reason: str = FINISH_STOP,
             usage: Usage | None = None, timings: Timings | None = None) -> "Script":
        """An answer that streams `reasoning` (as a provider sends it apart), then each of
        `parts` as one chunk, then a final chunk with `finish_reason`, `usage` and `timings`."""
        head = (Chunk(reasoning=reasoning),) if reasoning else ()
        final = Chunk(finish_reason=finish_reason, usage=usage, timings=timings)
        return cls((*head, *(Chunk(text=p) for p in parts), final))

    @classmethod
    def calls(cls, *calls: ToolCall, text: str = "", usage: Usage | None = None) -> "Script":
        """An answer that streams `text` (if any), then asks for `calls` (finish_reason
        "tool_calls")."""
        head = (Chunk(text=text),) if text else ()
        return cls((*head, Chunk(finish_reason=FINISH_TOOL_CALLS, usage=usage, tool_calls=calls)))

    @classmethod
    def fail(cls, error: BaseException, *parts: str) -> "Script":
        """`error` raised after the chunks `parts` (none: by the request itself)."""
        return cls(tuple(Chunk(text=p) for p in parts), error)


# What a script may be given as: a Script, a whole answer's text, or an error raised at once.
ScriptLike = Union[Script, str, BaseException]


def as_script(item: ScriptLike) -> Script:
    if isinstance(item, Script):
        return item
    if isinstance(item, str):
        return Script.text(item)
    if isinstance(item, BaseException):
        return Script.fail(item)
    raise TypeError(f"a script is a Script, a str or an exception, not {type(item).__name__}")


@dataclass(frozen=True)
class Request:
    """One request a ScriptedBackend received: `kind` "chat" (`messages`, copies of those sent,
    images kept: `backends.images.images_of`) or "complete" (`text`), with its parameters."""

    kind: str
    params: GenerationParams
    messages: tuple[dict[str, str], ...] = ()
    text: str | None = None


class ScriptExhausted(AssertionError):
    """A request came after the last prepared answer was used."""


class ScriptedBackend(BaseBackend):
    """A backend that answers each request with the next of `scripts` and records it.

    `endpoint` (a URL) makes it look like a service at that address, as `--fallback` compares
    them; `model_id` is what `describe()` says it is. `streams_open` counts answers begun and
    neither finished nor closed; `debug` is the last `set_debug()` value; `closed` says whether
    `close()` was called.
    """

    kind = "scripted"

    def __init__(self, scripts: Iterable[ScriptLike] = (), *, model_id: str = "scripted",
                 endpoint: str | None = None) -> None:
        self.scripts: list[Script] = [as_script(s) for s in scripts]
        self.model_id = model_id
        self.endpoint = endpoint
        self.requests: list[Request] = []
        self.streams_open = 0
        self.debug = False
        self.closed = False

    def add(self, *scripts: ScriptLike) -> None:
        """Prepare more answers, after those not used yet."""
        self.scripts.extend(as_script(s) for s in scripts)

    # --- the protocol ---------------------------------------------------------------------------

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        self._record_chat(messages, params)
        return self._play()

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        self.requests.append(Request("complete", params, text=text))
        return self._play()

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"model_id": self.model_id, "kind": self.kind}
        if self.endpoint is not None:
            info["endpoint"] = self.endpoint
        return info

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """One token per word of content: a stable count, not any model's."""
        return sum(len(str(m.get("content", "")).split()) for m in messages)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """A stable two-number vector per text: its length in characters and in words."""
        return [[float(len(t)), float(len(t.split()))] for t in texts]

    def set_debug(self, enabled: bool) -> None:
        self.debug = enabled

    def close(self) -> None:
        self.closed = True

    # --- recording and playing -----------------------------------------------------------------------

    def _record_chat(self, messages: Sequence[Message], params: GenerationParams) -> None:
        self.requests.append(Request("chat", params, tuple(carry_images(m, dict(m)) for m in messages)))

    def _play(self) -> Iterator[Chunk]:
        """The next script: its error now when it has no chunks, else a stream of them."""
        if not self.scripts:
            raise ScriptExhausted(f"request {len(self.requests)} came after the last scripted answer")
        script = self.scripts.pop(0)
        if script.error is not None and not script.chunks:
            raise script.error
        self.streams_open += 1
        return self._stream(script)

    def _stream(self, script: Script) -> Iterator[Chunk]:
        try:
            yield from script.chunks
            if script.error is not None:
                raise script.error
        finally:
            self.streams_open -= 1


class ScriptedLocalBackend(ScriptedBackend):
    """The in-process flavour: each conversation is rendered with `template` (a ChatTemplate, or
    a template name as `--template` takes it) before its answer is played, so `last_rendered` and
    `last_prompt_tokens` hold what a local model would have evaluated (one token per UTF-8 byte).
    A template that cannot render the conversation raises before the first chunk."""

    def __init__(self, scripts: Iterable[ScriptLike] = (), *, template: "ChatTemplate | str",
                 model_id: str = "scripted-local", context_window: int = 4096) -> None:
        super().__init__(scripts, model_id=model_id)
        if isinstance(template, str):
            template = resolve_template(template=template)
        self.template: "ChatTemplate | None" = template  # may be replaced between turns (`/template`)
        self.context_window = context_window
        self.last_rendered: "RenderedPrompt | None" = None
        self.last_prompt_tokens: list[int] = []
        self.loaded = False
        self.forgotten = 0  # how many times forget() was called

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        self._record_chat(messages, params)
        rendered = self.render(messages, template_variables(params))
        self.last_rendered, self.last_prompt_tokens = rendered, self.tokenize_rendered(rendered)
        self.load()
        return self._play()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "compute": self.compute_description(), "context_window": self.context_window,
                "template": self.template.name if self.template is not None else None}

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.tokenize_rendered(self.render(messages)))

    def load(self) -> bool:
        self.loaded = True
        return True

    def compute_description(self) -> str:
        return "scripted, in this process"

    def render(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> "RenderedPrompt":
        if self.template is None:
            raise BackendError("no chat template chosen for this model")
        return self.template.render(list(messages), add_generation_prompt=True, variables=variables)

    def tokenize_rendered(self, rendered: "RenderedPrompt") -> list[int]:
        return list(rendered.text.encode("utf-8"))

    def forget(self) -> None:
        self.forgotten += 1
