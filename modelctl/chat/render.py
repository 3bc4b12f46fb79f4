"""Streamed answers in a terminal, rendered as Markdown without redrawing the whole answer.

The answer is cut into Markdown blocks as it arrives: a blank line outside a code fence ends a
block, a closing fence ends a code block, and a block that grows past `max_block_lines` is cut at
a line boundary (a fenced block is closed and reopened with the same info string). A finished
block is rendered once and printed above a rich `Live` region; the region shows only the block
still being written, refreshed at a fixed rate by rich's refresh thread, and only its last
screenful is laid out. So each token costs a string append and a scan of the new text, and each
refresh costs at most one bounded block: the total work grows linearly with the answer.

`PlainStream` is the same interface for pipes and dumb terminals: text deltas are written as-is
to a pipe. Whatever reaches a terminal first passes through `for_terminal`
(`modelctl.terminal_text`): an answer is data, and the escape sequences in it (a server's, or a
model's) must not drive the terminal.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import IO, TYPE_CHECKING

from modelctl.terminal_text import for_terminal

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.segment import Segment

    from modelctl.chat.session import Reply

def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class BlockSplitter:
    """Cuts streamed Markdown into blocks that render the same on their own as in context."""

    def __init__(self, max_block_lines: int = 40) -> None:
        self.max_block_lines = max_block_lines
        self._lines: list[str] = []  # complete lines of the open block
        self._partial = ""  # the incomplete last line
        self._fence: tuple[str, str] | None = None  # (marker, opening line) of an open fence

    def feed(self, text: str) -> list[str]:
        """Add text; return the blocks it completed (each without its trailing newline)."""
        done: list[str] = []
        if "\n" not in text:
            self._partial += text
            return done
        head, *middle, tail = (self._partial + text).split("\n")
        self._partial = tail
        for line in (head, *middle):
            self._line(line, done)
        return done

    def _line(self, line: str, done: list[str]) -> None:
        fence = _FENCE.match(line)
        if self._fence is None:
            if not line.strip():
                self._commit(done)
                return
            self._lines.append(line)
            if fence:
                self._fence = (fence.group(1), line)
            elif len(self._lines) >= self.max_block_lines:
                self._commit(done)
            return
        self._lines.append(line)
        marker = self._fence[0]
        if fence and fence.group(1)[0] == marker[0] and len(fence.group(1)) >= len(marker) and not fence.group(2).strip():
            self._fence = None
            self._commit(done)
        elif len(self._lines) >= self.max_block_lines:
            opening = self._fence[1]
            self._lines.append(marker)
            self._commit(done)
            self._lines.append(opening)

    def _commit(self, done: list[str]) -> None:
        if self._lines:
            done.append("\n".join(self._lines))
            self._lines = []

    @property
    def open_block(self) -> str:
        """The block still being written, with an open fence closed so it renders as code."""
        text = "\n".join([*self._lines, self._partial]) if self._lines else self._partial
        if self._fence is not None:
            text += "\n" + self._fence[0]
        return text

    def finish(self) -> str:
        """Everything not yet returned as a block."""
        lines = [*self._lines, self._partial] if self._partial else self._lines
        self._lines, self._partial, self._fence = [], "", None
        return "\n".join(lines).strip("\n")


class _Tail:
    """A renderable showing the last screenful of the open block (laid out once per change)."""

    def __init__(self, code_theme: str) -> None:
        self.text = ""
        self.code_theme = code_theme
        self._cache: tuple[str, int, list[list[Segment]]] | None = None  # text, width, lines
        self.lock = threading.Lock()

    def __rich_console__(self, console: "Console", options: "ConsoleOptions") -> "RenderResult":
        from rich.markdown import Markdown  # noqa: PLC0415 (rich: imported only where used)
        from rich.segment import Segment  # noqa: PLC0415 (rich: imported only where used)

        with self.lock:
            text = self.text
        if not text.strip():
            return
        if self._cache is None or self._cache[:2] != (text, options.max_width):
            lines = console.render_lines(Markdown(text, code_theme=self.code_theme), options, pad=False)
            height = max(1, (options.height or console.height) - 1)
            self._cache = (text, options.max_width, lines[-height:])
        lines = self._cache[2]
        for i, line in enumerate(lines):
            yield from line
            if i < len(lines) - 1:
                yield Segment.line()


class MarkdownStream:
    """Incremental Markdown rendering of one streamed answer.

    Use as a context manager: `feed()` each delta, `close()` (or leave the block) at the end,
    including after Ctrl-C: what arrived stays on screen.
    """

    def __init__(
        self,
        console: "Console",
        *,
        refresh_per_second: float = 12,
        max_block_lines: int = 40,
        code_theme: str = "monokai",
    ) -> None:
        self.console = console
        self.code_theme = code_theme
        self._splitter = BlockSplitter(max_block_lines)
        self._tail = _Tail(code_theme)
        self._refresh = refresh_per_second
        self._live: Live | None = None
        self._printed_any = False

    def __enter__(self) -> "MarkdownStream":
        from rich.live import Live  # noqa: PLC0415 (rich: imported only where used)

        self._live = Live(
            self._tail,
            console=self.console,
            auto_refresh=True,
            refresh_per_second=self._refresh,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def feed(self, text: str) -> None:
        blocks = self._splitter.feed(for_terminal(text))
        for block in blocks:
            self._print(block)
        open_block = self._splitter.open_block
        with self._tail.lock:
            self._tail.text = open_block

    def _print(self, block: str) -> None:
        from rich.markdown import Markdown  # noqa: PLC0415 (rich: imported only where used)

        if not block.strip():
            return
        if self._printed_any:
            self.console.print()
        self.console.print(Markdown(block, code_theme=self.code_theme))
        self._printed_any = True

    def close(self) -> None:
        if self._live is None:
            return
        with self._tail.lock:
            self._tail.text = ""
        self._live.stop()
        self._live = None
        rest = self._splitter.finish()
        if rest:
            self._print(rest)


class PlainStream:
    """The same interface, writing text deltas unchanged to a pipe (for NO_COLOR and dumb
    terminals, through `for_terminal`)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last = ""
        self._filter = for_terminal if is_terminal(self.stream) else None

    def __enter__(self) -> "PlainStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def feed(self, text: str) -> None:
        if text and self._filter is not None:
            text = self._filter(text)
        if text:
            self.stream.write(text)
            self.stream.flush()
            self._last = text

    def close(self) -> None:
        if self._last and not self._last.endswith("\n"):
            self.stream.write("\n")
            self.stream.flush()
        self._last = ""


