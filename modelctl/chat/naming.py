"""Naming models the user's way: aliases, and the model of a `models.MODEL.KEY` config key,
checked against the registry, the imported files and the file system before they are saved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelctl.chat.settings import check_alias_option
from modelctl.config_edit import parse_value
from modelctl.errors import UsageError
from modelctl.registry import get_registry
from modelctl.registry.aliases import Alias, check_alias_name, find_alias, write_alias
from modelctl.resolver import Resolver
from modelctl.store.locate import find_import

if TYPE_CHECKING:
    from modelctl.registry import RegistrySource


def canonical_model_key(parts: list[str], registry: "RegistrySource") -> list[str]:
    """`parts` with the model of a `models.MODEL.…` key spelled as its registry id (an unknown
    model is a NotFoundError with suggestions): per-model defaults are looked up by that id."""
    if len(parts) >= 2 and parts[0] == "models":
        reg = get_registry(registry)
        entry = reg.get(parts[1]) or reg.resolve(parts[1])
        return ["models", entry.id, *parts[2:]]
    return parts


def define_alias(name: str, model: str, options: list[str], *, force: bool = False,
                 registry: "RegistrySource" = None) -> "Alias":
    """Save the alias `name` for `model` with `options` (`KEY=VALUE`, values parsed as TOML).

    `model` is a registry id or alias (stored as the id), a name given to `modelctl import`, or
    a GGUF path (stored absolute). A name the registry or an import already uses is refused
    unless `force`: an alias shadows nothing silently."""

    check_alias_name(name)
    reg = get_registry(registry)
    if not force:
        taken = reg.get(name)
        if taken is not None:
            raise UsageError(f"'{name}' is already a name of the registry model '{taken.id}'",
                             hint="choose another name, or pass --force to shadow it")
        if find_import(name) is not None:
            raise UsageError(f"'{name}' is already the name of an imported model file",
                             hint="choose another name, or pass --force to shadow it")
    other = find_alias(model)
    if other is not None and other.name.lower() != name.lower():
        raise UsageError(f"'{model}' is itself an alias (of {other.model}); an alias names a model directly",
                         hint=f"modelctl alias set {name} {other.model}")
    found = Resolver(reg, check=False, locate=False).resolve(model, aliases=False)
    # Saved as it will be looked up again: a file by its absolute path, a registry model by its id.
    target = str(found.path.resolve()) if found.source == "file" and found.path else \
        found.model_id if found.source == "registry" else found.ref.text
    parsed: dict[str, Any] = {}
    for pair in options:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {pair!r}: expected KEY=VALUE")
        parsed[key.strip()] = check_alias_option(key.strip(), parse_value(text))
    alias = Alias(name, target, parsed)
    write_alias(alias)
    return alias
