"""The Jinja sandbox that untrusted templates run in (a GGUF's `tokenizer.chat_template`, a
`.jinja` file, a `tokenizer_config.json`): `compile_template` and `render_text`.

Templates are untrusted input (CVE-2024-34359: llama-cpp-python 0.2.30-0.2.71 rendered GGUF templates
in a plain `jinja2.Environment`, so a model file could run code). Here:

- the environment is jinja2's `ImmutableSandboxedEnvironment` with transformers' settings
  (`trim_blocks`, `lstrip_blocks`, loop controls, `tojson`, `raise_exception`, `strftime_now`,
  `{% generation %}` accepted and ignored); attribute access to Python internals raises
  `SecurityError`, which becomes a `TemplateError`;
- rendering is bounded: the template's size, the render time (the render runs in a worker thread
  that is interrupted at the deadline) and the size of the output. The deadline cannot interrupt one
  long call into C (`str` of a huge value, `json.dumps`, `"".join`), so everything that could make
  one is measured first, at any depth: what `{{ ... }}` writes out, what filters and string methods
  turn into text, the lists, tuples and dicts a template builds (literals, `dict()`, `namespace()`,
  a macro's `varargs`), and the results of `~`, `+`, `*`, `%`, `format`, `join`, padding, indenting
  and replacing. A value counts as large as it writes out: eight references to one list count
  eight times. Bytes are out of reach (`encode`, `to_bytes`).
"""

from __future__ import annotations

import ctypes
import functools
import io
import json
import pprint
import re
import threading
from collections.abc import Callable, Iterable, Mapping, MappingView, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn, TypeVar

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Namespace

from modelctl.errors import TemplateError

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_VALUE_CHARS = 4 * 1024 * 1024  # any string, list or dict built while rendering, and the output
RENDER_TIMEOUT = 2.0  # seconds
_MAX_WIDTH = 100_000  # padding widths, indents, tab sizes, slice counts, strftime formats
# Products and powers are refused past this: Python writes out integers of at most 4,300
# decimal digits (14,284 bits), and its ValueError past that says nothing about the template.
_MAX_INT_BITS = 14_000
# What Python says when it will not write out or read an integer that long.
_LONG_INT = "integer string conversion"


class _Refused(Exception):
    """`raise_exception(...)` called by the template."""


class _TooLarge(Exception):
    pass


class _RenderTimeout(BaseException):
    """Raised inside the worker thread at the deadline (BaseException: templates cannot catch it)."""


# -- measuring before building -----------------------------------------------------------------------
#
# A single `str(value)`, `json.dumps`, `"".join` or `*` runs in C, holding the GIL: the deadline
# cannot interrupt it. So whatever could build a large text or container is measured before it runs.

_CONTAINERS = (list, tuple, set, frozenset, range, MappingView)


def _weight(value: Any, budget: int = MAX_VALUE_CHARS) -> int:
    """About how many characters `value` takes written out as text: exact for a string; a container
    counts one per item and its items, to any depth; a value held several times counts each time,
    as `str` writes it each time. Counting stops as soon as the total passes `budget`, so measuring
    takes at most about `budget` steps however large the text would be (eight references to a list
    of eight references to ... print exponentially large)."""
    total = 0
    pending = [value]
    while pending and total <= budget:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 3
        elif isinstance(item, Namespace):
            pending.append(getattr(item, "_Namespace__attrs", None))  # what its repr writes
        elif isinstance(item, Mapping):
            total += 1 + 2 * len(item)
            if total <= budget:
                pending.extend(item.keys())
                pending.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 1 + len(item)
            if total <= budget:
                pending.extend(item)  # type: ignore[arg-type]  # every container here is iterable
        else:
            total += 1
    return total


def _guard(size: int, what: str, limit: int = MAX_VALUE_CHARS) -> None:
    if size > limit:
        raise _TooLarge(f"{what} would be larger than {limit} characters")


def _measure(what: str, *values: Any) -> None:
    """Refuse `values` when written out as text they would pass MAX_VALUE_CHARS characters."""
    _guard(_weight(values), what)


def _guard_width(n: Any, what: str) -> None:
    if isinstance(n, int) and not isinstance(n, bool) and n > _MAX_WIDTH:
        raise _TooLarge(f"{what} of {n} is larger than {_MAX_WIDTH}")


class _Text(io.StringIO):
    """Text written piece by piece, stopped as soon as it would pass `limit` characters."""

    def __init__(self, what: str, limit: int = MAX_VALUE_CHARS) -> None:
        super().__init__()
        self.what, self.limit = what, limit

    def write(self, s: str) -> int:
        _guard(self.tell() + len(s), self.what, self.limit)
        return super().write(s)


