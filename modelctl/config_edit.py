"""Changing config.toml in place: one key at a time, the rest of the file kept as it was.

`tomlkit` parses the file into a document that remembers its comments, blank lines, key order
and the way each value was written, so `modelctl config set chat.temperature 0.7` rewrites only
that value (or adds that one line) and leaves every other byte alone. Each change is a
read-modify-write under `locked_update`, written atomically: two `config set` at once keep both.

No change may add a credential (a key, a token, a password in an address: `modelctl keys`
keeps those).

Keys are TOML dotted keys: `chat.temperature`, `models."llama-3.1-8b".temperature` (a part with
dots or other characters is quoted, as in TOML itself).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from modelctl.config import MAX_TOML_BYTES, TomlError, _load_user_config, get_paths, loads_toml, locked_update
from modelctl.errors import ModelctlError, NotFoundError, UsageError
from modelctl.files import read_user_text, write_user_file
from modelctl.redaction import refuse_credentials

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

T = TypeVar("T")

_BARE = re.compile(r"[A-Za-z0-9_-]+")
# A part as typed: quoted, or bare, where a bare part may also hold the '/' and ':' of model ids
# (`models.google/gemma-3-270m.top_p`); join_key quotes such a part, as TOML needs.
_PART = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_/:+-]+))\s*')


def split_key(key: str) -> list[str]:
    """The parts of a dotted key (`a."b.c".d` -> ["a", "b.c", "d"]); a malformed key is a UsageError."""

    parts: list[str] = []
    pos = 0
    while True:
        m = _PART.match(key, pos)
        if m is None or m.end() == pos:
            raise UsageError(f"'{key}' is not a key: write parts separated by dots, e.g. chat.temperature "
                             f"(quote a part that holds dots: models.\"llama-3.1-8b\".temperature)")
        basic, literal, bare = m.groups()
        if basic is not None:
            try:
                parts.append(json.loads(f'"{basic}"'))
            except ValueError:
                raise UsageError(f"'{key}': bad escape in a quoted part") from None
        else:
            parts.append(literal if literal is not None else bare)
        pos = m.end()
        if pos == len(key):
            return parts
        if key[pos] != ".":
            raise UsageError(f"'{key}' is not a key: unexpected {key[pos]!r} at character {pos + 1}")
        pos += 1


def join_key(parts: list[str]) -> str:
    """The dotted key for `parts`, quoting those that are not bare keys."""

    return ".".join(p if _BARE.fullmatch(p) else json.dumps(p, ensure_ascii=False) for p in parts)


def parse_value(text: str) -> Any:
    """A value as typed: a TOML value (`true`, `0.7`, `"text"`, `[1, 2]`, `{ a = 1 }`), else the
    text itself as a string (`gemma-3-270m`)."""

    if "\n" not in text and "\r" not in text:
        try:
            return loads_toml(f"value = {text}")["value"]
        except TomlError as exc:
            if exc.number:  # a number, but not one TOML can hold: not text either
                shown = text if len(text) <= 40 else f"{text[:20]}…{text[-10:]} ({len(text)} characters)"
                raise UsageError(f"{shown}: {exc.problem}") from None
    return text


def lookup(data: Any, parts: list[str]) -> Any:
    """The value at `parts` in nested dicts; KeyError when any part is missing."""
    for part in parts:
        if not isinstance(data, dict):
            raise KeyError(part)
        data = data[part]
    return data


def flatten(data: dict[str, Any], prefix: list[str] | None = None) -> list[tuple[list[str], Any]]:
    """Every leaf of nested tables as (key parts, value), in the file's order."""
    out: list[tuple[list[str], Any]] = []
    for key, value in data.items():
        parts = [*(prefix or []), key]
        if isinstance(value, dict) and value:
            out.extend(flatten(value, parts))
        else:
            out.append((parts, value))
    return out


def _table_for(doc: "TOMLDocument", parts: list[str]) -> Any:
    """The table that holds the key at `parts`, created (as a [table]) where missing."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    container: Any = doc
    for i, part in enumerate(parts[:-1]):
        if part not in container:
            # A table with only sub-tables is written as their headers alone ([models."x"]).
            sub = tomlkit.table(is_super_table=i < len(parts) - 2)
            container.add(part, sub)
        container = container[part]
        if not isinstance(container, dict):
            raise UsageError(f"{'.'.join(parts[:i + 1])} is a value, not a table: it holds no keys")
    return container


def set_in(doc: "TOMLDocument", parts: list[str], value: Any) -> None:
    """Set `parts` to `value` in `doc`: an existing key keeps its place and its comment; a new key
    goes after the last key of its table, before any comment or blank line that ends the table."""
    table = _table_for(doc, parts)
    key = parts[-1]
    if key in table:
        table[key] = value
        return
    body = getattr(getattr(table, "value", None), "body", None)  # a [table]'s container
    if body is None or not hasattr(table.value, "_insert_at"):
        table[key] = value  # an inline table, or the document itself
        return
    last = [i for i, (k, item) in enumerate(body) if k is not None and not _is_table(item)]
    if last and last[-1] + 1 < len(body):
        table.value._insert_at(last[-1] + 1, key, value)  # add() would append after the trailing comments
    else:
        table.add(key, value)


def _is_table(item: Any) -> bool:
    from tomlkit.items import AoT, Table  # noqa: PLC0415 (tomlkit: imported only where used)

    return isinstance(item, (Table, AoT))


def unset_in(doc: "TOMLDocument", parts: list[str]) -> bool:
    """Remove the key at `parts`; False when it is not there."""
    container: Any = doc
    for part in parts[:-1]:
        if not isinstance(container, dict) or part not in container:
            return False
        container = container[part]
    if not isinstance(container, dict) or parts[-1] not in container:
        return False
    del container[parts[-1]]
    return True


def _read_text() -> str:
    path = get_paths().config_file
    try:
        text = read_user_text(path, "config file", limit=MAX_TOML_BYTES, error=ModelctlError)
    except NotFoundError:
        return ""
    return text


def _parse(text: str) -> "TOMLDocument":
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    path = get_paths().config_file
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # tomlkit's ParseError, or a nesting its parser cannot follow
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelctlError(f"{path}: invalid TOML: {detail}", hint="fix the file by hand") from None


def _leaves(doc: "TOMLDocument") -> dict[tuple[str, ...], Any]:
    return {tuple(parts): value for parts, value in flatten(doc.unwrap())}


def _refuse_new_credentials(before: dict[tuple[str, ...], Any], after: dict[tuple[str, ...], Any]) -> None:
    """Whatever route a change took (`config set`, an alias's options, …), a credential it would
    add is refused; one written there by hand before is left alone (and hidden when shown)."""

    for parts, value in after.items():
        if parts not in before or before[parts] != value:
            refuse_credentials(join_key(list(parts)), value)


def edit_config(change: Callable[["TOMLDocument"], T]) -> T:
    """Apply `change` to config.toml and write the result atomically, holding the file's lock
    from the read to the rename. `change` raises to leave the file untouched."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    path = get_paths().config_file
    with locked_update(path):
        text = _read_text()
        doc = _parse(text)
        before = _leaves(doc)
        result = change(doc)
        _refuse_new_credentials(before, _leaves(doc))
        new = tomlkit.dumps(doc)
        if new != text:
            write_user_file(path, new.encode("utf-8"), "config file")
    _load_user_config.cache_clear()
    return result
