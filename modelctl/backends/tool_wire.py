"""Tool calling in OpenAI's chat-completions format, shared by the backends that speak it
(OpenAI, Azure OpenAI, the Azure AI catalog, OpenAI-compatible servers, Mistral, Hugging Face)
and, for reading calls, Ollama.

Out, in a request:

    tool_fields(params)      `tools` (function form) and `tool_choice`, checked (`checked_choice`)
    openai_messages(msgs)    the conversation: an assistant's calls as `tool_calls` (type function,
                             arguments as JSON text), a tool's result as role `tool` + `tool_call_id`,
                             in each provider's `MessageForm`

| kind | `tool_choice` required | a named tool | ids sent back |
|---|---|---|---|
| openai, azure-openai, azure-ai, openai-compatible, hf-inference | `"required"` | `{"type": "function", "function": {"name"}}` | at most 40 characters (OpenAI refuses longer) |
| mistral | `"any"` | the same | 9 letters or digits (Mistral refuses others) |
| ollama | refused (no tool_choice) | refused | as they are |

An id that does not fit is replaced by a digest of it, the same for the call and for its
result, so the two still pair (a conversation that began at another provider moves on).

In, from an answer: `ToolCallAssembly` gathers one answer's calls, streamed as deltas (keyed by
`index`; id and name in the first, arguments split anywhere, even between the halves of a
surrogate pair) or whole (a non-streamed message, Ollama's lines; arguments as text or as an
object), and gives them complete, bounded (MAX_TOOL_CALLS calls, the response size limit) and
checked (a call needs a name; a missing or repeated id becomes `call_<n>`). `settle` gives the
final chunk's finish reason and calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from modelctl.backends.base import (
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    TOOL_CHOICES,
    GenerationParams,
    Message,
    ToolCall,
)
from modelctl.backends.images import openai_content
from modelctl.errors import UsageError
from modelctl.transport.response_limits import limits
from modelctl.transport.wire import Wire

MAX_TOOL_CALLS = 128  # calls in one answer; more is a server gone wrong
MAX_CALL_ID = 40  # OpenAI's limit on a tool call's id
_ALNUM = string.digits + string.ascii_letters
_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_SURROGATE = re.compile("[\ud800-\udfff]")

CallId = Callable[[str], str]  # a call's id as a provider takes it


# --- requests ----------------------------------------------------------------------------------------


def checked_choice(params: GenerationParams) -> str | None:
    """`params.tool_choice` checked against `params.tools`: None where there is nothing to ask of
    the provider (no choice; "auto" or "none" without tools). UsageError for a choice that names
    no tool given, or that asks for a call with no tool to call."""
    choice = params.tool_choice
    if choice is None:
        return None
    names = [tool.name for tool in params.tools]
    if choice not in TOOL_CHOICES and choice not in names:
        given = f" (the tools: {', '.join(names)})" if names else " (no tools are given)"
        raise UsageError(f"tool choice '{choice}' is neither auto, none, required nor a tool's name{given}")
    if not params.tools:
        if choice in ("auto", "none"):
            return None
        raise UsageError(f"tool choice '{choice}' needs a tool to call", hint="give tools with -T NAME")
    return choice


def tool_fields(params: GenerationParams, *, required: str = "required") -> dict[str, Any]:
    """The request's `tools` and `tool_choice` (`required`: the provider's word for "call one")."""
    choice = checked_choice(params)
    if not params.tools:
        return {}
    fields: dict[str, Any] = {"tools": [tool.openai() for tool in params.tools]}
    if choice == "required":
        fields["tool_choice"] = required
    elif choice in TOOL_CHOICES:
        fields["tool_choice"] = choice
    elif choice is not None:
        fields["tool_choice"] = {"type": "function", "function": {"name": choice}}
    return fields


def refuse_tools(params: GenerationParams, what: str) -> None:
    """UsageError when `params` gives tools to `what`, which cannot call them."""
    if params.tools:
        raise UsageError(f"{what} cannot call tools", hint="use `modelctl chat` for tools")


def message_calls(message: Message) -> list[ToolCall]:
    """The tool calls an assistant message carries (as dicts, or as ToolCall values)."""
    if message.get("role") != "assistant":
        return []
    return [c if isinstance(c, ToolCall) else ToolCall.from_dict(c) for c in message.get("tool_calls") or ()]


def _digest(text: str, size: int) -> str:
    """`size` letters and digits that stand for `text`, the same each time."""
    number = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), "big")
    digits = []
    for _ in range(size):
        number, digit = divmod(number, len(_ALNUM))
        digits.append(_ALNUM[digit])
    return "".join(digits)


def short_call_id(call_id: str) -> str:
    """`call_id`, or a digest of it when it is longer than OpenAI takes."""
    return call_id if len(call_id) <= MAX_CALL_ID else "call" + _digest(call_id, MAX_CALL_ID - 4)


def mistral_call_id(call_id: str) -> str:
    """`call_id` when it is 9 letters or digits (Mistral's own), else a digest of it of that form."""
    return call_id if _MISTRAL_ID.fullmatch(call_id) else _digest(call_id, 9)


@dataclass(frozen=True)
class MessageForm:
    """How a provider takes the conversation's tool calls and results: `call_id` fits a call's id
    to it; `result_names` names the tool in a result's message (Mistral); `empty_content`, sent
    beside calls with no text (None: no content field). TGI reads the calls only where content is
    absent or null; llama-cpp-python's server refuses null and its templates need a content, so
    an OpenAI-compatible server gets ""; OpenAI's API takes any of them."""

    call_id: CallId = short_call_id
    result_names: bool = False
    empty_content: str | None = None


OPENAI_FORM = MessageForm()


def openai_messages(messages: Sequence[Message], form: MessageForm | None = None) -> list[dict[str, Any]]:
    """Chat-completions messages, tool calls and results in `form` (default: OpenAI's)."""
    form = form or OPENAI_FORM
    return [_openai_message(m, form) for m in messages]


def _openai_message(message: Message, form: MessageForm) -> dict[str, Any]:
    fit = form.call_id
    turn: dict[str, Any] = {"role": message["role"], "content": openai_content(message)}
    calls = message_calls(message)
    if calls:
        if not turn["content"] and form.empty_content is None:
            del turn["content"]
        elif not turn["content"]:
            turn["content"] = form.empty_content
        turn["tool_calls"] = [{"id": fit(c.id), "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments or "{}"}} for c in calls]
    if message["role"] == "tool":
        turn["tool_call_id"] = fit(str(message.get("tool_call_id") or ""))
        if form.result_names and message.get("name"):
            turn["name"] = message["name"]
    return turn


# --- answers -----------------------------------------------------------------------------------------


@dataclass
class _Slot:
    """A call being assembled."""

    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class ToolCallAssembly:
    """The tool calls of one answer as they arrive (see the module docstring)."""

    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._last: int | None = None  # the index of the call last added to
        self._size = 0  # characters of ids, names and arguments received
        self._max_size: int | None = None

    def __bool__(self) -> bool:
        return bool(self._slots)

    def add_deltas(self, items: Any, wire: Wire) -> None:
        """A delta's `tool_calls`: pieces of calls, each keyed by its `index`."""
        for item in wire.items(items, "tool_calls"):
            item = wire.obj(item, "a tool call", optional=False)
            index = wire.count(item.get("index"), "a tool call's index")
            self._add(self._slot(index, item.get("id"), wire), item, wire)

    def add_whole(self, items: Any, wire: Wire) -> None:
        """A message's `tool_calls`: each one a whole call."""
        for item in wire.items(items, "tool_calls"):
            item = wire.obj(item, "a tool call", optional=False)
            self._add(self._new(self._next_index(), wire), item, wire)

    def calls(self, wire: Wire) -> tuple[ToolCall, ...]:
        """The calls in index order, complete; WireError for one without a name."""
        provided = {slot.id for slot in self._slots.values() if slot.id}
        taken: set[str] = set()
        calls = []
        for n, index in enumerate(sorted(self._slots), 1):
            slot = self._slots[index]
            if not slot.name:
                raise wire.error(f"tool call {n} has no name")
            call_id = slot.id if slot.id and slot.id not in taken else _fresh_id(n, provided | taken)
            taken.add(call_id)
            calls.append(ToolCall(call_id, slot.name, _paired("".join(slot.parts)) or "{}"))
        return tuple(calls)

    def _slot(self, index: int | None, call_id: Any, wire: Wire) -> _Slot:
        """The call a delta adds to: the one at its index, else `_index_of` its id."""
        if index is None:
            index = self._index_of(call_id if isinstance(call_id, str) else "")
        slot = self._slots.get(index) or self._new(index, wire)
        self._last = index
        return slot

    def _index_of(self, call_id: str) -> int:
        """Where a delta without an index belongs: the call with its id; without an id, the last
        call; else a new call."""
        for index, slot in self._slots.items():
            if call_id and slot.id == call_id:
                return index
        if not call_id and self._last is not None:
            return self._last
        return self._next_index()

    def _next_index(self) -> int:
        return max(self._slots) + 1 if self._slots else 0

    def _new(self, index: int, wire: Wire) -> _Slot:
        if len(self._slots) >= MAX_TOOL_CALLS:
            raise wire.error(f"more than {MAX_TOOL_CALLS} tool calls in one answer")
        slot = self._slots[index] = _Slot()
        return slot

    def _add(self, slot: _Slot, item: Mapping[str, Any], wire: Wire) -> None:
        function = wire.obj(item.get("function"), "a tool call's function")
        call_id = wire.text(item.get("id"), "a tool call's id") or ""
        name = wire.text(function.get("name"), "a tool call's name") or ""
        arguments = _arguments(function.get("arguments"), wire)
        self._size += len(call_id) + len(name) + len(arguments)
        if self._max_size is None:
            self._max_size = limits().max_bytes
        if self._size > self._max_size:
            raise wire.error(f"tool calls of more than {self._max_size:,} characters (MODELCTL_MAX_RESPONSE_MB)")
        slot.id = slot.id or call_id  # id and name come once; a server that repeats them is not
        slot.name = slot.name or name  # taken to add to them
        if arguments:
            slot.parts.append(arguments)


def _arguments(value: Any, wire: Wire) -> str:
    """A piece of a call's arguments as it came: text (lone surrogates kept, to pair with the
    next piece's), or a whole object (Ollama, TGI) written as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    raise wire.wrong("a tool call's arguments", value, "text or an object")


def _paired(text: str) -> str:
    """`text` with each pair of surrogates (a character beyond U+FFFF written as two `\\u`
    escapes, possibly in two pieces) made one character, and a lone one U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _fresh_id(n: int, taken: set[str]) -> str:
    """`call_<n>`, made unique among `taken` (at most MAX_TOOL_CALLS ids: the loop is short)."""
    candidate, extra = f"call_{n}", 1
    while candidate in taken:
        extra += 1
        candidate = f"call_{n}_{extra}"
    return candidate


def settle(reason: str | None, calls: tuple[ToolCall, ...]) -> tuple[str | None, tuple[ToolCall, ...]]:
    """The final chunk's finish reason and calls. An answer with calls that ended as the model
    meant (stop, tool_calls) is a call for tools; one cut short (length, a content filter) keeps
    its reason and loses the calls, whose arguments may be unfinished; "tool_calls" without a
    call is a plain stop."""
    if calls:
        if reason in (None, FINISH_STOP, FINISH_TOOL_CALLS):
            return FINISH_TOOL_CALLS, calls
        return reason, ()
    return (FINISH_STOP if reason == FINISH_TOOL_CALLS else reason), ()
