"""Where a chat goes: `--model auto`, `--fallback`, `--max-cost`, `--dry-run`.

    setup = open_routed("auto", messages, constraints=Constraints(local=True), fallback=True)

`--model auto` asks the selector (`chat.select`) for the best usable service for the prompt and
says which and why; `--fallback` lines up the next services (the other candidates under auto,
else the model's other usable deployments) behind a `FallbackBackend`; `--max-cost` refuses a
request whose estimated cost is above it; `dry_run` describes the request without sending it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from modelctl.backends.base import Chunk, GenerationParams, Message, RoutingBackend
from modelctl.chat.resolve import ChatSetup, open_chat
from modelctl.errors import UsageError

if TYPE_CHECKING:
    from modelctl.chat.select import Candidate, Constraints
    from modelctl.registry import Model
    from modelctl.registry.loader import RegistrySource

# The MODEL that asks the selector to choose. The selector, the token counts and the fallback
# backend are imported only by a chat that uses them: a plain chat starts without them.
AUTO = "auto"


def _usd(value: float) -> str:
    return f"${value:.6f}"


def answer_room(setup: ChatSetup, entry: "Model | None") -> int:
    """The most tokens the answer may take: the chat's max_tokens (flag, config, registry), else
    `answer_tokens`."""
    from modelctl.chat.tokens import answer_tokens

    return answer_tokens(entry, setup.params.max_tokens)


def open_routed(
    model: str | None,
    messages: Sequence[Message],
    *,
    constraints: "Constraints | None" = None,
    fallback: bool = False,
    max_cost: float | None = None,
    deployment: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    registry: "RegistrySource" = None,
    notify: Callable[[str], None] | None = None,
    say: Callable[[str], None] | None = None,
    **chat_options: Any,
) -> ChatSetup:
    """`open_chat` for MODEL, or for the service `--model auto` chooses for `messages` under
    `constraints`; with `fallback`, behind the services to try next; with `max_cost`, refused
    when the estimate is above it. `say` hears the choice and each fallback (default: `notify`,
    which hears what `open_chat` has to say; by default both are logged). `chat_options` go to
    `open_chat`."""
    import logging

    notify = notify or logging.getLogger("modelctl").warning
    say = say or notify
    if not any(m.get("role") == "user" for m in messages):  # the interactive chat, before its first turn
        messages = [*messages, {"role": "user", "content": ""}]
    if (model == AUTO or fallback) and (api_base or api_key):
        raise UsageError("--api-base and --api-key name one service: not with --model auto or --fallback")
    if model == AUTO and deployment:
        raise UsageError("--deployment names a deployment of one model: not with --model auto")
    if model == AUTO or fallback:  # the selector and each service opened read it: load it once
        from modelctl.registry import get_registry

        registry = get_registry(registry)

    def opener(model_id: str | None, dep_id: str | None) -> Callable[[], ChatSetup]:
        return lambda: open_chat(model_id, deployment=dep_id, api_base=api_base, api_key=api_key,
                                 registry=registry, notify=notify, **chat_options)

    if model == AUTO:
        from modelctl.chat.select import Constraints, select_services

        k = constraints or Constraints()
        if max_cost is not None:
            k = Constraints(**{**k.__dict__, "max_cost": max_cost})
        selection = select_services(messages, k, registry=registry, **_window_options(chat_options))
        best = selection.best
        say(f"--model auto chose {best.id}: {'; '.join(best.reasons)}")
        setup = opener(best.model.id, best.deployment.id)()
        setup.route.update(service=best.id, selected=best.to_dict())
        setup = _with_fallback(setup, best.id, selection.candidates[1:] if fallback else [], opener, say)
        return _capped(setup, max_cost)
    if constraints is not None:
        raise UsageError("--local, --free, --task, --min-context and --prefer choose among models: use them with --model auto")
    setup = opener(model, deployment)()
    entry, dep = setup.entry, setup.deployment
    if fallback and entry is not None and dep is not None:
        from modelctl.chat.select import Constraints, select_services

        same = Constraints(task=None, model=entry.id, max_tokens=setup.params.max_tokens, max_cost=max_cost)
        others = [c for c in select_services(messages, same, registry=registry, **_window_options(chat_options)).candidates
                  if c.deployment.id != dep.id]
        setup = _with_fallback(setup, f"{entry.id}@{dep.id}", others, opener, say)
    return _capped(setup, max_cost)


def _window_options(chat_options: dict[str, Any]) -> dict[str, Any]:
    """What decides a local model's context window, for the selector to judge fits as the chat will."""
    return {"n_ctx": chat_options.get("n_ctx"), "options": chat_options.get("options")}


