"""Conversation templates as data, and the one renderer that turns any of them into a prompt.

A `Conversation` is a frozen value. Its turns are written with a `TurnFormats`: one format string
each for the system block, a user turn, an assistant turn, the generation prompt and the end of a
finished conversation. Format strings use these fields:

    {content}  the message text (plain text: tokenized without special-token parsing)
    {system}   the system message text (plain text)
    {bos}      the BOS token text       {eos}  the EOS token text
    {round}    the 1-based number of the user/assistant round
    {date}     a date, for templates that write one (Llama 3.1+)
    {reasoning} the reasoning part of the assistant message that ends the conversation
               (`last_assistant` only; plain text)
    {NAME}     a template variable with a string value (gpt-oss's {reasoning_effort})

Template variables (Qwen3's `enable_thinking`, gpt-oss's `reasoning_effort`) are the switches an
official template reads besides the messages. A template declares each with its official default;
`variable_formats` gives the turn formats that replace its own for one value of one variable.

Templates that came from FastChat keep FastChat's vocabulary (roles, separator style, `sep`,
`sep2`, `system_template`): their separator style *derives* the turn formats, once, when the value
is built. Templates written after an official Jinja `chat_template` give their formats directly
(`SeparatorStyle.ROLE_FORMATS`). Either way, rendering is the same few lines below: no branch per
model.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

from modelctl.errors import NotFoundError, TemplateError
from modelctl.templates.tool_messages import generic_messages, has_tool_turns, tool_list
from modelctl.templates.tool_render import ToolPrompt, ToolStyle, check_tool_order
from modelctl.templates.types import (
    RenderedPrompt,
    Segment,
    SystemPolicy,
    check_alternation,
    check_messages,
    join_segments,
    split_leading_bos,
)


class SeparatorStyle(str, Enum):
    """How turns are laid out. All but ROLE_FORMATS follow FastChat's style of the same name."""

    ROLE_FORMATS = "role_formats"  # the turn formats are written out in the template's data
    ADD_COLON_SINGLE = "add_colon_single"  # "ROLE: msg<sep>" ... "ROLE:"
    ADD_COLON_TWO = "add_colon_two"  # "ROLE: msg<sep|sep2>" alternating ... "ROLE:"
    ADD_NEW_LINE_SINGLE = "add_new_line_single"  # "ROLE\nmsg<sep>" ... "ROLE\n"
    NO_COLON_SINGLE = "no_colon_single"  # "ROLEmsg<sep>" ... "ROLE"
    CHATML = "chatml"  # "ROLE\nmsg<sep>\n" ... "ROLE\n"
    DOLLY = "dolly"  # "ROLE:\nmsg<sep>" / "ROLE:\nmsg<sep2>\n\n" ... "ROLE:\n"
    RWKV = "rwkv"  # "ROLE: msg\n\n" with blank lines collapsed ... "ROLE:"
    CHATGLM = "chatglm"  # "[Round n]<sep>ROLE：msg<sep>" ... "ROLE："
    CHATINTERN = "chatintern"  # "<bos>ROLE:msg<sep>\n" / "ROLE:msg<sep2>\n" ... "ROLE:"


@dataclass(frozen=True)
class TurnFormats:
    """Format strings for each part of a prompt (fields listed in the module docstring)."""

    user: str
    assistant: str
    generation: str  # written after the last message when a generation prompt is asked for
    system: str = "{system}"
    prefix: str = ""  # written first, before anything else
    end: str = ""  # written after the last message when no generation prompt is asked for
    merge: str = "{system}\n\n{content}"  # the merged user turn's content, under MERGE_*_USER
    # written instead of `system` when the conversation has no system message (a default that
    # holds a date or a variable: Granite 3.3, Mistral Small 3)
    default_system: str | None = None
    # an assistant message that is the last message (see Conversation.last_assistant_when)
    last_assistant: str | None = None
    # written instead of `system` for a system message that holds Conversation.system_override
    override_system: str | None = None


CONTENT_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "strip": str.strip,  # Python's str.strip and Jinja's `trim` filter are the same operation
    "rstrip": str.rstrip,
    "collapse_newlines": lambda s: s.replace("\r\n", "\n").replace("\n\n", "\n"),
}


