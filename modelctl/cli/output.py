"""Consoles, tables, JSON and diagnostics shared by every command.

Data goes to stdout, diagnostics to stderr. Rich styling only when the stream is a terminal and
NO_COLOR is unset; otherwise plain text, so scripts and pipes see exactly the data.

Text that comes from data (a registry, a server, a file name, a flag) passes through `safe`
before it is printed in a line or a table cell: credentials are redacted and control characters
written out as escapes, so that no terminal escape sequence from data reaches the terminal.
`print_json` never writes NaN or Infinity (JSON has neither): they become null.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from modelctl.chat.render import printable, redact_text, safe

if TYPE_CHECKING:
    from rich.console import Console


def _styled(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


@lru_cache(maxsize=None)
def _console(stderr: bool) -> "Console":
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    styled = _styled(stream)
    console = Console(
        stderr=stderr,
        no_color=not styled,
        highlight=False,
        force_terminal=None if styled else False,
        soft_wrap=not styled,
    )
    console.on_broken_pipe = _raise_broken_pipe  # handled once, in the CLI's error handling
    return console


def _raise_broken_pipe() -> None:
    raise BrokenPipeError


def stdout_closed() -> int:
    """The reader of stdout went away (`modelctl chat … | head -c 7`): point stdout at /dev/null
    so that nothing more, not even the final flush, fails, and return the exit status: 0, as
    for a reader that read everything it wanted."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test runner's stream)
        pass
    return 0


def out() -> "Console":
    """Console for data (stdout)."""
    return _console(False)


def err() -> "Console":
    """Console for progress and diagnostics (stderr)."""
    return _console(True)


def reset_consoles() -> None:
    """Forget cached consoles (streams change under test runners)."""
    _console.cache_clear()


def cell(text: Any) -> str:
    """`safe` for a table cell, where speed counts (10,000 rows): only URLs are redacted."""
    text = str(text)
    return printable(redact_text(text) if "://" in text else text)


def redact_data(data: Any) -> Any:
    """`data` (JSON-like) with the credentials of every URL in its strings hidden."""
    if isinstance(data, str):
        return redact_text(data) if "://" in data else data
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


def _finite(data: Any) -> Any:
    """`data` with NaN and the infinities replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


# DEL, C1 controls, line separators and bidirectional overrides are valid unescaped in JSON
# strings; escaped, no terminal or line-based tool reading the output acts on them. Lone
# surrogates (a file name that is not UTF-8) are escaped too: no encoding can write them.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text(data: Any, indent: int | None = None) -> str:
    """`data` as JSON text: NaN and Infinity (which JSON lacks) as null; the characters of
    _JSON_UNSAFE escaped."""
    try:
        text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), indent=indent, ensure_ascii=False, allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def print_json(data: Any) -> None:
    """Write `data` as JSON to stdout, unstyled, always parseable.

    Indented for a person at a terminal; one line when piped, because json's indenting encoder
    is pure Python and takes a third of a second on a 10,000-model listing.
    """
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json_text(data, indent) + "\n")


def print_records(data: Any) -> None:
    """`print_json` for records about models, files and services (the registry, the store): the
    credentials of the URLs in them are hidden. (A prompt or an answer is printed as it is.)"""
    print_json(redact_data(data))


# The longest message printed whole: a server's 5 MB error page is not a message.
MAX_MESSAGE_CHARS = 2000


def _message(text: str) -> str:
    text = safe(text)
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[:MAX_MESSAGE_CHARS]}… ({len(text) - MAX_MESSAGE_CHARS:,} more characters)"


def warn(message: str) -> None:
    """One warning line on stderr."""
    sys.stderr.write(f"modelctl: warning: {_message(message)}\n")


def error_line(message: str) -> None:
    """The one line an error ends a command with."""
    sys.stderr.write(f"modelctl: error: {_message(message)}\n")
    sys.stderr.flush()


def table(columns: list[str], rows: list[list[str]], title: str, *, right: tuple[str, ...] = (),
          no_wrap: tuple[str, ...] = ()) -> None:
    """Rows of data on stdout: a rich table at a terminal, plain aligned columns otherwise.
    Every cell passes through `cell`."""
    from modelctl.cli.format import plain_table

    rows = [[cell(c) for c in row] for row in rows]
    if not sys.stdout.isatty():
        sys.stdout.write(plain_table(columns, rows))
        return
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        grid.add_column(col, overflow="fold", no_wrap=col in no_wrap, justify="right" if col in right else "left")
    for row in rows:
        grid.add_row(*(Text(c) for c in row))  # Text: no markup read from data
    out().print(grid)
