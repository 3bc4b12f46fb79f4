"""How a local model writes a tool call, per template family: the calls read out of its answer as
it streams (`parser_for`), and the shape a grammar forces one call into (`ToolFormat.shape`).

Each family of templates that knows tools has its own call syntax, named by `tool_format`:

    hermes        <tool_call>{"name": N, "arguments": {…}}</tool_call>   Qwen 2.5/3, QwQ, Hermes 2 Pro
    smollm3       the same                                                SmolLM3
    llama3_json   {"name": N, "parameters": {…}} as the answer, or after <|python_tag|>
                  (also a built-in tool's `N.call(key=value)`)           Llama 3.1+, Llama 4
    mistral       [TOOL_CALLS][{"name": N, "arguments": {…}}, …]          Mistral v3, Nemo, Small 3
    mistral_args  [TOOL_CALLS]N[ARGS]{…}                                  Mistral Small 3.2
    harmony       <|channel|>commentary to=functions.N <|constrain|>json<|message|>{…}   gpt-oss
    granite       <|tool_call|>[{"name": N, "arguments": {…}}]            Granite 3.x
    command_r7b   <|START_ACTION|>[{"tool_call_id": …, "tool_name": N, "parameters": {…}}]<|END_ACTION|>
    phi4          <|tool_call|>[{"name": N, "arguments": {…}}]<|/tool_call|>   Phi-4-mini
    generic       {"tool_call": {"name": N, "arguments": {…}}}            any other template

Several spans in a row (or several objects in one list) are parallel calls.

Streaming: `ToolCallParser.feed` returns the text that is safe to show. Text streams until a call
span opens; the end of a delta that could be the start of an opener is held back until the next
delta says whether it is one. From the first opener on, the rest of the answer is held, and
`finish` reads it into calls and text, so what is shown keeps its order and no markup of a call
reaches the screen.

What is not a clean call is decided here:

- an answer cut inside a span (`finish(cut=True)`: max_tokens or the context window ended it):
  nothing is called; all the held text comes back as text and `truncated` is set;
- a span that holds no readable call (JSON that does not parse, no name): its text comes back as
  text and `problems` says why; the other calls of the answer stand;
- a span whose name is readable but whose arguments are not JSON (the formats that write the name
  outside the JSON: mistral_args, harmony): a ToolCall with the arguments as written, which
  `ToolCall.arguments_json` refuses, so the model is told so in the call's result;
- a name that is none of the tools': a ToolCall all the same; the caller answers it with an error.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import string
from dataclasses import dataclass, replace
from typing import Any

from modelctl.backends.base import ToolCall
from modelctl.templates.tool_messages import call_markup_format

WS = None  # in an opener: JSON white space, any amount (none included)
Opener = tuple["str | None", ...]

_PARTIAL = -1  # _match: the text ends before the opener does
_JSON_SPACE = " \t\n\r"
_CALL_KEYS = frozenset({"name", "tool_name", "arguments", "parameters", "id", "tool_call_id", "type"})
_MAX_PYTHONIC = 100_000  # characters of a `N.call(...)` body read with `ast` at most


@dataclass(frozen=True)
class ToolFormat:
    """One family's call syntax: how a call span begins and ends, what its body holds, and the
    shape a grammar writes one call in."""

    name: str
    # One call as a grammar forces it: {call} is the call object (call_object), {name} the
    # tool's name, {arguments} its arguments; markers are written as their control tokens.
    shape: str
    openers: tuple[Opener, ...] = ()  # where a span begins, anywhere in the answer
    leading: tuple[Opener, ...] = ()  # where a span begins at the answer's start only
    close: str | None = None  # where a span ends; None: where its body ends
    body: str = "json"  # "json": call objects; "name_args": N[ARGS]{…}; "harmony": a message header
    pythonic: bool = False  # a body may be `N.call(key=value, …)` (Llama 3.1's built-in tools)
    name_key: str = "name"
    arguments_key: str = "arguments"
    constants: tuple[tuple[str, Any], ...] = ()  # fields of the call object with one value
    wrapper: str | None = None  # the key the call object stands under ({"tool_call": {…}})
    # The format's markers: where the model's vocabulary has one as a control token, the backend
    # writes it into the answer's text (control tokens are no text otherwise) and a grammar forces it.
    markers: tuple[str, ...] = ()

    def call_object(self, name: str, arguments: Any) -> dict[str, Any]:
        """One call of `name` as the format's call object (the {call} of `shape`)."""
        call = {**dict(self.constants), self.name_key: name, self.arguments_key: arguments}
        return {self.wrapper: call} if self.wrapper else call

    def shape_parts(self) -> list[tuple[str, str]]:
        """`shape` cut into ("text" | "marker" | "call" | "name" | "arguments", text) parts."""
        pattern = "|".join([r"\{call\}", r"\{name\}", r"\{arguments\}", *map(re.escape, self.markers)])
        parts: list[tuple[str, str]] = []
        pos = 0
        for m in re.finditer(pattern, self.shape):
            if m.start() > pos:
                parts.append(("text", self.shape[pos:m.start()]))
            token = m.group()
            parts.append((token[1:-1], token) if token in ("{call}", "{name}", "{arguments}") else ("marker", token))
            pos = m.end()
        if pos < len(self.shape):
            parts.append(("text", self.shape[pos:]))
        return parts


