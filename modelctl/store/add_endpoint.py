"""`modelctl registry add-endpoint URL`: every model a server lists, added to the user registry
the way `modelctl add` adds one (`store/add_model.py`: the same entry, checks and atomic write).

    add_endpoint(url, kind="openai-compatible", prefix="", dry_run=False, confirm=None)
        -> [Outcome(id, served, status, why), ...]

The list comes from `GET URL/models` (OpenAI's format: `{"data": [{"id": …}]}`) or, for
`ollama`, `GET URL/api/tags` (`{"models": [{"name": …}]}`), through the bounded HTTP client (no
redirect followed, the answer's size and shape limited). A name the registry already knows is
skipped, and so is one `modelctl add` would refuse (a control character, a path, too long), each
with the reason; nothing is written with `dry_run`, nor before `confirm` has seen the plan.

With `engine` (`--engine vllm`, …) each deployment written names its serving engine, and a
served name that is a registry model's joins that model as one more deployment instead of
becoming a model of its own (`match_served`): an engine started with `--served-model-name` set
to a registry id or alias, or serving a model by its Hugging Face repository (vLLM's and
SGLang's default name, e.g. `Qwen/Qwen2.5-7B-Instruct`). A model of the built-in registry is
copied into the user registry with the new deployment (the user's copy shadows it, as `modelctl
add --force` does); a model already there gets the deployment appended.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from modelctl.config import get_paths
from modelctl.engines.launch import original_weights
from modelctl.errors import BackendError, RegistryError, UsageError
from modelctl.redaction import refuse_credentials
from modelctl.registry import BUILTIN_REGISTRY, get_registry
from modelctl.registry.loader import generated_registry
from modelctl.registry.vocab import ENGINES, is_local
from modelctl.store.add_model import DEFAULT_KIND, NewModel, add_model
from modelctl.store.user_registry import save_entry
from modelctl.transport import wire
from modelctl.transport.http_client import ErrorContext, HttpClient
from modelctl.transport.urls import check_url, redact_url

if TYPE_CHECKING:
    import httpx

    from modelctl.registry import Model, Registry, RegistrySource

# kind -> (the path of its model list, the list's key, the keys a model's name may be under)
LISTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "openai-compatible": ("models", "data", ("id",)),
    "ollama": ("api/tags", "models", ("name", "model")),
}
NEW, ADDED, SKIPPED = "new", "added", "skipped"


@dataclass(frozen=True)
class Outcome:
    """One model the server lists: its registry id, its name on the server, what became of it
    (`new`: checked, not written yet; `added`; `skipped`) and why it was skipped."""

    id: str
    served: str
    status: str
    why: str = ""
    joins: bool = False  # a deployment added to the registry model `id`, not a model of its own

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.served, "status": self.status, "why": self.why or None,
                "joins": self.joins}


def served_names(url: str, kind: str = DEFAULT_KIND, *, transport: "httpx.BaseTransport | None" = None) -> list[str]:
    """The names of the models the server at `url` lists, in its order, each once."""
    path, key, name_keys = _list_of(kind)
    ctx = ErrorContext("the server", endpoint=url, not_found=f"has no model list at /{path}",
                       key_hint="its model list wants a key, and none is sent: add each model with `modelctl add`")
    http = HttpClient(ctx, transport=transport)
    try:
        body = http.request_json("GET", f"{url.rstrip('/')}/{path}")
    finally:
        http.close()
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BackendError(f"the server at {redact_url(url)} did not answer with a model list "
                           f"(`{key}` is {wire.kind(items if isinstance(body, dict) else body)})")
    names: list[str] = []
    for item in items:
        name = next((item[k] for k in name_keys if isinstance(item, dict) and isinstance(item.get(k), str)), None)
        if name is not None and name not in names:
            names.append(name)
    return names


def add_endpoint(url: str, *, kind: str = DEFAULT_KIND, prefix: str = "", dry_run: bool = False,
                 registry: "RegistrySource" = None, confirm: "Callable[[list[Outcome]], None] | None" = None,
                 transport: "httpx.BaseTransport | None" = None, engine: str | None = None) -> list[Outcome]:
    """Add each model the server at `url` lists as `PREFIX + its name`, or, with `engine`, as a
    deployment of the registry model it names (see the module's notes). `confirm` sees the plan
    before anything is written, and may raise to stop."""
    _list_of(kind)
    if engine is not None and (engine not in ENGINES or kind != DEFAULT_KIND):
        raise UsageError(f"--engine {engine}: expected one of {', '.join(ENGINES)}, for --kind {DEFAULT_KIND}"
                         if engine not in ENGINES else f"--engine is for --kind {DEFAULT_KIND} servers, not {kind}")
    refuse_credentials("URL", url, where=str(get_paths().user_registry))  # before anything is sent there
    check_url(url, "URL")
    known = get_registry(registry)
    target = _Target(url, kind, engine)
    plan = _one_join_each([_plan(prefix, served, target, registry, known)
                           for served in served_names(url, kind, transport=transport)])
    if dry_run or not any(o.status == NEW for o in plan):
        return plan
    if confirm is not None:
        confirm(plan)
    return [_save(o, target, registry) if o.status == NEW else o for o in plan]


@dataclass(frozen=True)
class _Target:
    """Where the served models are and how their deployments are written."""

    url: str
    kind: str
    engine: str | None

    def deployment(self, served: str, dep_id: str) -> dict[str, Any]:
        dep: dict[str, Any] = {"id": dep_id, "kind": self.kind, "model": served, "api_base": self.url}
        if self.engine is not None:
            dep["engine"] = self.engine
        return dep


def _list_of(kind: str) -> tuple[str, str, tuple[str, ...]]:
    if kind not in LISTS:
        raise UsageError(f"--kind {kind}: a server's model list is read for {' and '.join(LISTS)} only")
    return LISTS[kind]


def match_served(served: str, known: "Registry") -> "list[Model]":
    """The registry models a served name stands for: the one with that id or alias, else those
    whose Hugging Face repository it is (their model card's address, an hf-inference
    deployment's model, a deployment's `repo`)."""
    named = known.get(served)
    if named is not None:
        return [named]
    repo = served.lower()
    return [m for m in known if (original_weights(m) or "").lower() == repo
            or any(d.repo == served for d in m.deployments)]


def _plan(prefix: str, served: str, target: _Target, registry: "RegistrySource", known: "Registry") -> Outcome:
    if target.engine is None:
        return _check(prefix + served, served, target, registry, known.get(prefix + served) is not None)
    matches = match_served(served, known)
    if len(matches) > 1:
        return Outcome(prefix + served, served, SKIPPED, "it is the model of several registry entries ("
                       + ", ".join(m.id for m in matches[:4]) + "): add it to one with `modelctl add`")
    if not matches:
        return _check(prefix + served, served, target, registry, known.get(prefix + served) is not None)
    model = matches[0]
    if any(d.kind == target.kind and (d.api_base or "").rstrip("/") == target.url.rstrip("/")
           for d in model.deployments):  # (under this name or another the server lists for it)
        return Outcome(model.id, served, SKIPPED, "already a deployment of it")
    if Path(model.source) not in (get_paths().user_registry, generated_registry(), BUILTIN_REGISTRY):
        return Outcome(model.id, served, SKIPPED, f"the model is defined in {model.source}: add the deployment there")
    return Outcome(model.id, served, NEW, joins=True)


def _one_join_each(plan: list[Outcome]) -> list[Outcome]:
    """The plan with one new deployment per registry model: a server may list one model under
    several names (its id, aliases, repository); the first listed joins, the others are skipped."""
    joined: dict[str, str] = {}
    kept = []
    for outcome in plan:
        if outcome.joins and outcome.status == NEW:
            if outcome.id in joined:
                outcome = replace(outcome, status=SKIPPED, joins=False,
                                  why=f"another name of {outcome.id}, which joins as {joined[outcome.id]}")
            else:
                joined[outcome.id] = outcome.served
        kept.append(outcome)
    return kept


def _spec(model_id: str, served: str, target: _Target) -> NewModel:
    return NewModel(model_id, target.url, kind=target.kind, model=served, engine=target.engine)


def _check(model_id: str, served: str, target: _Target, registry: "RegistrySource", known: bool) -> Outcome:
    if known:
        return Outcome(model_id, served, SKIPPED, "already in the registry")
    try:
        add_model(_spec(model_id, served, target), registry=registry, dry_run=True)
    except UsageError as exc:
        return Outcome(model_id, served, SKIPPED, exc.message)
    return Outcome(model_id, served, NEW)


def _save(planned: Outcome, target: _Target, registry: "RegistrySource") -> Outcome:
    try:
        if planned.joins:
            _join(get_registry(registry).resolve(planned.id), planned.served, target)
        else:
            add_model(_spec(planned.id, planned.served, target), registry=registry)
    except (UsageError, RegistryError) as exc:  # taken since the plan was made; a table that no longer validates
        return replace(planned, status=SKIPPED, why=exc.message)
    return replace(planned, status=ADDED)


def _join(model: "Model", served: str, target: _Target) -> None:
    """Write `model` with a deployment of `served` at the target into the user registry."""
    entry = model.entry()
    dep = target.deployment(served, _deployment_id(target, {d.id for d in model.deployments}))
    if is_local(dep):
        entry["access"]["local_capable"] = True
    entry["deployments"].append(dep)
    # The user's own entry is rewritten in its place; a lower layer's is copied, shadowing it.
    save_entry(entry, existing="replace" if Path(model.source) == get_paths().user_registry else "refuse")


def _deployment_id(target: _Target, taken: set[str]) -> str:
    """`vllm-gpu1-8000`: the engine and the address, unlike the model's other deployment ids."""
    parts = urlsplit(target.url)
    base = "-".join(p for p in (target.engine or target.kind, parts.hostname, str(parts.port or "")) if p)
    found, n = base, 2
    while found in taken:
        found, n = f"{base}-{n}", n + 1
    return found
