"""Jinja chat templates (a GGUF's `tokenizer.chat_template`, a `.jinja` file, a `tokenizer_config.json`),
rendered the way transformers' `apply_chat_template` renders them, in a sandbox.

Templates are untrusted input (CVE-2024-34359: llama-cpp-python 0.2.30-0.2.71 rendered GGUF templates
in a plain `jinja2.Environment`, so a model file could run code). Here:

- the environment is jinja2's `ImmutableSandboxedEnvironment` with transformers' settings
  (`trim_blocks`, `lstrip_blocks`, loop controls, `tojson`, `raise_exception`, `strftime_now`,
  `{% generation %}` accepted and ignored); attribute access to Python internals raises
  `SecurityError`, which becomes a `TemplateError`;
- rendering is bounded: the template's size, the render time (the render runs in a worker thread
  that is interrupted at the deadline), the size of every string or list the template builds
  (`~`, `+`, `*`, `%`, `join`, padding methods and filters are checked *before* they allocate) and
  the size of the output.

The text is exactly what transformers renders. To split it into template text and message content
(see `types.Segment`), the template is rendered a second time with each message's content replaced by
a unique marker; the markers' places, matched against the real text, say where each content went,
also when the template trims it. A template that inspects or rewrites content so that the two
renderings cannot be matched is split by looking the contents up in the text instead.
"""

from __future__ import annotations

import ctypes
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modelctl.errors import TemplateError
from modelctl.templates.types import (
    RenderedPrompt,
    Segment,
    check_messages,
    join_segments,
    split_leading_bos,
)

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_VALUE_CHARS = 4 * 1024 * 1024  # any string or list built while rendering, and the output
RENDER_TIMEOUT = 2.0  # seconds
_MAX_WIDTH = 100_000  # padding widths, indents, tab sizes
_MAX_INT_BITS = 100_000


class _Refused(Exception):
    """`raise_exception(...)` called by the template."""


class _TooLarge(Exception):
    pass


class _RenderTimeout(BaseException):
    """Raised inside the worker thread at the deadline (BaseException: templates cannot catch it)."""


