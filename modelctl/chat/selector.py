"""Choosing a service for a prompt: every deployment ranked under constraints, with reasons.

    selection = select_services(messages, Constraints(local=True, prefer="cheapest"), registry=reg)
    best = selection.best            # a Candidate: model, deployment, tokens, cost, reasons
    selection.rejected               # the others, each with why not

Like the service-selector of the service-metadata design: it looks at the rendered prompt and at
what each service reports about itself (model id, endpoint, context window, prices, whether it
is usable now) and returns them ranked. It sends nothing: prompts are counted with the local
tokenizers (the GGUF vocabulary, tiktoken) or estimated (`chat.tokens`), never by a provider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from modelctl.chat.availability import services as check_services
from modelctl.chat.tokens import (
    ContextWindow,
    DeploymentCost,
    Message,
    TokenCount,
    answer_tokens,
    cache_reads,
    count_for,
    deployment_cost,
    run_window,
)
from modelctl.errors import NotFoundError, UsageError
from modelctl.registry.loader import get_registry
from modelctl.registry.vocab import TASK_COMMANDS, today_iso
from modelctl.resolver import registry_target

if TYPE_CHECKING:
    from modelctl.backends.base import ToolSpec
    from modelctl.chat.availability import Service
    from modelctl.history import History
    from modelctl.registry import Deployment, Model
    from modelctl.registry.loader import RegistrySource
    from modelctl.resolver import Target

PREFERENCES = ("cheapest", "fastest", "largest-context", "local")


@dataclass(frozen=True)
class Constraints:
    """What a chosen service must satisfy, and what to prefer among those that do.

    `free`: the deployment runs locally or the model has a free tier. `max_cost`: the estimated
    cost of the prompt plus the answer's room (`max_tokens`, else the model's), in USD (a deployment without a price is
    refused). `model`: only deployments of this registry model (fallback within one model)."""

    task: str | None = "chat"  # None: any
    local: bool = False
    free: bool = False
    max_cost: float | None = None
    min_context: int | None = None
    max_tokens: int | None = None  # room for the answer; None: each model's (`answer_tokens`)
    prefer: str = "cheapest"
    model: str | None = None

    def __post_init__(self) -> None:
        if self.prefer not in PREFERENCES:
            raise UsageError(f"--prefer {self.prefer!r}: expected one of {', '.join(PREFERENCES)}")


@dataclass
class Candidate:
    """One service judged for the prompt."""

    service: "Service"
    tokens: TokenCount
    window: ContextWindow  # what a chat with it would have, and the model's own
    cost: DeploymentCost
    answer: int  # tokens kept for the answer
    reasons: list[str] = field(default_factory=list)  # why chosen, or why refused

    @property
    def context_window(self) -> int | None:
        """The context window a chat with this service would have (`run_window`)."""
        return self.window.used

    @property
    def model(self) -> "Model":
        return self.service.model

    @property
    def deployment(self) -> "Deployment":
        return self.service.deployment

    @property
    def id(self) -> str:
        return self.service.id

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.id, "model": self.model.id, "deployment": self.deployment.id,
                "kind": self.deployment.kind, "local": self.deployment.local, "tokens": self.tokens.to_dict(),
                "context_window": self.context_window, "context_window_trained": self.window.trained,
                "max_tokens": self.answer, "cost_usd": self.cost.total_usd,
                "reasons": self.reasons}


@dataclass
class Selection:
    """The candidates that satisfy the constraints, best first, and those that do not."""

    candidates: list[Candidate]
    rejected: list[Candidate]
    constraints: Constraints

    @property
    def best(self) -> Candidate:
        if not self.candidates:
            raise NotFoundError("no usable model satisfies the constraints" + self._why(),
                                hint="see `modelctl services`, or relax --local/--free/--max-cost/--min-context")
        return self.candidates[0]

    def _why(self) -> str:
        if not self.rejected:
            return " (no model is registered for the task)"
        first = sorted(self.rejected, key=lambda c: not c.service.usable)  # usable ones say more
        shown = "; ".join(f"{c.id}: {c.reasons[-1]}" for c in first[:3])
        more = f"; {len(self.rejected) - 3} more" if len(self.rejected) > 3 else ""
        return f" ({shown}{more})"

    def to_dict(self) -> dict[str, Any]:
        return {"prefer": self.constraints.prefer, "candidates": [c.to_dict() for c in self.candidates],
                "rejected": [c.to_dict() for c in self.rejected]}


def _usd(value: float) -> str:
    return f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"


def _refusal(c: Candidate, k: Constraints) -> str | None:
    """Why `c` does not satisfy `k`, or None."""
    model, dep = c.model, c.deployment
    if not c.service.usable:
        return f"not usable: {c.service.reason}"
    if not does_task(model, k.task):
        needs = f"'{k.task}' model that chats" if k.task in model.tasks else f"'{k.task}' model"
        return f"not a {needs} (tasks: {', '.join(model.tasks)})"
    if k.local and not dep.local:
        return "not local (--local)"
    if k.free and not (dep.local or model.free):
        return "not free: not local and no free tier (--free)"
    if k.min_context is not None and (c.context_window or 0) < k.min_context:
        return f"context window {c.context_window or 'unknown'}{_more_with_ctx(c)} < --min-context {k.min_context}"
    if c.context_window is not None and c.tokens.tokens + c.answer > c.context_window:
        return (f"prompt {c.tokens.tokens} + answer {c.answer} tokens > context window {c.context_window}"
                + _more_with_ctx(c))
    if k.max_cost is not None:
        if c.cost.total_usd is None:
            return "no price in the registry (--max-cost)"
        if c.cost.total_usd > k.max_cost:
            return f"estimated cost {_usd(c.cost.total_usd)} > --max-cost {_usd(k.max_cost)}"
    return None


class _PromptCaches:
    """The prompt tokens each service's prompt cache is expected to serve (priced at the cache-read
    price, as `tokens` and a named model's --max-cost do), from one history opened for the whole
    selection (when there is one) and looked in once per model, for all its deployments."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages = messages
        self.seen: dict[str, dict[str, int]] = {}
        self.history: "History | None" = None

    def tokens(self, service: "Service", prompt_tokens: int) -> int:
        from modelctl.chat.cache_estimate import cached_messages  # noqa: PLC0415 (sqlite3 and the history: only for a candidate that is usable)
        from modelctl.history import History  # noqa: PLC0415 (sqlite3: only for a candidate that is usable)

        model, dep = service.model, service.deployment
        if model.id not in self.seen:
            if self.history is None:
                self.history = History()  # (connected on first use: not where no cache rule applies)
            self.seen[model.id] = cached_messages(model.id, [(d.id, d.kind) for d in model.deployments],
                                                  self.messages, history=self.history) \
                if self.history.path.exists() else {}
        return cache_reads(model.id, model, [dep], self.messages, prompt_tokens, hits=self.seen[model.id]).get(dep.id, 0)

    def close(self) -> None:
        if self.history is not None:
            self.history.close()


