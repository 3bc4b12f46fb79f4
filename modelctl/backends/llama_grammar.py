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
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from modelctl.backends.llama_lib import import_llama_cpp
from modelctl.errors import UsageError

if TYPE_CHECKING:
    from modelctl.backends.base import ToolSpec
    from modelctl.templates.tool_calls import ToolFormat

MAX_OPTIONAL = 1_000  # the most optional repetitions of one thing (max − min)
MAX_REQUIRED = 10_000  # the most required repetitions of one thing (min)
_BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"))
_QUANTIFIER = re.compile(r"(?<!\\)\{(\d+)(?:(,)(\d*))?\}")


def check_repetitions(schema: Any, what: str = "--schema") -> None:
    """UsageError naming the first repetition bound of `schema` (`what`: whose schema it is) that
    llama.cpp's grammar cannot take (see the module docstring)."""
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        place, node = stack.pop()
        if isinstance(node, dict):
            _check_node(node, place or "the top level", what)
            stack.extend((f"{place}/{_escaped(k)}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{place}/{i}", v) for i, v in enumerate(node))


def _escaped(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_node(node: dict[str, Any], place: str, what: str) -> None:
    for low_key, high_key in _BOUNDS:
        low, high = _number(node.get(low_key)) or 0, _number(node.get(high_key))
        if low > MAX_REQUIRED:
            raise _refused(what, f"{low_key} {_shown(low)}", place, f"{low_key} of at most {MAX_REQUIRED:,}")
        if high is not None and high - low > MAX_OPTIONAL:
            raise _refused(what, f"{high_key} {_shown(high)}", place,
                           f"{high_key} at most {MAX_OPTIONAL:,} above {low_key} ({_shown(low)})")
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        for m in _QUANTIFIER.finditer(pattern):
            low = _count(m[1])
            high = (_count(m[3]) if m[3] else None) if m[2] else low
            if low > MAX_REQUIRED or (high is not None and high - low > MAX_OPTIONAL):
                quantifier = m[0] if len(m[0]) <= 40 else f"{m[0][:20]}…}} ({len(m[0]):,} characters)"
                raise _refused(what, f"the pattern's {quantifier}", place,
                               f"{{m,n}} with m at most {MAX_REQUIRED:,} and n − m at most {MAX_OPTIONAL:,}")


# Counts of more digits than this are past every limit here (and int() refuses past 4,300).
_DIGITS = 18


def _count(digits: str) -> int:
    """A quantifier's count as written in a pattern."""
    return int(digits) if len(digits) <= _DIGITS else 10**_DIGITS


def _shown(n: int) -> str:
    return f"{n:,}" if abs(n) < 10**_DIGITS else f"of more than {_DIGITS} digits"


def _refused(whose: str, what: str, place: str, limit: str) -> UsageError:
    return UsageError(f"{whose}: {what} (at {place}) is more than llama.cpp's grammar takes for a local "
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


def tool_call_grammar(fmt: ToolFormat, tools: Sequence[ToolSpec], vocab: Any, tokens: Mapping[str, int],
                      answer: Mapping[str, Any] | None = None) -> Any:
    """The llama.cpp grammar that admits one call of one of `tools`, written as `fmt` writes it,
    its arguments matching the tool's schema (`answer`: or else JSON matching that schema, an
    answer with no call). A marker of the format that is one control token of the model, as
    `tokens` maps them, is that token; the rest is text. Checked as `json_grammar` checks."""

    from llama_cpp.llama_grammar import LlamaGrammar, SchemaConverter  # noqa: PLC0415 (llama_cpp: imported only where used)

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    choices = []
    for i, tool in enumerate(tools):
        arguments = _schema_rule(converter, tool.parameters, f"arguments{i}", f"the parameters of tool {tool.name!r}")
        parts = []
        for kind, text in fmt.shape_parts():
            if kind == "call":
                parts.append(_object_rule(fmt.call_object(tool.name, _ARGUMENTS), arguments))
            elif kind == "arguments":
                parts.append(arguments)
            elif kind == "marker" and text in tokens:
                parts.append(f"<[{tokens[text]}]>")
            else:
                parts.append(_literal(tool.name if kind == "name" else text))
        choices.append(" ".join(parts))
    if answer is not None:
        choices.append(_schema_rule(converter, answer, "answer", "--schema"))
    rules = _canonical_spacing(converter.format_grammar())
    grammar = LlamaGrammar.from_string(f"root ::= {' | '.join(f'( {c} )' for c in choices)}\n{rules}\n", verbose=False)
    return checked(grammar, vocab)


def _canonical_spacing(rules: str) -> str:
    """The converter's rules with JSON spaced as `json.dumps` (and a template's `tojson`) writes
    it: ", " and ": ", no other white space. A call written so is the text a template writes for
    it in the next prompt, where the tokens generated for it can stand (the KV cache reused)."""
    rules = rules.replace('"," space', '", "').replace('":" space', '": "')
    return re.sub(r"^space ::= .*$", 'space ::= ""', rules, flags=re.MULTILINE)


_ARGUMENTS = object()  # in a call object: where the arguments stand


def _object_rule(value: Any, arguments: str) -> str:
    """A grammar expression for the JSON `value` (objects and strings), the `arguments` rule where
    `_ARGUMENTS` stands; white space as the converter's rules allow it."""
    if value is _ARGUMENTS:
        return arguments
    if isinstance(value, dict):
        fields = ' ", " '.join(f'{_literal(json.dumps(k))} ": " {_object_rule(v, arguments)}' for k, v in value.items())
        return f'"{{" {fields} "}}"'
    return _literal(json.dumps(value, ensure_ascii=False))


def _schema_rule(converter: Any, schema: Mapping[str, Any], name: str, what: str) -> str:
    """The name of the grammar rule for JSON matching `schema`, added to `converter`'s rules."""
    copy = json.loads(json.dumps(schema))  # the converter writes into the schema it resolves
    check_repetitions(copy, what)
    try:
        return str(converter.visit(converter.resolve_refs(copy, name), name))
    except Exception as exc:  # the converter raises plain exceptions of several kinds
        raise UsageError(f"llama.cpp cannot turn {what} into a grammar: {exc}") from None


def _literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


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
