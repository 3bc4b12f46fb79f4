"""Consoles and JSON output shared by every command.

Data goes to stdout, diagnostics to stderr. Rich styling only when the stream is a terminal and
NO_COLOR is unset; otherwise plain text, so scripts and pipes see exactly the data.
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _styled(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


@lru_cache(maxsize=None)
def _console(stderr: bool) -> "Console":
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    styled = _styled(stream)
    return Console(
        stderr=stderr,
        no_color=not styled,
        highlight=False,
        force_terminal=None if styled else False,
        soft_wrap=not styled,
    )


def out() -> "Console":
    """Console for data (stdout)."""
    return _console(False)


def err() -> "Console":
    """Console for progress and diagnostics (stderr)."""
    return _console(True)


def reset_consoles() -> None:
    """Forget cached consoles (streams change under test runners)."""
    _console.cache_clear()


def print_json(data: Any) -> None:
    """Write `data` as JSON to stdout, unstyled, always parseable.

    Indented for a person at a terminal; one line when piped, because json's indenting encoder
    is pure Python and takes a third of a second on a 10,000-model listing.
    """
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def warn(message: str) -> None:
    """One warning line on stderr."""
    sys.stderr.write(f"modelctl: warning: {message}\n")
