"""What is on this machine: the local index of models, from four places.

    installed_models(*, registry=None) -> list[InstalledModel]
    find_installed(name, *, registry=None) -> InstalledModel | None   (a name as listed, or hf:…)

- `modelctl`: GGUF files modelctl downloaded (recorded in its index, stored in the Hugging Face
  cache), and files in modelctl's models directory (the model shipped as a Python package);
- `hf-cache`: other GGUF files in the Hugging Face cache (downloaded by other tools);
- `import`: files registered with `modelctl import` (they stay where they are);
- `ollama`: models on the Ollama server (`OLLAMA_HOST`), when it answers.

Each entry names the registry model it belongs to when the registry (`registry`: a `Registry`, a
function returning one, or None for `load_registry()`; one that cannot be loaded names none) knows the file (a llama.cpp
deployment's repo and file name, a package's file, an Ollama tag). A sharded GGUF is one entry:
its first shard's path, the size of all its shards. A sharded GGUF missing some of its shards in
its snapshot (a pull that stopped halfway) is not a usable model: it is not listed here, and
`partial_downloads()` (what `du` counts as unfinished) reports it with the shards it lacks.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator

from modelctl.config import get_paths
from modelctl.errors import ModelctlError, NotFoundError
from modelctl.gguf import read_metadata
from modelctl.refs import is_hub_spec, parse_hub
from modelctl.registry import get_registry
from modelctl.store import ollama_pull
from modelctl.store.hub import free_space
from modelctl.store.index import read_index
from modelctl.store.paths import hf_cache_dir, repo_folder
from modelctl.store.quant import (
    SHARD,
    Candidate,
    choose_quant,
    file_type_name,
    memory_budget,
    normalize,
    quant_from_filename,
    shard_names,
)
from modelctl.transport.ollama_server import normalize_tag, ollama_host

if TYPE_CHECKING:
    from modelctl.registry import Registry, RegistrySource

SOURCES = ("modelctl", "hf-cache", "import", "ollama")


@dataclass
class InstalledModel:
    name: str  # what to show: a model id, repo/file, an import name, an Ollama tag
    path: str | None  # the GGUF file (the first shard); None for Ollama models
    size_bytes: int
    quant: str | None
    source: str  # one of SOURCES
    model_id: str | None = None
    repo: str | None = None
    filename: str | None = None
    files: list[str] = field(default_factory=list)
    role: str = "model"  # model | mmproj
    missing: bool = False  # an imported file that is gone
    host: str | None = None  # Ollama

    def to_dict(self) -> dict[str, Any]:
        """The `list --installed --json` object (sizes in bytes): `id` is the name every command
        takes for it, `registry_id` the registry model it belongs to."""
        data = asdict(self)
        data = {"id": data.pop("name"), **data}
        data["registry_id"] = data.pop("model_id")
        if self.host is None:
            del data["host"]
        if not self.missing:
            del data["missing"]
        return data


@dataclass(frozen=True)
class CachedFile:
    repo: str
    filename: str
    commit: str
    path: Path  # snapshots/<commit>/<filename>
    blob: Path  # what it links to
    size: int


IdQuant = tuple[str, str]  # a registry file's (model id, quant)


def registry_maps(registry: "Registry | None") -> tuple[dict[tuple[str, str], IdQuant], dict[str, IdQuant],
                                                        dict[str, str]]:
    """(repo, file name) -> (model id, quant); file name -> same; Ollama tag -> model id."""
    by_repo: dict[tuple[str, str], IdQuant] = {}
    by_name: dict[str, IdQuant] = {}
    by_tag: dict[str, str] = {}
    if registry is None:
        return by_repo, by_name, by_tag

    for model in registry:
        for dep in model.deployments:
            if dep.kind == "llama.cpp":
                for f in dep.files:
                    names = [f.filename, *f.shards]
                    for n in names:
                        if dep.repo:
                            by_repo.setdefault((dep.repo.lower(), n), (model.id, f.quant))
                        by_name.setdefault(os.path.basename(n).lower(), (model.id, f.quant))
                if dep.mmproj and dep.repo:
                    by_repo.setdefault((dep.repo.lower(), dep.mmproj), (model.id, "mmproj"))
            elif dep.kind == "ollama" and dep.tag:
                by_tag.setdefault(normalize_tag(dep.tag), model.id)
    return by_repo, by_name, by_tag


def _load_registry(source: "RegistrySource") -> "Registry | None":
    """The registry, or None when it cannot be loaded (the listing does without)."""

    try:
        return get_registry(source)
    except ModelctlError:
        return None


def scan_hf_cache(cache: Path | None = None, *, suffix: str = ".gguf", repo: str | None = None) -> Iterator[CachedFile]:
    """Every `*.gguf` in the Hugging Face cache's model snapshots (each blob once, newest first);
    with `repo`, only that repository's."""

    cache = cache or hf_cache_dir()
    try:
        if repo is not None:
            folder = repo_folder(repo, cache)
            repos = [folder] if folder.is_dir() else []
        else:
            repos = sorted(p for p in cache.iterdir() if p.name.startswith("models--") and p.is_dir())
    except (OSError, ModelctlError):  # an unreadable cache; a repo id that cannot name a folder
        return
    for storage in repos:
        parts = storage.name.split("--")
        if len(parts) < 3:
            continue
        repo = f"{parts[1]}/{'--'.join(parts[2:])}"
        snapshots = storage / "snapshots"
        try:
            snaps = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            continue
        seen: set[str] = set()
        for snap in snaps:
            for root, _dirs, files in os.walk(snap):
                for name in sorted(files):
                    if not name.lower().endswith(suffix):
                        continue
                    path = Path(root) / name
                    blob = Path(os.path.realpath(path))
                    if str(blob) in seen:
                        continue
                    try:
                        size = blob.stat().st_size
                    except OSError:
                        continue  # a dangling link
                    seen.add(str(blob))
                    rel = path.relative_to(snap).as_posix()
                    yield CachedFile(repo, rel, snap.name, path, blob, size)