def _marker(text: str) -> Opener:
    return (text,)


_HERMES = ToolFormat("hermes", "<tool_call>\n{call}\n</tool_call>", openers=(_marker("<tool_call>"),),
                     close="</tool_call>", markers=("<tool_call>", "</tool_call>"))
FORMATS: dict[str, ToolFormat] = {f.name: f for f in (
    _HERMES,
    replace(_HERMES, name="smollm3"),
    ToolFormat("llama3_json", "{call}", openers=(_marker("<|python_tag|>"),),
               leading=(("{", WS, '"name"'), ("{", WS, '"type"')), arguments_key="parameters", pythonic=True,
               markers=("<|python_tag|>",)),
    ToolFormat("mistral", "[TOOL_CALLS][{call}]", openers=(_marker("[TOOL_CALLS]"),), markers=("[TOOL_CALLS]",)),
    ToolFormat("mistral_args", "[TOOL_CALLS]{name}[ARGS]{arguments}", openers=(_marker("[TOOL_CALLS]"),),
               body="name_args", markers=("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]")),
    ToolFormat("harmony", "<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{arguments}",
               body="harmony", markers=("<|channel|>", "<|constrain|>", "<|message|>")),
    ToolFormat("granite", "<|tool_call|>[{call}]", openers=(_marker("<|tool_call|>"),), markers=("<|tool_call|>",)),
    ToolFormat("command_r7b", "<|START_ACTION|>[{call}]<|END_ACTION|>", openers=(_marker("<|START_ACTION|>"),),
               close="<|END_ACTION|>", name_key="tool_name", arguments_key="parameters",
               constants=(("tool_call_id", "0"),), markers=("<|START_ACTION|>", "<|END_ACTION|>")),
    ToolFormat("phi4", "<|tool_call|>[{call}]<|/tool_call|>", openers=(_marker("<|tool_call|>"),),
               close="<|/tool_call|>", markers=("<|tool_call|>", "<|/tool_call|>")),
    ToolFormat("generic", "{call}", openers=(("{", WS, '"tool_call'),), wrapper="tool_call"),
)}
GENERIC = "generic"
_UNSET = object()

# The format of each built-in template that has one, where the template does not say itself
# (`tool_format`).
_BY_TEMPLATE = {
    **dict.fromkeys(("qwen2.5", "qwen3", "qwq", "nous-hermes-2"), "hermes"),
    **dict.fromkeys(("llama-3.1", "llama-3.2", "llama-4"), "llama3_json"),
    **dict.fromkeys(("mistral-v3", "mistral-nemo", "mistral-small-3"), "mistral"),
    **dict.fromkeys(("granite-3.1", "granite-3.2", "granite-3"), "granite"),
    "command-r7b": "command_r7b", "gpt-oss": "harmony", "phi-4-mini": "phi4", "smollm3": "smollm3",
}
def tool_format(name: str | None) -> ToolFormat:
    """The format named `name`; the generic one for None or a name not known here."""
    return FORMATS.get(name or GENERIC, FORMATS[GENERIC])


def format_name_of(template: object) -> str:
    """The call format of a chat template: its own `tool_format` where it names one, else (where it
    has no such attribute) by the built-in template's name, else by the call markup a Jinja template's text writes (a template
    that renders calls from its messages without reading `tools` still has a format), else generic."""
    named = getattr(template, "tool_format", _UNSET)
    if named:
        return str(named)
    known = _BY_TEMPLATE.get(str(getattr(template, "name", ""))) if named is _UNSET else None
    if known:
        return known
    text = getattr(template, "template", None)
    return guess_format(text) if isinstance(text, str) else GENERIC


