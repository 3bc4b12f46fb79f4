"""The terminal side of a chat: rich consoles for stdout and stderr, and JSON as written out.

Rich styling only when the stream is a terminal and NO_COLOR is unset or empty; otherwise plain text,
so scripts and pipes see exactly the data. The CLI and the REPL share these consoles.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any

from modelctl.terminal_text import json_text

if TYPE_CHECKING:
    from rich.console import Console


def styled(stream: IO[str]) -> bool:
    """Whether `stream` gets rich output (colours, box tables, Markdown): it is a terminal and
    NO_COLOR is unset or empty (no-color.org: any non-empty value asks for plain text)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


@lru_cache(maxsize=None)
def _console(stderr: bool) -> "Console":
    from rich.console import Console  # noqa: PLC0415 (rich: imported only where used)

    stream = sys.stderr if stderr else sys.stdout
    is_styled = styled(stream)
    console = Console(
        stderr=stderr,
        no_color=not is_styled,
        highlight=False,
        force_terminal=None if is_styled else False,
        soft_wrap=not is_styled,
    )
    # A broken pipe is handled once, in the CLI's error handling (rich's hook is an attribute).
    console.on_broken_pipe = _raise_broken_pipe  # type: ignore[method-assign]
    return console


def _raise_broken_pipe() -> None:
    raise BrokenPipeError


def out() -> "Console":
    """Console for data (stdout)."""
    return _console(False)


def err() -> "Console":
    """Console for progress and diagnostics (stderr)."""
    return _console(True)


def reset_consoles() -> None:
    """Forget cached consoles (streams change under test runners)."""
    _console.cache_clear()


def write_json(stream: IO[str], data: Any) -> None:
    """Write `data` as JSON to `stream`, unstyled, always parseable.

    Indented for a person at a terminal; one line when piped, because json's indenting encoder
    is pure Python and takes a third of a second on a 10,000-model listing.
    """
    indent = 2 if stream.isatty() else None
    stream.write(json_text(data, indent) + "\n")
