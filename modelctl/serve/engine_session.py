"""`modelctl serve --engine E MODEL`: the engine's launch planned from what MODEL names (the
registry entry, its local GGUF), and the registry the server answers from while the engine runs:
MODEL's entry with one more deployment first, `engine` (openai-compatible, `engine = E`, at the
engine's address), which every request for MODEL goes to.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelctl.engines.catalog import ENGINE_FACTS, engine_facts
from modelctl.engines.launch import (
    EngineCommand,
    LaunchSpec,
    context_length,
    engine_command,
    original_weights,
    tool_format_of,
)
from modelctl.engines.process import free_port
from modelctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from modelctl.registry import Registry
    from modelctl.resolver import Target

ENGINE_DEPLOYMENT = "engine"  # the id of the deployment added for the running engine
# The serve process's variable for the engine's key: the added deployment's key_env.
ENGINE_KEY_ENV = "MODELCTL_ENGINE_API_KEY"
LOCAL_CTX = 4096  # a GGUF engine's context by default (as a local model's), at most the model's


@dataclass(frozen=True)
class EngineRequest:
    """`serve --engine`'s flags."""

    engine: str
    model: str
    port: int | None = None
    weights: str | None = None  # the original weights' repository, where the registry has none
    ctx: int | None = None
    api_key: str | None = None  # None: one made for this run
    timeout: float = 600.0  # seconds the engine has to become healthy
    replicas: int = 1  # copies of the model, for an engine that runs several (Ray Serve)


@dataclass(frozen=True)
class EnginePlan:
    model_id: str
    spec: LaunchSpec
    command: EngineCommand
    timeout: float


def plan(request: EngineRequest, registry: "Registry", *, dry_run: bool = False) -> EnginePlan:
    """What `serve --engine` runs for `request` (nothing is started; for a `dry_run`, not even
    the CPU check's test child: an undecided AMX host is shown the safe path)."""
    from modelctl.resolver import Resolver  # noqa: PLC0415 (the resolver: only for an engine)

    if request.engine not in ENGINE_FACTS:
        raise UsageError(f"unknown engine {request.engine!r}", hint=f"one of: {', '.join(ENGINE_FACTS)}")
    if request.replicas != 1 and not engine_facts(request.engine).replicas:
        replicated = [e.name for e in ENGINE_FACTS.values() if e.replicas]
        raise UsageError(f"--replicas is for {', '.join(replicated)}; {request.engine} runs one copy")
    gguf_engine = engine_facts(request.engine).local_weights == "gguf"
    target = Resolver(registry, check=gguf_engine, locate=gguf_engine).resolve(request.model)
    if target.entry is None and request.weights is None and not gguf_engine:
        raise UsageError(f"{request.engine} loads a model's original weights: '{target.shown}' is {target.how}",
                         hint="name a registry model, or give --weights REPO")
    spec = LaunchSpec(
        engine=request.engine, served_name=target.model_id,
        weights=_gguf(target, request.engine) if gguf_engine else _repo(target, request),
        port=request.port or free_port(), context=_context(target, request.ctx, gguf_engine),
        tool_format=tool_format_of(target.entry.template if target.entry else None),
        api_key=request.api_key or secrets.token_urlsafe(24), replicas=request.replicas,
        extra_buffers=_extra_buffers(request.engine, target, dry_run),
    )
    return EnginePlan(target.model_id, spec, engine_command(spec), request.timeout)


def _extra_buffers(engine: str, target: "Target", dry_run: bool) -> bool:
    """Whether llama-cpp-python's server may load the GGUF with llama.cpp's extra buffer types: the
    choice a local chat makes for this build and CPU (on an AMX build and CPU, a remembered or
    given verdict, else a one-time probe). Ray Serve's replicas make it themselves; the other
    engines are builds of their own, which this build's verdict says nothing about."""
    if engine != "llama-cpp-python" or target.path is None:
        return True
    from modelctl.backends.extra_buffers import ProbeResult, run_probe  # noqa: PLC0415 (llama-cpp-python: only for this engine)
    from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: PLC0415 (llama-cpp-python: only for this engine)

    def not_run(command: list[str]) -> ProbeResult:
        return ProbeResult(False, detail="not run for --dry-run")

    return LlamaCppBackend(target.path).buffer_choice(probe=not_run if dry_run else run_probe).enabled


def _gguf(target: "Target", engine: str) -> str:
    if target.path is None:
        raise NotFoundError(f"{engine} loads a GGUF file: '{target.shown}' has none on this machine",
                            hint=f"modelctl pull {target.model_id}, or name a .gguf file")
    return str(target.path)


def _repo(target: "Target", request: EngineRequest) -> str:
    if request.weights:
        return request.weights
    assert target.entry is not None
    if not target.entry.open_weights:
        raise UsageError(f"'{target.model_id}' has no open weights: {request.engine} cannot serve it")
    repo = original_weights(target.entry)
    if repo is None:
        raise UsageError(f"the registry names no repository of the original weights of '{target.model_id}' "
                         f"(which {request.engine} loads)", hint="give one with --weights REPO")
    return repo


def _context(target: "Target", ctx: int | None, gguf_engine: bool) -> int | None:
    window = target.entry.context_window if target.entry else _gguf_context(target)
    return context_length(LOCAL_CTX if ctx is None and gguf_engine else ctx, window)


def _gguf_context(target: "Target") -> int | None:
    if target.gguf is None or not target.gguf.architecture:
        return None
    value = target.gguf.metadata.get(f"{target.gguf.architecture}.context_length")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def routed(registry: "Registry", plan: EnginePlan) -> "Registry":
    """`registry` with the planned model served by its engine: its entry (an id the registry
    does not know gets one of its own) with the engine's deployment first, its in-process llama.cpp
    deployments left out (the resolver would choose those first)."""
    from modelctl.registry import Model, Registry  # noqa: PLC0415 (the registry: only for an engine)

    dep = {"id": ENGINE_DEPLOYMENT, "kind": "openai-compatible", "engine": plan.spec.engine,
           "api_base": plan.spec.base_url + "/v1", "model": plan.spec.served_name, "key_env": ENGINE_KEY_ENV}
    entry = registry.get(plan.model_id)
    if entry is None:
        new: dict[str, Any] = {"id": plan.model_id, "name": plan.model_id, "provider": "local", "category": "foundation",
               "tasks": ["chat", "completion"], "license": {"name": "unknown", "open_weights": True},
               "access": {"free_tier": True, "local_capable": True}, "deployments": []}
        entry = Model(new, "serve --engine")
    raw: dict[str, Any] = entry._raw  # noqa: SLF001 (an entry's table, copied with one more deployment)
    kept = [d for d in raw["deployments"] if d["kind"] != "llama.cpp"]
    served = Model({**raw, "deployments": [dep, *kept]}, entry.source)
    models = [served if m is entry else m for m in registry.models]
    return Registry(models if served in models else [served, *models], registry.sources, check_replacements=False)
