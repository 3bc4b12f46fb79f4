"""Running the tools a model calls, and going on until it answers.

    reply = session.ask("What time is it in Tokyo?")      # the model calls now(tz="Asia/Tokyo")
    while runner.goes_on(reply):
        runner.run(session, reply)                         # approved, run, results into the conversation
        reply = session.resume()                           # the model reads them and goes on

A round trip sends the whole conversation again, so each one is priced and counted against
`--max-cost` before it is sent (the chat's backend does that for every request). A call the model
makes to a tool it was not given, a call over the per-answer cap, a denied call, a tool that
fails: each becomes an error result the model reads, and the chain goes on. A call no one could
approve (no terminal) stops the chain with an error. The chain stops after `chain_limit` round
trips (0: no limit), saying so; the last answer's calls are then not run. A tool choice that
forces a call (`required`, a tool's name) holds for the question's first answer; the answers
that read the results may call again or answer (`auto`), else a forced call would never end.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from modelctl.backends.base import ToolCall
from modelctl.chat.approval import Approver, shown_call
from modelctl.terminal_text import safe

if TYPE_CHECKING:
    from modelctl.chat.session import ChatSession, Reply
    from modelctl.tools.toolbox import Toolbox

DEFAULT_CHAIN_LIMIT = 5
DEFAULT_MAX_CALLS = 16  # calls one answer may make
MAX_PARALLEL = 8
SHOWN_RESULT_CHARS = 200


@dataclass(frozen=True)
class ToolRecord:
    """One call the model made, and what came of it."""

    call: ToolCall
    decision: str  # "allowed", "denied", "unknown tool", "over the cap"
    result: str
    is_error: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.call.to_dict(), "decision": self.decision, "result": self.result,
                "is_error": self.is_error, "seconds": round(self.seconds, 6)}

    def message(self) -> dict[str, str]:
        """The tool message that carries the result back to the model."""
        return {"role": "tool", "tool_call_id": self.call.id, "name": self.call.name, "content": self.result}


@dataclass
class ToolRunner:
    toolbox: "Toolbox"
    approver: Approver
    chain_limit: int = DEFAULT_CHAIN_LIMIT
    max_calls: int = DEFAULT_MAX_CALLS
    show: Callable[[str], None] | None = None  # hears a line per call and per result
    notify: Callable[[str], None] | None = None  # hears why the chain stopped
    rounds: int = 0
    records: list[ToolRecord] = field(default_factory=list)
    forced: str | None = None  # a --tool-choice that forces a call, while it is eased to auto

    def start(self, session: "ChatSession") -> None:
        """A new question: the chain limit counts from here, and a forced tool choice holds again."""
        self.rounds = 0
        if self.forced is not None:
            session.params = replace(session.params, tool_choice=self.forced)
            self.forced = None

    def goes_on(self, reply: "Reply") -> bool:
        """Whether to run `reply`'s calls and ask again: it called tools, and the chain limit
        leaves another round trip."""
        if not reply.tool_calls:
            return False
        if self.chain_limit and self.rounds >= self.chain_limit:
            if self.notify is not None:
                self.notify(f"the chain stops after {self.rounds} round trips with tools (--chain-limit "
                            f"{self.chain_limit}); the model's last {len(reply.tool_calls)} call(s) were not run")
            return False
        return True

    def run(self, session: "ChatSession", reply: "Reply") -> list[ToolRecord]:
        """Decide and run `reply`'s calls (the approved ones at once, up to MAX_PARALLEL), and
        add their results to the conversation in the order the model made the calls."""
        decided: list[ToolRecord | None] = []
        for index, call in enumerate(reply.tool_calls):
            decided.append(self._refusal(index, call))
        to_run = [call for call, record in zip(reply.tool_calls, decided) if record is None]
        ran = iter(self._call_all(to_run))
        records = [record if record is not None else next(ran) for record in decided]
        for record in records:
            session.messages.append(record.message())
            self._show_result(record)
        self.records.extend(records)
        self.rounds += 1
        choice = session.params.tool_choice
        if choice not in (None, "auto", "none"):  # the model called as told: it may now answer
            self.forced = choice
            session.params = replace(session.params, tool_choice="auto")
        return records

    def _refusal(self, index: int, call: ToolCall) -> ToolRecord | None:
        """The record of a call that is not run (and why), else None; asks for approval."""
        if index >= self.max_calls:
            return ToolRecord(call, "over the cap", f"not run: one answer may call at most {self.max_calls} tools",
                              is_error=True)
        tool = self.toolbox.get(call.name)
        if tool is None:
            known = ", ".join(t.spec.name for t in self.toolbox.tools) or "none"
            return ToolRecord(call, "unknown tool", f"there is no tool named {call.name!r} (the tools: {known})",
                              is_error=True)
        if self.show is not None:
            self.show(f"tool call: {shown_call(call)}")
        if not self.approver.allows(tool, call):
            return ToolRecord(call, "denied", "the user did not allow this call", is_error=True)
        return None

    def _call_all(self, calls: list[ToolCall]) -> list[ToolRecord]:
        if len(calls) <= 1:
            return [self._call(call) for call in calls]
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(calls)), thread_name_prefix="modelctl-tool") as pool:
            return list(pool.map(self._call, calls))

    def _call(self, call: ToolCall) -> ToolRecord:
        t0 = time.perf_counter()
        result = self.toolbox.call(call)
        return ToolRecord(call, "allowed", result.content, result.is_error, time.perf_counter() - t0)

    def _show_result(self, record: ToolRecord) -> None:
        if self.show is None:
            return
        text = " ".join(record.result.split())
        if len(text) > SHOWN_RESULT_CHARS:
            text = text[:SHOWN_RESULT_CHARS] + f"… ({len(record.result):,} characters)"
        mark = "error" if record.is_error else "result"
        self.show(safe(f"tool {mark}: {record.call.name}: {text}"))
