"""Where a chat goes: `--model auto`, `--fallback`, `--max-cost`, `--dry-run`.

    chat = open_routed("auto", messages, constraints=Constraints(local=True), fallback=True)

`--model auto` asks the selector (`chat.selector`) for the best usable service for the prompt and
says which and why; `--fallback` lines up the next services (the other candidates under auto,
else the model's other usable deployments) behind a `FallbackBackend`; `--max-cost` refuses a
request whose estimated cost is above it; `dry_run` describes the request without sending it.

The fallback: when a service fails before its answer begins with an error another service may
not have (rate limit, server error, timeout, no connection), the next one is opened (a `Chat`
of its own, with that model's parameters and template) and asked instead. Each switch is told
(`notify`) and recorded in the chat's `route["fallbacks"]`. A rejected key (401), a bad request
(400) or a model that is not there (404) are the caller's to fix, and are raised as they are. An
answer that has begun is never switched: its text is already shown. A failure of the whole
endpoint (a rate limit, a server error, no connection, no answer in time) would meet every
service at the same address: the others there are skipped (said, and recorded under
`route["skipped"]`), and the next service elsewhere is asked.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from modelctl.backends.api import pop_stream_flag
from modelctl.backends.base import (
    Chunk,
    GenerationParams,
    Message,
    RoutingBackend,
    ToolSpec,
    is_local,
    serving,
    template_variables,
)
from modelctl.chat.opening import Chat, ChatOptions, open_chat
from modelctl.errors import BackendError, ModelctlError, OfflineError, UsageError
from modelctl.refs import Auto, parse_ref
from modelctl.transport.abandon import abandoned
from modelctl.transport.http_client import StreamInterrupted
from modelctl.transport.urls import redact_url

if TYPE_CHECKING:
    from modelctl.backends.base import Backend
    from modelctl.chat.selector import Candidate, Constraints
    from modelctl.chat.tokens import TokenCount
    from modelctl.registry import Deployment, Model
    from modelctl.registry.loader import RegistrySource

def _usd(value: float) -> str:
    return f"${value:.6f}"


def answer_room(setup: Chat, entry: "Model | None") -> int:
    """The most tokens the answer may take: the chat's max_tokens (flag, config, registry), else
    `answer_tokens`."""
    from modelctl.chat.tokens import answer_tokens  # noqa: PLC0415 (modelctl.chat.tokens: not on the chat --api-base path)

    return answer_tokens(entry, setup.params.max_tokens)


def open_routed(
    model: str | None,
    messages: Sequence[Message],
    options: ChatOptions | None = None,
    *,
    constraints: "Constraints | None" = None,
    fallback: bool = False,
    max_cost: float | None = None,
    registry: "RegistrySource" = None,
    notify: Callable[[str], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Chat:
    """`open_chat` for MODEL, or for the service `--model auto` chooses for `messages` under
    `constraints`; with `fallback`, behind the services to try next; with `max_cost`, refused
    when the estimate is above it. `say` hears the choice and each fallback (default: `notify`,
    which hears what `open_chat` has to say; by default both are logged)."""

    opts = options or ChatOptions()
    service = opts.service
    notify = notify or logging.getLogger("modelctl").warning
    say = say or notify
    auto = model is not None and isinstance(parse_ref(model), Auto)
    if not any(m.get("role") == "user" for m in messages):  # the interactive chat, before its first turn
        messages = [*messages, {"role": "user", "content": ""}]
    if (auto or fallback) and (service.api_base or service.api_key):
        raise UsageError("--api-base and --api-key name one service: not with --model auto or --fallback")
    if auto and service.deployment:
        raise UsageError("--deployment names a deployment of one model: not with --model auto")
    if auto or fallback:  # the selector and each service opened read it: load it once
        from modelctl.registry import get_registry  # noqa: PLC0415 (modelctl.registry.loader: not on the chat --api-base path)

        registry = get_registry(registry)

    def opener(model_id: str | None, dep_id: str | None) -> Callable[[], Chat]:
        chosen = replace(opts, service=replace(service, deployment=dep_id))
        return lambda: open_chat(model_id, chosen, registry=registry, notify=notify)

    n_ctx, window_options = opts.load.n_ctx, dict(opts.options)  # a local model's window, as the chat will open it
    if auto:
        from modelctl.chat.selector import Constraints, select_services  # noqa: PLC0415 (modelctl.chat.selector: not on the chat --api-base path)

        k = constraints or Constraints()
        if max_cost is not None:
            k = Constraints(**{**k.__dict__, "max_cost": max_cost})
        selection = select_services(messages, k, registry=registry, n_ctx=n_ctx, options=window_options,
                                    tools=opts.flags.tools)
        best = selection.best
        say(f"--model auto chose {best.id}: {'; '.join(best.reasons)}")
        chat = opener(best.model.id, best.deployment.id)()
        chat.route.update(service=best.id, selected=best.to_dict())
        chat = _with_fallback(chat, best.id, selection.candidates[1:] if fallback else [], opener, say)
        return _capped(chat, max_cost)
    if constraints is not None:
        raise UsageError("--local, --free, --task, --min-context and --prefer choose among models: use them with --model auto")
    chat = opener(model, service.deployment)()
    entry, dep = chat.entry, chat.deployment
    if fallback and entry is not None and dep is not None:
        from modelctl.chat.selector import Constraints, select_services  # noqa: PLC0415 (modelctl.chat.selector: not on the chat --api-base path)

        same = Constraints(task=None, model=entry.id, max_tokens=chat.params.max_tokens, max_cost=max_cost)
        others = [c for c in select_services(messages, same, registry=registry, n_ctx=n_ctx,
                                                 options=window_options, tools=opts.flags.tools).candidates
                  if c.deployment.id != dep.id]
        chat = _with_fallback(chat, f"{entry.id}@{dep.id}", others, opener, say)
    return _capped(chat, max_cost)


def _capped(chat: Chat, max_cost: float | None) -> Chat:
    """`chat` with every request priced against `max_cost` (a model in this process costs
    nothing per token: it is left as it is)."""
    if max_cost is not None and chat.local is None:
        return chat.with_backend(CostCapped(chat, max_cost))
    return chat


def _with_fallback(chat: Chat, service: str, others: "Sequence[Candidate]",
                   opener: Callable[[str | None, str | None], Callable[[], Chat]],
                   notify: Callable[[str], None]) -> Chat:
    if not others:
        return chat
    queue = [(c.id, opener(c.model.id, c.deployment.id)) for c in others]
    return chat.with_backend(FallbackBackend(chat, service, queue, notify))


class CostCapped(RoutingBackend):
    """`--max-cost`: every request is priced before it is sent, and refused above the cap."""

    kind = "cost-capped"

    def __init__(self, setup: Chat, max_cost: float) -> None:
        self.setup, self.current, self.max_cost = setup, setup.backend, max_cost

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        check_cost(self.setup, messages, self.max_cost, params.tools)
        return self.current.chat(messages, params)



def check_cost(setup: Chat, messages: Sequence[Message], max_cost: float, tools: Sequence[ToolSpec] = ()) -> None:
    """Refuse (UsageError) a request whose estimated cost is above `max_cost`, or unknown. The
    prompt (with the definitions of the `tools` sent beside it) is counted without asking a
    provider; the answer is priced at its most tokens."""
    entry, dep = setup.entry, setup.deployment  # after a fallback switch: the service now used
    if entry is None or dep is None:
        raise UsageError(f"--max-cost: the registry has no price for '{setup.model_id}', so its cost is unknown")
    usd, tokens, room, cached = _estimate(setup, entry, dep, messages, tools)
    if usd is None:
        raise UsageError(f"--max-cost: the registry has no price for {entry.id}@{dep.id}, so its cost is unknown")
    if usd > max_cost:
        raise UsageError(
            f"--max-cost {_usd(max_cost)}: sending this to {entry.id}@{dep.id} may cost {_usd(usd)} "
            f"({tokens.tokens} prompt tokens{'' if tokens.exact else ' estimated'}"
            f"{f', {cached} of them cached' if cached else ''} + up to {room} answer tokens)",
            hint="lower --max-tokens, shorten the prompt, or choose a cheaper model",
        )


def estimated_cost(setup: Chat, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> float | None:
    """The most USD sending `messages` (and `tools`) to `setup`'s service may cost (the answer at
    its most tokens); 0 for a model in this process; None where the registry has no price."""
    if setup.local is not None:
        return 0.0
    entry, dep = setup.entry, setup.deployment
    if entry is None or dep is None:
        return None
    return _estimate(setup, entry, dep, messages, tools)[0]


def _estimate(setup: Chat, entry: "Model", dep: "Deployment", messages: Sequence[Message],
              tools: Sequence[ToolSpec]) -> "tuple[float | None, TokenCount, int, int]":
    from modelctl.chat.tokens import cache_reads, count_for, deployment_cost  # noqa: PLC0415 (modelctl.chat.tokens: not on the chat --api-base path)

    tokens = count_for(entry, dep, messages, ask_provider=False, tools=tools)
    room = answer_room(setup, entry)
    cached = cache_reads(setup.model_id, entry, [dep], messages, tokens.tokens).get(dep.id, 0)
    return deployment_cost(entry, dep, tokens.tokens, room, cached).total_usd, tokens, room, cached


def _request(backend: Any, messages: Sequence[Message], setup: Chat) -> dict[str, Any] | None:
    """The URL and JSON body a backend that writes its own requests would send; None for one
    that does not (its client library does)."""

    if not hasattr(backend, "request_body"):
        return None
    stream, options = pop_stream_flag(setup.params.extra)
    try:
        url, query = backend.chat_target(stream)
        body = backend.request_body(messages, setup.params, stream, options)
    except NotImplementedError:
        return None
    return {"url": redact_url(url), "query": query, "body": body}


def dry_run(setup: Chat, messages: Sequence[Message]) -> dict[str, Any]:
    """What the chat would send, and to whom, without sending it: the service, the rendered
    prompt (a local model) or the request (URL and JSON body; keys travel in headers and are not
    shown), the prompt's tokens and the estimated cost."""
    from modelctl.chat.tokens import count_for, deployment_cost  # noqa: PLC0415 (modelctl.chat.tokens: not on the chat --api-base path)

    tools = setup.params.tools
    if isinstance(setup.backend, CostCapped):  # what --max-cost would refuse, it refuses here
        check_cost(setup, messages, setup.backend.max_cost, tools)
    backend = serving(setup.backend)  # the service that would be asked first
    entry, dep = setup.entry, setup.deployment
    data: dict[str, Any] = {"id": setup.model_id, "deployment": dep.id if dep else None, **setup.route}
    room = answer_room(setup, entry)
    if is_local(backend):  # rendered as the chat renders it: reasoning switches and tools included
        rendered = backend.render(messages, template_variables(setup.params))
        data.update(prompt=rendered.text,
                    tokens={"tokens": len(backend.tokenize_rendered(rendered)), "method": "llama.cpp vocabulary",
                            "exact": True},
                    max_tokens=room, cost_usd=0.0)
        return data
    request = _request(backend, messages, setup)
    if request is not None:
        data["request"] = request
    else:  # a backend whose client library writes the request (Hugging Face, Ollama)
        data["messages"] = [dict(m) for m in messages]
    if entry is not None and dep is not None:
        count = count_for(entry, dep, messages, ask_provider=False, tools=tools)
        data.update(tokens=count.to_dict(), max_tokens=room,
                    cost_usd=deployment_cost(entry, dep, count.tokens, room).total_usd)
    return data


