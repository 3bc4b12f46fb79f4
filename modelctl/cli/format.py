"""Small formatting helpers for human output."""

from __future__ import annotations

from typing import Sequence

# Still imported from here by cli/catalog.py and cli/store_cmd.py; defined in modelctl.units.


def human_count(n: int | None) -> str:
    """6738415616 -> '6.7B', 774000000 -> '774M', None -> '-'."""
    if n is None:
        return "-"
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}".replace(".0" + unit, unit) if value < 100 else f"{value:.0f}{unit}"
    return str(n)


def human_tokens(n: int | None) -> str:
    """Context sizes the way model cards write them: 4096 -> '4K', 128000 -> '128K', 131072 -> '128K'.

    Round decimal numbers are written in thousands, the rest in units of 1024.
    """
    if n is None:
        return "-"
    for unit, dec, binary in (("M", 1_000_000, 1_048_576), ("K", 1000, 1024)):
        if n >= dec:
            value = n / dec if n % dec == 0 else n / binary
            return f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
    return str(n)


def money(v: float | None) -> str:
    return "-" if v is None else f"${v:g}"


def cost_cell(v: float | None) -> str:
    """What something cost, for a table column: $0.0123; empty when unknown."""
    return "" if v is None else f"${v:.4f}"


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns without styling: fast for thousands of rows, friendly to `cut` and `awk`."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    lines = [fmt.format(*headers).rstrip()]
    lines.extend(fmt.format(*row).rstrip() for row in rows)
    return "\n".join(lines) + "\n"


def fit_widths(natural: Sequence[int], floors: Sequence[int], room: int, *, gap: int,
               drop: Sequence[int] = ()) -> list[tuple[int, int]]:
    """(column index, width) of the columns of a table that fit in `room` cells, `gap` cells
    between columns. Each column wants its `natural` width and may be cut down to its floor (the
    widest first); while even the floors do not fit, the columns of `drop` are left out, first
    first. Should the floors still not fit, every column is cut further, and at the last the
    columns at the end are left out: the result fits (one column of one cell at the least)."""
    kept = list(range(len(natural)))
    dropping = [i for i in drop if i in kept]

    def total(limits: Sequence[int]) -> int:
        return sum(limits[i] for i in kept) + gap * (len(kept) - 1)

    while dropping and total(floors) > room:
        kept.remove(dropping.pop(0))
    widths = list(natural)
    for limits in (floors, [1] * len(natural)):  # to the floors; then, if need be, to one cell
        while total(widths) > room:
            cuttable = [i for i in kept if widths[i] > limits[i]]
            if not cuttable:
                break
            widths[max(cuttable, key=lambda i: widths[i])] -= 1
    while len(kept) > 1 and total(widths) > room:
        kept.pop()
    return [(i, widths[i]) for i in kept]
