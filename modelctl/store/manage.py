"""`modelctl import` and `modelctl rm`: registering files on disk, removing local files.

    import_file(path, name=None, *, registry=None) -> ImportReport
    removal_plan(name, quant=None, *, registry=None) -> RemovalPlan   (what would go; nothing is touched)
    remove(plan) -> RemovalPlan                                        (does it)

`registry` is where names are looked up: a `Registry`, a function returning one, or None for
`load_registry()` (see `modelctl.registry.RegistrySource`).

An imported file stays where it is; modelctl records it in its index (under `name`, the registry
model it belongs to when the name or the file name says so, its quantization and architecture
from the header). Removing an imported model forgets it and never deletes the user's file.

Removing a downloaded model deletes its snapshot links in the Hugging Face cache, and each blob no
other snapshot still links to (the cache stays consistent for other tools), its unfinished
downloads, the file assembled from a package, and, for an Ollama deployment, asks the server to
delete the tag. With `quant`, only that quantization goes. A blob or unfinished download whose
download lock (the one `huggingface_hub` takes) is held by a running pull is left alone, and so
is the repository folder that pull writes into.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from modelctl.config import api_base_for, file_lock, get_paths
from modelctl.errors import ModelctlError, ModelFileError, NotFoundError, UsageError
from modelctl.gguf import read_gguf
from modelctl.registry import get_registry
from modelctl.store import index, ollama_pull
from modelctl.store.index import read_index
from modelctl.store.installed import find_installed, registry_maps
from modelctl.store.paths import lock_path, locks_dir, repo_folder
from modelctl.store.quant import file_type_name, normalize, quant_from_filename, shard_names
from modelctl.transport.ollama_server import ollama_host

if TYPE_CHECKING:
    from modelctl.registry import Model, RegistrySource


# --- import -----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    name: str
    path: Path
    size: int
    quant: str | None
    architecture: str | None
    model_id: str | None
    context_length: int | None
    replaced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.name, "path": str(self.path), "size_bytes": self.size, "quant": self.quant,
                "architecture": self.architecture, "registry_id": self.model_id,
                "context_length": self.context_length, "replaced": self.replaced}


def import_file(path: str | os.PathLike[str], name: str | None = None, *,
                registry: "RegistrySource" = None) -> ImportReport:
    """Register a GGUF file already on disk (see the module docstring); a registry that cannot be
    loaded links the file to no model."""

    p = Path(path).expanduser()
    if not p.exists():
        raise NotFoundError(f"{p}: no such file")
    p = p.resolve()
    info = read_gguf(p)
    arch = info.architecture
    if not arch:
        raise ModelFileError(f"{p}: GGUF metadata has no general.architecture: not a model file")
    if arch == "clip":
        raise ModelFileError(f"{p}: a vision projector (mmproj), not a language model; it is used beside one")
    if name is not None and not name.strip():
        raise UsageError("--name must not be empty")
    quant = file_type_name(info.metadata.get("general.file_type")) or quant_from_filename(p.name)
    model_id = None
    try:
        loaded = get_registry(registry)
    except ModelctlError:
        loaded = None
    if loaded is not None:
        linked = loaded.get(name) if name else None
        if linked is not None:
            model_id = linked.id
        else:
            _, by_name, _ = registry_maps(loaded)
            hit = by_name.get(p.name.lower())
            if hit:
                model_id, quant = hit[0], hit[1] or quant
    label = (name or model_id or p.stem).strip()
    ctx = info.metadata.get(f"{arch}.context_length")
    context_length = ctx if isinstance(ctx, int) else None
    record = {
        "name": label, "path": str(p), "size": info.file_size, "quant": quant, "model_id": model_id,
        "architecture": arch, "context_length": context_length,
        "imported_at": index.now(),
    }
    with index.update_index() as data:
        before = len(data["imports"])
        data["imports"] = [r for r in data["imports"]
                           if str(r.get("name", "")).lower() != label.lower() and r.get("path") != str(p)]
        replaced = len(data["imports"]) != before
        data["imports"].append(record)
    return ImportReport(label, p, info.file_size, quant, arch, model_id, context_length, replaced)


# --- removal ----------------------------------------------------------------------------------


@dataclass
class RemovalItem:
    kind: str  # hf-cache | partial | package | import | ollama | own-file
    description: str
    path: Path | None
    size: int
    repo: str | None = None
    filename: str | None = None
    tag: str | None = None
    host: str | None = None
    links: list[Path] = field(default_factory=list)  # snapshot links to the blob

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description,
                "path": str(self.path) if self.path else None, "size_bytes": self.size,
                "repo": self.repo, "filename": self.filename, "tag": self.tag}


@dataclass
class RemovalPlan:
    name: str
    model_id: str | None
    quant: str | None
    items: list[RemovalItem]
    notes: list[str] = field(default_factory=list)
    freed: int = 0

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items if i.kind not in ("import", "ollama"))

    @property
    def own_files(self) -> list[Path]:
        """The user's own files the plan would delete (outside modelctl's store)."""
        return [i.path for i in self.items if i.kind == "own-file" and i.path is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.name, "registry_id": self.model_id, "quant": self.quant,
                "items": [i.to_dict() for i in self.items], "size_bytes": self.size,
                "freed_bytes": self.freed, "notes": self.notes}


def _blob_links(storage: Path, blob: Path) -> list[Path]:
    """Every snapshot file of this repo that resolves to `blob`."""
    out = []
    real = os.path.realpath(blob)
    for root, _dirs, files in os.walk(storage / "snapshots"):
        for name in files:
            p = Path(root) / name
            if os.path.realpath(p) == real:
                out.append(p)
    return out


def _hf_items(repo: str, filenames: list[str], describe: str) -> list[RemovalItem]:
    """The blobs behind these files in every cached snapshot, each with the links that name them."""

    storage = repo_folder(repo)
    snapshots = storage / "snapshots"
    if not snapshots.is_dir():
        return []
    wanted = set(filenames)
    by_blob: dict[str, RemovalItem] = {}
    for root, _dirs, files in os.walk(snapshots):
        for name in sorted(files):
            p = Path(root) / name
            rel = "/".join(p.relative_to(snapshots).parts[1:])
            blob = Path(os.path.realpath(p))
            if rel not in wanted or not blob.exists():
                continue
            item = by_blob.get(str(blob))
            if item is None:
                item = by_blob[str(blob)] = RemovalItem(
                    "hf-cache", f"{describe}{rel}", blob, blob.stat().st_size, repo, rel)
            item.links.append(p)
    return list(by_blob.values())


_INCOMPLETE = ".incomplete"


@contextmanager
def _unless_downloading(repo: str, etag: str) -> Iterator[bool]:
    """Hold the download lock of blob `etag` (the one `hub` and `huggingface_hub` take) unless a
    pull holds it now; yields whether it is held here. Never waits."""
    from filelock import Timeout  # noqa: PLC0415 (filelock: imported only where used)

    lock = file_lock(lock_path(repo, etag))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _busy_note(name: str) -> str:
    return f"{name} is being downloaded right now; it was left alone"


def _add_partial_items(plan: RemovalPlan, repo: str) -> None:
    """Unfinished downloads (`blobs/*.incomplete`) of a repository, except those a pull is
    writing right now (deleting one under a running pull would make it fail at the end)."""

    blobs = repo_folder(repo) / "blobs"
    for p in sorted(blobs.glob("*" + _INCOMPLETE)):
        with _unless_downloading(repo, p.name.removesuffix(_INCOMPLETE)) as idle:
            if not idle:
                plan.notes.append(_busy_note(p.name))
            elif p.is_file():
                plan.items.append(RemovalItem("partial", f"unfinished download {p.name}", p, p.stat().st_size, repo))


def removal_plan(source: str, name: str, quant: str | None = None, *, model: "Model | None" = None,
                 path: Path | None = None, registry: "RegistrySource" = None) -> RemovalPlan:
    """What `modelctl rm NAME [--quant Q]` would remove, for a model the resolver found in
    `source` (`modelctl.resolver.SOURCES`): a registry `model`'s files; an imported file's record
    (the file is kept); a file in the Hugging Face cache or the models directory; an Ollama
    model; or a file at `path` that is the user's own (an `own-file` item, which the caller
    confirms apart: it lies outside modelctl's store)."""
    if source == "registry" and model is not None:
        return _model_plan(model, quant)
    if source == "import":
        return _import_plan(name)
    if source in ("hf-cache", "models-dir", "package"):
        found = _installed_plan(name, quant, registry)
        if found is not None:
            return found
    if source == "ollama":
        found = _ollama_plan(name)
        if found is not None:
            return found
    if source == "file" and path is not None:
        return _file_plan(name, path, quant, model, registry)
    raise NotFoundError(f"nothing of {name} is on this machine")


