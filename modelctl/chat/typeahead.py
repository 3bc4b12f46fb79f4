"""What is typed while an answer streams: kept off the screen, and handed on as input after it.

A terminal in its usual (canonical, echoing) mode prints every key typed during an answer into
the middle of it, and the line breaks typed move the cursor under the live region that redraws
the answer, which then draws its block again below: the scrollback fills with copies. So while an
answer streams the terminal neither echoes nor edits lines (`TypeAhead`); what was typed stays in
its input queue, and when the answer is done it is read out, edited as the terminal would have
(backspace, Ctrl-U, Ctrl-W), and given back as lines to process in order plus the start of one
not yet finished, for the next prompt to begin with.
"""

from __future__ import annotations

import os
import re
import select
import sys
from typing import Any

# Keys that move the cursor or recall history (ESC sequences) mean nothing in text typed ahead.
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?", re.DOTALL)
_ERASE = ("\x7f", "\x08")
_KILL_LINE = "\x15"  # Ctrl-U
_KILL_WORD = "\x17"  # Ctrl-W


class TypeAhead:
    """A context manager around one streamed answer: no echo and no line editing on the terminal
    `fd` while inside (signals such as Ctrl-C still work), the settings put back on the way out,
    also after Ctrl-C or an error. `lines` and `partial` then hold what was typed. On anything but
    a terminal it does nothing."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.lines: list[str] = []
        self.partial = ""
        self._saved: Any = None

    def __enter__(self) -> "TypeAhead":
        try:
            import termios  # noqa: PLC0415 (termios: optional)
        except ImportError:  # not a POSIX terminal
            return self
        if not os.isatty(self.fd):
            return self
        try:
            self._saved = termios.tcgetattr(self.fd)
            quiet = termios.tcgetattr(self.fd)
            quiet[3] &= ~(termios.ECHO | termios.ICANON)  # lflag
            quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.fd, termios.TCSANOW, quiet)  # TCSANOW: what was typed stays
        except termios.error:
            self._saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        import termios  # noqa: PLC0415 (POSIX only)

        try:
            typed = self._drain()
        finally:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None
        self.lines, self.partial = edit(typed)

    def _drain(self) -> str:
        """Everything waiting in the terminal's input queue, without blocking."""
        data = b""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                got = os.read(self.fd, 4096)
            except OSError:
                break
            if not got:
                break
            data += got
        return data.decode("utf-8", "surrogateescape")


def edit(typed: str) -> tuple[list[str], str]:
    """(the complete lines, the unfinished last one) of keys typed without line editing, edited as
    a terminal in canonical mode edits them."""
    lines: list[str] = []
    line: list[str] = []
    for ch in _ESCAPES.sub("", typed.replace("\r\n", "\n")):
        if ch in "\r\n":
            lines.append("".join(line))
            line = []
        elif ch in _ERASE:
            if line:
                line.pop()
        elif ch == _KILL_LINE:
            line = []
        elif ch == _KILL_WORD:
            while line and line[-1] == " ":
                line.pop()
            while line and line[-1] != " ":
                line.pop()
        elif ch == "\t" or ch >= " ":
            line.append(ch)
    return lines, "".join(line)
