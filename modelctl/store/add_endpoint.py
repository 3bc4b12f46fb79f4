"""`modelctl registry add-endpoint URL`: every model a server lists, added to the user registry
the way `modelctl add` adds one (`store/add_model.py`: the same entry, checks and atomic write).

    add_endpoint(url, kind="openai-compatible", prefix="", dry_run=False, confirm=None)
        -> [Outcome(id, served, status, why), ...]

The list comes from `GET URL/models` (OpenAI's format: `{"data": [{"id": …}]}`) or, for
`ollama`, `GET URL/api/tags` (`{"models": [{"name": …}]}`), through the bounded HTTP client (no
redirect followed, the answer's size and shape limited). A name the registry already knows is
skipped, and so is one `modelctl add` would refuse (a control character, a path, too long), each
with the reason; nothing is written with `dry_run`, nor before `confirm` has seen the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from modelctl.config import get_paths
from modelctl.errors import BackendError, UsageError
from modelctl.redaction import refuse_credentials
from modelctl.registry import get_registry
from modelctl.store.add_model import DEFAULT_KIND, NewModel, add_model
from modelctl.transport import wire
from modelctl.transport.http_client import ErrorContext, HttpClient
from modelctl.transport.urls import check_url, redact_url

if TYPE_CHECKING:
    import httpx

    from modelctl.registry import RegistrySource

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

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.served, "status": self.status, "why": self.why or None}


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
                 transport: "httpx.BaseTransport | None" = None) -> list[Outcome]:
    """Add each model the server at `url` lists as `PREFIX + its name` (see the module's notes).
    `confirm` sees the plan before anything is written, and may raise to stop."""
    _list_of(kind)
    refuse_credentials("URL", url, where=str(get_paths().user_registry))  # before anything is sent there
    check_url(url, "URL")
    known = get_registry(registry)
    plan = [_check(prefix + served, served, url, kind, registry, known.get(prefix + served) is not None)
            for served in served_names(url, kind, transport=transport)]
    if dry_run or not any(o.status == NEW for o in plan):
        return plan
    if confirm is not None:
        confirm(plan)
    return [_save(o, url, kind, registry) if o.status == NEW else o for o in plan]


def _list_of(kind: str) -> tuple[str, str, tuple[str, ...]]:
    if kind not in LISTS:
        raise UsageError(f"--kind {kind}: a server's model list is read for {' and '.join(LISTS)} only")
    return LISTS[kind]


def _spec(model_id: str, served: str, url: str, kind: str) -> NewModel:
    return NewModel(model_id, url, kind=kind, model=served)


def _check(model_id: str, served: str, url: str, kind: str, registry: "RegistrySource", known: bool) -> Outcome:
    if known:
        return Outcome(model_id, served, SKIPPED, "already in the registry")
    try:
        add_model(_spec(model_id, served, url, kind), registry=registry, dry_run=True)
    except UsageError as exc:
        return Outcome(model_id, served, SKIPPED, exc.message)
    return Outcome(model_id, served, NEW)


def _save(planned: Outcome, url: str, kind: str, registry: "RegistrySource") -> Outcome:
    try:
        add_model(_spec(planned.id, planned.served, url, kind), registry=registry)
    except UsageError as exc:  # taken since the plan was made
        return replace(planned, status=SKIPPED, why=exc.message)
    return replace(planned, status=ADDED)
