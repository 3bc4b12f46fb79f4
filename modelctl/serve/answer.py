"""One request answered: the model it names opened (a local one from the warm pool), the
caller's budget checked, the generation run (in a worker thread, see `bridge`), the turn logged
to the history under the caller's key label and counted in the metrics.

The worker emits, in order: one `Started` once a service has begun to answer (after any
fallback: its model and deployment go into the response's headers), the answer's `Split`s as
they come, and one `Finished`. An error before `Started` is the response's status; after it, an
error event in the stream.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Mapping, Sequence

from modelctl.backends.base import GenerationParams, ToolCall, Usage
from modelctl.chat.history_log import TurnLog, answer_cost, cache_saving
from modelctl.chat.opening import Chat, ChatOptions, ServiceOptions, open_chat, resolve_model
from modelctl.chat.reasoning import Split
from modelctl.chat.routing import FallbackBackend, estimated_cost
from modelctl.chat.session import ChatSession, Reply
from modelctl.errors import ModelctlError, UsageError
from modelctl.refs import Auto, FileRef, Name, parse_ref
from modelctl.serve.pool import ModelPool

if TYPE_CHECKING:
    from modelctl.backends.base import Message, ResponseFormat, ToolSpec
    from modelctl.registry import Registry
    from modelctl.serve.auth import ApiKey
    from modelctl.serve.budgets import Budgets
    from modelctl.serve.metrics import Metrics

log = logging.getLogger("modelctl.serve")

# A request that goes on from a conversation logged this recently (the same messages, then more)
# is logged in it: clients send the whole conversation each time, and the OpenAI wire has no id for it.
CONTINUE_WITHIN_S = 7 * 24 * 3600.0

Emit = Callable[[Any], None]


class PathRefused(UsageError):
    """A GGUF path as a model name, on a server that does not take paths."""


@dataclass(frozen=True)
class ServeSettings:
    """How the server answers (config.toml's `[serve]`, then the flags)."""

    keep_alive: float | None = 300.0  # seconds idle before a local model is unloaded; None: never
    max_models: int = 2
    max_bytes: int | None = None
    queue: int = 8
    allow_paths: bool = False
    fallback: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a group name → services in order
    log: bool = True  # log each request to the history
    kv_cache: int = 256 * 2**20  # bytes of saved conversation states per local model (0: none)


@dataclass(frozen=True)
class Caller:
    """Who asks: the key it showed (None with no keys configured), whether it is this user's own
    CLI (the local token), and whether that CLI logs the turn itself."""

    key: "ApiKey | None" = None
    local: bool = False
    client_logs: bool = False
    continues: int | None = None  # the logged conversation the request says it goes on (a hint, checked)

    @property
    def label(self) -> str | None:
        return self.key.label if self.key is not None else ("local" if self.local else None)


@dataclass(frozen=True)
class Started:
    model: str
    deployment: str | None
    kind: str | None


@dataclass(frozen=True)
class Finished:
    finish_reason: str | None
    usage: Usage | None
    cost: float | None
    cache_saved: float | None
    fallbacks: list[dict[str, Any]]
    text: str
    reasoning: str | None
    tool_calls: tuple[ToolCall, ...] = ()

    def extra(self, started: Started) -> dict[str, Any]:
        """The response's "modelctl" object."""
        return {"model": started.model, "deployment": started.deployment, "kind": started.kind,
                "cost": self.cost, "cache_saved": self.cache_saved, "fallbacks": self.fallbacks}


def started(chat: Chat) -> Started:
    dep = chat.deployment
    return Started(chat.model_id, dep.id if dep else None, dep.kind if dep else getattr(chat.backend, "kind", None))


class Answerer:
    """What the server knows and holds: the registry, the warm models, budgets and metrics."""

    def __init__(self, settings: ServeSettings, registry: "Registry", metrics: "Metrics",
                 budgets: "Budgets | None" = None) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.budgets = budgets
        self.pool = ModelPool(keep_alive=settings.keep_alive, max_models=settings.max_models,
                              max_bytes=settings.max_bytes, queue=settings.queue, kv_cache=settings.kv_cache)

    # --- opening ---------------------------------------------------------------------------------------

    def open(self, name: str | None, deployment: str | None, flags: GenerationParams, *, task: str = "chat",
             local_caller: bool = False) -> Chat:
        """The chat NAME opens (as `-m NAME` does), a local model's on its resident copy."""
        ref = parse_ref(name)
        if isinstance(ref, Auto):
            raise UsageError("'auto' chooses a chat model: not for this endpoint")
        if not (self.settings.allow_paths or local_caller) and _names_a_path(ref):
            raise PathRefused(f"model {name!r}: this server does not take file paths",
                              hint="name a registry model or alias (start the server with --allow-paths to allow them)")
        chat = open_chat(ref, ChatOptions(flags=flags, service=ServiceOptions(deployment=deployment), task=task),
                         registry=self.registry, notify=log.info)
        if chat.local is not None:
            chat = self.pool.lease(chat, name)
        return chat

    def open_routed(self, name: str, messages: "Sequence[Message]", flags: GenerationParams, *,
                    task: str = "chat", local_caller: bool = False) -> Chat:
        """The chat for NAME with the services to fall back on behind it: a fallback group's
        next services, or `auto`'s other candidates; one that cannot be opened is skipped."""
        services = self._services(name, messages, flags)
        first_error: ModelctlError | None = None
        while services:
            label, model_id, dep_id = services.pop(0)
            try:
                chat = self.open(model_id, dep_id, flags, task=task, local_caller=local_caller)
            except ModelctlError as exc:
                if len(services) == 0 and first_error is None:
                    raise
                first_error = first_error or exc
                log.info("%s cannot be used (%s); skipping it", label, exc)
                continue
            if not services:
                return chat
            others = [(lbl, self._opener(m, d, flags, task, local_caller)) for lbl, m, d in services]
            return chat.with_backend(FallbackBackend(chat, label, others, log.info))
        assert first_error is not None
        raise first_error

    def _opener(self, model_id: str, dep_id: str | None, flags: GenerationParams, task: str,
                local_caller: bool) -> Callable[[], Chat]:
        return lambda: self.open(model_id, dep_id, flags, task=task, local_caller=local_caller)

    def _services(self, name: str, messages: "Sequence[Message]",
                  flags: GenerationParams) -> list[tuple[str, str, str | None]]:
        group = self.settings.fallback.get(name)
        if group:
            return [(service, service, None) for service in group]
        if isinstance(parse_ref(name), Auto):
            from modelctl.chat.selector import Constraints, select_services  # noqa: PLC0415 (the selector: only for auto)

            selection = select_services(messages, Constraints(max_tokens=flags.max_tokens), registry=self.registry,
                                        tools=flags.tools)
            return [(c.id, c.model.id, c.deployment.id) for c in selection.candidates]
        return [(name, name, None)]

    # --- answering -----------------------------------------------------------------------------------

    def chat(self, model: str, messages: "list[dict[str, Any]]", flags: GenerationParams, caller: Caller,
             emit: Emit) -> None:
        """Answer a chat request (in a worker thread), emitting as the module says."""
        t0 = time.perf_counter()
        setup = self.open_routed(model, messages, flags, local_caller=caller.local)
        turn_log = None
        try:
            with self._budget(caller, setup, messages, flags.tools):
                turn_log = self._turn_log(setup, caller, messages)
                # open_chat layers the sampling flags; the answer's format is the request's own
                params = setup.params.overlay(response_format=flags.response_format)
                session = ChatSession(setup.backend, params, model=setup.model_id, on_turn=turn_log)
                self._run(setup, session.answer(messages), t0, emit, fmt=flags.response_format)
        finally:
            _close(setup, turn_log)

    def complete(self, model: str, prompt: str, flags: GenerationParams, caller: Caller, emit: Emit) -> None:
        """Answer a text-completion request (in a worker thread)."""
        t0 = time.perf_counter()
        request = [{"role": "user", "content": prompt}]
        setup = self.open_routed(model, request, flags, task="completion", local_caller=caller.local)
        turn_log = None
        try:
            with self._budget(caller, setup, request):
                turn_log = self._turn_log(setup, caller)
                session = ChatSession(setup.backend, setup.params, model=setup.model_id, on_turn=turn_log)
                log_turn = turn_log
                done = (lambda reply: log_turn(session, reply)) if log_turn is not None else (lambda reply: None)
                reply = Reply(setup.backend.complete(prompt, setup.params), done, request)
                self._run(setup, reply, t0, emit)
        finally:
            _close(setup, turn_log)

    def embed(self, model: str, inputs: list[str], caller: Caller) -> tuple[Chat, list[list[float]]]:
        """Vectors for `inputs` (in a worker thread)."""
        setup = self.open(model, None, GenerationParams(), task="completion", local_caller=caller.local)
        try:
            with self._budget(caller, setup, [{"role": "user", "content": "\n".join(inputs)}]):
                return setup, setup.backend.embed(inputs)
        finally:
            setup.close()

    def _budget(self, caller: Caller, setup: Chat, messages: "Sequence[Message]",
                tools: "Sequence[ToolSpec]" = ()) -> ContextManager[None]:
        """The caller's budget, checked and holding this request's most cost (its `tools`' definitions
        counted) until it is logged."""
        if self.budgets is None or caller.key is None:
            return nullcontext()
        return self.budgets.hold(caller.key, estimated_cost(setup, messages, tools))

    def _turn_log(self, setup: Chat, caller: Caller, messages: "Sequence[Message] | None" = None) -> TurnLog | None:
        """Where the request's turn is logged: the caller's recent conversation that `messages`
        go on from (a client sends the whole conversation each time), else a new one."""
        if not self.settings.log or (caller.local and caller.client_logs):
            return None
        from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

        try:
            history = History().open()
        except ModelctlError as exc:
            log.warning("%s; this request is not logged", exc)
            return None
        try:
            conversation = history.continued(messages, caller.label, time.time() - CONTINUE_WITHIN_S,
                                             conversation=caller.continues) if messages else None
        except ModelctlError as exc:
            log.warning("%s; this request is logged as a conversation of its own", exc)
            conversation = None
        return TurnLog(setup, history, log.warning, conversation=conversation, key_label=caller.label)

    def _run(self, setup: Chat, reply: Reply, t0: float, emit: Emit, *, fmt: "ResponseFormat | None" = None) -> None:
        """Stream `reply` through `emit`; a structured answer is held until it is validated."""
        first: float | None = None
        begun = started(setup)  # after the answer began: the service that answers it
        emit(begun)
        try:
            for split in reply.splits():
                if first is None and (split.text or split.reasoning):
                    first = time.perf_counter() - t0
                    self.metrics.first_token(begun.model, begun.deployment or "", first)
                if fmt is None:
                    emit(split)
        finally:
            reply.close()
        if fmt is not None:
            from modelctl.chat.structured import validate_answer  # noqa: PLC0415 (jsonschema: only for a response_format)

            validate_answer(reply.text, fmt, reply.finish_reason)
            emit(Split(reply.reasoning or "", reply.text))
        usage = reply.usage
        if usage is not None and reply.reasoning_tokens is not None:
            usage = replace(usage, reasoning_tokens=reply.reasoning_tokens)
        cost = answer_cost(setup, reply)
        self._count(begun, usage, cost)
        emit(Finished(reply.finish_reason, usage, cost, cache_saving(setup, reply),
                      list(setup.route.get("fallbacks", [])), reply.text, reply.reasoning, reply.tool_calls))

    def _count(self, begun: Started, usage: Usage | None, cost: float | None) -> None:
        dep = begun.deployment or ""
        if usage is not None:
            self.metrics.tokens(begun.model, dep, usage.prompt_tokens, usage.completion_tokens)
        if cost:
            self.metrics.cost(begun.model, dep, cost)

    # --- what the server offers and holds ------------------------------------------------------------

    def servable(self) -> list[dict[str, Any]]:
        """`/v1/models`: each registry model that can run here now (its GGUF is on disk, its server
        answers, its provider's key is present), with its context window and prices; then the
        fallback groups and `auto`."""
        from modelctl.chat.availability import usable_services  # noqa: PLC0415 (probes: only for /v1/models)
        from modelctl.registry.pricing import deployment_price  # noqa: PLC0415 (prices: only for /v1/models)

        rows: dict[str, dict[str, Any]] = {}
        for service in usable_services(list(self.registry)):
            model, dep = service.model, service.deployment
            if model.id in rows:
                continue
            price = deployment_price(model, dep)
            rows[model.id] = {
                "id": model.id, "object": "model", "created": 0, "owned_by": model.provider,
                "context_window": model.context_window,
                "pricing": None if price is None else {"input": price.input, "output": price.output,
                                                       "cache_read": price.cache_read},
                "modelctl": {"deployment": dep.id, "kind": dep.kind, "local": dep.kind == "llama.cpp",
                             "tasks": list(model.tasks)},
            }
        groups = [{"id": name, "object": "model", "created": 0, "owned_by": "modelctl",
                   "modelctl": {"fallback": list(services)}} for name, services in self.settings.fallback.items()]
        return [*rows.values(), *groups]

    def stop(self, name: str) -> list[str]:
        """Unload the resident model NAME names (`*`: all); the ids unloaded."""
        if name == "*":
            return self.pool.stop(lambda r: True)
        stopped = self.pool.stop(lambda r: name in r.names or name == str(r.backend.path))
        if stopped:
            return stopped
        try:
            target = resolve_model(name, registry=self.registry, check=False)
        except ModelctlError:
            return []
        path = target.path
        return self.pool.stop(lambda r: path is not None and str(r.backend.path) == str(path))

    def close(self) -> None:
        self.pool.close()


def _names_a_path(ref: object) -> bool:
    """Whether a model name asks for a file by its path (refused before anything is looked up,
    so that a server says nothing about which files exist)."""
    return isinstance(ref, FileRef) or (isinstance(ref, Name) and ref.could_be_file)


def _close(setup: Chat, turn_log: TurnLog | None) -> None:
    setup.close()
    if turn_log is not None and turn_log.history is not None:
        turn_log.history.close()
