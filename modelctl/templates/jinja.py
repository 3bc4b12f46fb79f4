"""Jinja chat templates, rendered the way transformers' `apply_chat_template` renders them, in
the sandbox of `templates.sandbox`.

The text is exactly what transformers renders. To split it into template text and message content
(see `types.Segment`), the template is rendered a second time with each message's content replaced by
a unique marker: the text between the markers is the template's own. Those literal pieces are placed
in the real text reading it from the start and from the end, each content where it stands as given
(or trimmed), else, where the template rewrote it (cut a <think> part, changed case, truncated),
whatever lies up to the next piece. Only a piece placed alike both ways, or reached on contents
found as given, is template text; all the rest is content. So what a user types is never parsed as
control tokens; at worst, where the two readings differ, a piece of template text is kept as plain
text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelctl.errors import TemplateError
from modelctl.templates.sandbox import MAX_VALUE_CHARS, RENDER_TIMEOUT, render_text, template_variables
from modelctl.templates.tool_messages import (
    generic_messages,
    has_tool_turns,
    reads_system_tools,
    tool_format_of,
    tool_list,
    with_system_tools,
)
from modelctl.templates.tool_render import check_tool_order
from modelctl.templates.types import (
    RenderedPrompt,
    Segment,
    check_messages,
    join_segments,
    split_leading_bos,
)

# -- the template object ---------------------------------------------------------------------

# what render() itself passes; not settable through `variables`
_RESERVED = frozenset({"messages", "add_generation_prompt", "bos_token", "eos_token", "date_string", "documents"})


@dataclass(frozen=True)
class JinjaChatTemplate:
    """A Jinja chat template; `render` matches transformers' `apply_chat_template(tokenize=False)`."""

    name: str
    source: str  # "gguf" | "file" | ...
    template: str  # the Jinja text
    bos_token: str | None = None  # defaults, when the caller gives none
    eos_token: str | None = None
    stop: tuple[str, ...] = ()  # extra stop strings; the EOS text is always one
    stop_token_ids: tuple[int, ...] = ()
    timeout: float = RENDER_TIMEOUT
    max_output: int = MAX_VALUE_CHARS
    # the template for a conversation with tools, where the model publishes one apart (a GGUF's
    # `tokenizer.chat_template.tool_use`): transformers renders with it when tools are given
    tool_template: str | None = None

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        bos_token: str | None = None,
        eos_token: str | None = None,
        date_string: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> RenderedPrompt:
        """`variables` are passed to the template as they are (`enable_thinking=False`); a template
        that does not read one ignores it. `variables["tools"]` lists the tools (`ToolSpec.openai()`
        each), as the template takes them (`_with_tools`)."""
        if self.tool_template is not None and (variables or {}).get("tools"):
            return replace(self, template=self.tool_template, tool_template=None).render(
                messages, add_generation_prompt=add_generation_prompt, bos_token=bos_token, eos_token=eos_token,
                date_string=date_string, variables=variables)
        msgs = check_messages(self.name, messages)
        bos = bos_token if bos_token is not None else self.bos_token
        eos = eos_token if eos_token is not None else self.eos_token
        reserved = sorted(set(variables or {}) & _RESERVED)
        if reserved:
            raise TemplateError(f"template '{self.name}': {', '.join(reserved)} cannot be set as a template variable")
        context: dict[str, Any] = {
            **(variables or {}),
            "add_generation_prompt": add_generation_prompt,
            "documents": None,
        }
        msgs = self._with_tools(msgs, tool_list(self.name, context.pop("tools", None)), context)
        if bos is not None:
            context["bos_token"] = bos
        if eos is not None:
            context["eos_token"] = eos
        if date_string is not None:
            context["date_string"] = date_string
        text = self._render(msgs, context)
        segments = _segments(self, msgs, context, text)
        segments, leading_bos = split_leading_bos(segments, bos)
        stop = tuple(dict.fromkeys(((eos,) if eos else ()) + self.stop))
        return RenderedPrompt(
            template=self.name,
            source=self.source,
            segments=segments,
            stop=stop,
            stop_token_ids=self.stop_token_ids,
            bos_token=leading_bos,
        )

    @property
    def tool_format(self) -> str | None:
        """How the template's model writes a tool call (the call parsers' key), read from the
        markup the template writes; None when it has none of the known ones (or no tools)."""
        if self.tool_template is not None:
            return replace(self, template=self.tool_template, tool_template=None).tool_format
        return tool_format_of(self.template, self._reads())

    def _reads(self) -> frozenset[str]:
        return template_variables(self.name, self.template)

    def _with_tools(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                    context: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages, and in `context` the variables, as the template takes tools: the `tools`
        variable (or SmolLM3's `xml_tools`, Phi-4-mini's system-message field); a template that
        takes none gets the generic form (`tool_messages.generic_messages`)."""
        reads = self._reads()
        context["tools"] = None
        if "tools" in reads:
            context["tools"] = tools or None
        elif "xml_tools" in reads:
            context.setdefault("xml_tools", tools or None)
        elif reads_system_tools(self.template):
            return with_system_tools(messages, tools)
        elif tools or has_tool_turns(messages):
            check_tool_order(self.name, messages)
            return generic_messages(self.name, messages, tools)
        return messages

    def _render(self, messages: list[dict[str, Any]], variables: Mapping[str, Any]) -> str:
        return render_text(
            self.name,
            self.template,
            {**variables, "messages": messages},
            timeout=self.timeout,
            max_output=self.max_output,
        )


# -- splitting the text into template text and content ------------------------------------------
#
# Template text may hold control tokens (it is tokenized with special-token parsing); content never
# is. So only text that is certainly the template's own is template text: the skeleton's literal
# pieces where reading the text from its start and from its end place them alike, or where a reading
# got to them on contents found as given. The rest, what lies between them whatever the template did
# to the content, is content.

_MARK_OPEN, _MARK_CLOSE = "\U000f0000", "\U000f0001"
_MARK = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")


def _segments(tpl: JinjaChatTemplate, messages: list[dict[str, Any]], variables: Mapping[str, Any], text: str) -> tuple[Segment, ...]:
    table: list[str] = []  # the texts replaced by markers, by index
    marked = [_marked_message(m, table) for m in messages]
    tools = {k: _marked_tools(variables[k], table) for k in _TOOL_VARIABLES if variables.get(k)}
    try:
        skeleton = tpl._render(marked, {**variables, **tools})
    except TemplateError:
        skeleton = None
    pieces = _pieces(skeleton, len(table)) if skeleton is not None else None
    spans = _template_spans(*pieces, table, text) if pieces else []
    segments = join_segments(_split(text, spans))
    assert "".join(s.text for s in segments) == text
    return segments


# The variables that hold tools: what a tool server wrote in them (names, descriptions) is content.
_TOOL_VARIABLES = ("tools", "xml_tools")
# Values a template compares with its own strings (a schema's types and required names), and call
# ids (Mistral's templates check their length): kept as they are, so these stay template text.
_UNMARKED_KEYS = frozenset({"type", "required", "id", "tool_call_id"})


def _mark(text: str, table: list[str]) -> str:
    """The marker of `text` (an empty text stays empty: templates that leave out empty messages do
    so for the markers too)."""
    if not text:
        return text
    table.append(text)
    return f"{_MARK_OPEN}{len(table) - 1}{_MARK_CLOSE}"


def _marked_message(message: Mapping[str, Any], table: list[str]) -> dict[str, Any]:
    out = {k: _marked_tools(v, table) if k in ("tool_calls", "tools") else v for k, v in message.items()}
    out["content"] = _mark(message["content"], table)
    return out


def _marked_tools(value: Any, table: list[str]) -> Any:
    """A copy of `value` with its strings marked, but for keys and the values of _UNMARKED_KEYS."""
    if isinstance(value, str):
        return _mark(value, table)
    if isinstance(value, Mapping):
        return {k: v if k in _UNMARKED_KEYS else _marked_tools(v, table) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_marked_tools(v, table) for v in value]
    return value


def _pieces(skeleton: str, count: int) -> tuple[list[str], list[int]] | None:
    """The skeleton's literal pieces and, between each two, the index of the message whose content
    stood there; None when a marker is not one of ours."""
    literals: list[str] = []
    slots: list[int] = []
    last = 0
    for m in _MARK.finditer(skeleton):
        index = int(m.group(1))
        if index >= count:
            return None
        literals.append(skeleton[last : m.start()])
        slots.append(index)
        last = m.end()
    literals.append(skeleton[last:])
    return literals, slots


def _template_spans(literals: list[str], slots: list[int], contents: list[str], text: str) -> list[tuple[int, int]]:
    """(start, end) of the literal pieces whose place is certain: both readings of the text put them
    there, or the one reading that reached them got there on contents found as given."""
    n = len(text)
    forward = _place(literals, slots, contents, text)
    mirrored = _place([p[::-1] for p in reversed(literals)], slots[::-1], [c[::-1] for c in contents], text[::-1])
    backward = [None if m is None else (n - m[0] - len(p), m[1]) for m, p in zip(reversed(mirrored), literals)]
    spans: list[tuple[int, int]] = []
    for piece, ahead, behind in zip(literals, forward, backward):
        if ahead and behind:
            start = ahead[0] if ahead[0] == behind[0] else None
        else:
            only = ahead or behind
            start = only[0] if only and only[1] else None
        if piece and start is not None and start >= (spans[-1][1] if spans else 0):
            spans.append((start, start + len(piece)))
    return spans


def _place(literals: list[str], slots: list[int], contents: list[str], text: str) -> list[tuple[int, bool] | None]:
    """Where each literal piece starts, reading `text` from its start: the first piece at 0, the last
    at the end; each other piece where the content before it ends, when that content (or its
    trimmed form) is there as given, else at the piece's next occurrence. With each start, whether
    it is certain: the first or last piece, or reached on contents found as given only. None from
    the first piece that cannot be placed on."""
    places: list[tuple[int, bool] | None] = [None] * len(literals)
    last = len(literals) - 1
    pos, certain = 0, True
    for k, piece in enumerate(literals):
        at: int | None
        if k in (0, last):  # the first piece starts the text, the last one ends it
            at, sure = (0 if k == 0 else len(text) - len(piece)), True
        else:
            ends = (pos + len(c) for c in _candidates(contents[slots[k - 1]]) if text.startswith(c, pos))
            at = next((end for end in ends if text.startswith(piece, end)), None)
            if at is None:  # the content is not there as given: the template rewrote it
                at, certain = text.find(piece, pos), False
            sure = certain
        if at < pos or not text.startswith(piece, at) or (k == last and at + len(piece) != len(text)):
            break
        places[k] = (at, sure)
        pos = at + len(piece)
    return places


def _candidates(content: str) -> list[str]:
    """The content as given, trimmed (templates commonly `trim` it) and as a JSON string writes it
    (`tojson`), the longest first."""
    escaped = json.dumps(content, ensure_ascii=False)[1:-1]
    forms = (content, content.strip(), content.lstrip(), content.rstrip(), escaped)
    return sorted(dict.fromkeys(forms), key=len, reverse=True)


def _split(text: str, spans: list[tuple[int, int]]) -> list[Segment]:
    out: list[Segment] = []
    pos = 0
    for start, end in spans:
        out += [Segment(text[pos:start], False), Segment(text[start:end], True)]
        pos = end
    out.append(Segment(text[pos:], False))
    return out
