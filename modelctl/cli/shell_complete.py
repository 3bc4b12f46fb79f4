"""Candidates for shell completion: model names, templates, aliases, sessions, option values.

This runs on every <TAB>, so it must feel instant: it imports only the standard library and
reads one small file, `<cache_dir>/completion.json`. That file holds every name a completion may
offer (registry ids and aliases, providers, user aliases, imported models, templates, the
vocabularies of --kind, --task, --sort, --quant) and the fingerprint (path, size, mtime) of every
file they came from: the registry layers, config.toml and the store index. When one of those
changed, it is rebuilt once, from the registry loader's own cache of parsed files, so neither
llama.cpp nor jinja2, rich or httpx is imported, and a registry is parsed at most once.

Every callback offers nothing rather than fail: a traceback must never reach the shell. Only a
regular file of a bounded size is read as the cache (a FIFO or a device put in its place is
never opened for reading); anything else there, or a cache that is not what this module writes,
is rebuilt.

Candidates are data from files a user may not have written (a downloaded registry): a value
holding a control character, a line or paragraph separator cannot be offered as one literal
word, so it is not offered at all (`offerable`); the shells quote every other one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from modelctl.errors import ModelctlError
from modelctl.terminal_text import CONTROLS, REORDERING, SURROGATES, char_class
from modelctl.version import __version__

_FORMAT = 2  # raised when the cache's shape changes (a group added), so that older caches are rebuilt
# Shown values are a prefix match of what was typed; a 10,000-model registry would flood the shell.
MAX_CANDIDATES = 500
# The cache of a 10,000-model registry is about 1 MiB.
CACHE_LIMIT = 32 * 2**20
# C0 and C1 controls (newline, tab, escape, …), line/paragraph separators, bidirectional
# overrides, lone surrogates.
_UNOFFERABLE = char_class(CONTROLS, REORDERING, SURROGATES)


def offerable(value: str) -> bool:
    """Whether `value` can be offered to a shell as one word, taken literally."""
    return bool(value) and _UNOFFERABLE.search(value) is None


def _sources(ctx: Any) -> tuple[list[Path], list[Path]]:
    """The files the candidates come from: (the registry layers, lowest first, as
    `registry.loader.registry_layers` lists them, and the user's own files)."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)

    paths = get_paths()
    extra = None
    try:
        extra = ctx.find_root().params.get("registry") if ctx is not None else None
    except AttributeError:
        pass
    extra = extra or os.environ.get("MODELCTL_REGISTRY")
    builtin = Path(__file__).resolve().parent.parent / "registry.toml"
    layers = [builtin, paths.generated_registry, paths.user_registry] + ([Path(extra).expanduser()] if extra else [])
    return layers, [paths.config_file, paths.data_dir / "store.json"]


def _fingerprint(files: list[Path]) -> list[Any]:
    key: list[Any] = [_FORMAT, __version__]
    for path in files:
        try:
            st = path.stat()
            key.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            key.append([str(path), None, None])
    return key


def _from_registry(layers: list[Path]) -> dict[str, Any]:
    """The candidates that come with the registry and with modelctl itself."""
    from modelctl.chat.settings import known_keys  # noqa: PLC0415 (modelctl.chat.settings: not on the --help path)
    from modelctl.engines.manifests import TARGETS  # noqa: PLC0415 (modelctl.engines: not on the --help path)
    from modelctl.registry.loader import load_file  # noqa: PLC0415 (modelctl.registry: not on the --help path)
    from modelctl.registry.query import SORT_KEYS  # noqa: PLC0415 (modelctl.registry: not on the --help path)
    from modelctl.registry.vocab import CATEGORIES, DEPLOYMENT_KINDS, ENGINES, TASKS  # noqa: PLC0415 (modelctl.registry: not on the --help path)
    from modelctl.store.quant import QUALITY_ORDER  # noqa: PLC0415 (modelctl.store: not on the --help path)
    from modelctl.templates import list_templates  # noqa: PLC0415 (modelctl.templates: not on the --help path)

    models: dict[str, list[str]] = {}
    providers: set[str] = set()
    for layer in (path for path in layers if path.is_file()):  # the layers `registry_layers` gives
        for raw in load_file(layer):  # the loader's cache of the parsed file, when fresh
            models[str(raw["id"]).lower()] = [raw["id"], *raw.get("aliases", [])]
            providers.add(str(raw.get("provider", "")))
    return {
        "models": [n for group in models.values() for n in group],
        "providers": sorted(p for p in providers if p),
        "templates": sorted({t.name for t in list_templates()}),
        "sort": [*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)],
        "kinds": list(DEPLOYMENT_KINDS), "tasks": list(TASKS), "categories": list(CATEGORIES),
        "quants": list(QUALITY_ORDER), "engines": list(ENGINES), "emit": list(TARGETS),
        "known_keys": [k for k in known_keys() if "MODEL" not in k and not k.endswith(".KEY")],
    }


