"""Reading registry files, layering them, and caching what validated.

Layers, lowest first: the built-in registry shipped in the package, the generated layer that
`modelctl registry update` writes in the data dir, the user's registry in the config dir, then
`--registry PATH` / `MODELCTL_REGISTRY`. A later entry with an existing id replaces that model
whole; the generated layer's `[[updates]]` change a few facts (prices, limits, lifecycle) of a
model below it and keep the rest. Any problem in any layer is fatal: the caller gets a
RegistryError listing every problem, never a silently skipped entry.

Parsing TOML is the slow part of start-up, so each file that validated is cached in the cache
dir, keyed by its path, size and modification time. The cache is lines of JSON: a header (the
fingerprint, a checksum of the rest, the layer's updates, each model's HEAD_KEYS and the secret
places of its deployments), each model's `list --json` object as printed, then each model's
table. The tables are split and parsed only when a model is asked for more than its head, so
`list --json` on a registry of thousands of models joins texts instead of building and encoding
objects.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union

from modelctl.config import MAX_TOML_BYTES, get_paths, parse_toml
from modelctl.errors import ModelctlError, NotFoundError, RegistryError
from modelctl.files import atomic_write, load_json, read_user_file, read_user_text
from modelctl.redaction import add_source
from modelctl.registry.model import HEAD_KEYS, Model, Tables
from modelctl.registry.registry import Registry, replacement_problems
from modelctl.version import __version__

if TYPE_CHECKING:
    from modelctl.registry.schema import Problem

# Bump when the cached form of a file changes; the schema module is only imported on a cache miss.
_CACHE_FORMAT = 3

# The generated layer's own top-level keys, besides schema_version and [[models]].
_GENERATED_KEYS = ("updates", "sources", "provenance")

BUILTIN_REGISTRY = Path(__file__).resolve().parent.parent / "registry.toml"


class LineIndex:
    """Finds the line of a key inside the n-th `[[models]]` block of a TOML text.

    tomllib keeps no positions, so this scans the text: good enough to point a person at the
    right place, and only built when there is something to report.
    """

    def __init__(self, text: str) -> None:
        header = re.compile(r"^\s*\[\[\s*models\s*\]\]")
        self._deployment = re.compile(r"^\s*\[\[\s*models\.deployments\s*\]\]")
        self.lines = text.splitlines()
        self.starts = [i for i, line in enumerate(self.lines) if header.match(line)]

    def find(self, model_index: int, key: str) -> int | None:
        if model_index >= len(self.starts):
            return None
        start = self.starts[model_index]
        end = self.starts[model_index + 1] if model_index + 1 < len(self.starts) else len(self.lines)
        m = re.match(r"deployments\[(\d+)\]\.?(.*)", key)
        if m:
            deps = [i for i in range(start, end) if self._deployment.match(self.lines[i])]
            n = int(m.group(1))
            if n < len(deps):
                start = deps[n]
                end = deps[n + 1] if n + 1 < len(deps) else end
            key = m.group(2)
        parts = [p for p in re.split(r"[.\[\]]", key) if p and not p.isdigit()]
        for name in reversed(parts):
            pattern = re.compile(rf"(^|[\s{{,])\"?{re.escape(name)}\"?\s*=|^\s*\[models\.{re.escape(name)}\]")
            for i in range(start, end):
                if pattern.search(self.lines[i]):
                    return i + 1
        return start + 1


def _cache_file(path: Path) -> Path:
    # The file name only has to be stable and distinct per path; the fingerprint inside decides freshness.
    name = re.sub(r"[^A-Za-z0-9]+", "-", path.stem)[:40]
    return get_paths().cache_dir / "registry" / f"{name}-{zlib.crc32(str(path).encode()):08x}.json"


def _fingerprint(path: Path, st: os.stat_result) -> str:
    return f"{__version__}:{_CACHE_FORMAT}:{path}:{st.st_size}:{st.st_mtime_ns}"


Layer = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # a file's raw models and updates
Places = tuple[list[str], list[str]]  # the variables a file's deployments read keys from, its secret addresses


class _Loaded(NamedTuple):
    """One validated file: its models, the generated layer's updates, its secret places."""

    models: list[Model]
    updates: list[dict[str, Any]]
    places: Places


def _tables(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) for m in value)


