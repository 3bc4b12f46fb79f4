"""What the tool calling of Anthropic's and Gemini's wire shares.

- `checked_choice`: a request's `tool_choice` checked against its tools, before anything is sent.
- `message_calls`, `call_input`: the calls of an assistant message, and a call's arguments as
  the JSON object these wires send back (not text).
- `CallGatherer`: the calls of one answer, from what a server sends (a call whole, or its
  arguments in pieces split anywhere), bounded: at most MAX_TOOL_CALLS calls, each named, each
  with at most MAX_ARGUMENT_BYTES of arguments; ids the server gives none of are `call_<n>`.
  `settle` puts them on the answer's state with finish reason "tool_calls".
- `Replay`: what a provider sends with a call and wants back with it on the next round trip
  (Anthropic's thinking blocks, Gemini's thought signatures), which the provider-neutral message
  of a call has no place for; kept for the life of the backend, bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping

from modelctl.backends.api import StreamState
from modelctl.backends.base import FINISH_STOP, FINISH_TOOL_CALLS, GenerationParams, ToolCall
from modelctl.errors import BackendError, UsageError
from modelctl.transport.wire import Wire

MAX_TOOL_CALLS = 128
# Per call, as a tool's result is bounded: far above what a model writes in one answer.
MAX_ARGUMENT_BYTES = 1 << 20


def checked_choice(params: GenerationParams) -> str | None:
    """`params.tool_choice`: None, "auto", "none", "required" or the name of one of `params.tools`
    (UsageError for a choice that needs tools there are none of, or names none of them)."""
    choice = params.tool_choice
    names = [t.name for t in params.tools]
    if choice in (None, "auto", "none") or choice in names or (choice == "required" and names):
        return choice
    if choice == "required":
        raise UsageError("the tool choice 'required' needs at least one tool")
    raise UsageError(f"the tool choice '{choice}' is no tool of this request",
                     hint=f"the tools: {', '.join(names)}" if names else "no tools were given")


def message_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    """The tool calls of an assistant message (its "tool_calls": {"id", "name", "arguments"} each)."""
    return [c if isinstance(c, ToolCall) else ToolCall.from_dict(c) for c in message.get("tool_calls") or ()]


def call_input(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as a JSON object; {} where the model wrote none, or no object (its
    result, which follows it, says what was wrong)."""
    try:
        return call.arguments_json()
    except BackendError:
        return {}


@dataclass
class _Pending:
    id: str
    name: str
    start: str  # the arguments the call opened with (replaced by pieces, if any follow)
    pieces: list[str] = field(default_factory=list)
    size: int = 0

    def call(self) -> ToolCall:
        text = "".join(self.pieces) if self.pieces else self.start
        return ToolCall(self.id, self.name, _whole_text(text) or "{}")


def _whole_text(text: str) -> str:
    """Pieces split inside a UTF-16 surrogate pair (`"\\ud83d"` then `"\\ude00"` in two events)
    joined into their character; a lone surrogate becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class CallGatherer:
    """The tool calls of one answer, in the order they began."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self._calls: list[_Pending] = []
        self._open: dict[Hashable, _Pending] = {}

    def add(self, call_id: Any, name: Any, arguments: str = "", *, key: Hashable = None) -> None:
        """A call begins (whole, or opened under `key` for `extend`): WireError past the bounds."""
        if len(self._calls) >= MAX_TOOL_CALLS:
            raise self.wire.error(f"more than {MAX_TOOL_CALLS} tool calls in one answer")
        name = self.wire.text(name, "a tool call's name")
        if not name:
            raise self.wire.error("a tool call without a name")
        call_id = self.wire.text(call_id, f"the id of a call of {name}") or f"call_{len(self._calls) + 1}"
        if any(p.id == call_id for p in self._calls):
            raise self.wire.error(f"two tool calls with the id {call_id!r}")
        pending = _Pending(call_id, name, arguments)
        self._grow(pending, arguments)
        self._calls.append(pending)
        if key is not None:
            self._open[key] = pending

    def extend(self, key: Hashable, piece: str) -> bool:
        """More of the arguments of the call opened under `key`; False if there is none."""
        pending = self._open.get(key)
        if pending is None:
            return False
        if piece:
            self._grow(pending, piece)
            pending.pieces.append(piece)
        return True

    def _grow(self, pending: _Pending, text: str) -> None:
        pending.size += _size(text)
        if pending.size > MAX_ARGUMENT_BYTES:
            raise self.wire.error(f"the arguments of a call of {pending.name} exceed "
                                  f"{MAX_ARGUMENT_BYTES >> 20} MiB")

    def __len__(self) -> int:
        return len(self._calls)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(p.call() for p in self._calls)

    def settle(self, state: StreamState, reason: str | None) -> None:
        """The answer's finish reason and calls on `state`: "tool_calls" and the calls where the
        model stopped with calls; calls of an answer cut short (max tokens, a filter) are dropped,
        and a stop for tools with no call is a plain stop."""
        calls = self.calls()
        if calls and reason in (FINISH_STOP, FINISH_TOOL_CALLS):
            state.finish_reason, state.tool_calls = FINISH_TOOL_CALLS, calls
        else:
            state.finish_reason = FINISH_STOP if reason == FINISH_TOOL_CALLS else reason
            state.tool_calls = ()


def gatherer(state: StreamState, wire: Wire) -> CallGatherer:
    """The gatherer of the answer `state` reads (made at its first call)."""
    found = state.extra.get("calls")
    if not isinstance(found, CallGatherer):
        found = state.extra["calls"] = CallGatherer(wire)
    return found


class Replay:
    """Values kept by key for a later request: at most `size`, the least recently used dropped;
    safe to share between threads."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value
