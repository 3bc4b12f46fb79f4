"""`modelctl usage`: tokens and cost totals from the chat history."""

from __future__ import annotations

import shutil
import sys
from datetime import date
from typing import Annotated, Any, Mapping, Optional

import typer

from modelctl.chat.terminal import out, styled
from modelctl.cli import bars, output
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli.format import cost_cell
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.terminal_text import printable


def usage(
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE|AGE", help="Count turns from DATE (2026-01-31) or from AGE ago (7d, 12h)."),
    by: str = typer.Option("model", "--by", metavar="model|day", help="One row per model, or per (local) day."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the rows and the total as JSON.")] = False,
    chart: bool = typer.Option(False, "--chart", help="Draw bars (cost, or tokens where no cost is known) instead of the table, as wide as the terminal."),
) -> None:
    """Turns, tokens and cost from the history, per model or per day. Cost counts the turns whose
    deployment has prices in the registry (`priced_turns`); where providers reported prompt
    tokens read from their cache, the cached tokens and what the cache saved."""
    from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)
    from modelctl.history.totals import total as summed  # noqa: PLC0415 (sqlite3: imported only where used)
    from modelctl.history.when import iso, parse_since  # noqa: PLC0415 (sqlite3: imported only where used)

    if as_json and chart:
        raise UsageError("--json and --chart both say how to show the usage: give one")
    start = parse_since(since, "--since") if since else None
    key = by.lower()
    with History() as history:
        rows = history.usage(start, by=key)
    total = summed(rows)
    if as_json:
        output.print_json({"since": iso(start), "by": key, "rows": rows, "total": total})
        return
    if not rows:
        sys.stderr.write("modelctl: no turns in the history" + (f" since {since}" if since else "") + "\n")
        return
    if chart:
        _chart(rows, key, start, total)
        return

    cached = bool(total["cached_tokens"])  # the cache's columns only where a provider reported one

    def line(label: str, r: Mapping[str, Any]) -> list[str]:
        cells = [label, str(r["turns"]), f"{r['prompt_tokens']:,}", f"{r['completion_tokens']:,}", cost_cell(r["cost"])]
        return cells + ([f"{r['cached_tokens']:,}", cost_cell(r["cache_saved"])] if cached else [])

    table = [line(str(r[key]), r) for r in rows] + [line("total", total)]
    columns = ["turns", "prompt tokens", "completion tokens", "cost"] + (["cached tokens", "cache saved"] if cached else [])
    output.table([key, *columns], table, "Usage", right=tuple(columns),
                 drop=("cached tokens", "prompt tokens", "completion tokens"))


def _chart(rows: list[dict[str, Any]], key: str, start: float | None, total: Mapping[str, Any]) -> None:
    """The rows as bars: of cost where some turn's cost is known, else of tokens; per day, every
    day from the first with turns (or `--since`) to today; per model, the largest first.
    Unicode blocks in colour at a terminal, `#` without colour under NO_COLOR or in a pipe."""
    from modelctl.history.totals import every_day  # noqa: PLC0415 (sqlite3: imported only where used)

    by_cost = bool(total["cost"])

    def amount(r: Mapping[str, Any]) -> float:
        return float(r["cost"] or 0.0) if by_cost else float(r["prompt_tokens"] + r["completion_tokens"])

    def shown(r: Mapping[str, Any]) -> str:
        return f"${r['cost'] or 0:.4f}" if by_cost else f"{r['prompt_tokens'] + r['completion_tokens']:,} tokens"

    if key == "day":
        days = [date.fromisoformat(r["day"]) for r in rows]
        first = max(days[0], date.fromtimestamp(start)) if start is not None else days[0]
        rows = every_day(rows, first, max(date.today(), days[-1]))
    else:
        rows = sorted(rows, key=amount, reverse=True)
    at_terminal = styled(sys.stdout)
    lines = bars.chart([(printable(str(r[key])), amount(r), shown(r)) for r in rows],
                       shutil.get_terminal_size().columns, unicode=at_terminal)
    title = f"{'Cost' if by_cost else 'Tokens'} per {key} ({total['turns']:,} turns, {shown(total)} in all)"
    if not at_terminal:
        sys.stdout.write("\n".join([title, *(f"{ln.label} {ln.bar} {ln.value}" for ln in lines)]) + "\n")
        return
    from rich.text import Text  # noqa: PLC0415 (rich: imported only where used)

    console = out()
    console.print(Text(title, style="bold"), no_wrap=True, overflow="ellipsis")
    for ln in lines:
        console.print(Text.assemble(ln.label, " ", (ln.bar, "cyan"), " ", ln.value), no_wrap=True, overflow="crop")


def register(app: typer.Typer) -> None:
    app.command("usage", rich_help_panel=panel.RECORDS, epilog=examples(
        ('Turns, tokens and cost per model', 'modelctl usage'),
        ('Per day over the last week', 'modelctl usage --by day --since 7d'),
        ('Since a date, as JSON', 'modelctl usage --since 2026-01-31 --json'),
        ('Cost per day as bars', 'modelctl usage --by day --since 30d --chart'),
    ))(usage)