def _more_with_ctx(c: Candidate) -> str:
    """For a local model that runs with less than its own window: how to have more."""
    used, trained = c.window.used, c.window.trained
    return f" (the model's is {trained}: --ctx raises it)" if used and trained and trained > used else ""


def does_task(model: "Model", task: str | None) -> bool:
    """Whether `model` lists `task` (None: any); a task done through `chat` (vision, code,
    translation, …) also needs the chat task: an image-embedding or segmentation model lists
    "vision" and cannot answer a chat."""

    if task is None:
        return True
    return task in model.tasks and (TASK_COMMANDS.get(task) != "chat" or "chat" in model.tasks)


def _cost_key(c: Candidate) -> float:
    return math.inf if c.cost.total_usd is None else c.cost.total_usd


# prefer -> the sort key (smaller is better); ties go to the cheaper, then to registry order.
RankKey = tuple[bool | float, ...]  # compared item by item
RANKINGS: dict[str, Callable[[Candidate], RankKey]] = {
    "cheapest": lambda c: (_cost_key(c), not c.deployment.local),
    # Fewer parameters generate faster; a model whose size is unknown comes after those known.
    "fastest": lambda c: (c.model.parameters is None, c.model.parameters or 0, _cost_key(c)),
    "largest-context": lambda c: (-(c.context_window or 0), _cost_key(c)),
    "local": lambda c: (not c.deployment.local, _cost_key(c)),
}


def _load_rank(c: Candidate) -> tuple[float, float]:
    load = c.service.load
    return load.rank() if load is not None else (math.inf, math.inf)


def least_loaded_first(ranked: list[Candidate], key: Callable[[Candidate], RankKey]) -> list[Candidate]:
    """`ranked` with each set of equivalent deployments of one model (the same model, the same
    rank key) reordered among its places, least loaded first: the shorter queue of waiting
    requests, then the emptier KV cache, as their serving engines report them; a deployment
    whose load is unknown comes after those that report one, ties keep their order."""
    places: dict[tuple[str, RankKey], list[int]] = {}
    for i, c in enumerate(ranked):
        places.setdefault((c.model.id, key(c)), []).append(i)
    out = list(ranked)
    for group in places.values():
        if len(group) < 2:
            continue
        by_load = sorted((ranked[i] for i in group), key=_load_rank)
        for i, c in zip(group, by_load):
            out[i] = c
        load = by_load[0].service.load
        if load is not None:
            by_load[0].reasons.append(f"least loaded of {len(group)} deployments of {by_load[0].model.id} ({load.text()})")
    return out


