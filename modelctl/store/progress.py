"""Download progress on stderr: a rich bar per file (size, speed, time left), or nothing.

Bars are drawn only when stderr is a terminal and `quiet` is false; otherwise every call is a
no-op, so scripts and logs see only the final lines. They are drawn on the rich `Console` the
caller gives (the CLI's stderr console), else on a new one writing to stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from modelctl.transport.server_text import one_line

if TYPE_CHECKING:
    from rich.console import Console


class _Task:
    def __init__(self, owner: "PullProgress", description: str) -> None:
        self._owner = owner
        self._description = description
        self._id: Any = None

    def start(self, total: int | None, completed: int) -> None:
        bar = self._owner._bar
        if bar is None:
            return
        if self._id is None:
            self._id = bar.add_task(self._description, total=total, completed=completed)
        else:
            bar.reset(self._id, total=total, completed=completed)

    def advance(self, n: int) -> None:
        if self._id is not None:
            self._owner._bar.advance(self._id, n)

    def set_total(self, total: int | None, completed: int | None = None) -> None:
        if self._owner._bar is None:
            return
        if self._id is None:
            self.start(total, completed or 0)
        else:
            self._owner._bar.update(self._id, total=total, completed=completed)


class PullProgress:
    """`with PullProgress(quiet) as p: task = p.task("file.gguf")` — tasks follow TransferProgress."""

    def __init__(self, quiet: bool = False, *, console: "Console | None" = None) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._console = console
        self._bar: Any = None

    def __enter__(self) -> "PullProgress":
        if self.enabled:
            from rich.progress import (  # noqa: PLC0415 (rich: imported only where used)
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            if self._console is None:
                from rich.console import Console  # noqa: PLC0415 (rich: imported only where used)

                self._console = Console(stderr=True)
            self._bar = Progress(
                TextColumn("{task.description}", style="bold"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def task(self, description: str) -> _Task:
        description = one_line(description, 400)  # a file name from a server, on one line, escaped
        if len(description) > 48:
            description = "…" + description[-47:]
        return _Task(self, description)

    def note(self, message: str) -> None:
        """A line above the bars (only while bars are shown)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