def _after_think(s: str) -> str:
    return s.split("</think>")[-1]


def _think_parts(s: str) -> tuple[str, str]:
    """Qwen3's reading of an assistant message: (reasoning, answer), both trimmed of newlines."""
    if "</think>" not in s:
        return "", s.lstrip("\n")
    head, answer = s.split("</think>")[0], s.split("</think>")[-1]
    return head.rstrip("\n").split("<think>")[-1].strip("\n"), answer.lstrip("\n")


# What an official template does to an assistant message's <think>...</think> reasoning: each
# gives (reasoning, content). Templates of reasoning models drop it from earlier turns.
ASSISTANT_TRANSFORMS: dict[str, Callable[[str], tuple[str, str]]] = {
    "none": lambda s: ("", s),
    "strip": lambda s: ("", s.strip()),  # answers only (Mistral v0.3 trims them, not the requests)
    "lstrip_newlines": lambda s: ("", s.lstrip("\n")),  # SmolLM3: the reasoning is kept
    "drop_reasoning": lambda s: ("", _after_think(s)),  # DeepSeek-R1
    "drop_reasoning_lstrip": lambda s: ("", _after_think(s).lstrip("\n")),  # QwQ
    # Qwen3: only a message that holds a </think> is cut
    "drop_reasoning_if_closed": lambda s: ("", _after_think(s).lstrip("\n") if "</think>" in s else s),
    "split_reasoning": _think_parts,  # Qwen3's last turn: the reasoning is written anew
}


