"""The user's own model names: the `[aliases]` table of config.toml.

    [aliases]
    fast = { model = "gemma-3-270m", options = { temperature = 0.2 } }

An alias stands for a model (a registry id, a name given to `modelctl import`, or a GGUF path)
and carries options that apply below the flags. Names are matched case-insensitively, as registry
ids are; a user alias is followed once (an alias of an alias is refused when it is set), and it
wins over a registry name only when it was set with `--force` to shadow one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelctl.config import get_paths, user_config
from modelctl.config_edit import edit_config, set_in
from modelctl.errors import UsageError
from modelctl.redaction import redact_data

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class Alias:
    name: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "options": dict(self.options)}

    def shown_options(self) -> dict[str, Any]:
        """The options as they may be shown: a credential written there by hand hidden."""

        shown: dict[str, Any] = redact_data(self.options)  # a table stays a table
        return shown


def check_alias_name(name: str) -> str:
    if not ALIAS_NAME.fullmatch(name):
        raise UsageError(f"'{name}' is not an alias name: letters, digits, '.', '_', ':' and '-', "
                         "starting with a letter or digit, at most 128 characters")
    return name


def user_aliases() -> dict[str, Alias]:
    """The aliases in config.toml, by lower-cased name; a malformed entry is a UsageError that
    names the file and the alias."""

    table = user_config().get("aliases", {})
    where = get_paths().config_file
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [aliases] must be a table")
    found: dict[str, Alias] = {}
    for name, value in table.items():
        if isinstance(value, str):  # `fast = "gemma-3-270m"`: a model without options
            value = {"model": value}
        if not isinstance(value, dict) or not isinstance(value.get("model"), str) or not value["model"]:
            raise UsageError(f"{where}: aliases.{name} must be a table with a model (a string)",
                             hint=f"modelctl alias set {name} MODEL")
        options = value.get("options", {})
        extra = sorted(set(value) - {"model", "options"})
        if not isinstance(options, dict) or extra:
            what = f"unknown key {extra[0]}" if extra else "options must be a table"
            raise UsageError(f"{where}: aliases.{name}: {what}")
        found[name.lower()] = Alias(name, value["model"], dict(options))
    return found


def find_alias(name: str | None) -> Alias | None:
    """The user alias called `name` (case-insensitive), if any."""
    if not name:
        return None
    return user_aliases().get(name.strip().lower())


def write_alias(alias: Alias) -> None:
    """Add or replace `alias` in config.toml, keeping the rest of the file as it is."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    def change(doc: TOMLDocument) -> None:
        table = doc.get("aliases")
        if isinstance(table, dict):  # replace an entry spelled in another case
            for old in [k for k in table if k.lower() == alias.name.lower() and k != alias.name]:
                del table[old]
        entry = tomlkit.inline_table()
        entry["model"] = alias.model
        if alias.options:
            options = tomlkit.inline_table()  # built item by item: spaced as `{ a = 1, b = 2 }`
            for key, value in alias.options.items():
                options[key] = value
            entry["options"] = options
        set_in(doc, ["aliases", alias.name], entry)

    edit_config(change)


def delete_alias(name: str) -> Alias | None:
    """Remove the alias `name` (case-insensitive); the alias removed, or None when there was none."""

    def change(doc: TOMLDocument) -> Alias | None:
        table = doc.get("aliases")
        if not isinstance(table, dict):
            return None
        for key in list(table):
            if key.lower() == name.strip().lower():
                value = table[key]
                del table[key]
                if isinstance(value, str):
                    return Alias(key, value)
                unwrapped = value.unwrap() if hasattr(value, "unwrap") else dict(value)
                return Alias(key, str(unwrapped.get("model", "")), dict(unwrapped.get("options", {})))
        return None

    return edit_config(change)
