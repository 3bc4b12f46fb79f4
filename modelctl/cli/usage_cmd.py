"""`modelctl usage`: tokens and cost totals from the chat history."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Mapping, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.format import cost_cell
from modelctl.cli.help import examples


def usage(
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE|AGE", help="Count turns from DATE (2026-01-31) or from AGE ago (7d, 12h)."),
    by: str = typer.Option("model", "--by", metavar="model|day", help="One row per model, or per (local) day."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the rows and the total as JSON.")] = False,
) -> None:
    """Turns, tokens and cost from the history, per model or per day. Cost counts the turns whose
    deployment has prices in the registry (`priced_turns`); where providers reported prompt
    tokens read from their cache, the cached tokens and what the cache saved."""
    from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)
    from modelctl.history.when import iso, parse_since  # noqa: PLC0415 (sqlite3: imported only where used)

    start = parse_since(since, "--since") if since else None
    with History() as history:
        rows = history.usage(start, by=by.lower())
    total = {
        "turns": sum(r["turns"] for r in rows),
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "cached_tokens": sum(r["cached_tokens"] for r in rows),
        "cost": _known_sum(rows, "cost"),
        "priced_turns": sum(r["priced_turns"] for r in rows),
        "cache_saved": _known_sum(rows, "cache_saved"),
    }
    if as_json:
        output.print_json({"since": iso(start), "by": by.lower(), "rows": rows, "total": total})
        return
    if not rows:
        sys.stderr.write("modelctl: no turns in the history" + (f" since {since}" if since else "") + "\n")
        return
    key = by.lower()

    cached = bool(total["cached_tokens"])  # the cache's columns only where a provider reported one

    def line(label: str, r: Mapping[str, Any]) -> list[str]:
        cells = [label, str(r["turns"]), f"{r['prompt_tokens']:,}", f"{r['completion_tokens']:,}", cost_cell(r["cost"])]
        return cells + ([f"{r['cached_tokens']:,}", cost_cell(r["cache_saved"])] if cached else [])

    table = [line(str(r[key]), r) for r in rows] + [line("total", total)]
    columns = ["turns", "prompt tokens", "completion tokens", "cost"] + (["cached tokens", "cache saved"] if cached else [])
    output.table([key, *columns], table, "Usage", right=tuple(columns),
                 drop=("cached tokens", "prompt tokens", "completion tokens"))


def _known_sum(rows: list[dict[str, Any]], key: str) -> float | None:
    """The sum of the rows' `key` that are known; None when none is."""
    known = [r[key] for r in rows if r[key] is not None]
    return sum(known) if known else None


def register(app: typer.Typer) -> None:
    app.command("usage", rich_help_panel=panel.RECORDS, epilog=examples(
        ('Turns, tokens and cost per model', 'modelctl usage'),
        ('Per day over the last week', 'modelctl usage --by day --since 7d'),
        ('Since a date, as JSON', 'modelctl usage --since 2026-01-31 --json'),
    ))(usage)