def guess_format(jinja: str) -> str:
    """The call format a Jinja chat template's text writes (its markers), else generic."""
    return call_markup_format(jinja) or GENERIC


def parser_for(name: str | None) -> "ToolCallParser":
    """A fresh parser for one answer in the format named `name` (None or unknown: generic)."""
    fmt = tool_format(name)
    return HarmonyParser(fmt) if fmt.body == "harmony" else ToolCallParser(fmt)


def new_call_id() -> str:
    """A call's id: nine letters and digits (Mistral's templates take no other)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(9))


# --- streaming -------------------------------------------------------------------------------------


class ToolCallParser:
    """Tool calls read out of one answer as it streams (see the module docstring)."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.format = fmt
        self.truncated = False  # the answer was cut inside a call: nothing is called
        self.problems: list[str] = []  # spans that came back as text, and why
        self._pending = ""  # text not shown yet: it may begin an opener
        self._held: list[str] | None = None  # from the first opener on: everything, until finish
        self._started = False  # text other than white space was shown (leading openers are past)

    def feed(self, text: str) -> str:
        """Take the next piece of the answer; return the text that may be shown now."""
        if self._held is not None:
            self._held.append(text)
            return ""
        buf = self._pending + text
        start, keep = self._scan(buf)
        if start is not None:
            shown, self._held, self._pending = buf[:start], [buf[start:]], ""
        else:
            shown, self._pending = buf[:keep], buf[keep:]
        self._started = self._started or bool(shown.strip(_JSON_SPACE))
        return shown

    def finish(self, *, cut: bool = False) -> tuple[str, list[ToolCall]]:
        """The text not shown yet and the calls of the answer. `cut`: the generation ended before
        the model did (max_tokens, the context window)."""
        if self._held is None:
            rest, self._pending = self._pending, ""
            return rest, []
        held, self._held = "".join(self._held), None
        text, calls, problems, unfinished = self._read(held)
        if cut and unfinished:
            self.truncated = True
            return held, []
        self.problems.extend(problems)
        return (text if text.strip(_JSON_SPACE) or not calls else ""), calls  # (white space around calls: none)

    # -- where a span begins

    def _scan(self, buf: str) -> tuple[int | None, int]:
        """(where the first span of `buf` begins, or None; where the text that may still begin
        one does: what is shown stops there)."""
        full: int | None = None
        partial = len(buf)
        for opener, at in self._candidates(buf):
            end = _match(buf, at, opener)
            if end == _PARTIAL:
                partial = min(partial, at)
            elif end is not None and (full is None or at < full):
                full = at
        if full is not None and full <= partial:
            return full, full
        return None, partial

    def _candidates(self, buf: str) -> list[tuple[Opener, int]]:
        found = [(opener, at) for opener in self.format.openers for at in _places(buf, opener, 0)]
        if self.format.leading and not self._started:  # (white space before one may be shown)
            at = len(buf) - len(buf.lstrip(_JSON_SPACE))
            found.extend((opener, at) for opener in self.format.leading)
        return found

    def _opener_at(self, text: str, pos: int, *, leading: bool) -> tuple[int, int, Opener] | None:
        """The first whole opener in `text` from `pos`: (start, end, opener); leading openers
        count only at `pos` (past white space), and only when `leading`."""
        found = [(at, opener) for opener in self.format.openers for at in _places(text, opener, pos)]
        if leading:
            at = _skip_space(text, pos)
            found.extend((at, opener) for opener in self.format.leading)
        for at, opener in sorted(found, key=lambda item: item[0]):
            end = _match(text, at, opener)
            if end is not None and end != _PARTIAL:
                return at, end, opener
        return None

    # -- reading the held text

    def _read(self, held: str) -> tuple[str, list[ToolCall], list[str], bool]:
        """The text, calls and problems of `held` (which begins with an opener), and whether its
        last span ran to the end of it without a whole call (unfinished)."""
        text: list[str] = []
        calls: list[ToolCall] = []
        problems: list[str] = []
        pos, unfinished = 0, False
        while pos < len(held):
            found = self._opener_at(held, pos, leading=pos == 0)
            if found is None:
                text.append(held[pos:])
                break
            start, end, opener = found
            text.append(held[pos:start])
            body = start if (opener[0] or "").startswith("{") else end
            span_end, read, whole = self._span(held, start, body)
            span_end = max(span_end, start + 1)
            unfinished = not whole and span_end >= len(held)
            if read is None:
                problems.append(f"a {self.format.name} tool call that could not be read: {held[start:span_end][:200]!r}")
                text.append(held[start:span_end])
            else:
                calls.extend(read)
            pos = span_end
        return "".join(text), calls, problems, unfinished

    def _span(self, held: str, start: int, body: int) -> tuple[int, list[ToolCall] | None, bool]:
        """Where the span that opens at `start` (its body at `body`) ends, its calls (None: none
        readable), and whether they are whole (their JSON not cut short)."""
        if self.format.close is not None:
            close = held.find(self.format.close, body)
            end = len(held) if close < 0 else close
            calls = self._calls_in_text(held[body:end])
            return (end if close < 0 else close + len(self.format.close)), calls, calls is not None
        limit = self._next_opener(held, start + 1)
        if self.format.body == "name_args":
            return self._name_args(held, body, limit)
        end, calls, whole = _json_run(held, body, limit)
        if calls is None and self.format.pythonic:
            calls = _pythonic_call(held[body:limit])
            whole = calls is not None
        return (end if calls and end > body else limit), calls, whole

    def _next_opener(self, held: str, pos: int) -> int:
        found = self._opener_at(held, pos, leading=False)
        return len(held) if found is None else found[0]

    def _calls_in_text(self, body: str) -> list[ToolCall] | None:
        """The calls of a whole span's body: JSON, or (where the format has it) a Python-style call."""
        end, calls, _ = _json_run(body, 0, len(body))
        if calls is not None and not body[end:].strip(_JSON_SPACE):
            return calls
        return _pythonic_call(body) if self.format.pythonic else None

    def _name_args(self, held: str, body: int, limit: int) -> tuple[int, list[ToolCall] | None, bool]:
        """`N[ARGS]{…}` (an optional `[CALL_ID]id` before `[ARGS]`) up to `limit`: the name is
        readable apart from the arguments, so arguments that are not JSON still make a call."""
        m = _NAME_ARGS.match(held, body, limit)
        if m is None:
            return limit, None, False
        try:
            args, end = _DECODER.raw_decode(held[:limit], _skip_space(held, m.end()))
        except (ValueError, RecursionError):
            return limit, [ToolCall(new_call_id(), m.group(1), held[m.end():limit].strip(_JSON_SPACE))], False
        return end, [ToolCall(new_call_id(), m.group(1), _arguments_text(args))], True


