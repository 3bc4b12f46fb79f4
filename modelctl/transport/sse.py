"""Server-sent events (the WHATWG event-stream format) from a stream of lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from modelctl.transport import wire


@dataclass
class Event:
    event: str
    data: str

    def json(self) -> Any:
        """The event's data as JSON (`wire.loads`: ValueError when it is not, or nests too deep)."""
        return wire.loads(self.data)


def iter_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream of lines (the WHATWG event-stream rules: `data:` lines
    joined by newlines, `event:` names, comments and `id:`/`retry:` fields ignored)."""
    name = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        fname, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if fname == "data":
            data.append(value)
        elif fname == "event":
            name = value
    if data:
        yield Event(name or "message", "\n".join(data))