def partial_downloads(cache: Path | None = None) -> list[dict[str, Any]]:
    """Unfinished downloads in the Hugging Face cache: interrupted ones (`blobs/*.incomplete`),
    and sharded GGUFs missing some of their shards (with `missing_shards`)."""

    cache = cache or hf_cache_dir()
    out: list[dict[str, Any]] = []
    try:
        storages = [p for p in cache.iterdir() if p.name.startswith("models--")]
    except OSError:
        return out
    for storage in sorted(storages):
        parts = storage.name.split("--")
        repo = f"{parts[1]}/{'--'.join(parts[2:])}" if len(parts) >= 3 else storage.name
        for p in sorted((storage / "blobs").glob("*.incomplete")):
            try:
                out.append({"repo": repo, "path": str(p), "size_bytes": p.stat().st_size})
            except OSError:
                pass
    for group, missing in _cached_groups(cache):
        if missing:
            out.append({"repo": group[0].repo, "path": str(group[0].path),
                        "size_bytes": sum(f.size for f in group), "missing_shards": missing})
    return out


def _quant_of(path: Path, name: str) -> str | None:
    q = quant_from_filename(name)
    if q:
        return q
    try:
        return file_type_name(read_metadata(path).get("general.file_type"))
    except ModelctlError:
        return None


def _group_shards(files: list[CachedFile]) -> list[list[CachedFile]]:
    groups: dict[tuple[str, str, str], list[CachedFile]] = {}
    order: list[tuple[str, str, str]] = []
    for f in files:
        key = (f.repo, f.commit, SHARD.sub("", f.filename))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(f)
    return [sorted(groups[k], key=lambda f: f.filename) for k in order]


def _missing_shards(group: list[CachedFile]) -> list[str]:
    """The shards of the group's series that its snapshot lacks (llama.cpp looks for them there)."""

    first = group[0]
    snapshot = first.path.parents[len(PurePosixPath(first.filename).parts) - 1]
    return [n for n in shard_names(first.filename) if not (snapshot / n).is_file()]


def _cached_groups(cache: Path | None = None, repo: str | None = None) -> list[tuple[list[CachedFile], list[str]]]:
    """Every GGUF in the Hugging Face cache (a sharded one as one group), with its missing shards."""
    return [(group, _missing_shards(group)) for group in _group_shards(list(scan_hf_cache(cache, repo=repo)))]


def hf_cache_models(registry: "Registry | None" = None, index: dict[str, Any] | None = None, *,
                    repo: str | None = None) -> list[InstalledModel]:
    """The usable GGUFs in the Hugging Face cache (with `repo`, only that repository's)."""

    index = index if index is not None else read_index()
    by_repo, _by_name, _ = registry_maps(registry)
    ours = {(d.get("repo", "").lower(), d.get("filename")): d for d in index["downloads"]}
    out = []
    for group, missing in _cached_groups(repo=repo):
        if missing:
            continue  # not usable; partial_downloads() reports it
        first = group[0]
        key = (first.repo.lower(), first.filename)
        record = ours.get(key)
        model_id, quant = by_repo.get(key, (None, None))
        if record is not None:
            model_id = model_id or record.get("model_id")
            quant = quant or record.get("quant")
        role = "mmproj" if quant == "mmproj" or os.path.basename(first.filename).lower().startswith("mmproj") else "model"
        if quant == "mmproj":
            quant = None
        out.append(InstalledModel(
            name=model_id or f"{first.repo}/{first.filename}",
            path=str(first.path),
            size_bytes=sum(f.size for f in group),
            quant=quant or _quant_of(first.path, first.filename),
            source="modelctl" if record is not None else "hf-cache",
            model_id=model_id,
            repo=first.repo,
            filename=first.filename,
            files=[str(f.path) for f in group],
            role=role,
        ))
    return out