_NAME_ARGS = re.compile(r"\s*([^\s\[\]{}]+)\s*(?:\[CALL_ID\]\s*[^\s\[]*\s*)?\[ARGS\]")
_DECODER = json.JSONDecoder()


def _places(text: str, opener: Opener, pos: int) -> list[int]:
    """Where `opener` may stand in `text` from `pos`: each place of its first character."""
    first = (opener[0] or " ")[0]
    places = []
    at = text.find(first, pos)
    while at >= 0:
        places.append(at)
        at = text.find(first, at + 1)
    return places


def _match(text: str, i: int, opener: Opener) -> int | None:
    """Where `opener` ends when it stands at `i` of `text`; _PARTIAL when `text` ends first; None
    when it does not stand there."""
    for part in opener:
        if part is WS:
            while i < len(text) and text[i] in _JSON_SPACE:
                i += 1
            continue
        n = min(len(part), len(text) - i)
        if text[i:i + n] != part[:n]:
            return None
        if n < len(part):
            return _PARTIAL
        i += n
    return i


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_SPACE:
        pos += 1
    return pos


def _json_run(text: str, pos: int, limit: int) -> tuple[int, list[ToolCall] | None, bool]:
    """The calls of the JSON values from `pos` (separated by white space, `;` or `,`) up to
    `limit`, and where they end (None: the first value is no call); and whether the first value
    is whole JSON. What follows the last call is left to the caller."""
    calls: list[ToolCall] = []
    end, whole = pos, False
    while True:
        at = _skip_space(text, end)
        if calls and at < limit and text[at] in ";,":
            at = _skip_space(text, at + 1)
        if at >= limit or text[at] not in "{[":
            break
        try:
            value, after = _DECODER.raw_decode(text[:limit], at)
        except (ValueError, RecursionError):
            break
        whole = True
        found = _calls_in(value)
        if found is None:
            break
        calls.extend(found)
        end = after
    return end, (calls or None), whole


