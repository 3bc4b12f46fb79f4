"""The terminal side of a chat: rich consoles for stdout and stderr, and JSON as written out.

Rich styling only when the stream is a terminal and NO_COLOR is unset or empty; otherwise plain text,
so scripts and pipes see exactly the data. The CLI and the REPL share these consoles.
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import date, time
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any

from modelctl.terminal_text import DEL_C1, REORDERING, SURROGATES, char_class

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
_JSON_UNSAFE = char_class(DEL_C1, REORDERING, SURROGATES)


def _iso(value: Any) -> str:
    """A TOML date, time or date-time (config.toml may hold them; JSON has none) as ISO 8601."""

    if isinstance(value, (date, time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(data: Any, indent: int | None = None) -> str:
    """`data` as JSON text: NaN and Infinity (which JSON lacks) as null; dates and times as ISO
    8601 strings; the characters of _JSON_UNSAFE escaped."""
    try:
        text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False, default=_iso)
    except ValueError:
        text = json.dumps(_finite(data), indent=indent, ensure_ascii=False, allow_nan=False, default=_iso)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def write_json(stream: IO[str], data: Any) -> None:
    """Write `data` as JSON to `stream`, unstyled, always parseable.

    Indented for a person at a terminal; one line when piped, because json's indenting encoder
    is pure Python and takes a third of a second on a 10,000-model listing.
    """
    indent = 2 if stream.isatty() else None
    stream.write(json_text(data, indent) + "\n")