def retryable(exc: BaseException) -> bool:
    """Whether another service may answer where this error came from (see BackendError)."""
    return isinstance(exc, BackendError) and exc.retryable


def provider_wide(exc: BackendError) -> bool:
    """Whether `exc` says the endpoint is failing, not the one model: a rate limit (429), a server
    error (5xx), no connection, or no answer in time (a stream cut off before any text, or 408,
    409, 425, may be the request's own)."""

    if isinstance(exc, OfflineError):
        return True
    if exc.status is not None:
        return exc.status == 429 or exc.status >= 500
    return exc.retryable and not isinstance(exc, StreamInterrupted)


def endpoint_of(backend: Any) -> str | None:
    """The scheme, host and port a service is reached at (None: it runs in this process)."""

    endpoint = getattr(backend, "endpoint", None)
    if not isinstance(endpoint, str) or "://" not in endpoint:
        return None
    parts = urlsplit(endpoint)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _close(chunks: Any) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


class FallbackBackend(RoutingBackend):
    """The services of a chat, tried in order until one begins an answer. `active` is the chat
    whose service answers now; a request's parameters are carried over to it as changes to the
    first chat's (a `/set` in the REPL), on top of its own model's."""

    kind = "fallback"

    def __init__(self, first: Chat, service: str, others: Sequence[tuple[str, Callable[[], Chat]]],
                 notify: Callable[[str], None]) -> None:
        self.first = self.active = first
        self.current: "Backend" = first.backend
        self.service = service
        self.others = list(others)
        self.notify = notify
        self._debug: bool | None = None
        self._down: set[str] = set()  # endpoints that failed as a whole
        self.route = first.route
        self.route.setdefault("service", service)
        self.route.setdefault("fallbacks", [])

    def params_for(self, params: GenerationParams) -> GenerationParams:
        """`params` (made for the first chat) for the active one: its own parameters, with what
        the caller changed from the first chat's."""
        if self.active is self.first:
            return params
        changed = {f.name: getattr(params, f.name) for f in fields(params)
                   if getattr(params, f.name) != getattr(self.first.params, f.name)}
        return replace(self.active.params, **changed)

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """The current service's answer, once its first text (or its end) has arrived; a
        retryable failure before then moves on to the next service."""
        while True:
            chunks: Any = None
            head: list[Chunk] = []
            try:
                chunks = iter(self.current.chat(messages, self.params_for(params)))
                for chunk in chunks:
                    head.append(chunk)
                    if chunk.text or chunk.final:
                        break
            except BackendError as exc:
                _close(chunks)
                # work given up on (its reads ended from outside) asks no other service
                if not retryable(exc) or abandoned() or not self._switch(exc):
                    raise
                continue
            except BaseException:
                _close(chunks)
                raise
            return self._answer(head, chunks)

    @staticmethod
    def _answer(head: list[Chunk], chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        try:
            yield from head
            yield from chunks
        finally:
            _close(chunks)

    def _switch(self, failure: BackendError) -> bool:
        """Open the next service that opens, at an endpoint that has not failed as a whole;
        False when none is left."""
        where = endpoint_of(self.current)
        if where is not None and provider_wide(failure):
            self._down.add(where)
        skipped: list[str] = []
        while self.others:
            label, open_next = self.others.pop(0)
            try:
                chat = open_next()
            except ModelctlError as exc:
                self.notify(f"{label} cannot be used ({exc}); skipping it")
                continue
            if endpoint_of(chat.backend) in self._down:
                chat.close()
                skipped.append(label)
                continue
            self._say_skipped(skipped, failure)
            self._use(chat, label, failure)
            return True
        self._say_skipped(skipped, failure)
        return False

    def _say_skipped(self, skipped: list[str], failure: BackendError) -> None:
        if not skipped:
            return
        self.route.setdefault("skipped", []).extend(skipped)
        shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        where = " and ".join(sorted(self._down))
        self.notify(f"{where} fails for every model ({failure.message}); skipping the other services there: {shown}")

    def _use(self, chat: Chat, label: str, failure: BackendError) -> None:
        """Switch to `chat`'s service, saying so."""
        self.notify(f"{self.service} failed ({failure.message}); falling back to {label}")
        self.route["fallbacks"].append({"from": self.service, "to": label, "error": failure.message,
                                        "status": failure.status})
        self.current.close()
        self.active, self.current, self.service = chat, chat.backend, label
        self.route["service"] = label
        if self._debug is not None:
            self.current.set_debug(self._debug)

    def describe(self) -> dict[str, Any]:
        return {**self.current.describe(), "service": self.service}

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled
        self.current.set_debug(enabled)