def _calls_in(value: Any) -> list[ToolCall] | None:
    """The calls a JSON value holds: a call object or a list of them, under "tool_call",
    "tool_calls" or "function" as some formats write them; None when it is not that."""
    if isinstance(value, list):
        found = [_calls_in(item) for item in value]
        if not value or any(f is None for f in found):
            return None
        return [call for f in found if f for call in f]
    if not isinstance(value, dict):
        return None
    for key in ("tool_call", "tool_calls"):
        if set(value) == {key}:
            return _calls_in(value[key])
    if isinstance(value.get("function"), dict) and set(value) <= {"function", "type", "id"}:
        return _calls_in(value["function"])
    name = value.get("name", value.get("tool_name"))
    if not isinstance(name, str) or not name or not set(value) <= _CALL_KEYS:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    return [ToolCall(new_call_id(), name, _arguments_text(args))]


def _arguments_text(args: Any) -> str:
    """Arguments as JSON text: an object written out; a string (JSON the model quoted) as it is."""
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def _pythonic_call(body: str) -> list[ToolCall] | None:
    """`N.call(key=value, …)` or `N(key=value, …)` with literal values (Llama 3.1's built-in
    tools after <|python_tag|>), read without running anything."""
    body = body.strip()
    if not body or len(body) > _MAX_PYTHONIC:
        return None
    try:
        node = ast.parse(body, mode="eval").body
        if not isinstance(node, ast.Call) or node.args:
            return None
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "call" and isinstance(func.value, ast.Name):
            name = func.value.id
        elif isinstance(func, ast.Name):
            name = func.id
        else:
            return None
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        if len(args) != len(node.keywords):
            return None
        return [ToolCall(new_call_id(), name, json.dumps(args, ensure_ascii=False))]
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


# --- harmony (gpt-oss) ------------------------------------------------------------------------------

_START, _MESSAGE = "<|start|>", "<|message|>"
_MESSAGE_ENDS = ("<|call|>", "<|end|>", "<|return|>", _START)
_RECIPIENT = re.compile(r"to=functions\.([^\s<]+)")


class HarmonyParser(ToolCallParser):
    """gpt-oss: a call is a message whose header (from `<|start|>`, or the answer's start, which
    the generation prompt leaves in the assistant's header, to `<|message|>`) names a recipient
    `to=functions.N`; its content is the arguments. Other messages (the analysis and final
    channels) stream as they are, markers included, for the reasoning splitter."""

    def __init__(self, fmt: ToolFormat) -> None:
        super().__init__(fmt)
        self._in_header = True  # the pending text begins in the answer's first header

    def feed(self, text: str) -> str:
        shown = super().feed(text)
        if self._in_header and (_MESSAGE in shown or self._held is not None):
            self._in_header = False
        return shown

    def _scan(self, buf: str) -> tuple[int | None, int]:
        starts = ([0] if self._in_header else []) + [m.start() for m in re.finditer(re.escape(_START), buf)]
        for start in starts:
            header_end = buf.find(_MESSAGE, start)
            if header_end < 0:
                return None, start  # a header not finished yet: held until it is
            if _RECIPIENT.search(buf, start, header_end):
                return start, start
        for k in range(min(len(buf), len(_START) - 1), 0, -1):
            if _START.startswith(buf[-k:]):
                return None, len(buf) - k
        return None, len(buf)

    def _opener_at(self, text: str, pos: int, *, leading: bool) -> tuple[int, int, Opener] | None:
        """The next call message's header: where the held text begins (`leading`), else the next
        `<|start|>` whose header names a function."""
        at = pos if leading else text.find(_START, pos)
        while at >= 0:
            header_end = text.find(_MESSAGE, at)
            if header_end >= 0 and _RECIPIENT.search(text, at, header_end):
                return at, at, (_START,)
            at = text.find(_START, at + 1)
        return None

    def _span(self, held: str, start: int, body: int) -> tuple[int, list[ToolCall] | None, bool]:
        """The call message whose header begins at `body`: it ends at its end marker (taken
        with it), or at the next message; arguments that are not JSON are kept as written."""
        header_end = held.find(_MESSAGE, body)
        recipient = _RECIPIENT.search(held, body, header_end)
        assert recipient is not None  # (_opener_at found it)
        start = header_end + len(_MESSAGE)
        end = min((i for i in (held.find(marker, start) for marker in _MESSAGE_ENDS) if i >= 0), default=len(held))
        arguments = held[start:end].strip(_JSON_SPACE)
        whole = end < len(held) or _is_json(arguments)
        if end < len(held) and not held.startswith(_START, end):
            end = held.index("|>", end) + 2
        return end, [ToolCall(new_call_id(), recipient.group(1), arguments)], whole


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