class _CachedTables(Tables):
    """The tables of a cached file, one JSON line each, parsed when asked for: one by one for the
    first few (`show` reads one), then all at once, which costs less than as many calls (a
    filter or a search reads every model's)."""

    ONE_BY_ONE = 16

    def __init__(self, block: memoryview) -> None:
        self._block = block
        self._lines: list[bytes] | None = None
        self._all: list[dict[str, Any]] | None = None
        self._asked = 0

    def table(self, index: int) -> dict[str, Any]:
        if self._all is None:
            self._asked += 1
            if self._asked <= self.ONE_BY_ONE:
                if self._lines is None:
                    self._lines = bytes(self._block).split(b"\n")
                one: dict[str, Any] = json.loads(self._lines[index])
                return one
            # A JSON line holds no line break: the lines joined by commas are one array.
            self._all = json.loads(b"".join((b"[", bytes(self._block).replace(b"\n", b","), b"]")))
        return self._all[index]


def _read_cache(path: Path, fingerprint: str) -> _Loaded | None:
    try:
        data = read_user_file(_cache_file(path), "registry cache", limit=8 * MAX_TOML_BYTES)
    except ModelctlError:  # absent or damaged (even a FIFO): parse the registry again
        return None
    end = data.find(b"\n")
    header = _cache_header(data[:end] if end >= 0 else data, fingerprint)
    body = memoryview(data)[end + 1:]
    if header is None or end < 0 or header["crc"] != zlib.crc32(body) or not 0 < header["tables_at"] <= len(body):
        return None
    heads, at, source = header["heads"], header["tables_at"], str(path)
    summaries = str(body[:at - 1], "utf-8").split("\n") if heads else []
    if len(summaries) != len(heads):
        return None
    tables = _CachedTables(body[at:])
    models = [Model.stored(h, tables, i, s, source) for i, (h, s) in enumerate(zip(heads, summaries))]
    variables, addresses = header["places"]
    return _Loaded(models, header["updates"], (variables, addresses))


def _cache_header(line: bytes, fingerprint: str) -> dict[str, Any] | None:
    """The cache's first line, when it is the header of this `fingerprint`, in its shape."""
    try:
        header = load_json(line, "the cache")
    except ModelctlError:
        return None
    if not isinstance(header, dict) or header.get("fingerprint") != fingerprint:
        return None
    places = header.get("places")
    if (isinstance(header.get("crc"), int) and isinstance(header.get("tables_at"), int) and _tables(header.get("heads")) and _tables(header.get("updates"))
            and isinstance(places, list) and len(places) == 2 and all(isinstance(p, list) for p in places)):
        return header
    return None


