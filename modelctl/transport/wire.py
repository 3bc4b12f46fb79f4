"""What crosses the wire from a service is checked here before anything uses it.

A server may answer with any JSON at all: text as a number, `choices` as a number, a finish
reason as a list, a nesting a thousand levels deep, NaN, integers of a thousand digits, lone
UTF-16 surrogates. Each provider module reads its answers through these few functions, so that
every such answer becomes one `BackendError` naming the service and what was wrong, and nothing
malformed reaches the chat, the history or `--json` output:

    loads(data)                     JSON, at most MAX_DEPTH levels deep and of at most
                                    `limits.max_values` values (else TooBig, a ValueError)
    Wire(provider)                  the checks, whose errors name the service:
      .obj(v, what) .items(v, what) an object / a list (None: empty)
      .text(v, what)                text or None; lone surrogates become U+FFFD
      .count(v, what)               a token count: a whole number 0 ≤ n < 2**53, or None
      .reason(v)                    a finish reason: a short name, or None
      .vectors(rows, count)         embeddings: `count` vectors of one length, finite numbers
    plain(v)                        informational JSON (model metadata) made safe to print
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from modelctl.errors import BackendError
from modelctl.redaction import redact
from modelctl.transport.response_limits import limits, value_bound

MAX_DEPTH = 64
MAX_COUNT = 2**53  # token counts beyond this are not counts
_SURROGATE = re.compile("[\ud800-\udfff]")
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
# Fewer values than any limit allows (1 MiB / BYTES_PER_VALUE): no need to read the limits.
_FEW_VALUES = 1 << 16
# A string once its escapes are gone: nothing can make this match backtrack far.
_QUOTED = re.compile(rb'"[^"]*"')
_QUOTED_TEXT = re.compile(r'"[^"]*"')


class TooBig(ValueError):
    """JSON that would be too costly to build: nested too deeply, or of too many values."""


def loads(data: str | bytes | bytearray, *, max_values: int | None = None) -> Any:
    """JSON from a server. A document nested deeper than MAX_DEPTH, or holding more than
    `max_values` values (default: `limits().max_values`), is a TooBig (a ValueError), as is one
    the parser itself cannot follow (RecursionError), so callers handle all malformed JSON
    alike. The values are counted before anything is built."""
    check_values(data, max_values)
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooBig(f"JSON nested too deeply (more than {MAX_DEPTH} levels)") from None
    if depth_exceeds(value, MAX_DEPTH):
        raise TooBig(f"JSON nested too deeply (more than {MAX_DEPTH} levels)")
    return value


def check_values(data: str | bytes | bytearray, limit: int | None = None) -> None:
    """TooBig when the JSON text `data` holds more than `limit` values. Counted on the text as
    it is, then (only when that says too many) without what its strings hold, where commas and
    brackets are text."""
    bound = value_bound(data)
    if bound < _FEW_VALUES and limit is None:
        return
    limit = limits().max_values if limit is None else limit
    if bound >= limit and value_bound(_without_strings(data)) >= limit:
        raise TooBig(f"JSON of more than {limit:,} values")


def _without_strings(data: str | bytes | bytearray) -> str | bytes:
    """`data` with every string emptied. Escapes go first (a backslash always escapes the next
    character), so that what is left between two quotes is one string."""
    if isinstance(data, str):
        return _QUOTED_TEXT.sub("", data.replace("\\\\", "").replace('\\"', ""))
    return _QUOTED.sub(b"", bytes(data).replace(b"\\\\", b"").replace(b'\\"', b""))


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests lists and objects more than `limit` levels deep (iteratively: no
    recursion for a hostile document to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def clean_text(text: str) -> str:
    """`text` with lone surrogates (valid JSON escapes, but not text) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def kind(value: Any) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class WireError(BackendError):
    """An answer of the wrong shape; `detail` says what was wrong, without naming the service."""

    def __init__(self, provider: str, detail: str) -> None:
        super().__init__(redact(f"{provider} sent an answer modelctl cannot use: {detail}"))
        self.detail = redact(detail)


class Wire:
    """The checks for one service's answers; errors say `{provider} sent …`."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def error(self, detail: str) -> WireError:
        return WireError(self.provider, detail)

    def wrong(self, what: str, value: Any, expected: str) -> WireError:
        return self.error(f"{what} is {kind(value)}, not {expected}")

    def obj(self, value: Any, what: str, *, optional: bool = True) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.wrong(what, value, "an object")
        return value

    def items(self, value: Any, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(what, value, "a list")
        return value

    def text(self, value: Any, what: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.wrong(what, value, "text")
        return clean_text(value)

    def count(self, value: Any, what: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(what, value, "a token count")
        if not 0 <= value < MAX_COUNT:
            raise self.error(f"{what} is out of range for a token count")
        return value

    def detail_count(self, value: Any, at_most: int = MAX_COUNT - 1) -> int | None:
        """A count that details another (the cached tokens among the prompt's): None, not an
        error, when it is no token count or more than `at_most`. A wrong detail is dropped and
        the answer kept."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= at_most:
            return None
        return value

    def number(self, value: Any, what: str) -> float | None:
        """A finite number (a score, a time in seconds)."""
        if value is None:
            return None
        number = _finite(value)
        if number is None:
            raise self.wrong(what, value, "a finite number")
        return number

    def reason(self, value: Any, what: str = "the finish reason") -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.wrong(what, value, "a name")
        if not _REASON.fullmatch(value):
            raise self.error(f"{what} is not a name ({clean_text(value)[:40]!r})")
        return value

    def vectors(self, rows: Any, count: int, what: str = "the embeddings") -> list[list[float]]:
        """`count` vectors of finite numbers, all of one length."""
        rows = self.items(rows, what)
        if len(rows) != count:
            raise self.error(f"{_count(len(rows), 'vector')} for {_count(count, 'text')}")
        vectors = [self._vector(row, f"vector {i + 1}") for i, row in enumerate(rows)]
        lengths = sorted({len(v) for v in vectors})
        if len(lengths) > 1:
            raise self.error(f"vectors of different lengths ({', '.join(map(str, lengths[:4]))})")
        return vectors

    def _vector(self, row: Any, what: str) -> list[float]:
        if not isinstance(row, list):
            raise self.wrong(what, row, "a list of numbers")
        if not row:
            raise self.error(f"{what} is empty")
        out = []
        for x in row:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise self.error(f"{what} holds {kind(x)}, not only numbers")
            f = _finite(x)
            if f is None:
                raise self.error(f"{what} holds a number that is not finite")
            out.append(f)
        return out


def _finite(value: Any) -> float | None:
    """`value` as a finite float; None for what is not a number, NaN, an infinity, or an integer
    too large for a float (JSON allows 1e400 as 1 followed by 400 zeros)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def plain(value: Any) -> Any:
    """Informational JSON (a model's metadata) made safe to print and to write as JSON: at most
    MAX_DEPTH levels (deeper parts dropped), finite numbers (else null), integers of at most 64
    bits (else text), text without lone surrogates."""
    return _plain(value, MAX_DEPTH)


def _plain(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else "(a number too large to show)"
    if depth <= 0:
        return None
    if isinstance(value, dict):
        return {clean_text(str(k)): _plain(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth - 1) for v in value]
    return clean_text(str(value))

