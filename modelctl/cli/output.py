"""Consoles, tables, JSON and diagnostics shared by every command.

Data goes to stdout, diagnostics to stderr. Rich styling only when the stream is a terminal and
NO_COLOR is unset or empty (`styled`); otherwise plain text, so scripts and pipes see exactly the data.

Text that comes from data (a registry, a server, a file name, a flag) passes through `safe`
before it is printed in a line or a table cell: credentials are redacted and control characters
written out as escapes, so that no terminal escape sequence from data reaches the terminal.
`print_json` never writes NaN or Infinity (JSON has neither): they become null.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any, Callable, TextIO, TypeVar

import typer

# The consoles and the JSON writer are the chat's too; the commands use them from here.
from modelctl.chat.terminal import out, styled, write_json
from modelctl.terminal_text import json_text, printable, safe

T = TypeVar("T")


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


def tolerate_unencodable() -> None:
    """Text the output streams' encoding cannot write (`PYTHONIOENCODING=ascii`, a C locale, a
    lone surrogate in data) is written as backslash escapes (`\\xe9`) instead of ending the
    command: once per process, before anything is written."""
    for stream in (sys.stdout, sys.stderr):
        # surrogateescape (a C locale) still fails on a surrogate that no decoding made
        if getattr(stream, "errors", None) in ("strict", "surrogateescape") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change now: left as it is
                pass


class StdoutError(OSError):
    """stdout itself refused a write (a full disk, /dev/full, an I/O error); a reader that went
    away is BrokenPipeError instead."""


class _GuardedStdout:
    """sys.stdout, whose write failures come out as StdoutError: the CLI tells them from the
    failures of files it writes by their class, wherever the write was."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        # Unbuffered (python -u, PYTHONUNBUFFERED): text goes straight to the file, and a write
        # the disk takes only part of returns a short count that the text layer drops.
        self._unbuffered = isinstance(getattr(stream, "buffer", None), io.RawIOBase) and os.linesep == "\n"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _guarded(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror or str(exc)) from None

    def write(self, text: str) -> int:
        return self._guarded(self._write_all if self._unbuffered else self._stream.write, text)

    def _write_all(self, text: str) -> int:
        """`text` written to the unbuffered file to its last byte: a disk that fills midway
        takes part of it, and the next write says why it took no more."""
        data = memoryview(text.encode(self._stream.encoding, self._stream.errors or "strict"))
        while data:
            written = self._stream.buffer.write(data)
            if not written:
                raise OSError(errno.EIO, "the stream took nothing")
            data = data[written:]
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._guarded(self._stream.flush)


