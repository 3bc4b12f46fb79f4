"""Registry entries made from GGUF files, written to the user's registry.

`entry_from_gguf` turns what a GGUF header says (architecture, context length, chat template,
quantization, parameter count, name, licence) into a `[[models]]` table that follows
docs/registry-format.md. `save_entry` writes it to the user registry (`get_paths().user_registry`):
a new model is appended as text (the rest of the file, comments included, is left as it is); a
model already there is updated in place, keeping what its user wrote and replacing only the
llama.cpp deployment of that repository (the file is then rewritten by `tomli_w`). Either way the
new file is validated with `modelctl.registry.check_file`, and checked against the other layers,
before it replaces the old one; an entry that would not validate is refused and nothing changes.
All of it, from reading the file to replacing it, happens under the lock of the file
(`modelctl.config.locked_update`), so two `modelctl pull hf:…` at once keep each other's entries.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import tomli_w

from modelctl.config import MAX_TOML_BYTES, get_paths, load_toml, locked_update
from modelctl.errors import ModelFileError, NotFoundError, RegistryError, UsageError
from modelctl.files import read_user_text
from modelctl.gguf import read_gguf, read_metadata
from modelctl.registry import build_model_list, check_file
from modelctl.registry.loader import BUILTIN_REGISTRY, load_file
from modelctl.registry.registry import Registry
from modelctl.registry.schema import LICENSE_FIELDS, MODEL_FIELDS, MODEL_REQUIRED

Existing = Literal["merge", "replace", "refuse"]

if TYPE_CHECKING:
    from modelctl.store.hub import RepoListing
    from modelctl.store.quant import GGUFGroup

EMBEDDING_ARCHITECTURES = frozenset({
    "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert", "gemma-embedding",
    "llama-embed", "t5encoder",
})

# Markers of a chat template -> the conversation template name the registry uses for that family.
_TEMPLATE_MARKERS = (
    ("<|start_header_id|>", "llama-3"),
    ("<start_of_turn>", "gemma"),
    ("<|START_OF_TURN_TOKEN|>", "command-r"),
    ("<|start_of_role|>", "granite"),
    ("<|im_start|>", "chatml"),
    ("<|user|>", "phi-3"),
    ("[INST]", "mistral"),
)


def guess_template(chat_template: str, architecture: str | None) -> str:
    """The conversation template for a GGUF's chat template (the file's own template still wins
    at chat time; this is the registry's name for the family)."""
    if "<|start_header_id|>" in chat_template and ("Cutting Knowledge" in chat_template or "ipython" in chat_template):
        return "llama-3.1"
    for marker, name in _TEMPLATE_MARKERS:
        if marker in chat_template:
            if name == "mistral" and (architecture or "").startswith("llama") and "<<SYS>>" in chat_template:
                return "llama-2"
            return name
    return "chatml"


def parameter_count(paths: list[Path]) -> int | None:
    """general.parameter_count, else the elements of every tensor in every shard."""

    total = 0
    for p in paths:
        info = read_gguf(p)
        declared = info.metadata.get("general.parameter_count")
        if isinstance(declared, int) and declared > 0:
            return declared
        for t in info.tensors:
            n = 1
            for d in t.shape:
                n *= d
            total += n
    return total or None