_SURROGATE = re.compile("[\ud800-\udfff]")
_HUGE_FORMAT_FIELD = re.compile(r"\d{6,}")
_WIDTH_FROM_ARGUMENTS = re.compile(r"%[^%a-zA-Z]*\*|\{[^{}]*\{")  # "%*d", "{:{}}"


def _check_format(fmt: str, arguments: Any) -> None:
    """A %-format or `str.format` with `arguments` (a tuple, a mapping or one value): no huge field
    width, written in `fmt` or given as an argument; the arguments measured."""
    if isinstance(arguments, Mapping):
        values = list(arguments.values())
    else:
        values = list(arguments) if isinstance(arguments, (tuple, list)) else [arguments]
    if _HUGE_FORMAT_FIELD.search(fmt) or _WIDTH_FROM_ARGUMENTS.search(fmt) and any(
        isinstance(v, int) and not isinstance(v, bool) and v > _MAX_WIDTH for v in values
    ):
        raise _TooLarge("a format with a huge field width")
    _measure("a formatted string", fmt, arguments)


def _guard_replace(s: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        count = s.count(old) if old else len(s) + 1
        _guard(len(s) + count * max(len(new) - len(old), 0), "a replaced string")


def _guard_join(separator: str, items: list[Any]) -> None:
    _guard(_weight(items) + len(separator) * max(len(items) - 1, 0), "a joined string")


_Node = TypeVar("_Node", bound=jinja2.nodes.Node)


class _BoundedCodeGenerator(CodeGenerator):
    """`a ~ b` and the literals `[...]`, `(...)` and `{...}` go through the environment, which
    measures what they build: a literal of eight references to a large list is refused, so no value
    a template builds writes out larger than the limit."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:  # noqa: N802 (jinja's names)
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: jinja2.nodes.List, frame: Frame) -> None:  # noqa: N802
        self._measured(super().visit_List, node, frame)

    def visit_Dict(self, node: jinja2.nodes.Dict, frame: Frame) -> None:  # noqa: N802
        self._measured(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: jinja2.nodes.Tuple, frame: Frame) -> None:  # noqa: N802
        if node.ctx == "load":  # not the targets of `{% for a, b in ... %}` or `{% set a, b = ... %}`
            self._measured(super().visit_Tuple, node, frame)
        else:
            super().visit_Tuple(node, frame)

    def _measured(self, visit: Callable[[_Node, Frame], None], node: _Node, frame: Frame) -> None:
        self.write("environment.measured(")
        visit(node, frame)
        self.write(")")


class _GenerationTags(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks
    (transformers); rendering outputs the body unchanged."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


# Methods that make bytes: no chat template needs them, and bytes would need every bound again.
_BYTES_METHODS = frozenset({"encode", "to_bytes"})
# The jinja variables a call inside a loop or block passes along; not the template's arguments.
_JINJA_CALL_VARIABLES = frozenset({"_loop_vars", "_block_vars"})


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in _BYTES_METHODS and super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Reaching for a Python internal is an error at once (jinja would render it as empty
        until used): no legitimate chat template does it."""
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def measured(self, value: Any) -> Any:
        """A list, tuple or dict literal's value, once measured."""
        _measure("a list, tuple or dict", value)
        return value

    def bounded_join(self, seq: Sequence[Any]) -> str:
        _measure("a joined string", seq)
        text = "".join(map(str, seq))
        _guard(len(text), "a joined string")
        return text

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _guard(_weight(seq) * max(n, 0), "a repeated value")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                    raise _TooLarge("a product of huge numbers")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(left.bit_length(), 1) > _MAX_INT_BITS:
                    raise _TooLarge("a huge power")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _measure("a sum", left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `str.format_map`, which jinja wraps (so they never reach `call`)."""
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, args[0] if is_map and args else [*args, *kwargs.values()])
            return sandboxed(*args, **kwargs)

        return functools.update_wrapper(checked, sandboxed)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja's signature)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        elif _collects_arguments(__obj):
            given = {k: v for k, v in kwargs.items() if k not in _JINJA_CALL_VARIABLES}
            _measure("the arguments of a call", args, given)
        return super().call(__context, __obj, *args, **kwargs)


def _collects_arguments(obj: Any) -> bool:
    """Whether calling `obj` builds a value holding its arguments (nested calls could multiply
    references to a large value without any literal)."""
    if isinstance(obj, Macro):
        return obj.catch_varargs or obj.catch_kwargs
    return obj is dict or obj is Namespace or obj is Cycler


def _check_str_method(s: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of the string method `name` of `s`; the arguments to call it with."""
    values = list(args) + list(kwargs.values())
    if name in ("center", "ljust", "rjust", "zfill") and values:
        _guard_width(values[0], f"str.{name} width")
    elif name == "expandtabs":
        tab = values[0] if values else 8
        if isinstance(tab, int):
            _guard(len(s) * max(tab, 1), "an expanded string")
    elif name == "replace" and len(values) >= 2:
        _guard_replace(s, values[0], values[1])
    elif name == "translate" and values and isinstance(values[0], Mapping):
        longest = max((len(v) for v in values[0].values() if isinstance(v, str)), default=1)
        _guard(len(s) * max(longest, 1), "a translated string")
    elif name == "join" and args:
        items = list(args[0])
        _guard_join(s, items)
        return (items, *args[1:])
    return args


# -- filters and globals ------------------------------------------------------------------------------


def _checked_filter(name: str, check: Callable[..., None] | None = None) -> Callable[..., Any]:
    """jinja's filter `name`, its input and arguments measured first (it writes them out as text),
    then `check(input, *arguments)` run (for filters whose text can be larger than that)."""
    original = jinja2.filters.FILTERS[name]
    takes_context = hasattr(original, "jinja_pass_arg")  # an eval context or environment comes first

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        given = args[1:] if takes_context else args
        _measure(f"the {name} filter's input", given, kwargs)
        if check is not None:
            check(*given, **kwargs)
        return original(*args, **kwargs)

    return wrapped


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)  # measured already


def _check_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    pad = len(width) if isinstance(width, str) else width
    _guard_width(pad, "the indent filter's width")
    text = _as_text(s)
    _guard(len(text) + pad * (text.count("\n") + 1), "an indented string")


def _check_wordwrap(s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
                    break_on_hyphens: bool = True) -> None:
    wrap = len(wrapstring) if isinstance(wrapstring, str) else 1
    _guard(len(_as_text(s)) * (1 + wrap), "a wrapped string")  # at most a wrap per character


def _check_fill(what: str, count: Any, fill_with: Any) -> None:
    _guard_width(count, f"the {what} filter's count")
    if fill_with is not None and isinstance(count, int):
        _guard((_weight(fill_with) + 1) * count, f"the {what} filter's filling")


# Filters that write their input out as text (or repeat a value), measured first; some with a check
# of their own, with jinja's parameter names.
_TEXT_FILTERS: dict[str, Callable[..., None] | None] = {
    **dict.fromkeys(("capitalize", "e", "escape", "forceescape", "lower", "safe", "string", "striptags",
                     "title", "trim", "truncate", "upper", "urlencode", "urlize", "wordcount", "xmlattr")),
    "center": lambda value, width=80: _guard_width(width, "the center filter's width"),
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": lambda s, old, new, count=None: _guard_replace(_as_text(s), old, new),
    "format": lambda value, *args, **kwargs: _check_format(_as_text(value), kwargs or args),
    "batch": lambda value, linecount, fill_with=None: _check_fill("batch", linecount, fill_with),
    "slice": lambda value, slices, fill_with=None: _check_fill("slice", slices, fill_with),
}


@jinja2.pass_eval_context
def _bounded_join_filter(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    _guard_join(_as_text(d), items)
    joined: str = jinja2.filters.FILTERS["join"](eval_ctx, items, d, attribute)
    return joined


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """transformers' `tojson`: json.dumps without HTML escaping, non-ASCII kept. The value is
    measured first; indented JSON (whose indents grow with the nesting) is stopped at the limit."""
    _measure("a JSON value", value)
    if indent is None:
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys)
    _guard_width(len(indent) if isinstance(indent, str) else indent, "the tojson indent")
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    text = _Text("a JSON value")
    for chunk in encoder.iterencode(value):
        text.write(chunk)
    return text.getvalue()


def _pprint(value: Any) -> str:
    """jinja's `pprint` (`pprint.pformat`), stopped at the limit: its indents grow with the nesting
    and the keys, beyond what measuring the value tells."""
    _measure("the pprint filter's input", value)
    text = _Text("a pretty-printed value")
    pprint.PrettyPrinter(stream=text).pprint(value)
    return text.getvalue()[:-1]  # pformat's text: pprint adds a newline


def _written(value: Any) -> Any:
    """The environment's `finalize`: a value in `{{ ... }}` is measured before jinja writes it out."""
    if not isinstance(value, str):
        _measure("a value written out", value)
    return value


def _raise_exception(message: Any = "") -> NoReturn:
    _measure("the message of raise_exception", message)
    raise _Refused(str(message))


def _strftime_now(fmt: str) -> str:
    _guard_width(len(fmt), "the strftime_now format's length")
    return datetime.now().strftime(fmt)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    _guard_width(n * max, "lipsum")
    return jinja2.utils.generate_lorem_ipsum(n=n, html=html, min=min, max=max)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTags, jinja2.ext.loopcontrols],
        autoescape=False,
        finalize=_written,
    )
    env.filters.update({name: _checked_filter(name, check) for name, check in _TEXT_FILTERS.items()})
    env.filters["tojson"] = _tojson
    env.filters["pprint"] = _pprint
    env.filters["join"] = _bounded_join_filter
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["lipsum"] = _lipsum
    return env