def _write_cache(path: Path, fingerprint: str, loaded: _Loaded) -> None:
    models = loaded.models
    summaries = "\n".join(m.unretired_summary_json() for m in models).encode("utf-8")
    body = summaries + b"\n" + "\n".join(json.dumps(m._raw, separators=(",", ":")) for m in models).encode("utf-8")
    header = {"fingerprint": fingerprint, "crc": zlib.crc32(body), "tables_at": len(summaries) + 1,
              "updates": loaded.updates,
              "heads": [{k: m._raw[k] for k in HEAD_KEYS if k in m._raw} for m in models],
              "places": loaded.places}
    try:
        atomic_write(_cache_file(path), json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n" + body)
    except OSError:
        pass  # a read-only cache dir only costs speed


def check_file(path: Path) -> "tuple[list[dict[str, Any]], list[Problem]]":
    """Parse and validate one registry file: (raw model tables, problems). Never raises."""
    models, _updates, problems = check_layer(path)
    return models, problems


def check_layer(path: Path, *, generated: bool | None = None) -> "tuple[list[dict[str, Any]], list[dict[str, Any]], list[Problem]]":
    """Parse and validate one registry file: (raw model tables, the generated layer's updates,
    problems). Only the generated layer (`generated`; by default the file at its place) may hold
    updates. Never raises."""
    from modelctl.registry.schema import SCHEMA_VERSION, Problem, validate_update  # noqa: PLC0415 (modelctl.registry.schema: not on the list --json path)

    file = str(path)
    try:
        text = read_user_text(path, "registry file", limit=MAX_TOML_BYTES, error=RegistryError)
    except NotFoundError:
        return [], [], [Problem(file, "file not found")]
    except ModelctlError as exc:
        return [], [], [Problem(file, str(exc).replace(f"registry file {file!r} ", "", 1))]
    try:
        doc = parse_toml(text, file)
    except ModelctlError as exc:
        message = str(exc).split("invalid TOML: ", 1)[-1]
        return [], [], [Problem(file, f"invalid TOML: {message}", line=_toml_error_line(message, text))]

    problems: list[Problem] = []
    generated = path == generated_registry() if generated is None else generated
    allowed = ("schema_version", "models", *(_GENERATED_KEYS if generated else ()))
    for key in doc:
        if key not in allowed:
            problems.append(Problem(file, "unknown top-level key (expected schema_version and [[models]])", key=key))
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        problems.append(Problem(file, f"unsupported schema_version {version!r} (this modelctl reads {SCHEMA_VERSION})",
                                key="schema_version"))
    updates = doc.get("updates", []) if generated else []
    if not isinstance(updates, list):
        problems.append(Problem(file, "`updates` must be an array of tables", key="updates"))
        updates = []
    for i, raw in enumerate(updates):
        problems.extend(validate_update(raw, file=file, index=i))
    return _check_models(doc, text, file, problems), updates, problems


def _check_models(doc: dict[str, Any], text: str, file: str, problems: "list[Problem]") -> list[dict[str, Any]]:
    """Validate the `[[models]]` of a parsed file into `problems`; the raw tables."""
    from modelctl.registry.schema import Problem, validate_model  # noqa: PLC0415 (modelctl.registry.schema: not on the list --json path)

    models = doc.get("models", [])
    if not isinstance(models, list):
        problems.append(Problem(file, "`models` must be an array of tables: write [[models]]", key="models"))
        return []

    index: LineIndex | None = None

    def find_line(model_index: int, key: str) -> int | None:
        nonlocal index
        if index is None:
            index = LineIndex(text)
        return index.find(model_index, key)

    seen: dict[str, int] = {}
    for i, raw in enumerate(models):
        problems.extend(validate_model(raw, file=file, index=i, find_line=find_line))
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(model_id, str):
            key = model_id.lower()
            if key in seen:
                problems.append(Problem(file, f"duplicate id (first defined as model #{seen[key] + 1})", model_id, "id",
                                        find_line(i, "id")))
            seen.setdefault(key, i)
    return models


def _toml_error_line(message: str, text: str) -> int | None:
    """The line a TOML error is at: as the parser said it, or that of the model's key it names
    (`models[2].context_window: an integer out of range`)."""
    line = re.search(r"\(at line (\d+)", message)
    if line:
        return int(line.group(1))
    key = re.match(r"models\[(\d+)\]\.([^:]+):", message)
    return LineIndex(text).find(int(key.group(1)), key.group(2)) if key else None


def load_file(path: Path) -> list[dict[str, Any]]:
    """The validated raw model tables of one file, from the cache when it is fresh."""
    return load_layer(path)[0]


def load_layer(path: Path) -> Layer:
    """The validated raw models and updates of one file, from the cache when it is fresh (each
    file, the generated layer too, is cached under its own path, size and modification time)."""
    loaded = _load(path)
    return [m._raw for m in loaded.models], loaded.updates


def _load(path: Path) -> _Loaded:
    """One file's models (as the cache keeps them when it is fresh), updates and secret places."""
    try:
        st = path.stat()
    except OSError:
        st = None
    fingerprint = _fingerprint(path, st) if st else ""
    if st:
        cached = _read_cache(path, fingerprint)
        if cached is not None:
            return cached
    models, updates, problems = check_layer(path)
    if problems:
        raise RegistryError(_summary(problems), problems=problems)
    loaded = _Loaded(build_model_list(models, str(path)), updates, _secret_places(models))
    if st:
        _write_cache(path, fingerprint, loaded)
    return loaded


def _summary(problems: "list[Problem]") -> str:
    first = str(problems[0])
    more = len(problems) - 1
    tail = ""
    if more:
        plural = "s" if more > 1 else ""
        tail = f" (and {more} more problem{plural}; run `modelctl registry validate {problems[0].file}`)"
    return f"invalid registry: {first}{tail}"


def build_model(raw: dict[str, Any], source: str) -> Model:
    """A Model from a validated raw table."""
    return Model(raw, source)


def build_model_list(raws: list[dict[str, Any]], source: str) -> list[Model]:
    return [build_model(raw, source) for raw in raws]


def registry_layers(extra: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files that make up the registry, lowest layer first."""

    layers = [BUILTIN_REGISTRY]
    for path in (generated_registry(), get_paths().user_registry):
        if path.exists():
            layers.append(path)
    if extra:
        layers.append(Path(extra).expanduser())
    return layers


def generated_registry() -> Path:
    """The layer `modelctl registry update` writes (`Paths.generated_registry`)."""
    return get_paths().generated_registry


def merge_layers(models: list[Model], updates: list[dict[str, Any]] | None = None) -> list[Model]:
    """Models of several layers, lowest first: a later model with an existing id replaces it
    (keeping its place). `updates` (the generated layer's) change the models before them, in
    list order, only where the table names a model already merged: pass each layer's models and
    updates through `merge_stack` for the order to hold."""
    return merge_stack([(models, updates or [])])


def merge_stack(layers: list[tuple[list[Model], list[dict[str, Any]]]]) -> list[Model]:
    """The models of layers given lowest first, each as (models, updates): a layer's updates
    change what the layers below it hold, then its models replace or add."""
    merged: dict[str, Model] = {}
    for models, updates in layers:
        for update in updates:
            key = str(update["id"]).lower()
            if key in merged:
                merged[key] = Model(apply_update(merged[key]._raw, update), merged[key].source)
        for model in models:
            merged[model.id.lower()] = model
    return list(merged.values())


def apply_update(raw: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """An entry with an update's facts: `access` merged key by key, other keys replaced."""
    patched = {**raw, **{k: v for k, v in update.items() if k not in ("id", "access")}}
    if "access" in update:
        patched["access"] = {**raw["access"], **update["access"]}
    return patched


def _secret_places(models: list[dict[str, Any]]) -> Places:
    """For redaction: the variables the models' deployments read keys from, and the addresses
    they hold whose passwords are secrets too."""
    deployments = [d for m in models for d in m.get("deployments", ())]
    variables = {d["key_env"] for d in deployments if d.get("key_env")}
    addresses = {str(d[k]) for d in deployments for k in ("api_base", "endpoint", "host") if d.get(k)}
    return sorted(variables), sorted(a for a in addresses if "@" in a or "?" in a)


def load_registry(extra: str | os.PathLike[str] | None = None) -> "Registry":
    """The merged registry. Raises RegistryError listing every problem of any layer."""

    layers = registry_layers(extra)
    loaded = [_load(path) for path in layers]
    add_source("registry", lambda: ([v for f in loaded for v in f.places[0]], [a for f in loaded for a in f.places[1]]))
    return Registry(merge_stack([(f.models, f.updates) for f in loaded]), [str(p) for p in layers])


# Where a library function gets the registry it looks names up in (its keyword argument
# `registry`): a loaded Registry, a function that returns one (called only when a name must be
# looked up: the CLI passes its own, so a command that never needs the registry never loads it),
# or None for `load_registry()` (the built-in registry under the user's).
RegistrySource = Union["Registry", Callable[[], "Registry"], None]


def get_registry(source: RegistrySource) -> "Registry":
    """The registry `source` stands for (see RegistrySource)."""
    if source is None:
        return load_registry()
    return source() if callable(source) else source


def validate_files(files: list[Path], today: str | None = None) -> "tuple[list[Model], list[Problem]]":
    """Check registry files as layers, lowest first, without the cache: (merged models, every
    problem). Aliases must be unique across the layers too. Replacement chains must end in a model
    not retired on `today` (the real date by default), without a loop; a file checked without
    the built-in registry may name the built-in models. Never raises for bad content."""

    problems: list[Problem] = []
    stack: list[tuple[list[Model], list[dict[str, Any]]]] = []
    for path in files:
        raw, updates, found = check_layer(Path(path))
        problems.extend(found)
        if not found:
            stack.append((build_model_list(raw, str(path)), updates))
    merged = merge_stack(stack)
    if not problems:
        try:
            registry = Registry(merged, [str(f) for f in files], check_replacements=False)
        except RegistryError as exc:
            problems.extend(exc.problems)
        else:
            problems.extend(replacement_problems(merged, _with_builtin(registry, files), today))
    return merged, problems


def _with_builtin(registry: "Registry", files: list[Path]) -> "Callable[[str], Model | None]":
    """Name lookup in `registry`, then (when `files` leave it out) in the built-in registry,
    which every loaded registry has below the user's files."""
    if any(Path(f).resolve() == BUILTIN_REGISTRY.resolve() for f in files):
        return registry.get

    builtin: list[Registry] = []

    def lookup(name: str) -> Model | None:
        found = registry.get(name)
        if found is None:
            if not builtin:
                models = build_model_list(load_file(BUILTIN_REGISTRY), str(BUILTIN_REGISTRY))
                builtin.append(Registry(models, check_replacements=False))
            found = builtin[0].get(name)
        return found

    return lookup