def _from_user(files: list[Path]) -> dict[str, Any]:
    """The candidates from the user's files: aliases and keys of config.toml, imported models."""
    data: dict[str, Any] = {"aliases": [], "installed": [], "config": []}
    try:
        from modelctl.config import user_config  # noqa: PLC0415 (modelctl.config: not on the --help path)
        from modelctl.config_edit import flatten, join_key  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)

        config = user_config()
        aliases = config.get("aliases", {})
        data["aliases"] = sorted(aliases) if isinstance(aliases, dict) else []
        data["config"] = [join_key(parts) for parts, _ in flatten(config)]
    except Exception:
        pass  # a broken config.toml: its names are not offered
    try:
        from modelctl.store.index import read_index  # noqa: PLC0415 (modelctl.store: not on the --help path)

        index = read_index(files[1])
        data["installed"] = sorted({str(r.get("name")) for r in index["imports"] if r.get("name")}
                                   | {str(r.get("model_id")) for r in index["downloads"] if r.get("model_id")})
    except Exception:
        pass
    return data


def candidates(ctx: Any = None) -> dict[str, Any]:
    """Every candidate, from the cache file while its sources are unchanged. Its two parts are
    rebuilt apart: an alias set must not cost a pass over a 10,000-model registry."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)

    layers, user_files = _sources(ctx)
    keys = {"registry": _fingerprint(layers), "user": _fingerprint(user_files)}
    cache = get_paths().cache_dir / "completion.json"
    data = _read_cache(cache)
    stale = [part for part in keys if data.get(f"{part}_key") != keys[part] or not _is_part(data.get(part))]
    if not stale:
        return {**data["registry"], **data["user"]}
    for part in stale:
        data[part] = _from_registry(layers) if part == "registry" else _from_user(user_files)
        data[f"{part}_key"] = keys[part]
    try:
        from modelctl.files import atomic_write  # noqa: PLC0415 (modelctl.files: not on the --help path)

        atomic_write(cache, json.dumps(data, separators=(",", ":")).encode("utf-8"))
    except OSError:
        pass  # a read-only cache directory only costs speed
    return {**data["registry"], **data["user"]}


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache file's content; {} for a missing, odd (not a regular file, too large) or
    damaged one."""
    from modelctl.files import load_json, read_user_file  # noqa: PLC0415 (modelctl.files: not on the --help path)

    try:
        data = load_json(read_user_file(path, "completion cache", limit=CACHE_LIMIT), str(path))
    except ModelctlError:
        return {}
    return data if isinstance(data, dict) else {}


def _is_part(part: Any) -> bool:
    """Whether `part` is a part of the cache as written: lists of strings by name."""
    return isinstance(part, dict) and all(
        isinstance(values, list) and all(isinstance(v, str) for v in values) for values in part.values())


def _matching(values: list[str], incomplete: str) -> list[str]:
    """The values that start with `incomplete` (case-insensitively), each once, in order."""
    low = incomplete.lower()
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if value in seen or not offerable(value) or not value.lower().startswith(low):
            continue
        seen.add(value)
        # The shell matches what it shows against what was typed: keep the typed prefix's case
        # (where lower-casing keeps lengths: 'İ' becomes two characters).
        same = value[:len(incomplete)].lower() == low
        out.append(incomplete + value[len(incomplete):] if same else value)
        if len(out) >= MAX_CANDIDATES:
            break
    return out


def _offer(*groups: str) -> Callable[..., list[str]]:
    """A completion callback offering the named groups of candidates."""
    # typer reads these annotations when the command is built: `ctx` is passed by its name
    def complete(ctx: Any, incomplete: str) -> list[str]:
        try:
            data = candidates(ctx)
            return _matching([v for group in groups for v in data.get(group, [])], incomplete)
        except Exception:
            return []

    return complete


models = _offer("aliases", "models", "installed")
templates = _offer("templates")
sort_keys = _offer("sort")
kinds = _offer("kinds")
tasks = _offer("tasks")
categories = _offer("categories")
providers = _offer("providers")
quants = _offer("quants")
engines = _offer("engines")
emit_targets = _offer("emit")
aliases = _offer("aliases")
config_keys = _offer("config", "known_keys")  # those set in config.toml, then every known key


def sessions(incomplete: str) -> list[str]:
    """Names of saved chat sessions, from the history database when there is one."""
    try:
        import sqlite3  # noqa: PLC0415 (sqlite3: optional)

        from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)

        db = get_paths().history_db
        if not db.is_file():
            return []
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=0.2)
        try:
            rows = con.execute("SELECT name FROM conversations WHERE name IS NOT NULL ORDER BY name").fetchall()
        finally:
            con.close()
        return _matching([str(r[0]) for r in rows], incomplete)
    except Exception:
        return []