@lru_cache(maxsize=64)
def _compile(source: str) -> jinja2.Template:
    return _environment().from_string(source)


def compile_template(name: str, source: str) -> jinja2.Template:
    """The compiled template; TemplateError when it is too large or not valid Jinja."""
    if not isinstance(source, str):
        raise TemplateError(f"template '{name}': the chat template is not text")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"template '{name}' is {len(source)} characters long; the limit is {MAX_TEMPLATE_CHARS}"
        )
    try:
        return _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template '{name}' is not valid Jinja: {exc.message} (line {exc.lineno})") from None
    except ValueError as exc:  # an integer literal longer than Python reads
        if _LONG_INT not in str(exc):
            raise TemplateError(f"template '{name}' is not valid Jinja: {exc}") from None
        raise TemplateError(f"template '{name}' holds a number too long to read (more than 4,300 digits)") from None
    except (RecursionError, SyntaxError, MemoryError):
        # Python's own limits on the code Jinja generates: recursion while parsing, and at most
        # 20 statically nested blocks (21 nested {% for %} are a SyntaxError from compile()).
        raise TemplateError(f"template '{name}' is nested too deeply to compile") from None


def template_variables(name: str, source: str) -> frozenset[str]:
    """The variables `source` reads from its context (`tools`, `xml_tools`, ...)."""
    compile_template(name, source)  # the checks and errors of compiling
    return _variables(source)


