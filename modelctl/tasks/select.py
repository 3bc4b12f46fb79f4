"""Which model and deployment a task command uses: the registry's `tasks` decide which models
a command accepts, the deployment kind decides who speaks the task's wire format.

    open_task("text-to-image", "dall-e-3") -> a TaskClient for its first deployment that serves it
"""

from __future__ import annotations

import difflib
import logging
from typing import TYPE_CHECKING, Any, Callable, Union

from modelctl.backends.factory import adhoc_deployment, open_backend
from modelctl.errors import NotFoundError, UsageError
from modelctl.registry.lifecycle import check_use
from modelctl.registry.pricing import unit_price
from modelctl.resolver import Resolver, UnknownModel
from modelctl.tasks.hf_tasks import HFTasks
from modelctl.tasks.openai_tasks import OpenAITasks

if TYPE_CHECKING:
    from modelctl.registry import Deployment, Model, Registry

    TaskClient = Union[OpenAITasks, HFTasks]
else:
    TaskClient = Any

_OPENAI = ("openai", "azure-openai", "openai-compatible")
# task -> the deployment kinds whose wire format modelctl speaks for it. Azure AI catalog
# deployments (`azure-ai`) of task models run on managed compute whose `/score` request is
# defined by each endpoint, so none is listed.
TASK_KINDS: dict[str, tuple[str, ...]] = {
    "text-to-image": (*_OPENAI, "hf-inference"),
    "text-to-speech": (*_OPENAI, "hf-inference"),
    "speech-to-text": (*_OPENAI, "hf-inference"),
    "moderation": (*_OPENAI, "hf-inference"),
    "image-classification": ("hf-inference",),
    "zero-shot-image-classification": ("hf-inference",),
    "fill-mask": ("hf-inference",),
}


# task -> the Hugging Face pipeline an `hf-inference` deployment must name in its `task` to serve
# it (one without a task serves chat or text generation).
HF_PIPELINES = {"text-to-image": "text-to-image", "text-to-speech": "text-to-speech",
                "speech-to-text": "automatic-speech-recognition", "moderation": "text-classification",
                "image-classification": "image-classification",
                "zero-shot-image-classification": "zero-shot-image-classification", "fill-mask": "fill-mask"}


def serves(dep: "Deployment", task: str) -> bool:
    if dep.kind == "hf-inference":
        return dep.task == HF_PIPELINES[task]
    return dep.kind in TASK_KINDS[task]


def models_for(registry: "Registry", task: str) -> list["Model"]:
    """The models whose tasks include `task` and that have a deployment serving it."""
    return [m for m in registry if task in m.tasks and any(serves(d, task) for d in m.deployments)]


def _did_you_mean(name: str, candidates: list["Model"], task: str) -> str:
    ids = [m.id for m in candidates]
    close = difflib.get_close_matches(name.lower(), [i.lower() for i in ids], n=3, cutoff=0.3)
    picks = [i for i in ids if i.lower() in close] or ids[:3]
    if not picks:
        return "no model in the registry does; `modelctl search` lists them"
    more = f"; `modelctl list --task {task}` lists all {len(ids)}" if len(ids) > len(picks) else ""
    named = ", ".join(f"'{p}'" for p in picks)
    return (f"did you mean {named}?" if name else f"models that do: {named}") + more


def pick_model(registry: "Registry", task: str, name: str | None) -> "Model":
    """The registry model `name` names (as every command resolves it: a user alias is followed),
    which must list `task` among its tasks."""

    candidates = models_for(registry, task)
    if not name:
        raise UsageError(f"which model? {task} needs --model MODEL", hint=_did_you_mean("", candidates, task))
    try:
        target = Resolver(registry, check=False, locate=False).resolve(name)
    except UnknownModel as exc:
        raise NotFoundError(exc.message, hint=_did_you_mean(name, candidates, task)) from None
    model = target.registry_model(task, hint=_did_you_mean("", candidates, task))
    if task not in model.tasks:
        does = ", ".join(model.tasks) or "nothing"
        raise UsageError(f"model '{model.id}' does not do {task} (its tasks: {does})",
                         hint=_did_you_mean(name, candidates, task))
    return model


def pick_deployment(model: "Model", task: str, ref: str | None) -> "Deployment":
    """The model's deployment `ref` (id or kind), else its first one that serves `task`."""
    kinds = TASK_KINDS[task]
    dep = model.deployment(ref) if ref else next((d for d in model.deployments if serves(d, task)), None)
    if dep is None or not serves(dep, task):
        has = ", ".join(sorted({d.kind for d in model.deployments})) or "none"
        what = f"deployment '{ref}'" if dep is not None else f"model '{model.id}'"
        raise UsageError(f"{what} cannot do {task} through modelctl: {task} is served by "
                         f"{', '.join(kinds)} deployments (hf-inference ones with task = "
                         f"\"{HF_PIPELINES[task]}\"; it has: {has})",
                         hint="Azure AI catalog task endpoints take endpoint-specific /score requests"
                         if "azure-ai" in has else None)
    return dep


def _check_lifecycle(model: "Model", registry: "Registry", notify: "Callable[[str], None] | None",
                     allow_retired: bool) -> None:
    check_use(model, registry, notify or logging.getLogger("modelctl").warning, allow_retired=allow_retired)


def open_task(
    task: str,
    model: str | None,
    *,
    registry: "Callable[[], Registry]",
    deployment: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    debug: Any = None,
    notify: "Callable[[str], None] | None" = None,
    allow_retired: bool = False,
    **options: Any,
) -> TaskClient:
    """A client for `task` on `model` (a registry id or alias; with `api_base` and a name the
    registry does not know, any OpenAI-compatible server). A model its provider has retired is
    refused unless `allow_retired`; `notify` hears of a deprecated one (by default it is logged).
    `options` go to the backend (`retry`, `timeout`, `transport`)."""

    if task not in TASK_KINDS:
        raise UsageError(f"unknown task '{task}' (known: {', '.join(TASK_KINDS)})")
    reg = registry()
    chosen: "Model | None" = None
    if api_base and model and not deployment and Resolver(reg, locate=False).known_model(model) is None:
        if "openai-compatible" not in TASK_KINDS[task]:
            raise UsageError(f"--api-base with a model the registry does not know is an OpenAI-compatible server, "
                             f"which has no {task} endpoint", hint="use a registry model with an hf-inference "
                             "deployment and --api-base for its endpoint")
        dep = adhoc_deployment(api_base, model)
        backend = open_backend(None, dep, api_key=api_key, debug=debug, **options)
    else:
        chosen = pick_model(reg, task, model)
        dep = pick_deployment(chosen, task, deployment)
        _check_lifecycle(chosen, reg, notify, allow_retired)
        backend = open_backend(chosen, dep, api_base=api_base, api_key=api_key, debug=debug, **options)
    client: TaskClient
    if dep.kind == "hf-inference":
        try:
            client = HFTasks(backend)  # type: ignore[arg-type]
        except BaseException:
            backend.close()
            raise
    else:
        client = OpenAITasks(backend)  # type: ignore[arg-type]
    client.model = chosen  # for its prices (`unit_cost`)
    return client


def unit_cost(client: TaskClient, unit: str, amount: float | None) -> float | None:
    """USD for `amount` units (images, audio minutes, million characters) at the registry's
    `unit_prices` of the client's model and deployment, plus its per-request fee; None when the
    registry has no such price or the amount is unknown."""

    price = unit_price(client.model, client.backend.deployment, unit)
    if price is None or amount is None:
        return None
    return price * amount + (unit_price(client.model, client.backend.deployment, "request") or 0.0)