def guard_stdout() -> None:
    """Make stdout's own failures StdoutError (see `_GuardedStdout`), once per process."""
    if not isinstance(sys.stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(sys.stdout)


def stdout_failed(exc: OSError) -> int:
    """stdout cannot be written: one line on stderr, stdout pointed at /dev/null (what it held
    back goes nowhere, and Python's own flush at exit cannot fail again), exit status 1."""
    error_line(f"cannot write to stdout: {exc.strerror or exc}")
    stdout_closed()
    return 1


def cell(text: Any, hide: "Callable[[str], str] | None" = None) -> str:
    """`safe` for a table cell; `hide` (a `modelctl.redaction.redactor()`) when there are many."""
    if hide is None:
        from modelctl.redaction import redactor  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

        hide = redactor()
    return printable(hide(str(text)))


def redact_data(data: Any) -> Any:
    """`data` (JSON-like) with every credential in it hidden (modelctl.redaction.redact_data)."""
    from modelctl.redaction import redact_data as redacted  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    return redacted(data)


def print_json(data: Any) -> None:
    """Write `data` as JSON to stdout, unstyled, always parseable.

    Indented for a person at a terminal; one line when piped, because json's indenting encoder
    is pure Python and takes a third of a second on a 10,000-model listing.
    """
    write_json(sys.stdout, data)


def print_records(data: Any) -> None:
    """`print_json` for records about models, files and services (the registry, the store): the
    credentials of the URLs in them are hidden. (A prompt or an answer is printed as it is.)
    Records are walked only when their JSON text may hold a credential: most hold none, and a
    10,000-model listing would pay for the walk on every `list --json`."""
    _write_records(lambda: data)


def print_record_texts(texts: list[str], records: Callable[[], list[Any]]) -> None:
    """`print_records` of a list whose records are already JSON text (each as `json_text` writes
    it), joined as one JSON array when piped: a long listing is not encoded again. `records`
    gives the records themselves, asked for only when indenting for a terminal or redacting."""
    _write_records(records, texts)


def _write_records(records: Callable[[], Any], texts: list[str] | None = None) -> None:
    indent = 2 if sys.stdout.isatty() else None
    # json.dumps writes a list's items as it writes each alone, joined by ", ".
    text = f"[{', '.join(texts)}]" if texts is not None and indent is None else json_text(records(), indent)
    from modelctl.redaction import may_hold_secrets  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    if may_hold_secrets(text):
        text = json_text(redact_data(records()), indent)
    sys.stdout.write(text)  # not `text + "\n"`: a long listing is not copied once more
    sys.stdout.write("\n")


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


def confirm_removal(question: str) -> None:
    """Ask `question` on stderr (default no); anything but yes, or the end of input, ends the
    command with status 1 and "nothing removed"."""
    confirm(question, "nothing removed")


def confirm(question: str, otherwise: str) -> None:
    """Ask `question` on stderr (default no); anything but yes, or the end of input, ends the
    command with status 1 and `otherwise` ("nothing removed"). Not click's confirm: it writes
    part of its prompt to stdout, where only data goes."""

    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline(100) if sys.stdin is not None else ""
    if not sys.stdin or not sys.stdin.isatty():  # a piped answer is not echoed: end the line
        sys.stderr.write("\n")
    if answer.strip().lower() not in ("y", "yes"):
        sys.stderr.write(f"modelctl: {otherwise}\n")
        raise typer.Exit(1)


def error_line(message: str) -> None:
    """The one line an error ends a command with."""
    sys.stderr.write(f"modelctl: error: {_message(message)}\n")
    sys.stderr.flush()


# The narrowest a column of text is cut to (an ellipsis ends it) or wrapped at before columns are
# left out.
SHRINK_FLOOR, WRAP_FLOOR = 12, 30


def table(columns: list[str], rows: list[list[str]], title: str, *, right: tuple[str, ...] = (),
          no_wrap: tuple[str, ...] = (), wrap: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
    """Rows of data on stdout: plain aligned columns, whole, when stdout is not a terminal or
    NO_COLOR is set; otherwise a rich table as wide as the terminal. There, the columns of
    `no_wrap` (names to copy) and `right` (numbers) are shown whole, those of `wrap` wrap, the
    others are cut with an ellipsis; on a narrow terminal the columns of `drop` (least useful
    first) are left out, and the table says which. Every cell passes through `cell`."""
    from modelctl.cli.format import fit_widths, plain_table  # noqa: PLC0415 (modelctl.cli.format: not on the chat --api-base path)
    from modelctl.redaction import redactor, unchanged_by_redaction  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    rows = [[str(c) for c in row] for row in rows]
    # 10,000 rows: one redaction pass over all the cells, then one per cell only if one holds a secret
    if unchanged_by_redaction(c for row in rows for c in row):
        rows = [[printable(c) for c in row] for row in rows]
    else:
        hide = redactor()
        rows = [[cell(c, hide) for c in row] for row in rows]
    if not styled(sys.stdout):
        sys.stdout.write(plain_table(columns, rows))
        return
    from rich import box  # noqa: PLC0415 (rich: imported only where used)
    from rich.cells import cell_len  # noqa: PLC0415 (rich: imported only where used)
    from rich.table import Table  # noqa: PLC0415 (rich: imported only where used)
    from rich.text import Text  # noqa: PLC0415 (rich: imported only where used)

    natural = [max([cell_len(col), *(cell_len(row[i]) for row in rows)]) for i, col in enumerate(columns)]
    whole = set(no_wrap) | set(right)
    floors = [n if col in whole else min(n, max(len(col), WRAP_FLOOR if col in wrap else SHRINK_FLOOR))
              for col, n in zip(columns, natural)]
    console = out()
    kept = fit_widths(natural, floors, console.width, gap=_GAP, drop=[columns.index(c) for c in drop if c in columns])
    shown = {i for i, _ in kept}
    left_out = [col for i, col in enumerate(columns) if i not in shown]
    grid = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False, padding=(0, 1, 0, 0), caption_justify="left",
                 caption=f"hidden at this width: {', '.join(left_out)} (a pipe or --json shows all)" if left_out else None)
    for i, width in kept:
        col = columns[i]
        grid.add_column(col, width=width, no_wrap=col not in wrap, overflow="fold" if col in wrap else "ellipsis",
                        justify="right" if col in right else "left")
    for row in rows:
        grid.add_row(*(Text(row[i]) for i, _ in kept))  # Text: no markup read from data
    console.print(grid)


# Cells between two columns of a table at a terminal: a blank divider and one of padding.
_GAP = 2