# How a terminal shows a model's reasoning (`--think`): dimmed before the answer, or hidden with
# one line saying how long it was.
THINK_SHOW = "show"
THINK_HIDE = "hide"
THINK_CHOICES = (THINK_SHOW, THINK_HIDE)
DIM, UNDIM = "\x1b[2m", "\x1b[22m"


def thought_line(tokens: int | None, reasoning: str) -> str:
    """The line that stands for hidden reasoning: its tokens where known, else its words."""
    if tokens is not None:
        return f"[thought for {tokens} tokens]"
    return f"[thought for about {len(reasoning.split())} words]"


def length_note(reply: "Reply", max_tokens: int | None, *, more: str, room: str) -> str:
    """Which limit cut an answer short (finish_reason "length"): max_tokens, or the context
    window (the prompt and the answer fill it); and whether it stopped while still thinking,
    before any answer. `more` says how to allow more tokens, `room` how to make room."""
    used = reply.usage.completion_tokens if reply.usage else None
    if max_tokens is not None and (used is None or used >= max_tokens):
        what, fix = f"stopped at max_tokens ({max_tokens})", f"{more} allows more"
    else:
        what, fix = "stopped: the context window is full", room
    if reply.reasoning and not reply.text.strip():
        thought = thought_line(reply.reasoning_tokens, reply.reasoning)[len("[thought for "):-1]
        what += f" while thinking (after {thought} of reasoning), before any answer"
    return f"[{what}; {fix}]"


class ReasoningStream:
    """Shows reasoning deltas as they come (`--think show`): dimmed on a terminal, plain on a pipe,
    never on the stream the answer goes to when that one is piped (the caller picks `stream`)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._terminal = is_terminal(stream)
        self._last = ""

    def feed(self, text: str) -> None:
        if not text:
            return
        shown = for_terminal(text) if self._terminal else text
        self.stream.write(f"{DIM}{shown}{UNDIM}" if self._terminal else shown)
        self.stream.flush()
        self._last = text

    def close(self) -> None:
        """End the reasoning on its own line, a blank line apart from the answer."""
        if self._last:
            self.stream.write("\n" if self._last.endswith("\n") else "\n\n")
            self.stream.flush()
        self._last = ""


def preview(text: str | None, width: int = 60) -> str:
    """The start of a text on one line, at most `width` characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"
