"""The per-key budget check of `modelctl serve` on a large history, side by side with the same
query without the index of migration 6.

    .venv/bin/python bench/bench_budgets.py [--turns 100000]

A history of N turns over the last 60 days (a fifth of them the CLI's own, the rest spread over
four key labels, and one more run where every turn is one label's), then, each the median of 200:
1. `History.spent` for one label and the current UTC day / month, on an open connection;
2. `Budgets.check` as the server calls it (a fresh connection, the month's and the day's sums);
3. the month's sum without the index (a full scan), for the ratio.
Target: a check in about a millisecond. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelctl.history import History, Turn  # noqa: E402
from modelctl.serve.auth import ApiKey  # noqa: E402
from modelctl.serve.budgets import Budgets, day_of, month_of  # noqa: E402

DAY_S = 86400


def build(path: Path, turns: int, labels: list[str | None]) -> None:
    now = time.time()
    with History(path) as history:
        history.add_turn(Turn(messages=[{"role": "user", "content": "q"}], answer="a"))
        rows = [(1, now - random.random() * 60 * DAY_S, "gemma", "q", "a", "[]", random.random() / 100, random.choice(labels))
                for _ in range(turns)]
        conn = history.conn
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO turns (conversation_id, created, model, prompt, answer, messages, cost, key_label)"
                         " VALUES (?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")


def median_ms(run, times: int = 200) -> float:
    run()
    taken = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        taken.append(time.perf_counter() - start)
    return statistics.median(taken) * 1000


def measure(path: Path, title: str) -> None:
    now = time.time()
    day, month = day_of(now), month_of(now)
    budgets = Budgets(path)
    key = ApiKey("alice", budget_day=1e9, budget_month=1e9)
    with History(path) as history:
        in_month = history.conn.execute("SELECT count(*) FROM turns WHERE key_label = 'alice' AND created >= ?",
                                        (month.start,)).fetchone()[0]
        day_ms = median_ms(lambda: history.spent("alice", day.start))
        month_ms = median_ms(lambda: history.spent("alice", month.start))
        check_ms = median_ms(lambda: budgets.check(key, 0.01))
        scan = "SELECT coalesce(sum(cost), 0.0) FROM turns NOT INDEXED WHERE key_label = ? AND created >= ?"
        scan_ms = median_ms(lambda: history.conn.execute(scan, ("alice", month.start)).fetchone(), times=20)
    print(f"{title}: {in_month:,} of alice's turns this month")
    print(f"  History.spent, day            {day_ms:8.3f} ms")
    print(f"  History.spent, month          {month_ms:8.3f} ms")
    print(f"  Budgets.check (day + month)   {check_ms:8.3f} ms   (fresh connection)")
    print(f"  month without the index       {scan_ms:8.3f} ms   ratio {scan_ms / month_ms:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spread = Path(tmp) / "spread.sqlite3"
        build(spread, args.turns, ["alice", "bob", "carol", "dave", None])
        measure(spread, f"{args.turns:,} turns, four labels and the CLI")
        one = Path(tmp) / "one.sqlite3"
        build(one, args.turns, ["alice"])
        measure(one, f"{args.turns:,} turns, all alice's")


if __name__ == "__main__":
    main()
