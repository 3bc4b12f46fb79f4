"""Structured output: the JSON Schema of `--schema FILE|JSON` (or `--json-mode`), and the check
of the answer against it before it is printed.

    --schema s.json | '{"type": "object", ...}'  ─► load_format ─► ResponseFormat (to the backend)
    the complete answer ─► validate_answer ─► the JSON value, or BackendError (exit 7) saying why

The backends ask each provider for JSON in its own way (a grammar, `response_format`,
`responseSchema`, `format`, a forced tool); what comes back is checked here all the same, since
not every provider guarantees it. `jsonschema` is imported only when a schema is used.

A schema is checked before anything is sent, so that a check can never hang or fail later:

- `$ref` (and `$dynamicRef`, `$recursiveRef`) resolve within the schema only (and to the JSON
  Schema meta-schemas, which jsonschema ships): nothing is ever fetched. A reference to
  anything else, to a place the schema does not have, or one that leads back to itself without
  going deeper into the answer (`{"$ref": "#"}`, two definitions that refer to each other
  through `allOf`) is a usage error naming it;
- NaN and infinities are no JSON numbers;
- `pattern` and `patternProperties` are matched with the `regex` package, whose matching stops
  after PATTERN_SECONDS (`re` cannot be stopped, and `(a+)+$` on a long answer takes ages):
  a pattern that takes longer is an error saying so. jsonschema matches `patternProperties`
  under `unevaluatedProperties` itself, with `re`: that combination is refused.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from modelctl.backends.base import FINISH_LENGTH, ResponseFormat
from modelctl.errors import BackendError, UsageError
from modelctl.files import read_user_text
from modelctl.transport.wire import loads

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

# The most a schema file may hold.
MAX_SCHEMA_BYTES = 1 * 2**20
# The most the patterns of a schema may take to check one answer, all of them together.
PATTERN_SECONDS = 2.0
# Keywords whose subschemas apply to the same place in the answer: a cycle of them (through
# references) never ends.
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "extends")
_IN_PLACE_MAPS = ("dependentSchemas", "dependencies")
_REFS = ("$ref", "$dynamicRef", "$recursiveRef")


def load_format(schema: str | None, json_mode: bool) -> ResponseFormat | None:
    """The response format of `--schema` (a file, or inline JSON when it starts with `{` or `[`) and
    `--json-mode`; None when neither is given. A schema that cannot be read, is not JSON, or is
    not a valid JSON Schema is a UsageError (a missing file: NotFoundError) naming the place."""
    if schema is None:
        return ResponseFormat() if json_mode else None
    if json_mode:
        raise UsageError("--schema and --json-mode: give one (a schema already asks for JSON)")
    if schema.lstrip().startswith(("{", "[")):
        where, text = "--schema (inline JSON)", schema
    else:
        where, text = f"--schema {schema!r}", read_user_text(schema, "schema file", limit=MAX_SCHEMA_BYTES)
    try:
        value = loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where}: a schema is a JSON object, not {_kind(value)}")
    check_schema(value, where)
    return ResponseFormat(schema=value)


def check_schema(schema: dict[str, Any], where: str) -> None:
    """UsageError unless `schema` is a valid JSON Schema (of the draft its `$schema` names,
    else the latest) that can be checked in bounded time (see the module docstring)."""
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415 (jsonschema: imported only where used)
    from jsonschema.validators import validator_for  # noqa: PLC0415 (jsonschema: imported only where used)

    _check_numbers(schema, where)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UsageError(f"{where}: not a valid JSON Schema: {exc.message} "
                         f"(at {pointer(exc.absolute_path)} of the schema)") from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # The meta-schema's "regex" format compiles each pattern with `re`, which raises more than
        # re.error: a quantifier of 5,000 digits is past Python's int conversion limit.
        raise UsageError(f"{where}: not a valid JSON Schema: a pattern cannot be compiled ({str(exc)[:120]})") from None
    _check_patterns(schema, where)
    _check_refs(schema, where)


def validate_answer(text: str, fmt: ResponseFormat, finish_reason: str | None = None) -> Any:
    """The JSON value of a complete answer that `fmt` asked for; BackendError naming the first
    problem and where it is (a JSON pointer) when it is not JSON, not an object (`--json-mode`),
    or does not validate against the schema. An answer cut off at max_tokens says so."""
    cut = " (the answer was cut off at max_tokens: raise --max-tokens)" if finish_reason == FINISH_LENGTH else ""
    try:
        value = loads(text)
    except ValueError as exc:
        raise BackendError(f"the answer is not valid JSON: {exc}{cut}") from None
    if fmt.schema is None:
        if not isinstance(value, dict):
            raise BackendError(f"the answer is {_kind(value)}, not a JSON object{cut}")
        return value
    from jsonschema.exceptions import best_match  # noqa: PLC0415 (jsonschema: imported only where used)
    from referencing.exceptions import Unresolvable  # noqa: PLC0415 (referencing: not on the chat --api-base path)

    try:
        problem = best_match(bounded_validator(fmt.schema).iter_errors(value))
    except _PatternTimeout as exc:
        raise BackendError(f"the answer cannot be checked against the schema: the pattern {exc.pattern!r} "
                           f"took more than {PATTERN_SECONDS:g} s to match") from None
    except (Unresolvable, RecursionError) as exc:  # a schema given without load_format's checks
        raise UsageError(f"the schema cannot be checked: {_unresolvable(exc, getattr(exc, 'ref', '?'))}") from None
    if problem is not None:
        raise BackendError(f"the answer does not match the schema: {problem.message} "
                           f"(at {pointer(problem.absolute_path)}){cut}")
    return value


def pointer(path: Iterable[Any]) -> str:
    """A place in a document as a JSON pointer (RFC 6901: `/items/0/name`), or "the top level"."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "the top level"


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _nodes(value: Any) -> Iterator[tuple[list[Any], Any]]:
    """Every value inside `value` (itself first), with its path; iteratively."""
    stack: list[tuple[list[Any], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((path + [k], v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((path + [i], v) for i, v in enumerate(item))


def _check_numbers(schema: dict[str, Any], where: str) -> None:
    for path, item in _nodes(schema):
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"{where}: {json.dumps(item)} is not a JSON number (at {pointer(path)} of the schema); "
                             "NaN, Infinity and numbers too large for a float are not allowed")


# --- patterns ------------------------------------------------------------------------------------


class _PatternTimeout(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


def _check_patterns(schema: dict[str, Any], where: str) -> None:
    """Every pattern compiles for `regex`, and none is matched by jsonschema's own `re`."""
    import regex  # noqa: PLC0415 (regex: not on the chat --api-base path)

    keys: set[Any] = set()
    for path, item in _nodes(schema):
        if not isinstance(item, dict):
            continue
        keys.update(item)
        found = [item["pattern"]] if isinstance(item.get("pattern"), str) else []
        if isinstance(item.get("patternProperties"), dict):
            found += list(item["patternProperties"])
        for text in found:
            try:
                regex.compile(text)
            except regex.error as exc:
                raise UsageError(f"{where}: the pattern {text!r} (at {pointer(path)} of the schema) "
                                 f"is not a regular expression modelctl can match: {exc}") from None
    if {"patternProperties", "unevaluatedProperties"} <= keys:
        raise UsageError(f"{where}: patternProperties with unevaluatedProperties cannot be checked in "
                         "bounded time; use additionalProperties beside patternProperties")


def bounded_validator(schema: Mapping[str, Any]) -> Any:
    """A jsonschema validator for `schema` whose references resolve within the schema only and
    whose patterns stop after PATTERN_SECONDS in all (for one validation)."""
    from jsonschema.validators import extend, validator_for  # noqa: PLC0415 (jsonschema: imported only where used)

    deadline = time.monotonic() + PATTERN_SECONDS

    def search(pattern: str, text: str) -> bool:
        import regex  # noqa: PLC0415 (regex: not on the chat --api-base path)

        try:
            return regex.search(pattern, text, timeout=max(deadline - time.monotonic(), 0.001)) is not None
        except TimeoutError:
            raise _PatternTimeout(pattern) from None

    keywords = {"pattern": _pattern(search), "patternProperties": _pattern_properties(search),
                "additionalProperties": _additional_properties(search)}
    return extend(validator_for(schema), keywords)(schema, registry=_local_registry())


Search = Callable[[str, str], bool]


# jsonschema's keyword functions: (validator, the keyword's value, the instance, the schema) -> errors.
Keyword = Callable[["Validator", Any, Any, Mapping[str, Any]], Iterator["ValidationError"]]


def _pattern(search: Search) -> Keyword:
    def pattern(validator: Validator, patrn: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        from jsonschema.exceptions import ValidationError  # noqa: PLC0415 (jsonschema: imported only where used)

        if validator.is_type(instance, "string") and not search(patrn, instance):
            shown = instance if len(instance) <= 80 else instance[:80] + "…"
            yield ValidationError(f"{shown!r} does not match {patrn!r}")

    return pattern


def _pattern_properties(search: Search) -> Keyword:
    def pattern_properties(validator: Validator, patterns: Mapping[str, Any], instance: Any,
                           schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if search(patrn, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    return pattern_properties


def _additional_properties(search: Search) -> Keyword:
    def additional_properties(validator: Validator, additional: Any, instance: Any,
                              schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        from jsonschema.exceptions import ValidationError  # noqa: PLC0415 (jsonschema: imported only where used)

        if not validator.is_type(instance, "object"):
            return
        named, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        extras = [k for k in instance if k not in named and not any(search(p, k) for p in patterns)]
        if validator.is_type(additional, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], additional, path=extra)
        elif not additional and extras:
            listed = ", ".join(repr(k) for k in sorted(extras))
            yield ValidationError(f"Additional properties are not allowed ({listed} "
                                  f"{'was' if len(extras) == 1 else 'were'} unexpected)")

    return additional_properties


# --- references ----------------------------------------------------------------------------------


def _refuse(uri: str) -> Any:
    from referencing.exceptions import NoSuchResource  # noqa: PLC0415 (referencing: not on the chat --api-base path)

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _local_registry() -> Any:
    """References resolve within the schema (and to the meta-schemas jsonschema adds): a
    registry that retrieves nothing."""
    from referencing import Registry  # noqa: PLC0415 (referencing: not on the chat --api-base path)

    return Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _unresolvable(exc: BaseException, ref: str) -> str:
    from referencing.exceptions import NoSuchAnchor, PointerToNowhere  # noqa: PLC0415 (referencing: not on the chat --api-base path)

    if isinstance(exc, RecursionError):
        return "its references lead back to themselves"
    if isinstance(exc, PointerToNowhere):
        return f"the $ref {ref!r} points to nothing in the schema"
    if isinstance(exc, NoSuchAnchor):
        return f"the $ref {ref!r} names an anchor the schema does not have"
    return (f"the $ref {ref!r} is not in the schema (modelctl resolves references within the schema "
            "only; remote ones are never fetched)")


def _check_refs(schema: dict[str, Any], where: str) -> None:
    """Every reference of `schema` resolves locally, and no cycle of references and in-place
    keywords (`_IN_PLACE`) returns to where it started."""
    import referencing.jsonschema  # noqa: PLC0415 (referencing: not on the chat --api-base path)
    from jsonschema.validators import validator_for  # noqa: PLC0415 (jsonschema: imported only where used)
    from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # noqa: PLC0415 (jsonschema_specifications: not on the chat --api-base path)
    from referencing.exceptions import Unresolvable  # noqa: PLC0415 (referencing: not on the chat --api-base path)

    places = {id(node): pointer(path) for path, node in _nodes(schema) if isinstance(node, dict)}
    spec = referencing.jsonschema.specification_with(
        validator_for(schema).META_SCHEMA.get("$schema", ""), default=referencing.jsonschema.DRAFT202012)
    root = spec.create_resource(schema)
    resolver = SPECIFICATIONS.combine(_local_registry()).resolver_with_root(root)
    edges: dict[int, list[tuple[int, str]]] = {}
    seen: set[int] = set()
    stack = [(root, resolver)]
    while stack:
        resource, here = stack.pop()
        node = resource.contents
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        out = edges.setdefault(id(node), [])
        for keyword in _REFS:
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                target = here.lookup(ref)
            except Unresolvable as exc:
                raise UsageError(f"{where}: {_unresolvable(exc, ref)} (at {places.get(id(node), '?')})") from None
            out.append((id(target.contents), f"{keyword} {ref!r}"))
            stack.append((spec.create_resource(target.contents), target.resolver))
        out.extend((id(child), keyword) for keyword, child in _in_place(node))
        stack.extend((sub, here.in_subresource(sub)) for sub in resource.subresources())
    cycle = _cycle(edges)
    if cycle:
        raise UsageError(f"{where}: {' → '.join(cycle)} leads back to where it started without going "
                         "deeper into the answer (a schema that refers to itself must do so below a "
                         "property or an item)")


def _in_place(node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The subschemas of `node` that apply where `node` applies, with their keywords."""
    for keyword in _IN_PLACE:
        value = node.get(keyword)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, dict):
                yield keyword, child
    for keyword in _IN_PLACE_MAPS:
        value = node.get(keyword)
        if isinstance(value, dict):
            yield from ((keyword, child) for child in value.values() if isinstance(child, dict))


def _cycle(edges: dict[int, list[tuple[int, str]]]) -> list[str] | None:
    """The labels of the edges of a cycle in `edges`, if there is one (depth first, iteratively)."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path: list[tuple[int, str]] = [(start, "")]
        todo = [iter(edges.get(start, []))]
        state[start] = 1
        while todo:
            step = next(todo[-1], None)
            if step is None:
                state[path.pop()[0]] = 2
                todo.pop()
                continue
            target, label = step
            if state.get(target) == 1:
                begin = next(i for i, (node, _) in enumerate(path) if node == target)
                return [lab for _, lab in path[begin + 1:]] + [label]
            if target not in state:
                state[target] = 1
                path.append((target, label))
                todo.append(iter(edges.get(target, [])))
    return None