def _import_plan(name: str) -> RemovalPlan:
    for rec in read_index()["imports"]:
        if str(rec.get("name", "")).lower() == name.strip().lower():
            item = RemovalItem("import", f"imported file {rec.get('path')} (the file is kept)",
                               Path(rec.get("path", "")), 0)
            return RemovalPlan(rec["name"], rec.get("model_id"), rec.get("quant"), [item])
    raise NotFoundError(f"no file is imported as '{name}'")


def _file_plan(name: str, path: Path, quant: str | None, model: "Model | None",
               registry: "RegistrySource") -> RemovalPlan:
    """A GGUF named by its path: one in the models directory is the store's; any other is the
    user's own, removed only as an `own-file` item."""

    if quant:
        raise UsageError(f"--quant: '{name}' is one file, of one quantization")
    real = Path(os.path.realpath(path))
    models_dir = Path(os.path.realpath(get_paths().models_dir))
    if real.parent == models_dir:
        found = _installed_plan(real.name, None, registry)
        if found is not None:
            return found
    size = real.stat().st_size if real.is_file() else 0
    item = RemovalItem("own-file", f"your file {real} (outside modelctl's store)", real, size)
    return RemovalPlan(name, model.id if model else None, None, [item])


def _ollama_plan(name: str) -> RemovalPlan | None:
    """The plan for a model the Ollama server has under the tag `name` (when it answers)."""

    try:
        present = ollama_pull.find_model(name)
    except ModelctlError:
        return None
    if present is None:
        return None
    item = RemovalItem("ollama", f"Ollama model {present.name}", None, present.size, tag=present.name)
    return RemovalPlan(present.name, None, present.quant, [item])


