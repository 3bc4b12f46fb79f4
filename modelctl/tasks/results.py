"""What the task interfaces return: plain values, the same whichever service answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import BackendError

# The most items of one kind (segments, labels, candidates) read from one answer: far more
# than a real answer holds (a day of speech in one-second segments), few enough to print.
MAX_ITEMS = 100_000


def at_most(items: list[Any], what: str, label: str) -> list[Any]:
    """`items` from `label`'s answer, refused when there are more than MAX_ITEMS of them."""
    if len(items) > MAX_ITEMS:
        raise BackendError(f"{label} answered with {len(items):,} {what}, more than the {MAX_ITEMS:,} modelctl reads")
    return items


@dataclass
class Image:
    """A generated image: its bytes, their media type (from the bytes, not the server's word)
    and the prompt the service actually used when it rewrote it (DALL·E 3 does)."""

    data: bytes
    media_type: str
    revised_prompt: str | None = None


@dataclass
class Audio:
    data: bytes
    media_type: str


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language, "duration": self.duration,
                "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in self.segments]}


@dataclass
class Label:
    """One class and its score; `flagged` for moderation categories the service flagged."""

    label: str
    score: float
    flagged: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "score": self.score}
        if self.flagged is not None:
            out["flagged"] = self.flagged
        return out


@dataclass
class Fill:
    """One candidate for the masked token: the token and the whole sequence with it."""

    token: str
    sequence: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "sequence": self.sequence, "score": self.score}