def _weight(value: Any, budget: int, depth: int = 0) -> int:
    """A size estimate of `value` in characters, exact for strings; stops counting past `budget`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)) and depth < 4:
        total = len(value)
        for item in value:
            if total > budget:
                break
            total += _weight(item, budget - total, depth + 1)
        return total
    if isinstance(value, dict) and depth < 4:
        total = len(value)
        for k, v in value.items():
            if total > budget:
                break
            total += _weight(k, budget, depth + 1) + _weight(v, budget, depth + 1)
        return total
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 8
    return 1


def _guard(size: int, what: str) -> None:
    if size > MAX_VALUE_CHARS:
        raise _TooLarge(f"{what} would be larger than {MAX_VALUE_CHARS} characters")


def _guard_width(n: Any, what: str) -> None:
    if isinstance(n, int) and not isinstance(n, bool) and n > _MAX_WIDTH:
        raise _TooLarge(f"{what} of {n} is larger than {_MAX_WIDTH}")


_HUGE_FORMAT_FIELD = re.compile(r"\d{6,}")


class _BoundedCodeGenerator(CodeGenerator):
    """`a ~ b` goes through the environment, which checks the size of the result first."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame) -> None:  # noqa: N802 (jinja's name)
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _GenerationTags(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks
    (transformers); rendering outputs the body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def unsafe_undefined(self, obj: Any, attribute: str):
        """Reaching for a Python internal is an error at once (jinja would render it as empty
        until used): no legitimate chat template does it."""
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def bounded_join(self, seq: Sequence[Any]) -> str:
        parts = []
        total = 0
        for item in seq:
            total += _weight(item, MAX_VALUE_CHARS)
            _guard(total, "a joined string")
            parts.append(str(item))
        text = "".join(parts)
        _guard(len(text), "a joined string")
        return text

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _guard(_weight(seq, MAX_VALUE_CHARS) * max(n, 0), "a repeated value")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                    raise _TooLarge("a product of huge numbers")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(left.bit_length(), 1) > _MAX_INT_BITS:
                    raise _TooLarge("a huge power")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _guard(_weight(left, MAX_VALUE_CHARS) + _weight(right, MAX_VALUE_CHARS), "a sum")
        elif operator == "%" and isinstance(left, str):
            if _HUGE_FORMAT_FIELD.search(left):
                raise _TooLarge("a %-format with a huge field width")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
            if getattr(__obj, "__name__", "") == "join" and args:
                args = (list(args[0]),) + args[1:]
                _guard(sum(_weight(x, MAX_VALUE_CHARS) for x in args[0]), "a joined string")
        return super().call(__context, __obj, *args, **kwargs)


def _check_str_method(s: str, name: str, args: tuple, kwargs: dict) -> None:
    values = list(args) + list(kwargs.values())
    if name in ("center", "ljust", "rjust", "zfill") and values:
        _guard_width(values[0], f"str.{name} width")
    elif name == "expandtabs":
        tab = values[0] if values else 8
        if isinstance(tab, int):
            _guard(len(s) * max(tab, 1), "an expanded string")
    elif name == "replace" and len(values) >= 2 and isinstance(values[0], str) and isinstance(values[1], str):
        old, new = values[0], values[1]
        count = s.count(old) if old else len(s) + 1
        _guard(len(s) + count * max(len(new) - len(old), 0), "a replaced string")
    elif name in ("format", "format_map"):
        if _HUGE_FORMAT_FIELD.search(s) or any(
            isinstance(v, int) and not isinstance(v, bool) and v > _MAX_WIDTH for v in values
        ):
            raise _TooLarge("a format with a huge field width")


def _bounded_filter(name: str, width_arg: int):
    """Wrap a built-in filter whose argument number `width_arg` is a width."""
    original = jinja2.filters.FILTERS[name]

    def wrapped(*args, **kwargs):
        if len(args) > width_arg:
            _guard_width(args[width_arg], f"the {name} filter's width")
        for key in ("width", "first"):
            _guard_width(kwargs.get(key), f"the {name} filter's {key}")
        return original(*args, **kwargs)

    return wrapped


@jinja2.pass_eval_context
def _bounded_join_filter(eval_ctx, value, d: str = "", attribute=None):
    items = list(value)
    _guard(_weight(items, MAX_VALUE_CHARS) + len(d) * len(items), "a joined string")
    return jinja2.filters.FILTERS["join"](eval_ctx, items, d, attribute)


def _format_filter(value, *args, **kwargs):
    if isinstance(value, str) and _HUGE_FORMAT_FIELD.search(value):
        raise _TooLarge("a format with a huge field width")
    return jinja2.filters.FILTERS["format"](value, *args, **kwargs)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    """transformers' `tojson`: json.dumps without HTML escaping, non-ASCII kept."""
    _guard_width(indent, "the tojson indent")
    _guard(_weight(value, MAX_VALUE_CHARS), "a JSON value")
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: Any = ""):
    raise _Refused(str(message))


def _strftime_now(fmt: str) -> str:
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
    )
    env.filters["tojson"] = _tojson
    env.filters["join"] = _bounded_join_filter
    env.filters["format"] = _format_filter
    env.filters["center"] = _bounded_filter("center", 1)
    env.filters["indent"] = _bounded_filter("indent", 1)
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
    except RecursionError:
        raise TemplateError(f"template '{name}' is nested too deeply to compile") from None


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
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > max_output:
                raise _TooLarge(f"the output would be larger than {max_output} characters")
            chunks.append(chunk)
        return "".join(chunks)

    try:
        return _run_with_deadline(produce, timeout)
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
    except Exception as exc:  # a template error surfacing as a Python one (TypeError, KeyError, ...)
        raise TemplateError(f"template '{name}' failed to render: {type(exc).__name__}: {exc}") from None


def _run_with_deadline(fn, timeout: float):
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
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_RenderTimeout))
        worker.join(1.0)
        raise _RenderTimeout()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- the template object ---------------------------------------------------------------------


