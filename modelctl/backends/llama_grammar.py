"""A JSON Schema as a llama.cpp grammar, refused before llama.cpp sees what it cannot take.

llama-cpp-python turns a schema into a GBNF grammar in Python; llama.cpp parses the grammar when
sampling starts, and a grammar its parser refuses becomes a NULL sampler that llama-cpp-python
uses all the same: the process dies (SIGSEGV) without a word. So:

- the schema's repetition bounds are checked first (`check_repetitions`): the converter nests
  one group per optional repetition (`maxLength` − `minLength`, `maxItems` − `minItems`, a
  pattern's `{m,n}`), and llama.cpp's parser gives up at about a thousand levels (`maxLength`
  1,000 works, 1,005 does not); it writes out every required repetition (`minLength` 10^9 is
  gigabytes of grammar). Past MAX_OPTIONAL or MAX_REQUIRED the schema is a usage error naming
  the keyword;
- the grammar is then given to llama.cpp's own parser (`llama_sampler_init_grammar`), which
  answers NULL for anything else it refuses; its complaint (written to the process's stderr,
  captured here) becomes the message.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

from modelctl.backends.llama_lib import import_llama_cpp
from modelctl.errors import UsageError

MAX_OPTIONAL = 1_000  # the most optional repetitions of one thing (max − min)
MAX_REQUIRED = 10_000  # the most required repetitions of one thing (min)
_BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"))
_QUANTIFIER = re.compile(r"(?<!\\)\{(\d+)(?:(,)(\d*))?\}")


def check_repetitions(schema: Any) -> None:
    """UsageError naming the first repetition bound of `schema` that llama.cpp's grammar cannot
    take (see the module docstring)."""
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        place, node = stack.pop()
        if isinstance(node, dict):
            _check_node(node, place or "the top level")
            stack.extend((f"{place}/{_escaped(k)}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{place}/{i}", v) for i, v in enumerate(node))


def _escaped(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_node(node: dict[str, Any], place: str) -> None:
    for low_key, high_key in _BOUNDS:
        low, high = _number(node.get(low_key)) or 0, _number(node.get(high_key))
        if low > MAX_REQUIRED:
            raise _refused(f"{low_key} {_shown(low)}", place, f"{low_key} of at most {MAX_REQUIRED:,}")
        if high is not None and high - low > MAX_OPTIONAL:
            raise _refused(f"{high_key} {_shown(high)}", place,
                           f"{high_key} at most {MAX_OPTIONAL:,} above {low_key} ({_shown(low)})")
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        for m in _QUANTIFIER.finditer(pattern):
            low = _count(m[1])
            high = (_count(m[3]) if m[3] else None) if m[2] else low
            if low > MAX_REQUIRED or (high is not None and high - low > MAX_OPTIONAL):
                quantifier = m[0] if len(m[0]) <= 40 else f"{m[0][:20]}…}} ({len(m[0]):,} characters)"
                raise _refused(f"the pattern's {quantifier}", place,
                               f"{{m,n}} with m at most {MAX_REQUIRED:,} and n − m at most {MAX_OPTIONAL:,}")


# Counts of more digits than this are past every limit here (and int() refuses past 4,300).
_DIGITS = 18


def _count(digits: str) -> int:
    """A quantifier's count as written in a pattern."""
    return int(digits) if len(digits) <= _DIGITS else 10**_DIGITS


def _shown(n: int) -> str:
    return f"{n:,}" if abs(n) < 10**_DIGITS else f"of more than {_DIGITS} digits"


def _refused(what: str, place: str, limit: str) -> UsageError:
    return UsageError(f"--schema: {what} (at {place}) is more than llama.cpp's grammar takes for a local "
                      f"model: it takes {limit}")


def json_grammar(schema: dict[str, Any], vocab: Any) -> Any:
    """The llama.cpp grammar that admits only JSON matching `schema`, checked by llama.cpp's own
    parser against `vocab` (the loaded model's). A schema the converter cannot translate (an
    unknown format) or whose grammar llama.cpp refuses is a UsageError."""

    from llama_cpp.llama_grammar import LlamaGrammar  # noqa: PLC0415 (llama_cpp: imported only where used)

    check_repetitions(schema)
    try:
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:  # the converter raises plain exceptions of several kinds
        raise UsageError(f"llama.cpp cannot turn the schema into a grammar: {exc}") from None
    return checked(grammar, vocab)


def checked(grammar: Any, vocab: Any) -> Any:
    """`grammar` (a LlamaGrammar) when llama.cpp's grammar parser takes it for `vocab`; else a
    UsageError with the parser's complaint."""

    llama_cpp = import_llama_cpp()
    with _native_stderr() as said:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode("utf-8"),
                                                       grammar._root.encode("utf-8"))
    if not sampler:
        why = next((line.strip() for line in said if "error" in line), "its grammar parser refused it")
        raise UsageError(f"llama.cpp cannot use the grammar of this schema: {why[:300]}")
    llama_cpp.llama_sampler_free(sampler)
    return grammar


@contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """What native code writes to file descriptor 2 while the block runs, as lines (the first
    64 KiB), instead of on the terminal."""
    said: list[str] = []
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.extend(sink.read(64 << 10).decode("utf-8", "replace").splitlines())
