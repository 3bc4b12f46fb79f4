"""Text that reaches a terminal (or a line-based reader of modelctl's output) is data: the
characters a terminal acts on, or that change what it shows, are written out as escapes. This
is the one table of those characters; every place that shows, escapes or refuses them uses it.

    CONTROLS            C0 (ESC starts a sequence that moves the cursor, sets the window title
                        or the clipboard), DEL and C1 (0x9B is an 8-bit CSI)
    REORDERING          line and paragraph separators, bidirectional overrides and isolates:
                        they reorder or break what a terminal shows
    SURROGATES          lone surrogates, which no encoding can write

    printable(text)     on one line: every control, tab and line break escaped too (a message,
                        a table cell, a note)
    safe(text)          printable, after redaction (`modelctl.redaction.redact`)
    for_terminal(text)  an answer: tabs and line breaks kept, carriage returns dropped
    escape_controls(t)  a server's words or a --debug line: tabs and line breaks kept
    inline_escaped(t)   controls and reordering characters escaped, all else as it was
    char_class(...)     a regular expression matching any character of the groups given
    json_text(data)     data as JSON text with those characters escaped (what modelctl prints)

Standard library only: importing this costs nothing.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, time
from typing import Any, Iterable

C0 = tuple(range(0x20))
DEL_C1 = (0x7F, *range(0x80, 0xA0))
CONTROLS = C0 + DEL_C1
REORDERING = (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
SURROGATES = tuple(range(0xD800, 0xE000))
_TAB, _LF, _CR = ord("\t"), ord("\n"), ord("\r")


def escape(code: int) -> str:
    """A character as an escape: `\\x1b`, `\\u202e`."""
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


CONTROL_ESCAPES = {c: escape(c) for c in CONTROLS}
# Within a line of text that keeps its layout (an answer, a server's message, a --debug line).
_LAYOUT_KEPT = {c: e for c, e in CONTROL_ESCAPES.items() if c not in (_TAB, _LF)}
# In an answer a carriage return alone would overwrite the line: dropped.
ANSWER_ESCAPES = _LAYOUT_KEPT | {_CR: ""}
MESSAGE_ESCAPES = _LAYOUT_KEPT | {_CR: "\\r"}
INLINE_ESCAPES = CONTROL_ESCAPES | {c: escape(c) for c in REORDERING}
# On one line, tabs and line breaks are written out too. A byte of a file name that was not
# UTF-8 (a surrogate escape) is shown as the byte, \xff; any other lone surrogate as U+FFFD.
LINE_ESCAPES = (INLINE_ESCAPES | {_TAB: "\\t", _LF: "\\n", _CR: "\\r"} | {c: "\ufffd" for c in SURROGATES}
                | {c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})


def printable(text: str) -> str:
    """`text` on one line with every control character written as an escape (ESC -> \\x1b)."""
    return text.translate(LINE_ESCAPES)


def safe(text: object) -> str:
    """Data made fit for a terminal line (a message, a note): redacted, on one line, no controls."""
    from modelctl.redaction import redact  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    return printable(redact(str(text)))


def for_terminal(text: str) -> str:
    """An answer's text as a terminal may show it: every control character but tab and newline
    written out (ESC -> \\x1b), carriage returns dropped."""
    return text.translate(ANSWER_ESCAPES)


def escape_controls(text: str) -> str:
    """Control characters (C0 but newline and tab, DEL, C1) as escapes: `\\x1b`, `\\r`, never the
    byte that drives a terminal."""
    return text.translate(MESSAGE_ESCAPES)


def inline_escaped(text: str) -> str:
    """`text` with controls (line breaks included) and reordering characters as escapes."""
    return text.translate(INLINE_ESCAPES)


def char_class(*groups: Iterable[int]) -> re.Pattern[str]:
    """A pattern matching one character of any of `groups` (code points), as ranges."""
    codes = sorted({c for group in groups for c in group})
    ranges: list[list[int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile("[" + "".join(_code(a) if a == b else f"{_code(a)}-{_code(b)}" for a, b in ranges) + "]")


def _code(c: int) -> str:
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


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
