"""Finding the local GGUF file of a model.

    locate(model, quant=None, *, registry=None) -> Path | None

`model` is a registry `Model`, or a name: a registry id or alias (looked up in `registry`: a
`Registry`, a function returning one, or None for `load_registry()`; see
`modelctl.registry.RegistrySource`), else the name of an imported file (`modelctl import --name`). The first of these that exists is returned:

1. the file in the Hugging Face cache (downloaded by `modelctl pull` or by any other tool), at the
   deployment's pinned revision, else `main`, else any cached snapshot;
2. a file of that name in modelctl's models directory;
3. a file imported for that model (`modelctl import PATH --name MODEL`, or a file whose name a
   llama.cpp deployment lists);
4. the deployment's `package` (the model shipped as a Python package), assembled on first use.

With `quant`, only that quantization will do; without it, the deployment's default quantization
is tried first, then the others in the order listed. A sharded GGUF is returned as its first shard
(llama.cpp finds the rest beside it), and only when every shard is there. None when nothing is on
this machine: `modelctl pull` it. When the only copy found is a sharded GGUF missing some shards
(a pull that stopped halfway), `ModelFileError` names them and says to pull the model again.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelctl.config import get_paths
from modelctl.errors import ModelctlError, ModelFileError
from modelctl.registry import get_registry
from modelctl.store.default_model import package_model_path
from modelctl.store.hub import CachedGroup, cached_group
from modelctl.store.index import read_index
from modelctl.store.quant import normalize

if TYPE_CHECKING:
    from modelctl.registry import Deployment, Model, RegistrySource, RepoFile


def file_names(f: "RepoFile") -> list[str]:
    """Every file of a deployment file: its shards in order, else its one file."""
    names = list(f.shards) if f.shards else [f.filename]
    if f.filename not in names:
        names.insert(0, f.filename)
    return names


def hub_files(dep: "Deployment", f: "RepoFile", *, any_snapshot: bool = False) -> "CachedGroup":
    """`f`'s files in the Hugging Face cache, all from one snapshot (`missing` lists the others)."""

    if not dep.repo:
        return CachedGroup([], file_names(f))
    return cached_group(dep.repo, file_names(f), dep.revision, any_snapshot=any_snapshot)


def _incomplete(model: "Model", f: "RepoFile", found: "CachedGroup") -> ModelFileError:
    missing = ", ".join(found.missing)
    shards = f"shards {missing} are" if len(found.missing) > 1 else f"shard {missing} is"
    return ModelFileError(
        f"model '{model.id}' ({f.quant}) is only partly on this machine: {shards} missing "
        f"beside {found.paths[0]}",
        hint=f"run `modelctl pull {model.id} --quant {f.quant}` to download the rest",
    )


def _ordered_files(dep: "Deployment", quant: str | None) -> list["RepoFile"]:
    if quant:
        f = dep.file_for(quant)
        return [f] if f else []
    first = dep.file_for()
    return ([first] if first else []) + [f for f in dep.files if f is not first]


def find_import(name: str) -> Path | None:
    """The file imported under `name` (case-insensitive), if it still exists."""

    key = name.strip().lower()
    for rec in read_index()["imports"]:
        if str(rec.get("name", "")).lower() == key:
            path = Path(rec.get("path", ""))
            return path if path.is_file() else None
    return None


def _imports_for(model_id: str) -> list[dict[str, Any]]:
    return [r for r in read_index()["imports"] if str(r.get("model_id", "")).lower() == model_id.lower()]


def locate(model: "Model | str", quant: str | None = None, *, registry: "RegistrySource" = None) -> Path | None:
    """The local GGUF path of `model` (see the module docstring), or None. A registry that
    cannot be loaded counts as one that does not know the name."""

    if isinstance(model, str):
        try:
            entry = get_registry(registry).get(model)
        except ModelctlError:
            entry = None
        if entry is None:
            return find_import(model)
        model = entry
    wanted = normalize(quant) if quant else None
    imports = _imports_for(model.id)
    models_dir = get_paths().models_dir
    incomplete: ModelFileError | None = None  # raised only when nothing usable is found
    for dep in model.deployments:
        if dep.kind != "llama.cpp":
            continue
        for f in _ordered_files(dep, quant):
            found = hub_files(dep, f, any_snapshot=True)
            if not found.missing:
                return found.paths[0]
            if found.paths and incomplete is None:
                incomplete = _incomplete(model, f, found)
            candidate = models_dir / Path(f.filename).name
            if candidate.is_file():
                return candidate
            for rec in imports:
                if rec.get("quant") and normalize(rec["quant"]) == normalize(f.quant):
                    path = Path(rec.get("path", ""))
                    if path.is_file():
                        return path
        default = dep.file_for()
        if dep.package and (wanted is None or (default is not None and normalize(default.quant) == wanted)):
            if importlib.util.find_spec(dep.package) is not None:
                return package_model_path(dep.package, file=default)
    for rec in imports:
        if wanted is None or (rec.get("quant") and normalize(rec["quant"]) == wanted):
            path = Path(rec.get("path", ""))
            if path.is_file():
                return path
    if incomplete is not None:
        raise incomplete
    return None