def models_dir_models(registry: "Registry | None" = None) -> list[InstalledModel]:
    _, by_name, _ = registry_maps(registry)
    root = get_paths().models_dir
    out: list[InstalledModel] = []
    try:
        files = sorted(p for p in root.rglob("*.gguf") if p.is_file())
    except OSError:
        return out
    for p in files:
        model_id, quant = by_name.get(p.name.lower(), (None, None))
        out.append(InstalledModel(
            name=model_id or p.name, path=str(p), size_bytes=p.stat().st_size,
            quant=quant or _quant_of(p, p.name), source="modelctl", model_id=model_id,
            filename=p.name, files=[str(p)],
        ))
    return out


def imported_models(index: dict[str, Any] | None = None) -> list[InstalledModel]:
    index = index if index is not None else read_index()
    out = []
    for rec in index["imports"]:
        path = Path(rec.get("path", ""))
        exists = path.is_file()
        out.append(InstalledModel(
            name=rec.get("name") or path.name, path=str(path),
            size_bytes=path.stat().st_size if exists else 0,
            quant=rec.get("quant"), source="import", model_id=rec.get("model_id"),
            filename=path.name, files=[str(path)], missing=not exists,
        ))
    return out


def ollama_installed(registry: "Registry | None" = None, host: str | None = None) -> list[InstalledModel]:
    """Models on the Ollama server; [] when it does not answer."""

    _, _, by_tag = registry_maps(registry)
    try:
        models = ollama_pull.list_models(host)
    except ModelctlError:
        return []
    h = ollama_host(host)
    return [
        InstalledModel(
            name=m.name, path=None, size_bytes=m.size, quant=m.quant, source="ollama",
            model_id=by_tag.get(normalize_tag(m.name)), host=h,
        )
        for m in models
    ]


def find_installed(name: str, *, registry: "RegistrySource" = None) -> InstalledModel | None:
    """The GGUF on this machine that `name` names without a registry entry, found with no network
    call (so every name `list --installed` shows for a file works wherever a model is named):

    - `hf:OWNER/REPO[:QUANT]` or `OWNER/REPO[:QUANT]`: a model file of that repository in the
      Hugging Face cache; with QUANT, that quantization, without it the one `pull` would choose
      among those cached;
    - `OWNER/REPO/FILE.gguf`: that file in the Hugging Face cache (the name of a GGUF another
      tool downloaded);
    - `FILE.gguf`: that file in modelctl's models directory.

    None when `name` has none of these forms or nothing of it is here; NotFoundError when the
    repository is here but not in the quantization asked for."""

    name = name.strip()
    if name.startswith(("/", ".", "~")):  # a path, not a name
        return None
    quant: str | None = None
    filename: str | None = None
    parts = name.split("/")
    if is_hub_spec(name):
        hub = parse_hub(name)
        repo, quant = hub.repo, hub.quant
    elif len(parts) == 2:
        repo, _, quant = name.partition(":")
    elif len(parts) > 2 and name.lower().endswith(".gguf"):
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    elif len(parts) == 1 and name.lower().endswith(".gguf"):
        return next((m for m in models_dir_models(_load_registry(registry))
                     if (m.filename or "").lower() == name.lower()), None)
    else:
        return None
    found = [m for m in hf_cache_models(_load_registry(registry), repo=repo) if m.role == "model"]
    if filename is not None:
        return next((m for m in found if m.filename == filename), None)
    if quant:
        wanted = [m for m in found if m.quant and normalize(m.quant) == normalize(quant)]
        if not wanted and found:
            here = ", ".join(sorted({m.quant or str(m.filename) for m in found}))
            raise NotFoundError(f"{repo} is here, but not in {quant} (here: {here})",
                                hint=f"modelctl pull hf:{repo}:{quant}")
        return wanted[0] if wanted else None
    if len(found) <= 1:
        return found[0] if found else None

    label = {(m.quant or str(m.filename)): m for m in found}
    choice = choose_quant([Candidate(q, m.size_bytes) for q, m in label.items()], memory_budget())
    return label[choice.quant]


def installed_models(*, include_ollama: bool = True, registry: "RegistrySource" = None) -> list[InstalledModel]:
    """Every model present locally (see the module docstring)."""

    loaded = _load_registry(registry)
    index = read_index()
    found = hf_cache_models(loaded, index) + models_dir_models(loaded) + imported_models(index)
    if include_ollama:
        found += ollama_installed(loaded)
    return found


def disk_usage(*, include_ollama: bool = True, registry: "RegistrySource" = None) -> dict[str, Any]:
    """`modelctl du`: installed models, partial downloads, totals per source, free space."""

    models = installed_models(include_ollama=include_ollama, registry=registry)
    partial = partial_downloads()
    totals = {s: 0 for s in SOURCES}
    for m in models:
        totals[m.source] += m.size_bytes
    totals["partial"] = sum(p["size_bytes"] for p in partial)
    cache = hf_cache_dir()
    return {
        "models": [m.to_dict() for m in models],
        "partial": partial,
        "totals": totals,
        # What modelctl put on this disk and can remove: its downloads, its models directory
        # and unfinished downloads (other tools' cache files, imports and Ollama's are not counted).
        "managed_bytes": totals["modelctl"] + totals["partial"],
        "hf_cache": str(cache),
        "models_dir": str(get_paths().models_dir),
        "free_bytes": free_space(cache),
    }
