"""Stop strings over a stream of text deltas.

A stop string may arrive split across several deltas ("<end_of" + "_turn>"). The matcher releases
text only once it is known not to be the start of a stop string; the held-back tail is released
by the next delta that rules the match out, or by `flush()` at the end of the stream.
"""

from __future__ import annotations

from typing import Iterable


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