def _installed_plan(name: str, quant: str | None, registry: "RegistrySource") -> RemovalPlan | None:
    """The plan for a name `list --installed` shows for a file no registry model owns (a GGUF
    another tool put in the Hugging Face cache, a file in the models directory), or for
    `hf:OWNER/REPO[:QUANT]`: the same file `chat` would load by that name."""

    found = find_installed(name, registry=registry)
    if found is None or found.path is None:
        return _ollama_plan(name)
    if quant and (found.quant is None or normalize(found.quant) != normalize(quant)):
        raise NotFoundError(f"'{name}' is {found.quant or 'of an unknown quantization'}, not {quant}")
    plan = RemovalPlan(found.name, found.model_id, found.quant, [])
    if found.repo and found.filename:
        plan.items += _hf_items(found.repo, shard_names(found.filename), f"{found.repo}/")
    else:
        path = Path(found.path)
        plan.items.append(RemovalItem("package", path.name, path, found.size_bytes))
    return plan


def _model_plan(model: "Model", quant: str | None) -> RemovalPlan:
    plan = RemovalPlan(model.id, model.id, quant, [])
    wanted = normalize(quant) if quant else None
    known_quants: list[str] = []
    for dep in model.deployments:
        if dep.kind == "llama.cpp":
            known_quants += [f.quant for f in dep.files]
            files = [f for f in dep.files if wanted is None or normalize(f.quant) == wanted]
            names: list[str] = []
            for f in files:
                names += [f.filename, *f.shards]
            if dep.mmproj and wanted is None:
                names.append(dep.mmproj)
            if dep.repo and names:
                plan.items += _hf_items(dep.repo, names, f"{dep.repo}/")
                if wanted is None:
                    _add_partial_items(plan, dep.repo)
            for f in files:
                local = get_paths().models_dir / Path(f.filename).name
                if local.is_file():
                    plan.items.append(RemovalItem("package", f"{local.name} (assembled from {dep.package or 'a package'})",
                                                  local, local.stat().st_size))
        elif dep.kind == "ollama" and dep.tag and wanted is None:
            try:
                present = ollama_pull.find_model(dep.tag, dep.host)
            except ModelctlError:
                present = None
                if os.environ.get("OLLAMA_HOST") or dep.host or api_base_for("ollama"):
                    plan.notes.append(f"Ollama at {ollama_host(dep.host)} did not answer; its copy was not checked")
            if present is not None:
                plan.items.append(RemovalItem("ollama", f"Ollama model {present.name}", None, present.size,
                                              tag=present.name, host=dep.host))
    if wanted and known_quants and wanted not in {normalize(q) for q in known_quants}:
        raise NotFoundError(f"no quantization '{quant}' for {model.id} (available: {', '.join(known_quants)})")
    for rec in read_index()["imports"]:
        if str(rec.get("model_id", "")).lower() == model.id.lower() and (
            wanted is None or (rec.get("quant") and normalize(rec["quant"]) == wanted)
        ):
            plan.items.append(RemovalItem("import", f"imported file {rec.get('path')} (the file is kept)",
                                          Path(rec.get("path", "")), 0))
    return plan


