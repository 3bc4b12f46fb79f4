"""`modelctl pull`: a registry model through its deployment, or any GGUF repository on the Hub.

    pull(name, *, registry=None, quant=None, deployment=None) -> PullReport    (either of these:)
    pull_model(model, quant=None, deployment=None) -> PullReport
    pull_hf("hf:OWNER/REPO[:QUANT]") -> PullReport      (and the model is added to the user registry)

`registry` is where `pull` looks a model name up: a `Registry`, a function returning one, or None
for `load_registry()` (see `modelctl.registry.RegistrySource`); an hf: spec needs none. Progress
goes to `progress` (a `PullProgress`), and notes (the quantization chosen and why, warnings) to
the `note` callback.

A llama.cpp deployment downloads its GGUF (all shards, and the vision projector when it names
one) through `modelctl.store.hub`; a deployment with a `package` assembles the file the package
ships; an Ollama deployment asks the Ollama server to pull its tag. Without `--quant`, the
quantization is chosen by `modelctl.store.quant` and the report says why.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelctl.errors import NotFoundError, OfflineError, UsageError
from modelctl.refs import parse_hub
from modelctl.registry import build_model_list
from modelctl.store import hub, index, ollama_pull
from modelctl.store.default_model import package_model_path
from modelctl.store.hub import Pulled, Wanted
from modelctl.store.locate import file_names, hub_files
from modelctl.store.quant import Candidate, QuantChoice, choose_quant, gguf_groups, memory_budget, normalize
from modelctl.store.user_registry import add_pulled_model, existing_entry

if TYPE_CHECKING:
    from modelctl.registry import Deployment, Model, RepoFile
    from modelctl.store.hub import RepoListing
    from modelctl.store.progress import PullProgress
    from modelctl.store.quant import Budget

Note = Callable[[str], None]


@dataclass
class PullReport:
    model_id: str
    kind: str  # llama.cpp | package | ollama
    quant: str | None = None
    path: Path | None = None
    files: list[Pulled] = field(default_factory=list)
    reason: str | None = None  # why this quantization
    registry_file: Path | None = None  # hf: pulls: the user registry that now lists the model
    ollama_tag: str | None = None
    size: int | None = None

    @property
    def transferred(self) -> int:
        return sum(f.transferred for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "kind": self.kind,
            "quant": self.quant,
            "path": str(self.path) if self.path else None,
            "size_bytes": self.size if self.size is not None else sum(f.size for f in self.files) or None,
            "transferred_bytes": self.transferred,
            "reason": self.reason,
            "registry_file": str(self.registry_file) if self.registry_file else None,
            "ollama_tag": self.ollama_tag,
            "files": [
                {"filename": f.filename, "path": str(f.path), "size_bytes": f.size, "sha256": f.sha256,
                 "role": f.role, "reused": f.reused, "transferred_bytes": f.transferred}
                for f in self.files
            ],
        }


# --- choosing the file ------------------------------------------------------------------------


def _listing_sizes(listing: "RepoListing | None") -> dict[str, int]:
    if listing is None:
        return {}
    return {e.filename: e.size for e in listing.files if e.size}


def choose_file(dep: "Deployment", quant: str | None, *, listing: "RepoListing | None" = None,
                budget: Budget | None = None, cached_only: set[str] | None = None) -> tuple["RepoFile", "QuantChoice | None"]:
    """The deployment file for `quant`, or the best one for this machine (with the reason)."""

    if not dep.files:
        raise NotFoundError(f"the {dep.id} deployment lists no GGUF files")
    if quant:
        f = dep.file_for(quant)
        if f is None:
            known = ", ".join(x.quant for x in dep.files)
            raise NotFoundError(f"no quantization '{quant}' for this model (available: {known})")
        return f, None
    files = list(dep.files)
    if cached_only:
        files = [f for f in files if f.quant in cached_only] or files
    if len(files) == 1:
        only = files[0]
        why = "the only file available offline" if cached_only else "the only quantization listed"
        return only, QuantChoice(only.quant, only.size_bytes, f"{only.quant} is {why}", True)
    sizes = _listing_sizes(listing)
    candidates = []
    for f in files:
        size = f.size_bytes if f.size_bytes and not f.shards else None
        if size is None:
            parts = [sizes.get(n) for n in file_names(f)]
            size = sum(parts) if parts and all(parts) else f.size_bytes  # type: ignore[arg-type]
        candidates.append(Candidate(f.quant, size))
    choice = choose_quant(candidates, budget or memory_budget(), default=dep.default_quant)
    if cached_only:
        offline = choice.reason + " (offline: among the files already here)"
        choice = type(choice)(choice.quant, choice.size, offline, choice.fits)
    return next(f for f in files if f.quant == choice.quant), choice


def _wanted(dep: "Deployment", f: "RepoFile") -> list[Wanted]:
    names = file_names(f)
    out = [Wanted(names[0], f.sha256, f.size_bytes if len(names) == 1 else None, "model")]
    out += [Wanted(n, None, None, "shard") for n in names[1:]]
    if dep.mmproj:
        out.append(Wanted(dep.mmproj, None, None, "mmproj"))
    return out


# --- pulling a registry model ---------------------------------------------------------------


def _record(model_id: str, repo: str, quant: str | None, pulled: list[Pulled]) -> None:
    for p in pulled:
        index.record_download(
            {
                "repo": repo, "filename": p.filename, "revision": p.revision, "commit": p.commit,
                "quant": quant if p.role != "mmproj" else None, "model_id": model_id,
                "sha256": p.sha256, "size": p.size, "blob": str(p.blob), "role": p.role,
                "pulled_at": index.now(),
            },
            verified_sha256=p.sha256,
        )


def _cached_quants(dep: "Deployment") -> set[str]:
    return {f.quant for f in dep.files if not hub_files(dep, f).missing}


def pull_llamacpp(model: "Model", dep: "Deployment", quant: str | None, *,
                  progress: "PullProgress | None" = None, note: Note | None = None) -> PullReport:
    note = note or (lambda _m: None)
    if not dep.repo:
        raise NotFoundError(f"model '{model.id}': its llama.cpp deployment names no Hugging Face repository")
    s = hub.settings()
    listing = None
    cached = None
    if quant is None:
        if s.offline:
            cached = _cached_quants(dep) or None
        elif not all(f.size_bytes for f in dep.files) and len(dep.files) > 1:
            listing = hub.list_repo(s, dep.repo, dep.revision)
    f, choice = choose_file(dep, quant, listing=listing, cached_only=cached)
    if choice is not None:
        note(f"chose {choice.quant}: {choice.reason}")
    pulled = hub.pull_files(dep.repo, _wanted(dep, f), revision=dep.revision, progress=progress, on_note=note)
    _record(model.id, dep.repo, f.quant, pulled)
    return PullReport(model.id, "llama.cpp", f.quant, pulled[0].path, pulled, choice.reason if choice else None)


def pull_package(model: "Model", dep: "Deployment", quant: str | None, *, note: Note | None = None) -> PullReport:
    f = dep.file_for(quant) if dep.files else None
    if quant and dep.files and f is None:
        known = ", ".join(x.quant for x in dep.files)
        raise NotFoundError(f"no quantization '{quant}' for this model (available: {known})")
    default = dep.file_for()
    if quant and default is not None and f is not default:
        raise NotFoundError(f"the package {dep.package} ships {default.quant} only")

    def assembling(target: Path) -> None:
        if note:
            note(f"assembling {target.name} from the {dep.package} package")

    path = package_model_path(dep.package or "", file=default, on_assemble=assembling)
    q = default.quant if default else None
    return PullReport(model.id, "package", q, path, size=path.stat().st_size)


def pull_ollama(model: "Model", dep: "Deployment", *, progress: "PullProgress | None" = None) -> PullReport:
    if not dep.tag:
        raise NotFoundError(f"model '{model.id}': its Ollama deployment names no tag")
    found = ollama_pull.pull(dep.tag, dep.host, progress=progress, offline=hub.settings().offline)
    return PullReport(model.id, "ollama", found.quant if found else None, None, ollama_tag=dep.tag,
                      size=found.size if found else None)


def pull_model(model: "Model", *, quant: str | None = None, deployment: str | None = None,
               progress: "PullProgress | None" = None, note: Note | None = None) -> PullReport:
    """Pull a registry model through `deployment` (default: its first llama.cpp deployment, else
    its first local one)."""

    if deployment is None:
        dep = next((d for d in model.deployments if d.kind == "llama.cpp"), None) or model.deployment()
    else:
        dep = model.deployment(deployment)
    if dep.kind == "ollama":
        if quant:
            raise UsageError("--quant applies to llama.cpp deployments; an Ollama tag names its quantization")
        return pull_ollama(model, dep, progress=progress)
    if dep.kind != "llama.cpp":
        local = ", ".join(d.id for d in model.deployments if d.local) or "none"
        raise UsageError(
            f"model '{model.id}': the {dep.id} deployment ({dep.kind}) runs remotely; nothing to pull",
            hint=f"local deployments: {local}",
        )
    use_package = dep.package and (not dep.repo or importlib.util.find_spec(dep.package) is not None)
    if use_package:
        return pull_package(model, dep, quant, note=note)
    return pull_llamacpp(model, dep, quant, progress=progress, note=note)


# --- hf:OWNER/REPO[:QUANT] --------------------------------------------------------------------

def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """`hf:OWNER/REPO[:QUANT]` -> (repo, quant)."""
    ref = parse_hub(spec)
    return ref.repo, ref.quant


def pull_hf(spec: str, *, progress: "PullProgress | None" = None, note: Note | None = None,
            budget: Budget | None = None) -> PullReport:
    """Pull a GGUF from any Hub repository and add it to the user registry."""

    note = note or (lambda _m: None)
    repo, quant = parse_hf_spec(spec)
    s = hub.settings()
    if s.offline:
        entry = existing_entry(repo)
        if entry is None:
            raise OfflineError(f"{s.offline_reason}: cannot look up {repo} on {s.shown}")

        model = build_model_list([entry], "user registry")[0]
        report = pull_model(model, quant=quant, deployment="llama.cpp", progress=progress, note=note)
        return report
    listing = hub.list_repo(s, repo)
    if listing.skipped:
        shown = ", ".join(repr(n) for n in listing.skipped[:3]) + (" …" if len(listing.skipped) > 3 else "")
        note(f"warning: skipped {len(listing.skipped)} file name(s) in {repo} that cannot name a file here: {shown}")
    models, projectors = gguf_groups(listing)
    if not models:
        raise NotFoundError(f"{repo} has no GGUF model files", hint="pick a repository whose files end in .gguf")
    if quant:
        group = next((g for g in models if normalize(g.quant) == normalize(quant)), None)
        if group is None:
            known = ", ".join(g.quant for g in models)
            raise NotFoundError(f"{repo} has no quantization '{quant}' (available: {known})")
        choice = None
    elif len(models) == 1:
        group = models[0]
        choice = QuantChoice(group.quant, group.size, f"{group.quant} is the only GGUF file in {repo}", True)
    else:
        choice = choose_quant([Candidate(g.quant, g.size) for g in models], budget or memory_budget())
        group = next(g for g in models if g.quant == choice.quant)
    if choice is not None:
        note(f"chose {choice.quant}: {choice.reason}")
    wanted = [Wanted(group.files[0], group.sha256, None if len(group.files) > 1 else group.size, "model")]
    wanted += [Wanted(n, None, None, "shard") for n in group.files[1:]]
    if projectors:
        wanted.append(Wanted(projectors[0].files[0], projectors[0].sha256, projectors[0].size, "mmproj"))
    pulled = hub.pull_files(repo, wanted, progress=progress, on_note=note)
    registry_file, model_id = add_pulled_model(
        repo, listing, models, group, [p.path for p in pulled if p.role != "mmproj"],
        mmproj=projectors[0].files[0] if projectors else None, endpoint=s.public,
    )
    _record(model_id, repo, group.quant, pulled)
    return PullReport(model_id, "llama.cpp", group.quant, pulled[0].path, pulled,
                      choice.reason if choice else None, registry_file)


def pull(model: "Model | str", *, quant: str | None = None, deployment: str | None = None,
         progress: "PullProgress | None" = None, note: Note | None = None) -> PullReport:
    """`modelctl pull MODEL`: a registry model (resolved by the caller), or `hf:OWNER/REPO[:QUANT]`."""
    if not isinstance(model, str):
        return pull_model(model, quant=quant, deployment=deployment, progress=progress, note=note)
    if deployment:
        raise UsageError("--deployment applies to registry models, not to hf: repositories")
    if quant:
        repo, in_spec = parse_hf_spec(model)
        if in_spec and in_spec.lower() != quant.lower():
            raise UsageError(f"two quantizations given: '{in_spec}' in the name and --quant {quant}")
        model = f"hf:{repo}:{quant}"
    return pull_hf(model, progress=progress, note=note)