def entry_from_gguf(
    model_id: str,
    paths: list[Path],
    *,
    provider: str,
    quant: str,
    files: list[dict[str, Any]],
    repo: str | None = None,
    revision: str | None = None,
    mmproj: str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """A registry `[[models]]` table for a GGUF model (see docs/registry-format.md)."""

    md = read_metadata(paths[0])
    arch = md.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(f"{paths[0]}: GGUF metadata has no general.architecture: not a model file")
    chat_template = md.get("tokenizer.chat_template")
    embedding = arch in EMBEDDING_ARCHITECTURES or f"{arch}.pooling_type" in md
    if embedding:
        tasks = ["embedding"]
    elif isinstance(chat_template, str) and chat_template.strip():
        tasks = ["chat", "completion"]
    else:
        tasks = ["completion"]
    if mmproj and not embedding:
        tasks.append("vision")
    name = md.get("general.name") if isinstance(md.get("general.name"), str) else None
    entry: dict[str, Any] = {
        "id": model_id,
        "name": (name or model_id.rsplit("/", 1)[-1]).strip() or model_id,
        "provider": provider,
        "description": f"GGUF model {'from ' + repo if repo else 'imported from ' + paths[0].name}, "
                       f"described from its file header.",
        "category": "task" if embedding else "foundation",
        "tasks": tasks,
    }
    basename = md.get("general.basename")
    if isinstance(basename, str) and basename.strip():
        entry["family"] = basename.strip().lower()
    params = parameter_count(paths)
    if params:
        entry["parameters"] = params
    ctx = md.get(f"{arch}.context_length")
    if isinstance(ctx, int) and ctx > 0:
        entry["context_window"] = ctx
    entry["architecture"] = arch
    languages = md.get("general.languages")
    if isinstance(languages, list) and all(isinstance(x, str) for x in languages) and languages:
        entry["languages"] = languages
    if "chat" in tasks and isinstance(chat_template, str):  # a chat model has a template
        entry["template"] = guess_template(chat_template, arch)
    entry["frameworks"] = ["llama.cpp"]
    if repo and endpoint and endpoint.startswith(("http://", "https://")):
        entry["links"] = {"model_card": f"{endpoint}/{repo}"}
    license_name = md.get("general.license") or md.get("general.license.name")
    entry["license"] = {"name": license_name if isinstance(license_name, str) and license_name else "unknown",
                        "open_weights": True}
    link = md.get("general.license.link")
    if isinstance(link, str) and re.match(r"https?://", link):
        entry["license"]["url"] = link
    entry["access"] = {"free_tier": True, "local_capable": True}
    dep: dict[str, Any] = {"kind": "llama.cpp"}
    if repo:
        dep["repo"] = repo
    if revision:
        dep["revision"] = revision
    dep["default_quant"] = quant
    dep["files"] = files
    if mmproj:
        dep["mmproj"] = mmproj
    entry["deployments"] = [dep]
    return _fit_for_registry(entry)


def _fit_for_registry(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with what a file's header says kept only where the registry format takes it: a
    field the schema would refuse, or an integer TOML cannot hold, is left out (the licence name
    falls back to "unknown"). What a downloaded file says is never a registry error."""

    for key in [k for k in entry if k not in MODEL_REQUIRED]:
        check = MODEL_FIELDS.get(key)
        if (check is not None and check(entry[key])) or not _toml_integers(entry[key]):
            del entry[key]
    lic = entry["license"]
    if "url" in lic and LICENSE_FIELDS["url"](lic["url"]):
        del lic["url"]
    if LICENSE_FIELDS["name"](lic["name"]):
        lic["name"] = "unknown"
    return entry


def _toml_integers(value: Any) -> bool:
    """Whether every integer in `value` fits TOML's 64 bits."""
    if isinstance(value, dict):
        return all(_toml_integers(v) for v in value.values())
    if isinstance(value, list):
        return all(_toml_integers(v) for v in value)
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _read_user_registry(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema_version": 1, "models": []}
    doc = load_toml(path)
    if not isinstance(doc.get("models", []), list):
        raise RegistryError(f"{path}: `models` must be an array of tables")
    return doc


def existing_entry(model_id: str) -> dict[str, Any] | None:
    path = get_paths().user_registry
    try:
        doc = _read_user_registry(path)
    except Exception:
        return None
    for raw in doc.get("models", []):
        if isinstance(raw, dict) and str(raw.get("id", "")).lower() == model_id.lower():
            return raw
    return None


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The user's entry, with the new llama.cpp deployment of the same repo (files merged)."""
    merged = dict(new)
    merged.update({k: v for k, v in old.items() if k != "deployments"})
    new_dep = new["deployments"][0]
    deps = []
    replaced = False
    for dep in old.get("deployments", []):
        same_repo = isinstance(dep, dict) and dep.get("kind") == "llama.cpp" and dep.get("repo") == new_dep.get("repo")
        if same_repo and not replaced:
            files = {f["quant"].lower(): f for f in new_dep.get("files", [])}
            for f in dep.get("files", []):
                if isinstance(f, dict) and isinstance(f.get("quant"), str):
                    files.setdefault(f["quant"].lower(), f)
            deps.append({**dep, **new_dep, "files": list(files.values()),
                         "default_quant": dep.get("default_quant", new_dep["default_quant"])})
            replaced = True
        else:
            deps.append(dep)
    if not replaced:
        deps.append(new_dep)
    merged["deployments"] = deps
    return merged


def _registry_text(path: Path) -> str:
    """The user registry's text as it is (read as `load_toml` reads it), or a new one's."""

    try:
        return read_user_text(path, "registry file", limit=MAX_TOML_BYTES, error=RegistryError)
    except NotFoundError:
        return "schema_version = 1\n"


def _new_contents(path: Path, entry: dict[str, Any], existing: Existing) -> bytes:
    """The user registry with `entry` appended as text, or, for a model already there, merged
    into it, put in its place, or refused (see `save_entry`)."""

    doc = _read_user_registry(path)
    models = doc.get("models", [])
    index = next((i for i, m in enumerate(models)
                  if isinstance(m, dict) and str(m.get("id", "")).lower() == entry["id"].lower()), None)
    if index is None:
        text = _registry_text(path)
        if text and not text.endswith("\n"):
            text += "\n"
        return (text + "\n" + tomli_w.dumps({"models": [entry]})).encode()
    if existing == "refuse":
        raise UsageError(f"'{entry['id']}' is already a model of your registry ({path})",
                         hint="choose another id, or pass --force to replace it")
    if existing == "replace":
        return _replaced(_registry_text(path), index, entry)
    models[index] = _merge(models[index], entry)
    doc["models"] = models
    return tomli_w.dumps(doc).encode()


def _replaced(text: str, index: int, entry: dict[str, Any]) -> bytes:
    """`text` with its `index`-th model replaced by `entry`, the rest (comments included) as it was."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    doc = tomlkit.parse(text)
    table = tomlkit.item(entry)
    table.add(tomlkit.nl())  # a blank line before the next [[models]], as an appended entry has
    doc["models"][index] = table
    return tomlkit.dumps(doc).encode()


def _check(candidate: Path, path: Path, model_id: str) -> None:
    """RegistryError unless `candidate` validates, alone and over the built-in registry."""

    raws, problems = check_file(candidate)
    if problems:
        raise RegistryError(
            f"the entry for {model_id} would not validate: {problems[0].message}"
            + (f" ({problems[0].key})" if problems[0].key else ""),
            problems=problems,
        )
    merged = {m.id.lower(): m for m in build_model_list(load_file(BUILTIN_REGISTRY), str(BUILTIN_REGISTRY))}
    for m in build_model_list(raws, str(path)):
        merged[m.id.lower()] = m
    Registry(list(merged.values()))  # aliases must stay unique across the layers


def save_entry(entry: dict[str, Any], existing: Existing = "merge") -> Path:
    """Add `entry` to the user registry, validated before the file is replaced. A model of that
    id already there is updated (`merge`: see `_merge`), replaced whole (`replace`), or kept,
    the file untouched and a UsageError raised (`refuse`)."""

    path = get_paths().user_registry
    with locked_update(path):
        data = _new_contents(path, entry, existing)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _check(Path(tmp), path, entry["id"])
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def add_pulled_model(
    repo: str,
    listing: "RepoListing",
    groups: "list[GGUFGroup]",
    chosen: "GGUFGroup",
    paths: list[Path],
    *,
    mmproj: str | None,
    endpoint: str,
) -> tuple[Path, str]:
    """Describe a model pulled from `repo` and save it in the user registry; (file, model id)."""
    files = []
    for g in groups:
        f: dict[str, Any] = {"quant": g.quant, "filename": g.files[0]}
        if g.size:
            f["size_bytes"] = g.size
        if g.sha256:
            f["sha256"] = g.sha256
        if len(g.files) > 1:
            f["shards"] = list(g.files)
        files.append(f)
    entry = entry_from_gguf(
        repo, paths, provider=repo.split("/", 1)[0], quant=chosen.quant, files=files, repo=repo,
        revision=listing.commit, mmproj=mmproj, endpoint=endpoint,
    )
    return save_entry(entry), repo