@dataclass(frozen=True)
class Conversation:
    """A registered conversation template (immutable; `dataclasses.replace` makes variants)."""

    name: str
    roles: tuple[str, str] = ("user", "assistant")
    sep_style: SeparatorStyle = SeparatorStyle.ROLE_FORMATS
    sep: str = ""
    sep2: str | None = None
    system_template: str = "{system_message}"
    system_message: str = ""  # the default system message, used when the conversation has none
    system_policy: SystemPolicy = SystemPolicy.NATIVE
    system_always: bool = False  # write the system block even when there is no system message
    skip_empty_system: bool = False  # an empty system message writes no system block (Phi-3)
    skip_empty_turns: bool = False  # an empty user or assistant message writes nothing (GLM-4)
    formats: TurnFormats | None = None  # required for ROLE_FORMATS, derived for the other styles
    content_transform: str = "none"  # applied to user and assistant content
    system_transform: str = "none"  # applied to the system message
    transform_after_merge: bool = False  # MERGE_FIRST_USER: transform the merged text as a whole
    bos: str | None = None  # the BOS text, written where the formats say {bos}
    eos: str | None = None  # the EOS text, written where the formats say {eos}
    stop_str: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    date_string: str | None = None  # {date}, fixed
    date_format: str | None = None  # {date}, strftime of the render time
    # how assistant content is read (ASSISTANT_TRANSFORMS), and for a last assistant message that
    # has its own format, that one; applied before content_transform
    assistant_transform: str = "none"
    last_assistant_transform: str = "none"
    # when `formats.last_assistant` is used: "always", or "finished" (no generation prompt follows)
    last_assistant_when: str = "always"
    variables: tuple[tuple[str, Any], ...] = ()  # (name, official default), the ones it reads
    variable_formats: tuple[tuple[str, Any, TurnFormats], ...] = ()  # (name, value, formats)
    # (text, name, value): a system message holding `text` sets variable `name` to `value` (the
    # first one found wins, over the caller's value) and has every switch text removed before
    # system_transform (SmolLM3's /think and /no_think)
    system_switches: tuple[tuple[str, str, Any], ...] = ()
    # a system message holding this text is written, the text removed, with `formats.override_system`
    system_override: str = ""
    # a system message that system_transform leaves empty writes `formats.default_system`
    default_when_empty: bool = False
    # how a conversation with tools is written, as the official template writes it (None: the
    # official template has no tools; the generic form of `tool_messages.generic_messages` is used)
    tool_style: ToolStyle | None = None
    description: str = ""
    reference: str = ""  # what its byte-for-byte behaviour was checked against
    source: str = "builtin"
    models: tuple[str, ...] = field(default=(), compare=False)  # examples, for `templates show`

    def __post_init__(self) -> None:
        if self.formats is None:
            layout = _STYLE_LAYOUTS.get(self.sep_style)
            if layout is None:
                raise ValueError(f"template {self.name!r}: separator style {self.sep_style} needs formats")
            object.__setattr__(self, "formats", layout(self))
        for key in (self.content_transform, self.system_transform):
            if key not in CONTENT_TRANSFORMS:
                raise ValueError(f"template {self.name!r}: unknown content transform {key!r}")
        for key in (self.assistant_transform, self.last_assistant_transform):
            if key not in ASSISTANT_TRANSFORMS:
                raise ValueError(f"template {self.name!r}: unknown assistant transform {key!r}")
        if self.last_assistant_when not in ("always", "finished"):
            raise ValueError(f"template {self.name!r}: last_assistant_when is 'always' or 'finished'")

    # -- rendering -------------------------------------------------------------------------

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
        """Render `messages` (OpenAI-style dicts) into the exact prompt.

        `bos_token`/`eos_token` replace the template's own texts (pass the model's, from its GGUF).
        `variables` set template variables (`enable_thinking=False`); the ones it does not read
        are ignored, as a Jinja template ignores them.
        Raises TemplateError for an unacceptable conversation or variable value.
        """
        msgs = check_messages(self.name, messages)
        tools = tool_list(self.name, (variables or {}).get("tools"))
        if tools or has_tool_turns(msgs):
            check_tool_order(self.name, msgs)
            if self.tool_style is not None:
                return self._render_tools(msgs, tools, add_generation_prompt, bos_token, eos_token, date_string,
                                          variables)
            msgs = generic_messages(self.name, msgs, tools, in_system=self.system_policy is not SystemPolicy.REJECT)
        check_alternation(self.name, msgs)
        provided = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
        turns = msgs[1:] if provided is not None else msgs
        values = self._variables(variables)
        override = bool(self.system_override) and provided is not None and self.system_override in provided
        if provided is not None and self.system_switches:
            provided = self._switch(provided, values)
        fmt = self._formats(values)
        fields = {
            **{k: v for k, v in values.items() if isinstance(v, str)},
            "bos": bos_token if bos_token is not None else (self.bos or ""),
            "eos": eos_token if eos_token is not None else (self.eos or ""),
            "date": self._date(date_string),
        }
        transform = CONTENT_TRANSFORMS[self.content_transform]
        system = provided if provided is not None else self.system_message
        merged_system: str | None = None

        parts = _expand(fmt.prefix, fields)
        merge_at = 0
        if provided is None and fmt.default_system is not None:
            parts += _expand(fmt.default_system, fields)
        elif self._writes_system(provided, system):
            if self.system_policy is SystemPolicy.REJECT and provided is not None:
                raise TemplateError(
                    f"template '{self.name}': message 1 is a system message, which this template "
                    "does not accept; put the instructions in the first user message"
                )
            if self.system_policy is SystemPolicy.MERGE_FIRST_USER:
                if not turns:
                    raise TemplateError(
                        f"template '{self.name}' writes the system message into the first user turn; "
                        "the conversation has no user message"
                    )
                merged_system = system
            elif self.system_policy is SystemPolicy.MERGE_LAST_USER:
                merge_at = len(turns) - 1 if turns and turns[-1]["role"] == "user" else -1
                merged_system = system
            elif self.system_policy is SystemPolicy.NATIVE:
                parts += self._system_block(fmt, fields, system, provided is None, override)
        last_own = fmt.last_assistant is not None and (
            self.last_assistant_when == "always" or not add_generation_prompt
        )
        for i, message in enumerate(turns):
            merges_here = merged_system is not None and i == merge_at
            if self.skip_empty_turns and not message["content"] and not merges_here:
                continue
            turn, reasoning = fmt.user, ""
            if merged_system is not None and merges_here:
                content = self._merge(fmt, merged_system, message["content"], transform, fields)
            elif message["role"] == "user":
                content = [Segment(transform(message["content"]), False)]
            else:
                own = last_own and i == len(turns) - 1
                read = self.last_assistant_transform if own else self.assistant_transform
                reasoning, text = ASSISTANT_TRANSFORMS[read](message["content"])
                content = [Segment(transform(text), False)]
                turn = fmt.last_assistant if own and fmt.last_assistant is not None else fmt.assistant
            parts += _expand(turn, {**fields, "round": str(i // 2 + 1)}, content=content,
                             reasoning=[Segment(reasoning, False)])
        parts += _expand(fmt.generation if add_generation_prompt else fmt.end, fields)
        segments, bos = split_leading_bos(join_segments(parts), fields["bos"])
        return RenderedPrompt(
            template=self.name,
            source=self.source,
            segments=segments,
            stop=self.stop_str,
            stop_token_ids=self.stop_token_ids,
            bos_token=bos,
        )

    @property
    def tool_format(self) -> str | None:
        """How the family's models write a tool call (the call parsers' key); None: no format of
        its own (the generic JSON form)."""
        return self.tool_style.format if self.tool_style is not None else None

    def _render_tools(self, msgs: list[dict[str, Any]], tools: list[dict[str, Any]], add_generation_prompt: bool,
                      bos_token: str | None, eos_token: str | None, date_string: str | None,
                      variables: Mapping[str, Any] | None) -> RenderedPrompt:
        """A conversation with tools, through the family's port of its official template."""
        assert self.tool_style is not None
        bos = bos_token if bos_token is not None else (self.bos or "")
        prompt = ToolPrompt(
            template=self.name, messages=msgs, tools=tools, add_generation_prompt=add_generation_prompt,
            bos=bos, eos=eos_token if eos_token is not None else (self.eos or ""), date=self._date(date_string),
            default_system=self.system_message, variables=self._variables(variables),
        )
        segments, leading_bos = split_leading_bos(join_segments(self.tool_style.render(prompt)), bos)
        return RenderedPrompt(template=self.name, source=self.source, segments=segments, stop=self.stop_str,
                              stop_token_ids=self.stop_token_ids, bos_token=leading_bos)

    def _variables(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The template's variables: official defaults, then the given values of the ones it reads."""
        values = dict(self.variables)
        for name, value in (given or {}).items():
            if name not in values:
                continue
            default = values[name]
            if type(value) is not type(default):  # noqa: E721 - True is no str, "false" no bool
                raise TemplateError(
                    f"template '{self.name}': variable {name} must be a {type(default).__name__}, "
                    f"not {value!r}"
                )
            values[name] = value
        return values

    def _switch(self, system: str, values: dict[str, Any]) -> str:
        """Apply the switches `system` holds to `values`; the system text without them."""
        found = next(((name, value) for text, name, value in self.system_switches if text in system), None)
        if found is not None:
            values[found[0]] = found[1]
        for text, _, _ in self.system_switches:
            system = system.replace(text, "")
        return system

    def _system_block(self, fmt: TurnFormats, fields: Mapping[str, str], system: str, default: bool, override: bool) -> list[Segment]:
        """The system block of a NATIVE template: the override format, the default one for a message
        left empty, or `formats.system` around the (transformed) text."""
        transform = CONTENT_TRANSFORMS[self.system_transform]
        text = transform(system)
        if override and fmt.override_system is not None:
            return _expand(fmt.override_system, fields,
                           system=[Segment(transform(text.replace(self.system_override, "")), False)])
        if not text and self.default_when_empty and fmt.default_system is not None:
            return _expand(fmt.default_system, fields)
        # the default system message is the template's own text; a given one is content
        return _expand(fmt.system, fields, system=[Segment(text, default)])

    def _formats(self, values: Mapping[str, Any]) -> TurnFormats:
        for name, value, formats in self.variable_formats:
            if values.get(name) == value:
                return formats
        assert self.formats is not None
        return self.formats

    def _writes_system(self, provided: str | None, system: str) -> bool:
        if self.skip_empty_system and not system:
            return False
        if self.system_always or self.sep_style in _SYSTEM_ALWAYS_STYLES:
            return True
        if self.sep_style is SeparatorStyle.ROLE_FORMATS:
            return provided is not None or system != ""
        # FastChat's rule: the system block is written when its text is not empty
        return self.system_template.format(system_message=system) != ""

    def _merge(self, fmt: TurnFormats, system: str, content: str, transform: Callable[[str], str],
               fields: Mapping[str, str]) -> list[Segment]:
        sys_text = CONTENT_TRANSFORMS[self.system_transform](system)
        if not self.transform_after_merge:
            return _expand(fmt.merge, fields, system=[Segment(sys_text, False)],
                           content=[Segment(transform(content), False)])
        merged = _expand(fmt.merge, fields, system=[Segment(sys_text, False)], content=[Segment(content, False)])
        if transform is CONTENT_TRANSFORMS["strip"]:
            return _strip_segments(merged)
        return [Segment(transform(s.text), s.special) for s in merged]

    def with_formats(self, **changes: Any) -> "Conversation":
        """A copy whose turn formats have `changes` (a template that keeps its formats)."""
        if self.formats is None:
            raise ValueError(f"template '{self.name}' has no turn formats to change")
        return replace(self, formats=replace(self.formats, **changes))

    def _date(self, override: str | None) -> str:
        if override is not None:
            return override
        if self.date_format:
            return datetime.now().strftime(self.date_format)
        return self.date_string or ""

    # -- description -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (for `modelctl templates --json`)."""
        fmt = self.formats
        assert fmt is not None
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "reference": self.reference,
            "sep_style": self.sep_style.value,
            "roles": list(self.roles),
            "system_policy": self.system_policy.value,
            "default_system_message": self.system_message,
            "stop": list(self.stop_str),
            "stop_token_ids": list(self.stop_token_ids),
            "bos": self.bos,
            "eos": self.eos,
            "content_transform": self.content_transform,
            "variables": dict(self.variables),
            "tool_format": self.tool_format,
            "formats": {
                "prefix": fmt.prefix,
                "system": fmt.system,
                "user": fmt.user,
                "assistant": fmt.assistant,
                "generation": fmt.generation,
                "end": fmt.end,
                **({"merge": fmt.merge} if self.system_policy in _MERGES else {}),
                **({"default_system": fmt.default_system} if fmt.default_system is not None else {}),
                **({"last_assistant": fmt.last_assistant} if fmt.last_assistant is not None else {}),
                **({"override_system": fmt.override_system} if fmt.override_system is not None else {}),
            },
            "models": list(self.models),
        }


_MERGES = (SystemPolicy.MERGE_FIRST_USER, SystemPolicy.MERGE_LAST_USER)
_FORMATTER = string.Formatter()
_CONTENT_FIELDS = ("content", "system", "reasoning")


def _expand(fmt: str, fields: Mapping[str, str], **contents: list[Segment]) -> list[Segment]:
    """Segments of one format string: its literal text and fields as template text (special),
    `{content}` and `{system}` as the given segments."""
    out: list[Segment] = []
    for literal, name, spec, conv in _FORMATTER.parse(fmt):
        if literal:
            out.append(Segment(literal, True))
        if name is None:
            continue
        if spec or conv:
            raise ValueError(f"format field {{{name}}} takes no conversion or spec")
        if name in _CONTENT_FIELDS:
            out.extend(contents.get(name, ()))
        else:
            out.append(Segment(fields[name], True))
    return out


def _strip_segments(parts: list[Segment]) -> list[Segment]:
    """`"".join(parts).strip()`, keeping segment boundaries."""
    parts = [p for p in parts if p.text]
    while parts and not parts[0].text.lstrip():
        parts.pop(0)
    if parts:
        parts[0] = Segment(parts[0].text.lstrip(), parts[0].special)
    while parts and not parts[-1].text.rstrip():
        parts.pop()
    if parts:
        parts[-1] = Segment(parts[-1].text.rstrip(), parts[-1].special)
    return parts


# -- FastChat separator styles, as turn formats -------------------------------------------------


def _system_block(c: Conversation, suffix: str) -> str:
    return _escape(c.system_template).replace("{{system_message}}", "{system}") + _escape(suffix)


def _escape(s: str | None) -> str:
    return (s or "").replace("{", "{{").replace("}", "}}")


def _layout(user: str, assistant: str, generation: str, system: str) -> Callable[[Conversation], TurnFormats]:
    """A style from four patterns, where R0/R1 stand for the role names, S/S2 for the separators
    and SYS for the system template."""

    def build(c: Conversation) -> TurnFormats:
        names = {"R0": c.roles[0], "R1": c.roles[1], "S1": c.sep, "S2": c.sep2}

        def sub(p: str) -> str:
            return _PLACEHOLDERS.sub(lambda m: _escape(names[m.group()]), p)

        return TurnFormats(
            user=sub(user), assistant=sub(assistant), generation=sub(generation),
            system=_system_block(c, "") + sub(system),
            # FastChat relies on the tokenizer to add BOS; CHATINTERN writes it in every round
            prefix="{bos}" if c.bos and c.sep_style is not SeparatorStyle.CHATINTERN else "",
        )

    return build


_PLACEHOLDERS = re.compile("R0|R1|S1|S2")

# FastChat writes the system block of these styles (with its separator) even when it is empty.
_SYSTEM_ALWAYS_STYLES = frozenset({SeparatorStyle.ADD_COLON_SINGLE, SeparatorStyle.ADD_COLON_TWO})

_STYLE_LAYOUTS: dict[SeparatorStyle, Callable[[Conversation], TurnFormats]] = {
    SeparatorStyle.ADD_COLON_SINGLE: _layout("R0: {content}S1", "R1: {content}S1", "R1:", "S1"),
    SeparatorStyle.ADD_COLON_TWO: _layout("R0: {content}S1", "R1: {content}S2", "R1:", "S1"),
    SeparatorStyle.ADD_NEW_LINE_SINGLE: _layout("R0\n{content}S1", "R1\n{content}S1", "R1\n", "S1"),
    SeparatorStyle.NO_COLON_SINGLE: _layout("R0{content}S1", "R1{content}S1", "R1", ""),
    SeparatorStyle.CHATML: _layout("R0\n{content}S1\n", "R1\n{content}S1\n", "R1\n", "S1\n"),
    SeparatorStyle.DOLLY: _layout("R0:\n{content}S1", "R1:\n{content}S2\n\n", "R1:\n", ""),
    SeparatorStyle.RWKV: _layout("R0: {content}\n\n", "R1: {content}\n\n", "R1:", ""),
    SeparatorStyle.CHATGLM: _layout("[Round {round}]S1R0：{content}S1", "R1：{content}S1", "R1：", "S1"),
    SeparatorStyle.CHATINTERN: _layout("{bos}R0:{content}S1\n", "R1:{content}S2\n", "R1:", ""),
}


# -- the registry of templates ------------------------------------------------------------------

_TEMPLATES: dict[str, Conversation] = {}
_ALIASES: dict[str, str] = {}


def register_conv_template(template: Conversation, override: bool = False, *, aliases: Sequence[str] = ()) -> None:
    """Register `template` under its name (and `aliases`). A second registration of the same
    name is an error unless `override` is true."""
    if template.name in _TEMPLATES and not override:
        raise ValueError(f"conversation template {template.name!r} is already registered")
    _TEMPLATES[template.name] = template
    for alias in aliases:
        _ALIASES[alias.lower()] = template.name


def get_conv_template(name: str) -> Conversation:
    """The registered template called `name` (or one of its aliases, any case).

    Raises NotFoundError with the closest names when there is none.
    """
    found = find_conv_template(name)
    if found is None:
        raise NotFoundError(f"no conversation template called {name!r}", hint=_did_you_mean(name))
    return found


def find_conv_template(name: str) -> Conversation | None:
    if name in _TEMPLATES:
        return _TEMPLATES[name]
    key = name.lower()
    canonical = _ALIASES.get(key) or next((n for n in _TEMPLATES if n.lower() == key), None)
    return _TEMPLATES.get(canonical) if canonical else None


def list_templates() -> list[Conversation]:
    """Every registered template, in registration order."""
    return list(_TEMPLATES.values())


def template_aliases() -> dict[str, str]:
    """alias -> template name."""
    return dict(_ALIASES)


def _did_you_mean(name: str) -> str:
    names = list(_TEMPLATES) + list(_ALIASES)
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=3, cutoff=0.5)
    canonical = {n.lower(): _ALIASES.get(n.lower(), n) for n in names}
    picks = list(dict.fromkeys(canonical[c] for c in close))
    if picks:
        return "did you mean " + " or ".join(repr(p) for p in picks) + "? `modelctl templates` lists them"
    return "`modelctl templates` lists them"
