"""Quantities in words people read: sizes in bytes, counts of things."""

from __future__ import annotations


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB', 250_000_000 -> '238.4 MiB', None -> '-' (binary units, as `du -h`)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """A count with its noun in the right number: (1, 'turn') -> '1 turn', (2, 'turn') -> '2 turns',
    (3, 'entry', 'entries') -> '3 entries'."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