def _why_chosen(c: Candidate) -> list[str]:
    reasons = [f"usable: {c.service.reason}"]
    window = f"of {c.context_window}" if c.context_window else "(context window unknown)"
    reasons.append(f"prompt {c.tokens.tokens} tokens ({c.tokens.method}) + answer {c.answer} {window}")
    if c.cost.total_usd is None:
        reasons.append("cost unknown (no price in the registry)")
    else:
        cached = f" ({c.cost.cached_tokens} prompt tokens at the cache-read price)" if c.cost.cached_tokens else ""
        reasons.append(f"estimated cost {_usd(c.cost.total_usd)}{cached}")
    return reasons


Counter = Callable[["Model", "Deployment", Sequence[Message]], TokenCount]


def local_file(model: "Model", dep: "Deployment") -> "Target | None":
    """The GGUF file of a llama.cpp deployment, where it is on this machine."""
    if dep.kind != "llama.cpp":
        return None

    target = registry_target(model, dep, check=False)
    return target if target.is_local else None


def local_counter(tools: Sequence["ToolSpec"] = ()) -> Counter:
    """Counts with the tokenizers here, never asking a provider: a local GGUF model with its
    vocabulary, OpenAI ids with tiktoken, the rest estimated; each conversation counted once per
    deployment, with the definitions of the `tools` it offers."""
    done: dict[tuple[str, str, tuple[tuple[tuple[str, str], ...], ...]], TokenCount] = {}

    def count(model: "Model", dep: "Deployment", messages: Sequence[Message]) -> TokenCount:
        key = (model.id, dep.id, tuple(tuple(sorted(m.items())) for m in messages))
        if key not in done:
            done[key] = count_for(model, dep, messages, ask_provider=False, local_file=local_file(model, dep),
                                  tools=tools)
        return done[key]

    return count


def select_services(
    messages: Sequence[Message],
    constraints: Constraints = Constraints(),
    *,
    registry: "RegistrySource" = None,
    services: Iterable["Service"] | None = None,
    counter: Counter | None = None,
    n_ctx: int | None = None,
    options: Mapping[str, Any] | None = None,
    tools: Sequence["ToolSpec"] = (),
) -> Selection:
    """Rank every deployment of the registry (or the given `services`, checked for availability)
    for `messages` (offering `tools`) under `constraints`. `counter` counts a prompt for a
    deployment (default: `local_counter`). What fits is judged against the context window a chat with each would
    use (`run_window`: a local model's `n_ctx`, as chat's --ctx, or its `options`' n_ctx, else the
    config's, else 4096). Deployments of models for another task are left out of `rejected`."""

    k = constraints
    if services is None:
        reg = get_registry(registry)
        if k.model is not None:
            models = [reg.resolve(k.model)]
        else:
            today = today_iso()  # a model without a deprecation may still carry a passed retirement date
            models = [m for m in reg if does_task(m, k.task) and m.status != "deprecated" and not m.retired(today)]
        services = check_services(models)
    count = counter or local_counter(tools)
    caches = _PromptCaches(messages)
    accepted: list[Candidate] = []
    rejected: list[Candidate] = []
    try:
        for service in services:
            if k.model is not None and service.model.id != k.model and k.model not in service.model.aliases:
                continue
            tokens = count(service.model, service.deployment, messages) if service.usable else TokenCount(0, "not counted", False)
            room = answer_tokens(service.model, k.max_tokens)
            local = local_file(service.model, service.deployment) if service.usable else None
            window = run_window(service.model, service.deployment, n_ctx=n_ctx, options=options, local=local)
            cached = caches.tokens(service, tokens.tokens) if service.usable else 0
            candidate = Candidate(service, tokens, window,
                                  deployment_cost(service.model, service.deployment, tokens.tokens, room, cached), room)
            refusal = _refusal(candidate, k)
            if refusal is None:
                candidate.reasons = _why_chosen(candidate)
                accepted.append(candidate)
            else:
                candidate.reasons = [refusal]
                rejected.append(candidate)
    finally:
        caches.close()
    accepted.sort(key=RANKINGS[k.prefer])  # stable: ties keep registry order
    accepted = least_loaded_first(accepted, RANKINGS[k.prefer])
    if accepted:
        others = len(accepted) - 1
        accepted[0].reasons.append(f"first by --prefer {k.prefer}" + (f" of {others + 1} candidates" if others else ""))
    return Selection(accepted, rejected, k)
