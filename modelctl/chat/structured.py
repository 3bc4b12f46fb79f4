"""Structured output: the JSON Schema of `--schema FILE|JSON` (or `--json-mode`), and the check
of the answer against it before it is printed.

    --schema s.json | '{"type": "object", ...}'  ─► load_format ─► ResponseFormat (to the backend)
    the complete answer ─► validate_answer ─► the JSON value, or BackendError (exit 7) saying why

The backends ask each provider for JSON in its own way (a grammar, `response_format`,
`responseSchema`, `format`, a forced tool); what comes back is checked here all the same, since
not every provider guarantees it. `jsonschema` is imported only when a schema is used.
"""

from __future__ import annotations

from typing import Any, Iterable

from modelctl.backends.base import FINISH_LENGTH, ResponseFormat
from modelctl.backends.wire import loads
from modelctl.errors import BackendError, UsageError
from modelctl.files import read_user_text

# The most a schema file may hold.
MAX_SCHEMA_BYTES = 1 * 2**20


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
    else the latest)."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UsageError(f"{where}: not a valid JSON Schema: {exc.message} "
                         f"(at {pointer(exc.absolute_path)} of the schema)") from None


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
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    validator = validator_for(fmt.schema)(fmt.schema)
    problem = best_match(validator.iter_errors(value))
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