def _download_running(repo: str) -> bool:
    """Whether a pull holds the lock of any blob of `repo` (it may be between writing its
    partial file and linking the finished blob, when neither shows in the repo folder)."""

    for lock in locks_dir(repo).glob("*.lock"):
        with _unless_downloading(repo, lock.name.removesuffix(".lock")) as idle:
            if not idle:
                return True
    return False


def _prune(repo: str) -> None:
    """Remove empty snapshot directories, and the whole repo folder once no snapshot is left
    and no download of the repo is running."""

    storage = repo_folder(repo)
    snapshots = storage / "snapshots"
    if snapshots.is_dir():
        for root, _dirs, _files in os.walk(snapshots, topdown=False):
            if root != str(snapshots) and not os.listdir(root):
                os.rmdir(root)
    blobs = storage / "blobs"
    has_snapshots = snapshots.is_dir() and any(snapshots.iterdir())
    has_partial = blobs.is_dir() and any(p.name.endswith(_INCOMPLETE) for p in blobs.iterdir())
    if not has_snapshots and not has_partial and not _download_running(repo):
        shutil.rmtree(storage, ignore_errors=True)


def _unlink(path: Path, size: int) -> int:
    """Delete `path`; the bytes freed (`size`, or 0 when it was already gone)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _remove_blob(item: RemovalItem, plan: RemovalPlan) -> int | None:
    """Delete a cached file's snapshot links, and its blob unless another snapshot still uses it;
    the bytes freed, or None when a pull is downloading that blob now (then nothing is touched)."""

    assert item.path is not None and item.repo is not None
    with _unless_downloading(item.repo, item.path.name) as idle:
        if not idle:
            plan.notes.append(_busy_note(item.filename or item.path.name))
            return None
        for link in item.links:
            if link.is_symlink() or link.exists():
                link.unlink()
        if _blob_links(repo_folder(item.repo), item.path):
            plan.notes.append(f"{item.filename}: kept, other snapshots still use the same file")
            return 0
        return _unlink(item.path, item.size)


def _remove_partial(item: RemovalItem, plan: RemovalPlan) -> int | None:
    """Delete an unfinished download; None when a pull has (re)started it since the plan was made."""
    assert item.path is not None and item.repo is not None
    with _unless_downloading(item.repo, item.path.name.removesuffix(_INCOMPLETE)) as idle:
        if not idle:
            plan.notes.append(_busy_note(item.path.name))
            return None
        return _unlink(item.path, item.size)


def remove(plan: RemovalPlan) -> RemovalPlan:
    """Carry out `plan`; returns it with `freed` set."""

    freed = 0
    removed_blobs: set[str] = set()
    removed_files: set[tuple[str, str]] = set()
    forget_imports: set[str] = set()
    repos: set[str] = set()
    for item in plan.items:
        if item.kind in ("hf-cache", "partial") and item.path is not None and item.repo:
            done = (_remove_blob if item.kind == "hf-cache" else _remove_partial)(item, plan)
            if done is None:
                continue
            freed += done
            repos.add(item.repo)
            if item.kind == "hf-cache":
                removed_files.add((item.repo, item.filename or ""))
                if not item.path.exists():
                    removed_blobs.add(str(item.path))
        elif item.kind in ("package", "own-file") and item.path is not None:
            freed += _unlink(item.path, item.size)
            item.path.with_name(item.path.name + ".verified").unlink(missing_ok=True)
        elif item.kind == "import" and item.path is not None:
            forget_imports.add(str(item.path))
        elif item.kind == "ollama" and item.tag:
            ollama_pull.delete(item.tag, item.host)
            freed += item.size
    for repo in repos:
        _prune(repo)
    if removed_blobs or removed_files or forget_imports:
        with index.update_index() as data:
            data["downloads"] = [d for d in data["downloads"]
                                 if (d.get("repo"), d.get("filename")) not in removed_files]
            for blob in removed_blobs:
                data["verified"].pop(blob, None)
            data["imports"] = [r for r in data["imports"] if r.get("path") not in forget_imports]
    plan.freed = freed
    return plan