@lru_cache(maxsize=64)
def _variables(source: str) -> frozenset[str]:
    return frozenset(jinja2.meta.find_undeclared_variables(_environment().parse(source)))


def render_text(
    name: str,
    source: str,
    variables: Mapping[str, Any],
    *,
    timeout: float = RENDER_TIMEOUT,
    max_output: int = MAX_VALUE_CHARS,
) -> str:
    """Render `source` with `variables` in the sandbox, within `timeout` seconds and `max_output`
    characters. Every failure is a TemplateError that names the template and the cause."""
    template = compile_template(name, source)

    def produce() -> str:
        text = _Text("the output", max_output)
        for chunk in template.generate(**variables):
            text.write(chunk)
        return text.getvalue()

    try:
        text = _run_with_deadline(produce, timeout)
    except _RenderTimeout:
        raise TemplateError(f"template '{name}' took longer than {timeout:g}s to render and was stopped") from None
    except _Refused as exc:
        raise TemplateError(f"template '{name}' refused the conversation: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"template '{name}' tried something the sandbox forbids: {exc}") from None
    except _TooLarge as exc:
        raise TemplateError(f"template '{name}' was stopped: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template '{name}' failed to render: {exc}") from None
    except RecursionError:
        raise TemplateError(f"template '{name}' recursed too deeply and was stopped") from None
    except MemoryError:
        raise TemplateError(f"template '{name}' ran out of memory and was stopped") from None
    except ValueError as exc:
        if _LONG_INT not in str(exc):
            raise TemplateError(f"template '{name}' failed to render: ValueError: {exc}") from None
        raise TemplateError(f"template '{name}' was stopped: a number too long to write out (more than 4,300 digits)") from None
    except Exception as exc:  # a template error surfacing as a Python one (TypeError, KeyError, ...)
        raise TemplateError(f"template '{name}' failed to render: {type(exc).__name__}: {exc}") from None
    surrogate = _SURROGATE.search(text)
    if surrogate:  # no encoding can write it: not text a model, a server or a terminal can take
        raise TemplateError(f"template '{name}' rendered a lone surrogate ({ascii(surrogate.group())[1:-1]}) at "
                            f"character {surrogate.start() + 1}, which is not text (from the template or the messages)")
    return text


T = TypeVar("T")


def _run_with_deadline(fn: Callable[[], T], timeout: float) -> T:
    """Run `fn` in a worker thread; at the deadline, raise _RenderTimeout inside it."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                outcome["error"] = exc
        except _RenderTimeout:  # delivered between the render's end and here
            outcome.setdefault("error", _RenderTimeout())

    worker = threading.Thread(target=work, name="modelctl-template-render", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        ident = worker.ident or 0  # a started thread has one
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(_RenderTimeout))
        worker.join(1.0)
        raise _RenderTimeout()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
