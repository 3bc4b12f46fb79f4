"""Turns written out: JSON lines (one turn a line, every field) or Markdown (a transcript per
conversation)."""

from __future__ import annotations

import json
import re
from itertools import groupby
from typing import Any, Iterable, Iterator

from modelctl.terminal_text import inline_escaped

FORMATS = ("jsonl", "markdown")

# The ASCII punctuation that is Markdown markup within a line (emphasis, code, links, HTML, entities, a heading's closing #).
_MARKUP = re.compile(r"[\\`*_{}\[\]<>!&#|~]")


def _inline(value: Any) -> str:
    """A field (a model or session name, an error) as literal text on one Markdown line: it
    cannot start a heading or a list, open emphasis, a link or HTML, or hide characters."""
    return _MARKUP.sub(lambda m: "\\" + m[0], inline_escaped(str(value)))


def to_jsonl(turns: Iterable[dict[str, Any]]) -> Iterator[str]:
    for turn in turns:
        yield json.dumps(turn, ensure_ascii=False) + "\n"


def to_markdown(turns: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A section per conversation, a subsection per turn: its question and answer (the earlier
    messages it resent appear under the earlier turns)."""
    for conversation, group in groupby(turns, key=lambda t: (t["conversation"], t["session"])):
        number, session = conversation
        yield f"# Conversation {number}" + (f" ({_inline(session)})" if session else "") + "\n\n"
        system_shown = None
        for turn in group:
            facts = ", ".join(_inline(x) for x in (turn["model"], turn["created"]) if x)
            yield f"## Turn {turn['id']}" + (f" — {facts}" if facts else "") + "\n\n"
            if turn["system"] and turn["system"] != system_shown:
                yield f"**System:**\n\n{_block(turn['system'])}\n\n"
                system_shown = turn["system"]
            results = _tool_results(turn.get("messages") or [])
            if results:  # a round trip of a tool chain: what it sent back is the tools' results
                yield "**Tool results:**\n\n" + "".join(
                    f"- {_inline(m.get('name') or '?')} ({_inline(m.get('tool_call_id') or '')}):\n\n"
                    f"{_block(str(m.get('content', '')))}\n\n" for m in results)
            else:
                yield f"**User:**\n\n{_block(turn['prompt'])}\n\n"
            yield f"**Assistant:**\n\n{_block(turn['answer'])}\n\n"
            if turn.get("tool_calls"):
                yield "**Tool calls:**\n\n" + "".join(
                    f"- {_inline(call.get('name', '?'))} ({_inline(call.get('id', ''))}): "
                    f"{_inline(call.get('arguments', ''))}\n" for call in turn["tool_calls"]) + "\n"
            tail = [f"finish: {_inline(turn['finish_reason'])}"] if turn["finish_reason"] else []
            if turn["prompt_tokens"] is not None:
                tail.append(f"tokens: {turn['prompt_tokens']} in, {turn['completion_tokens']} out")
            if turn["cost"] is not None:
                tail.append(f"cost: ${turn['cost']:.6f}")
            if turn.get("key_label"):  # a request to `serve`: the label of its API key
                tail.append(f"key: {_inline(turn['key_label'])}")
            if turn["error"]:
                tail.append(f"error: {_inline(turn['error'])}")
            if tail:
                yield f"_{'; '.join(tail)}_\n\n"


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool messages at the end of a request (the results a round trip sent back)."""
    results: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, message)
    return results


def _block(text: str) -> str:
    """Message text quoted, so that its own headings and rules stay inside the message."""
    return "\n".join(f"> {line}" if line else ">" for line in (text or "").splitlines() or [""])
