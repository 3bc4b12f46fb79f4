"""Horizontal bar charts for the terminal: one line a row (label, bar, value), as wide as the
room given; Unicode blocks (eighths of a cell) or plain ASCII `#`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

_EIGHTHS = " ▏▎▍▌▋▊▉"  # a cell's 0/8 … 7/8; a whole cell is "█"
MIN_BAR = 10  # cells a bar may take at the least, however narrow the room
MAX_LABEL = 40


@dataclass(frozen=True)
class Line:
    """One row of a chart, its parts padded to the chart's columns."""

    label: str
    bar: str
    value: str


def bar(fraction: float, cells: int, *, unicode: bool) -> str:
    """`fraction` (0 to 1) of `cells` cells; anything above 0 shows at least its smallest mark."""
    fraction = min(max(fraction, 0.0), 1.0)
    if unicode:
        eighths = round(fraction * cells * 8)
        if fraction > 0 and eighths == 0:
            eighths = 1
        whole, part = divmod(eighths, 8)
        return "█" * whole + (_EIGHTHS[part] if part else "")
    count = round(fraction * cells)
    return "#" * (count or (1 if fraction > 0 else 0))


def chart(rows: Sequence[tuple[str, float, str]], width: int, *, unicode: bool) -> list[Line]:
    """Lines for `rows` of (label, amount, value shown) in `width` cells: the labels (cut to
    MAX_LABEL or a third of the width), then bars scaled to the largest amount, then the values."""
    if not rows:
        return []
    label_w = min(max(len(label) for label, _, _ in rows), MAX_LABEL, max(width // 3, 8))
    value_w = max(len(value) for _, _, value in rows)
    cells = max(width - label_w - value_w - 2, MIN_BAR)
    top = max(amount for _, amount, _ in rows)
    return [Line(_cut(label, label_w, unicode).ljust(label_w),
                 bar(amount / top if top > 0 else 0.0, cells, unicode=unicode).ljust(cells),
                 value.rjust(value_w))
            for label, amount, value in rows]


def _cut(text: str, width: int, unicode: bool) -> str:
    if len(text) <= width:
        return text
    mark = "…" if unicode else "~"
    return text[:width - 1] + mark
