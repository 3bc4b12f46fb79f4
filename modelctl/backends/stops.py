"""Stop strings over a stream of text deltas.

A stop string may arrive split across several deltas ("<end_of" + "_turn>"). The matcher releases
text only once it is known not to be the start of a stop string; the held-back tail is released
by the next delta that rules the match out, or by `flush()` at the end of the stream.
"""

from __future__ import annotations

import re
from typing import Iterable

from modelctl.errors import UsageError

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)


def unescape_stop(text: str, where: str = "stop") -> str:
    r"""A stop string as typed (`--stop '\n\n'`, `/set stop \n`, config.toml, an alias) with the
    escapes \n, \t, \r, \\ and \uXXXX read as the characters they name: a shell passes them
    as typed, and stop strings need new lines. `\\n` is a backslash and an n; any other
    backslash stays as typed. `where` names the value in an error."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return _ESCAPES.get(match.group(2), match.group(0))
        code = int(match.group(1), 16)
        if 0xD800 <= code <= 0xDFFF:
            raise UsageError(f"{where}: \\u{match.group(1)} is half of a UTF-16 pair, not a character")
        return chr(code)

    return _ESCAPE.sub(one, text) if "\\" in text else text


class StopMatcher:
    """Feed text deltas; get back the text that is safe to show, and whether a stop was hit."""

    __slots__ = ("stops", "_pending", "_longest", "stopped", "matched")

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops: tuple[str, ...] = tuple(dict.fromkeys(s for s in stops if s))
        self._longest = max((len(s) for s in self.stops), default=0)
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the stream

    def feed(self, text: str) -> str:
        """Add `text`; return what can be emitted now. After a stop, everything is swallowed."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buf = self._pending + text
        cut, hit = -1, None
        for stop in self.stops:
            i = buf.find(stop)
            if i != -1 and (cut == -1 or i < cut):
                cut, hit = i, stop
        if hit is not None:
            self.stopped, self.matched, self._pending = True, hit, ""
            return buf[:cut]
        hold = self._partial_len(buf)
        self._pending = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold]

    def flush(self) -> str:
        """The held-back text at the end of a stream that did not stop on a string."""
        out, self._pending = self._pending, ""
        return "" if self.stopped else out

    @property
    def pending(self) -> str:
        return self._pending

    def _partial_len(self, buf: str) -> int:
        return partial_match_len(buf, self.stops, self._longest)


def partial_match_len(buf: str, strings: tuple[str, ...], longest: int | None = None) -> int:
    """Length of the longest end of `buf` that is a proper beginning of one of `strings` (what a
    stream must hold back until the next delta says whether the string completes)."""
    if longest is None:
        longest = max((len(s) for s in strings), default=0)
    for k in range(min(len(buf), longest - 1), 0, -1):
        tail = buf[-k:]
        if any(s.startswith(tail) for s in strings):
            return k
    return 0