@dataclass(frozen=True)
class JinjaChatTemplate:
    """A Jinja chat template; `render` matches transformers' `apply_chat_template(tokenize=False)`."""

    name: str
    source: str  # "gguf" | "file" | ...
    template: str  # the Jinja text
    bos_token: str | None = None  # defaults, when the caller gives none
    eos_token: str | None = None
    stop: tuple[str, ...] = ()  # extra stop strings; the EOS text is always one
    stop_token_ids: tuple[int, ...] = ()
    timeout: float = RENDER_TIMEOUT
    max_output: int = MAX_VALUE_CHARS

    def render(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        add_generation_prompt: bool = True,
        bos_token: str | None = None,
        eos_token: str | None = None,
        date_string: str | None = None,
    ) -> RenderedPrompt:
        msgs = check_messages(self.name, messages)
        bos = bos_token if bos_token is not None else self.bos_token
        eos = eos_token if eos_token is not None else self.eos_token
        variables: dict[str, Any] = {
            "add_generation_prompt": add_generation_prompt,
            "tools": None,
            "documents": None,
        }
        if bos is not None:
            variables["bos_token"] = bos
        if eos is not None:
            variables["eos_token"] = eos
        if date_string is not None:
            variables["date_string"] = date_string
        text = self._render(msgs, variables)
        segments = _segments(self, msgs, variables, text)
        segments, leading_bos = split_leading_bos(segments, bos)
        stop = tuple(dict.fromkeys(((eos,) if eos else ()) + self.stop))
        return RenderedPrompt(
            template=self.name,
            source=self.source,
            segments=segments,
            stop=stop,
            stop_token_ids=self.stop_token_ids,
            bos_token=leading_bos,
        )

    def _render(self, messages: list[dict[str, str]], variables: Mapping[str, Any]) -> str:
        return render_text(
            self.name,
            self.template,
            {**variables, "messages": messages},
            timeout=self.timeout,
            max_output=self.max_output,
        )


# -- splitting the text into template text and content ------------------------------------------

_MARK_OPEN, _MARK_CLOSE = "\U000f0000", "\U000f0001"
_MARK = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")


def _segments(tpl: JinjaChatTemplate, messages: list[dict[str, str]], variables, text: str) -> tuple[Segment, ...]:
    marked = [{"role": m["role"], "content": f"{_MARK_OPEN}{i}{_MARK_CLOSE}"} for i, m in enumerate(messages)]
    contents = [m["content"] for m in messages]
    try:
        skeleton = tpl._render(marked, variables)
    except TemplateError:
        skeleton = None
    found = _align(skeleton, contents, text) if skeleton is not None else None
    if found is None:
        found = _lookup(contents, text)
    segments = join_segments(found)
    assert "".join(s.text for s in segments) == text
    return segments


def _candidates(content: str) -> list[str]:
    return list(dict.fromkeys((content, content.strip(), content.lstrip(), content.rstrip())))


def _align(skeleton: str, contents: list[str], text: str) -> list[Segment] | None:
    """Match the marked rendering against the real one. Each marker stands for its content, or the
    content trimmed (the only transformations templates commonly apply)."""
    pieces: list[str | int] = []
    last = 0
    for m in _MARK.finditer(skeleton):
        pieces.append(skeleton[last : m.start()])
        index = int(m.group(1))
        if index >= len(contents):
            return None
        pieces.append(index)
        last = m.end()
    pieces.append(skeleton[last:])

    def options(i: int, pos: int) -> list[str]:
        piece = pieces[i]
        if isinstance(piece, str):
            return [piece] if text.startswith(piece, pos) else []
        return [c for c in _candidates(contents[piece]) if text.startswith(c, pos)]

    # depth-first search over the choices, without recursion (conversations can be long)
    failed: set[tuple[int, int]] = set()
    stack = [(0, 0, iter(options(0, 0)))]
    path: list[Segment] = []
    while stack:
        i, pos, choices = stack[-1]
        choice = next(choices, None)
        if choice is None:
            failed.add((i, pos))
            stack.pop()
            if path:
                path.pop()
            continue
        segment = Segment(choice, isinstance(pieces[i], str))
        nxt, npos = i + 1, pos + len(choice)
        if nxt == len(pieces):
            if npos == len(text):
                return [*path, segment]
            continue
        if (nxt, npos) in failed:
            continue
        path.append(segment)
        stack.append((nxt, npos, iter(options(nxt, npos))))
    return None


def _lookup(contents: list[str], text: str) -> list[Segment]:
    """Find each content (or its trimmed form) in order; the rest is template text."""
    out: list[Segment] = []
    pos = 0
    for content in contents:
        for cand in sorted(_candidates(content), key=len, reverse=True):
            if not cand:
                continue
            at = text.find(cand, pos)
            if at >= 0:
                out += [Segment(text[pos:at], True), Segment(cand, False)]
                pos = at + len(cand)
                break
    out.append(Segment(text[pos:], True))
    return out
