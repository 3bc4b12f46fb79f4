"""YAML text for the manifests modelctl writes (`modelctl deploy --emit`): block style; a string
bare where it is a plain name or path, a literal block where it has several lines, else
double-quoted as JSON writes it (a JSON string is a valid YAML double-quoted scalar, so "no",
"1e3", "8000" or "null" stay strings). Only what
manifests hold: mappings, lists, strings, integers, floats, booleans and None."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# A string written bare: letters, digits and `_.-/` starting with a letter or `/`, and none of
# the words some YAML readers take for booleans or null.
_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_.\-/]*")
_SPECIAL = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _text(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _SPECIAL:
        return text
    # JSON escapes the C0 controls; YAML readers fold or refuse the other unprintable characters
    # (U+2028, U+0085, DEL, …), so those are escaped too.
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in quoted)


def _literal_ok(text: str) -> bool:
    """Whether `text` reads back exactly from a literal block (`|`): several printable lines without
    trailing blanks, the first that is not empty not starting with a blank (it sets the block's
    indentation), one final newline at most."""
    lines = text.rstrip("\n").split("\n")
    first = next((line for line in lines if line), "")
    return (len(lines) > 1 and not text.endswith("\n\n") and first != "" and not first[0].isspace()
            and all(line == line.rstrip() and line.isprintable() for line in lines))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return json.dumps(value)
    if isinstance(value, str):
        return _text(value)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _lines(value: Any, indent: int) -> Iterable[str]:
    """`value` as lines at `indent` spaces: a mapping's or a list's items, or one scalar."""
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            yield pad + "{}"
        for k, v in value.items():
            yield from _entry(pad + _text(str(k)) + ":", v, indent)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            yield pad + "[]"
        for item in value:
            yield from _item(pad, item, indent)
    else:
        yield pad + _scalar(value)


def _entry(head: str, value: Any, indent: int) -> Iterable[str]:
    """`key: value`, the value on the same line when it is a scalar or empty, else below."""
    if isinstance(value, str) and _literal_ok(value):
        yield head + (" |" if value.endswith("\n") else " |-")
        yield from (" " * (indent + 2) + line if line else "" for line in value.rstrip("\n").split("\n"))
    elif isinstance(value, (Mapping, list, tuple)) and value:
        nested = indent if isinstance(value, (list, tuple)) else indent + 2  # lists sit under their key
        yield head
        yield from _lines(value, nested)
    else:
        yield head + " " + next(iter(_lines(value, 0)))


def _item(pad: str, item: Any, indent: int) -> Iterable[str]:
    """A list item: `- scalar`, or a mapping whose first line shares the dash."""
    if isinstance(item, Mapping) and item:
        first, *rest = _lines(item, indent + 2)
        yield pad + "- " + first[indent + 2:]
        yield from rest
    elif isinstance(item, (list, tuple)) and item:
        yield pad + "-"
        yield from _lines(item, indent + 2)
    elif isinstance(item, str) and _literal_ok(item):
        yield from _entry(pad + "-", item, indent)
    else:
        yield pad + "- " + next(iter(_lines(item, 0)))


def dump(value: Any) -> str:
    """One YAML document."""
    return "\n".join(_lines(value, 0)) + "\n"


def dump_all(documents: Sequence[Any]) -> str:
    """Several documents, each after a `---` line (as `kubectl apply -f` reads a file of objects)."""
    return "".join("---\n" + dump(doc) for doc in documents)