def _capped(setup: ChatSetup, max_cost: float | None) -> ChatSetup:
    """`setup` with every request priced against `max_cost` (a model in this process costs
    nothing per token: it is left as it is)."""
    if max_cost is not None and setup.local is None:
        setup.backend = CostCapped(setup, max_cost)
    return setup


def _with_fallback(setup: ChatSetup, service: str, others: "Sequence[Candidate]",
                   opener: Callable[[str | None, str | None], Callable[[], ChatSetup]],
                   notify: Callable[[str], None]) -> ChatSetup:
    if not others:
        return setup
    from modelctl.chat.fallback import FallbackBackend

    queue = [(c.id, opener(c.model.id, c.deployment.id)) for c in others]
    setup.backend = FallbackBackend(setup, service, queue, notify)
    return setup


class CostCapped(RoutingBackend):
    """`--max-cost`: every request is priced before it is sent, and refused above the cap."""

    kind = "cost-capped"

    def __init__(self, setup: ChatSetup, max_cost: float) -> None:
        self.setup, self.current, self.max_cost = setup, setup.backend, max_cost

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        check_cost(self.setup, messages, self.max_cost)
        return self.current.chat(messages, params)



def check_cost(setup: ChatSetup, messages: Sequence[Message], max_cost: float) -> None:
    """Refuse (UsageError) a request whose estimated cost is above `max_cost`, or unknown. The
    prompt is counted without asking a provider; the answer is priced at its most tokens."""
    from modelctl.chat.tokens import count_for, deployment_cost

    entry, dep = setup.entry, setup.deployment  # after a fallback switch: the service now used
    if entry is None or dep is None:
        raise UsageError(f"--max-cost: the registry has no price for '{setup.model_id}', so its cost is unknown")
    tokens = count_for(entry, dep, messages, ask_provider=False)
    room = answer_room(setup, entry)
    cost = deployment_cost(entry, dep, tokens.tokens, room)
    if cost.total_usd is None:
        raise UsageError(f"--max-cost: the registry has no price for {entry.id}@{dep.id}, so its cost is unknown")
    if cost.total_usd > max_cost:
        raise UsageError(
            f"--max-cost {_usd(max_cost)}: sending this to {entry.id}@{dep.id} may cost {_usd(cost.total_usd)} "
            f"({tokens.tokens} prompt tokens{'' if tokens.exact else ' estimated'} + up to {room} answer tokens)",
            hint="lower --max-tokens, shorten the prompt, or choose a cheaper model",
        )


def _request(backend: Any, messages: Sequence[Message], setup: ChatSetup) -> dict[str, Any] | None:
    """The URL and JSON body a backend that writes its own requests would send; None for one
    that does not (its client library does)."""
    from modelctl.backends.api import pop_stream_flag
    from modelctl.transport.urls import redact_url

    if not hasattr(backend, "request_body"):
        return None
    stream, options = pop_stream_flag(setup.params.extra)
    try:
        url, query = backend.chat_target(stream)
        body = backend.request_body(messages, setup.params, stream, options)
    except NotImplementedError:
        return None
    return {"url": redact_url(url), "query": query, "body": body}


def dry_run(setup: ChatSetup, messages: Sequence[Message]) -> dict[str, Any]:
    """What the chat would send, and to whom, without sending it: the service, the rendered
    prompt (a local model) or the request (URL and JSON body; keys travel in headers and are not
    shown), the prompt's tokens and the estimated cost."""
    from modelctl.backends.base import is_local, serving
    from modelctl.chat.tokens import count_for, deployment_cost

    if isinstance(setup.backend, CostCapped):  # what --max-cost would refuse, it refuses here
        check_cost(setup, messages, setup.backend.max_cost)
    backend = serving(setup.backend)  # the service that would be asked first
    entry, dep = setup.entry, setup.deployment
    data: dict[str, Any] = {"id": setup.model_id, "deployment": dep.id if dep else None, **setup.route}
    room = answer_room(setup, entry)
    if is_local(backend):
        data.update(prompt=backend.render(messages).text,
                    tokens={"tokens": backend.count_tokens(messages), "method": "llama.cpp vocabulary", "exact": True},
                    max_tokens=room, cost_usd=0.0)
        return data
    request = _request(backend, messages, setup)
    if request is not None:
        data["request"] = request
    else:  # a backend whose client library writes the request (Hugging Face, Ollama)
        data["messages"] = [dict(m) for m in messages]
    if entry is not None and dep is not None:
        count = count_for(entry, dep, messages, ask_provider=False)
        data.update(tokens=count.to_dict(), max_tokens=room,
                    cost_usd=deployment_cost(entry, dep, count.tokens, room).total_usd)
    return data
