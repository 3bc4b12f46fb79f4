"""The values every template produces and the checks every template shares.

A rendered prompt is a sequence of segments. A segment is either the template's own text (which may
hold control tokens such as `<start_of_turn>`, to be parsed as special tokens) or message content
(to be tokenized as plain text, so that a user who types `<|im_end|>` cannot close their own turn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, NamedTuple, Protocol, runtime_checkable

from modelctl.errors import TemplateError
from modelctl.templates.tool_messages import TOOL_ROLE, hf_message

ROLES = ("system", "user", "assistant")


class Segment(NamedTuple):
    text: str
    special: bool  # True: template text; False: message content (plain text)


@dataclass(frozen=True)
class RenderedPrompt:
    """What a template made of a conversation: the exact text, split into segments, and how to stop."""

    template: str
    source: str  # "builtin" | "registry" | "gguf" | "file" | "fallback"
    segments: tuple[Segment, ...]
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    bos_token: str | None  # the BOS text `text` starts with, or None when it starts with none

    @property
    def text(self) -> str:
        """The full text the model receives, BOS written out where the template writes it."""
        return "".join(s.text for s in self.segments)

    def with_bos(self, bos: str | None) -> RenderedPrompt:
        """This prompt as a tokenizer that puts `bos` in front of its input delivers it: unchanged
        when it already starts with that BOS, else with `bos` put in front as template text.

        (A leading BOS the template wrote as message content, or a different BOS text, is not the
        model's BOS token: the tokenizer still adds its own.)"""
        if not bos or self.bos_token == bos:
            return self
        return replace(self, segments=(Segment(bos, True), *self.segments), bos_token=bos)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `modelctl prompt --json` (and of debug dumps)."""
        return {
            "template": self.template,
            "source": self.source,
            "prompt": self.text,
            "bos_token": self.bos_token,
            "stop": list(self.stop),
            "stop_token_ids": list(self.stop_token_ids),
            "segments": [{"text": s.text, "special": s.special} for s in self.segments],
        }


@runtime_checkable
class ChatTemplate(Protocol):
    """A conversation template: a built-in `Conversation` or a Jinja `chat_template`. `render`
    takes the tools as `variables["tools"]` (`ToolSpec.openai()` each)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def tool_format(self) -> str | None:
        """How the model writes a tool call (the call parsers' key: "hermes", "llama3_json", ...);
        None: no format of its own (the generic JSON form, `tool_messages.generic_messages`)."""
        ...

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        bos_token: str | None = None,
        eos_token: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> RenderedPrompt: ...


class SystemPolicy(str, Enum):
    """What a template does with a system message (never left out without a documented reason)."""

    NATIVE = "native"  # the template has a place for it
    MERGE_FIRST_USER = "merge_first_user"  # written at the start of the first user turn
    # written at the start of the last message when it is a user turn (Mistral v3 and Tekken);
    # a conversation that ends with an answer has no place for it, as in the official templates
    MERGE_LAST_USER = "merge_last_user"
    REJECT = "reject"  # a TemplateError that says so


def check_messages(name: str, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Plain copies of `messages` after checking their shape: roles known, contents strings of
    valid Unicode (no lone surrogates: they are rejected, not replaced, so that no text changes
    silently). Tool results and assistant messages with tool calls are taken too, in the form a
    chat template reads (`tool_messages.hf_message`).

    Raises TemplateError naming the template and the (1-based) message.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TemplateError(f"template '{name}': messages must be a list of {{role, content}} objects")
    checked: list[dict[str, Any]] = []
    for i, m in enumerate(messages, 1):
        if not isinstance(m, Mapping):
            raise TemplateError(f"template '{name}': message {i} is not an object with role and content")
        role = m.get("role")
        tool_turn = hf_message(name, i, m)
        if tool_turn is not None:
            for text in _texts(tool_turn):
                _check_unicode(name, i, role, text)
            checked.append(tool_turn)
            continue
        content = m.get("content")
        if role not in ROLES:
            raise TemplateError(
                f"template '{name}': message {i} has role {role!r}; expected one of {', '.join((*ROLES, TOOL_ROLE))}"
            )
        if not isinstance(content, str):
            raise TemplateError(f"template '{name}': message {i} ({role}) has no text content")
        _check_unicode(name, i, role, content)
        checked.append({"role": role, "content": content})
    if not checked:
        raise TemplateError(f"template '{name}': the conversation has no messages")
    return checked


def _texts(value: Any) -> list[str]:
    """Every string in a message (keys too), to check each is valid Unicode."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return []


def _check_unicode(name: str, index: int, role: Any, content: str) -> None:
    """Content must be encodable as UTF-8: a lone surrogate (a JSON escape such as "\\ud800", or a
    byte that was not UTF-8, decoded with surrogateescape) has no UTF-8 form a tokenizer can take."""
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TemplateError(
            f"template '{name}': message {index} ({role}) is not valid Unicode text: a lone surrogate "
            f"U+{ord(content[exc.start]):04X} at character {exc.start + 1}"
        ) from None


def check_alternation(name: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """An optional leading system message, then user, assistant, user, ... (ending with either)."""
    previous = None
    for i, m in enumerate(messages, 1):
        role = m["role"]
        if role == "system":
            if i != 1:
                raise TemplateError(
                    f"template '{name}': message {i} has role 'system'; "
                    "a system message is accepted only as the first message"
                )
            continue
        if previous is None and role != "user":
            raise TemplateError(
                f"template '{name}': message {i} has role '{role}'; the conversation must start with "
                "a user message (after an optional system message)"
            )
        if role == previous:
            raise TemplateError(
                f"template '{name}': message {i} has role '{role}' after '{previous}'; "
                "roles must alternate user/assistant"
            )
        previous = role


def join_segments(parts: Sequence[Segment]) -> tuple[Segment, ...]:
    """Drop empty segments and merge neighbours of the same kind."""
    out: list[Segment] = []
    for seg in parts:
        if not seg.text:
            continue
        if out and out[-1].special == seg.special:
            out[-1] = Segment(out[-1].text + seg.text, seg.special)
        else:
            out.append(seg)
    return tuple(out)


def split_leading_bos(segments: tuple[Segment, ...], bos: str | None) -> tuple[tuple[Segment, ...], str | None]:
    """Give a leading BOS its own segment (a tokenizer maps it to one id) and report it."""
    if not bos or not segments or not segments[0].text.startswith(bos):
        return segments, None
    first = segments[0]
    if not first.special:
        return segments, None  # content that happens to start with the BOS text is not a BOS
    rest = first.text[len(bos):]
    head = (Segment(bos, True),) + ((Segment(rest, True),) if rest else ())
    return head + segments[1:], bos
