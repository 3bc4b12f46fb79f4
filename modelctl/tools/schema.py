"""A Python function as a tool: its name, its docstring's first paragraph as the description,
and its type hints as the JSON Schema of its arguments.

    str -> string, int -> integer, float -> number, bool -> boolean, list[X] / tuple[X, ...] /
    set[X] -> array of X, dict / dict[str, X] -> object, Literal["a", "b"] / an Enum -> enum,
    X | None -> X (not required when its default is None; "X or null" when it has no default),
    Any or no hint -> the type of its default (a string when it has none).

A parameter with a default is not required. `*args` and `**kwargs` are not offered to the model.
Parameter descriptions come from the docstring's `Args:` section (Google style) or
`:param NAME:` lines, where it has them.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from typing import Any, Callable, Literal, Union

from modelctl.backends.base import ToolSpec
from modelctl.errors import UsageError

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAYS = (list, tuple, set, frozenset)
_ARG_SECTIONS = ("args:", "arguments:", "parameters:", "params:")
_GOOGLE_ARG = re.compile(r"(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SPHINX_ARG = re.compile(r":param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)")


def function_spec(fn: Callable[..., Any], name: str | None = None) -> ToolSpec:
    """The ToolSpec of `fn`; a hint that has no JSON Schema is a UsageError naming the parameter."""
    name = name or fn.__name__
    if not _TOOL_NAME.fullmatch(name):
        raise UsageError(f"function {name}: a tool's name is ASCII letters, digits, '_' and '-', at most 64 characters")
    summary, described = _docstring(inspect.getdoc(fn) or "")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a hint naming what the file does not define
        raise UsageError(f"function {name}: its type hints cannot be read ({type(exc).__name__}: {exc})") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in _parameters(fn):
        schema = _param_schema(param, hints.get(param.name, inspect.Parameter.empty), f"{name}({param.name})")
        if param.name in described:
            schema = {**schema, "description": described[param.name]}
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return ToolSpec(name, summary, parameters)


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters a model may give: not `*args`, not `**kwargs`."""
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


class ArgumentError(ValueError):
    """Arguments a function does not take, or without one it needs."""


def call_arguments(fn: Callable[..., Any], arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """(positional, keyword) arguments for calling `fn` with the model's `arguments`;
    ArgumentError for a name `fn` does not take or a required one missing."""
    params = {p.name: p for p in _parameters(fn)}
    unknown = sorted(set(arguments) - set(params))
    if unknown:
        raise ArgumentError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"(it takes {', '.join(params) or 'none'})")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in arguments]
    if missing:
        raise ArgumentError(f"missing argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    positional = [arguments[n] for n, p in params.items()
                  if p.kind is inspect.Parameter.POSITIONAL_ONLY and n in arguments]
    keywords = {n: v for n, v in arguments.items() if params[n].kind is not inspect.Parameter.POSITIONAL_ONLY}
    return positional, keywords


def _param_schema(param: inspect.Parameter, hint: Any, where: str) -> dict[str, Any]:
    if hint is inspect.Parameter.empty or hint is Any:
        default = param.default
        if default is inspect.Parameter.empty or default is None:
            return {"type": "string"}
        return type_schema(type(default), where)
    optional, hint = _unwrap_optional(hint)
    schema = type_schema(hint, where)
    if optional and param.default is inspect.Parameter.empty:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
    """(whether None is allowed, the hint without None)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]
    return False, hint


def type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON Schema of a type hint; UsageError naming `where` for one without."""
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is Any:
        return {}
    if hint is type(None):
        return {"type": "null"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _ARRAYS or origin in _ARRAYS:
        items = [a for a in args if a is not Ellipsis]
        if origin is tuple and len(items) > 1:
            return {"type": "array", "prefixItems": [type_schema(a, where) for a in items],
                    "minItems": len(items), "maxItems": len(items)}
        return {"type": "array", "items": type_schema(items[0], where)} if items else {"type": "array"}
    if hint is dict or origin is dict:
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": type_schema(args[1], where)}
        return {"type": "object"}
    if origin is Literal:
        return _enum(list(args))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum([member.value for member in hint])
    if origin in (Union, types.UnionType):
        return {"anyOf": [type_schema(a, where) for a in args]}
    shown = getattr(hint, "__name__", None) or str(hint)
    raise UsageError(f"function {where}: type {shown} has no JSON Schema",
                     hint="use str, int, float, bool, list[...], dict, Literal[...] or an Enum")


def _enum(values: list[Any]) -> dict[str, Any]:
    kinds = {_SIMPLE.get(type(v)) for v in values}
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1 and None not in kinds:
        schema = {"type": kinds.pop(), **schema}
    return schema


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(the first paragraph on one line, {parameter: its description})."""
    paragraphs = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)
    first = paragraphs[0] if paragraphs[0].strip().lower() not in _ARG_SECTIONS else ""
    summary = " ".join(line.strip() for line in first.splitlines() if not _SPHINX_ARG.match(line.strip()))
    return summary, _param_docs(doc)


def _param_docs(doc: str) -> dict[str, str]:
    """{parameter: description} from an `Args:` section (an item per line at one indent, its
    continuation lines deeper) or `:param NAME: text` lines."""
    found: dict[str, str] = {}
    section: int | None = None  # the indent of the `Args:` heading, while in its section
    item: int | None = None  # the indent of its items
    last: str | None = None
    for line in doc.splitlines():
        text, depth = line.strip(), len(line) - len(line.lstrip())
        sphinx = _SPHINX_ARG.match(text)
        if sphinx:
            found[sphinx[1]], last = sphinx[2].strip(), None
        elif text.lower() in _ARG_SECTIONS:
            section, item, last = depth, None, None
        elif section is not None and text:
            if depth <= section:  # the next section (`Returns:`) or prose: the arguments end
                section = None
                continue
            item = depth if item is None else item
            google = _GOOGLE_ARG.fullmatch(text)
            if depth == item and google:
                last = google[1].lstrip("*")
                found[last] = google[2].strip()
            elif last is not None:
                found[last] = f"{found[last]} {text}"
    return found
