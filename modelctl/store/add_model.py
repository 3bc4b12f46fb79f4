"""`modelctl add`: a model served somewhere, described in one line, saved in the user registry.

`NewModel` is what the user gave (an id, the server's address, a few facts); `entry_for` turns
it into a minimal `[[models]]` table (docs/registry-format.md) with everything else defaulted;
`add_model` checks it (the registry's own validator, credentials, the names already taken in
every layer) and writes it through `user_registry.save_entry`: under the file's lock, atomically,
the file's other entries and comments left as they are. Every refusal is a UsageError naming
the flag, and leaves the file untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelctl.config import get_paths
from modelctl.errors import UsageError
from modelctl.redaction import refuse_credentials
from modelctl.registry import BUILTIN_REGISTRY, get_registry
from modelctl.registry.aliases import find_alias
from modelctl.registry.schema import DEPLOYMENT_KEYS, validate_model
from modelctl.registry.vocab import LOCAL_KINDS, is_local, today_iso
from modelctl.store.locate import find_import
from modelctl.store.user_registry import save_entry
from modelctl.terminal_text import CONTROLS, REORDERING, char_class
from modelctl.transport.urls import check_url

if TYPE_CHECKING:
    from modelctl.registry import Model, Registry, RegistrySource
    from modelctl.registry.schema import Problem

DEFAULT_KIND = "openai-compatible"
LOCAL_PROVIDER = "Local server"

# Where a kind keeps the server's address and the model's name on the server, first that the
# kind takes (DEPLOYMENT_KEYS): an Ollama deployment has a `host` and a `tag`, Azure an `endpoint`.
_URL_KEYS = ("api_base", "host", "endpoint")
_NAME_KEYS = ("model", "tag")

# Characters that change what a terminal shows (C0 and C1 controls, DEL, line and paragraph
# separators, bidirectional overrides): refused in every name typed here.
_INVISIBLE = char_class(CONTROLS, REORDERING)
_MAX_NAME = 200


@dataclass(frozen=True)
class NewModel:
    """What `modelctl add` was given. Prices are USD per 1M tokens."""

    id: str
    api_base: str
    kind: str = DEFAULT_KIND
    model: str | None = None  # the model's name on the server; the id's last path part if None
    context_window: int | None = None
    max_output_tokens: int | None = None
    cost_input: float | None = None
    cost_output: float | None = None
    name: str | None = None
    aliases: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ("chat",)
    engine: str | None = None  # the serving engine at api_base (vocab.ENGINES)


@dataclass(frozen=True)
class Added:
    """The entry as written, where, and what it replaced or shadows."""

    entry: dict[str, Any]
    path: Path
    replaced: bool = False  # an entry of the user registry with this id
    shadows: str | None = None  # the registry file whose model of this id the new one hides


# The key of a problem the validator reports -> the flag that gave its value.
_FLAGS = {
    "id": "ID", "name": "--name", "aliases": "--alias", "tasks": "--task", "context_window": "--context",
    "max_output_tokens": "--max-output", "access.cost_input": "--price-in", "access.cost_output": "--price-out",
    "deployments[0].kind": "--kind", "deployments[0].engine": "--engine",
    **{f"deployments[0].{k}": "--api-base" for k in _URL_KEYS},
    **{f"deployments[0].{k}": "--model" for k in _NAME_KEYS},
}


def provider_for(url: str) -> str:
    """Who serves the model, from its address: "Local server" on a loopback address, else the
    host without a leading `api.` or `www.` (`https://api.groq.com/openai/v1` -> groq.com)."""

    if is_local({"kind": DEFAULT_KIND, "api_base": url}):
        return LOCAL_PROVIDER
    host = (urlsplit(url).hostname or url).rstrip(".")
    return re.sub(r"^(?:api|www)\.(?=.+\.)", "", host)


def entry_for(spec: NewModel, today: str) -> dict[str, Any]:
    """The `[[models]]` table for `spec`, before any check (the validator has its say after)."""

    required, optional = DEPLOYMENT_KEYS.get(spec.kind, ((), ()))
    keys = required + optional
    dep: dict[str, Any] = {"kind": spec.kind}
    name_key = next((k for k in _NAME_KEYS if k in keys), "model")
    dep[name_key] = spec.model if spec.model is not None else spec.id.rsplit("/", 1)[-1]
    dep[next((k for k in _URL_KEYS if k in keys), "api_base")] = spec.api_base
    if spec.engine is not None:
        dep["engine"] = spec.engine
    local = is_local(dep)
    priced = spec.cost_input is not None or spec.cost_output is not None
    access: dict[str, Any] = {"free_tier": local and not priced, "local_capable": local}
    for key, price in (("cost_input", spec.cost_input), ("cost_output", spec.cost_output)):
        if price is not None:
            access[key] = price
    if priced:
        access["prices_as_of"] = today
    entry: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name if spec.name is not None else spec.id,
        "provider": provider_for(spec.api_base),
        "category": "foundation",
        "tasks": list(spec.tasks),
    }
    if spec.aliases:
        entry["aliases"] = list(spec.aliases)
    if spec.context_window is not None:
        entry["context_window"] = spec.context_window
    if spec.max_output_tokens is not None:
        entry["max_output_tokens"] = spec.max_output_tokens
    # Nothing is known of the licence; a model run by Ollama has its weights here.
    entry["license"] = {"name": "unknown", "open_weights": spec.kind in LOCAL_KINDS}
    entry["access"] = access
    entry["deployments"] = [dep]
    return entry


def add_model(spec: NewModel, *, force: bool = False, registry: "RegistrySource" = None,
              today: str | None = None, dry_run: bool = False) -> Added:
    """Check `spec` and save its entry in the user registry (see the module's notes). An id
    the registry already has is refused unless `force`, which replaces an entry of the user
    registry, or shadows a built-in model (`Added.shadows`). `dry_run`: every check, nothing
    written."""

    _check_names(spec)
    path = get_paths().user_registry
    _refuse_credentials(spec, path)
    if spec.kind == "llama.cpp":
        raise UsageError("--kind llama.cpp: a GGUF model is added with `modelctl pull hf:OWNER/REPO` "
                         "or `modelctl import PATH.gguf`, not with an address")
    check_url(spec.api_base, "--api-base")  # first: the entry is made from the address taken apart
    entry = entry_for(spec, today or today_iso())
    _validate(entry, path)
    taken = _taken(spec, get_registry(registry), path, force)
    if not dry_run:
        save_entry(entry, existing="replace" if force else "refuse")
    replaced = taken is not None and Path(taken.source) == path
    return Added(entry, path, replaced, None if taken is None or replaced else taken.source)


def _check_names(spec: NewModel) -> None:
    """An id, alias or name that could not be typed, shown or told from a path is refused."""
    _check_name("ID", spec.id)
    for alias in spec.aliases:
        _check_name("--alias", alias)
    if spec.id.endswith("/") or spec.id.startswith(("/", "./", "../", "~")) or spec.id.lower().endswith(".gguf"):
        raise UsageError(f"ID {spec.id!r}: reads as a file path; give a model name such as my-org/my-model")
    if spec.id.lower().startswith("hf:") or spec.id.lower() == "auto":
        raise UsageError(f"ID {spec.id!r}: `-m {spec.id}` means something else (a Hugging Face repository, "
                         "or the automatic choice); choose another id")
    for flag, text in (("--name", spec.name), ("--model", spec.model)):
        if text is not None:
            _check_text(flag, text)


def _check_name(flag: str, name: str) -> None:
    _check_text(flag, name)
    if re.search(r"\s", name):
        raise UsageError(f"{flag} {name!r}: a model name has no white space (it is typed after -m)")


def _check_text(flag: str, text: str) -> None:
    if not text.strip():
        raise UsageError(f"{flag} needs a value; it was given an empty one")
    bad = _INVISIBLE.search(text)
    if bad:
        raise UsageError(f"{flag} {text[:60]!r}: holds the control character {bad.group()!r}")
    if len(text) > _MAX_NAME:
        raise UsageError(f"{flag}: {len(text):,} characters is too long (at most {_MAX_NAME})")


def _refuse_credentials(spec: NewModel, path: Path) -> None:
    for flag, value in (("--api-base", spec.api_base), ("--name", spec.name), ("--model", spec.model),
                        ("ID", spec.id), ("--alias", list(spec.aliases))):
        refuse_credentials(flag, value, where=str(path))


def _validate(entry: dict[str, Any], path: Path) -> None:
    """The registry's own validator on the entry; its first problem, as a usage error."""

    problems = validate_model(entry, file=str(path), index=0, find_line=lambda index, key: None)
    if problems:
        raise UsageError(_problem_message(problems[0], entry))


def _problem_message(problem: "Problem", entry: dict[str, Any]) -> str:
    key = problem.key or ""
    kind = entry["deployments"][0]["kind"]
    if key.startswith("deployments[0].") and problem.message.startswith("missing"):
        field_name = key.split(".", 1)[1]
        return (f"--kind {kind} needs `{field_name}`, which `modelctl add` does not set: write the entry in "
                f"{problem.file} by hand (see docs/registry-format.md)")
    flag = _FLAGS.get(key) or _FLAGS.get(key.split("[", 1)[0]) or key
    return f"{flag}: {problem.message}"


def _taken(spec: NewModel, reg: "Registry", path: Path, force: bool) -> "Model | None":
    """The model of the registry whose id is `spec.id`, if `force` lets it be replaced or
    shadowed; a UsageError for a name already taken otherwise (an alias of another model, a user
    alias or an imported file's name, a model of a layer above the user registry)."""

    for name in (spec.id, *spec.aliases):
        user_alias = find_alias(name)
        if user_alias is not None:
            raise UsageError(f"'{name}' is your alias of {user_alias.model}, which would still win over the new model",
                             hint=f"remove it first: modelctl alias rm {user_alias.name}")
        other = reg.get(name)
        if other is not None and other.id.lower() != spec.id.lower():
            raise UsageError(f"'{name}' is already a name of the registry model '{other.id}'",
                             hint="choose another name")
    if not force and find_import(spec.id) is not None:
        raise UsageError(f"'{spec.id}' is already the name of an imported model file",
                         hint="choose another id, or pass --force to shadow it")
    model = reg.get(spec.id)
    if model is None:
        return None
    source = Path(model.source)
    if source not in (path, BUILTIN_REGISTRY):  # --registry PATH, over the user registry
        raise UsageError(f"'{spec.id}' is defined in {model.source}, layered over {path}: an entry added there "
                         "would not be used", hint="edit that file instead")
    if not force:
        where = "your registry" if source == path else "the registry"
        raise UsageError(f"'{spec.id}' is already a model of {where} ({model.source})",
                         hint="choose another id, or pass --force to " + ("replace it" if source == path else "shadow it"))
    return model
