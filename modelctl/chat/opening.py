"""Opening a chat: from MODEL to a `Chat` with its backend, template and parameters.

    MODEL ─► parse_ref (modelctl.refs) ─► Resolver (modelctl.resolver) ─► Target
        ─► template (modelctl.templates.resolve_template) ─► LlamaCppBackend, or
        ─► a server or API deployment ─► modelctl.backends.factory.open_backend
    registry defaults ◄ config [chat] ◄ [models."ID"] ◄ alias options ◄ flags  ─►  GenerationParams

    with open_chat("gemma-3-270m", ChatOptions(flags=GenerationParams(max_tokens=16))) as chat:
        ...

With no MODEL, the user's `[chat] model` is used, else the default model for the task
(`store.default_model`: SmolLM2-135M-Instruct to chat, Gemma 3 270M to complete text and embed,
both shipped on PyPI). A user alias (config.toml [aliases]) stands for its model, and its options
are defaults below the flags.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from modelctl.backends.base import NUMBER_PARAMS, REASONING_PARAMS, GenerationParams, RoutingBackend
from modelctl.backends.factory import open_backend
from modelctl.backends.stops import unescape_stop
from modelctl.chat.session import check_params
from modelctl.chat.settings import chat_config, model_config, split_alias_options
from modelctl.errors import UsageError
from modelctl.refs import Endpoint, ModelRef, parse_ref
from modelctl.resolver import Resolver, Target
from modelctl.terminal_text import safe

# The registry, the store and GGUF reading are imported where a name is looked up: a chat with
# `--api-base URL -m NAME` (a script's call) needs none of them.
if TYPE_CHECKING:
    from modelctl.backends.base import Backend
    from modelctl.registry import Deployment, Model, Registry, RegistrySource
    from modelctl.registry.aliases import Alias
    from modelctl.templates import ChatTemplate

# llama.cpp's GGML_MAX_N_THREADS: more threads than this abort the process (std::bad_alloc).
MAX_THREADS = 512
# Used for local models when neither the registry, the config nor a flag sets max_tokens: base
# models (like the embedded default) may never emit an end-of-generation token.
DEFAULT_MAX_TOKENS = 512
_PARAM_KEYS = tuple(NUMBER_PARAMS)  # `stop` accumulates: it is overlaid apart


def user_chat_config() -> dict[str, Any]:
    """The [chat] table of config.toml, type-checked."""

    return chat_config()


def user_defaults(model_id: str | None, alias: "Alias | None" = None, *, local: bool = True) -> dict[str, Any]:
    """The config a chat with `model_id` (a registry id, or None) starts from: [chat], over it
    [models."ID"], over that the options of the user alias the model was named by. Their backend
    options are merged under `options` ([chat]'s only for a local model: they are llama.cpp's)."""

    chat = user_chat_config()
    layers = [chat if local else {k: v for k, v in chat.items() if k != "options"}, model_config(model_id)]
    if alias is not None:
        defaults, backend_options = split_alias_options(alias.options)
        layers.append({**defaults, "options": backend_options})
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if k != "options"})
    merged["options"] = {k: v for layer in layers for k, v in layer.get("options", {}).items()}
    return merged


def target_defaults(target: "Target") -> dict[str, Any]:
    """`user_defaults` for a resolved target."""
    return user_defaults(target.entry.id if target.entry else None, target.alias, local=target.is_local)


def resolve_model(model: "ModelRef | str | None", deployment: str | None = None, *,
                  registry: "RegistrySource" = None, check: bool = True, task: str = "chat",
                  vet: "Callable[[Model], None] | None" = None) -> "Target":
    """The target MODEL names (see `modelctl.resolver`); no MODEL: the user's `[chat] model`,
    else the default model for `task`."""

    default = user_chat_config().get("model") if model is None else None
    return Resolver(registry, check=check, task=task, default=default, vet=vet).resolve(model, deployment)


def layered_params(entry: "Model | None", flags: GenerationParams, *, local: bool = True,
                   config: Mapping[str, Any] | None = None) -> GenerationParams:
    """Built-in defaults (local models only), registry defaults, the user's `config` (by
    default [chat] over the entry's [models."ID"]), then the flags."""
    params = GenerationParams(max_tokens=DEFAULT_MAX_TOKENS if local else None)
    if entry is not None:
        d = entry.defaults
        params = params.overlay(**{k: getattr(d, k) for k in _PARAM_KEYS}, stop=tuple(d.stop))
    cfg = config if config is not None else user_defaults(entry.id if entry else None)
    params = params.overlay(**{k: cfg.get(k) for k in _PARAM_KEYS}, stop=_config_stops(cfg), cache=cfg.get("cache"))

    flagged = {k: getattr(flags, k) for k in (*_PARAM_KEYS, *REASONING_PARAMS, "cache", "tools", "tool_choice")}
    return check_params(params.overlay(**flagged, stop=flags.stop, extra=flags.extra))


def _config_stops(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """config.toml's (or an alias's) stop strings, their escapes read as --stop reads them."""

    return tuple(unescape_stop(s, "stop in config.toml") for s in cfg.get("stop", ()))


def choose_template(target: "Target", template: str | None) -> "ChatTemplate":
    """The conversation template: --template, the registry's, the GGUF's own (a file here),
    adapters by the model's names, fallback (`source == "fallback"`: none is known for it)."""
    from modelctl.templates import resolve_template  # noqa: PLC0415 (modelctl.templates: not on the chat --api-base path)

    return resolve_template(
        template=template,
        registry_template=target.entry.template if target.entry else None,
        gguf_metadata=target.gguf.metadata if target.gguf is not None else None,
        names=list(target.names or (target.model_id,)),
    )


def _threads(n: int | None) -> int | None:
    if n is not None and n > MAX_THREADS:
        raise UsageError(f"{n} threads: llama.cpp runs at most {MAX_THREADS}")
    return n


def _thread_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, once the thread counts among them (`-o n_threads_batch=N`) are checked too."""
    for key, value in options.items():
        if key.startswith("n_threads"):
            try:
                _threads(int(str(value)))
            except ValueError:
                pass  # not a number: the backend says what the option takes
    return options


@dataclass(frozen=True)
class LoadOptions:
    """How a local model is loaded (`--ctx`, `--gpu-layers`, `--threads`, `--template`): None
    leaves each to config.toml, the alias, the registry and the model."""

    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    template: str | None = None
    images: bool = False  # images may be sent (--image, --mmproj): a vision projector is loaded too

    def given(self) -> list[str]:
        """The flags set, as the user wrote them."""
        flags = (("--template", self.template), ("--ctx", self.n_ctx), ("--gpu-layers", self.n_gpu_layers),
                 ("--threads", self.n_threads))
        return [flag for flag, value in flags if value is not None]


@dataclass(frozen=True)
class ServiceOptions:
    """Where and how a service is reached (`--deployment`, `--api-base`, `--api-key`), and
    whether a model its provider retired may still be used (`--allow-retired`)."""

    deployment: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    allow_retired: bool = False


@dataclass(frozen=True)
class ChatOptions:
    """Everything a chat is opened with besides its model. `flags` are the generation flags;
    `options` are `-o KEY=VALUE` (llama.cpp parameters for a local model, extra request fields for
    a server or API); `task` "completion" opens a model for bare text (no template)."""

    flags: GenerationParams = field(default_factory=GenerationParams)
    load: LoadOptions = field(default_factory=LoadOptions)
    service: ServiceOptions = field(default_factory=ServiceOptions)
    options: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None
    debug: bool | None = None
    task: str = "chat"


@dataclass(frozen=True)
class Chat:
    """A model ready to talk to: the target, its backend (a local model is not loaded yet), the
    generation parameters it starts with and the system message. `route` records how the service
    was chosen (`service`, `selected` for --model auto, `fallbacks` for each switch --fallback
    made). After a fallback switch, `model_id`, `entry`, `deployment` and `local` describe the
    service now answering (`current`). Closing the chat (or leaving its `with` block) closes the
    backend."""

    target: "Target"
    backend: "Backend"
    params: GenerationParams
    system: str | None = None
    route: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> "Chat":
        """The chat whose service answers now: another one after a fallback switch."""
        backend: Any = self.backend
        while isinstance(backend, RoutingBackend):
            active = getattr(backend, "active", None)
            if isinstance(active, Chat):
                return active
            backend = backend.current
        return self

    @property
    def model_id(self) -> str:
        return self.current.target.model_id

    @property
    def entry(self) -> "Model | None":
        return self.current.target.entry

    @property
    def deployment(self) -> "Deployment | None":
        return self.current.target.deployment

    @property
    def local(self) -> "Target | None":
        """The target when it runs in this process (a GGUF here), else None."""
        target = self.current.target
        return target if target.is_local else None

    def with_backend(self, backend: "Backend") -> "Chat":
        return replace(self, backend=backend)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refuse_completion_only(entry: "Model", name: str) -> None:
    """A base model the registry lists for text completion only is not chatted with by accident:
    its answers to a chat template are poor. `--template` chats anyway."""
    if "completion" in entry.tasks and "chat" not in entry.tasks:
        anyway = ", or --template NAME to chat anyway" if any(d.kind == "llama.cpp" for d in entry.deployments) else ""
        raise UsageError(f"'{entry.id}' is a base model for text completion, not chat",
                         hint=f"use `modelctl complete -m {name or entry.id} TEXT`{anyway}")


def _debug_line(target: "Target", debug: bool | None) -> None:
    if debug:
        sys.stderr.write(safe(f"debug: name: {target.explain()}") + "\n")


def _loaded_once(source: "RegistrySource") -> "RegistrySource":
    """`source`, loaded at most once however often it is asked for (None: the registry files)."""
    if source is not None and not callable(source):
        return source
    memo: list[Registry] = []

    def load() -> "Registry":
        if not memo:
            from modelctl.registry.loader import get_registry  # noqa: PLC0415 (modelctl.registry.loader: not on the chat --api-base path)

            memo.append(get_registry(source))
        return memo[0]

    return load


def open_chat(model: "Target | ModelRef | str | None", options: ChatOptions | None = None, *,
              registry: "RegistrySource" = None, notify: Callable[[str], None] | None = None) -> Chat:
    """Resolve MODEL (a name, a parsed `ModelRef`, or a `Target` already resolved), choose its
    template and parameters, and build the backend (a local model is not loaded yet).
    `options.service.api_base` without a deployment means an OpenAI-compatible server that knows
    MODEL by that name. `notify` hears what the user should know (a template guessed, a context
    window lowered, a deprecated model); by default it is logged. A registry model its provider
    has retired is refused unless `options.service.allow_retired`."""
    if notify is None:
        notify = logging.getLogger("modelctl").warning
    registry = _loaded_once(registry)  # the resolver and the lifecycle check share one load
    opts = options or ChatOptions()
    service = opts.service
    chatting = opts.task == "chat" and not opts.load.template
    if isinstance(model, Target):
        target = model.with_deployment(service.deployment)
        if chatting and target.entry is not None:
            _refuse_completion_only(target.entry, target.shown)
    else:
        ref = parse_ref(model, api_base=service.api_base if not service.deployment else None) \
            if model is None or isinstance(model, str) else model
        shown = ref.text
        target = resolve_model(ref, service.deployment, registry=registry,
                               task="chat" if opts.task == "chat" else "completion",
                               vet=(lambda entry: _refuse_completion_only(entry, shown)) if chatting else None)
    _debug_line(target, opts.debug)
    if target.is_local:
        if service.api_base or service.api_key:
            raise UsageError(f"--api-base and --api-key are for servers and APIs; '{target.model_id}' runs here")
        return _open_local(target, opts, notify, registry)
    return _open_served(target, opts, registry, notify)


def _open_served(target: "Target", opts: ChatOptions, registry: "RegistrySource",
                 notify: Callable[[str], None]) -> Chat:
    given = opts.load.given()
    if given:
        raise UsageError(f"{', '.join(given)}: only for local (llama.cpp) models; '{target.model_id}' runs on a server or API")
    entry, dep, service = target.entry, target.deployment, opts.service
    assert dep is not None
    if entry is not None and not isinstance(target.ref, Endpoint):  # a user's own server serves it whatever the provider retired
        from modelctl.registry.lifecycle import check_use  # noqa: PLC0415 (modelctl.registry.lifecycle: not on the chat --api-base path)
        from modelctl.registry.loader import get_registry  # noqa: PLC0415 (modelctl.registry.loader: not on the chat --api-base path)

        check_use(entry, get_registry(registry), notify, allow_retired=service.allow_retired)

    cfg = target_defaults(target)
    backend = open_backend(entry, dep, api_base=service.api_base, api_key=service.api_key,
                           debug=opts.debug or None)
    params = layered_params(entry, opts.flags.overlay(extra={**cfg["options"], **opts.options}), local=False,
                            config=cfg)
    return Chat(target, backend, params, opts.system if opts.system is not None else cfg.get("system"))


def _open_local(target: "Target", opts: ChatOptions, notify: Callable[[str], None],
                registry: "RegistrySource" = None) -> Chat:
    assert target.path is not None
    cfg = target_defaults(target)
    served = _open_at_server(target, opts, cfg, registry)
    if served is not None:
        return served
    from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: PLC0415 (modelctl.backends.llamacpp: not at a running server)

    load = opts.load
    tpl = choose_template(target, load.template or cfg.get("template")) if opts.task == "chat" else None
    if tpl is not None and tpl.source == "fallback":
        notify(f"no chat template known for {target.model_id}; using '{tpl.name}' (choose one with --template)")
    backend = LlamaCppBackend(
        target.path,
        template=tpl,
        model_id=target.model_id,
        n_ctx=load.n_ctx or cfg.get("ctx"),
        n_gpu_layers=load.n_gpu_layers if load.n_gpu_layers is not None else cfg.get("gpu_layers"),
        n_threads=_threads(load.n_threads or cfg.get("threads")),
        options=_thread_options({**cfg.get("options", {}), **opts.options}),
        gguf=target.gguf,
    )
    if backend.ctx_clamped_from is not None:
        notify(f"a context window of {backend.ctx_clamped_from} tokens is more than {target.model_id} was "
               f"trained for; using its {backend.n_ctx}")
    return Chat(target, backend, layered_params(target.entry, opts.flags, config=cfg),
                opts.system if opts.system is not None else cfg.get("system"))


# What config.toml (or an alias) may set that changes how a local model is loaded or rendered.
_LOAD_SETTINGS = ("template", "ctx", "gpu_layers", "threads")


def _open_at_server(target: "Target", opts: ChatOptions, cfg: Mapping[str, Any],
                    registry: "RegistrySource" = None) -> Chat | None:
    """The chat with local `target` through the running `modelctl serve`, where its model stays
    loaded between commands; None when it runs in this process: no server runs (or it is turned
    off: MODELCTL_NO_SERVER, [serve] use = false), it does not answer, or the chat asks for
    something that changes how the model is loaded or rendered (the server loads each model one
    way for all its clients). The Chat keeps the local target: history and --json name the
    model and its llama.cpp deployment as they would in this process."""
    from modelctl.transport import serve_state  # noqa: PLC0415 (modelctl.transport.serve_state: not on the chat --api-base path)

    why = _load_choices(target, opts, cfg) or _own_registry(target, registry)
    server = None if why else serve_state.find_server()
    if server is None:
        _debug_where(opts, f"in this process ({why or serve_state.why_not_found()})")
        return None
    if not serve_state.answers(server):
        _debug_where(opts, f"in this process (the modelctl server at {server.url}, pid {server.pid}, does not answer)")
        return None
    from modelctl.backends.served_local import ServedLocalBackend  # noqa: PLC0415 (modelctl.backends.served_local: not on the chat --api-base path)

    _debug_where(opts, f"served by the running modelctl server at {server.url} (pid {server.pid})")
    backend = ServedLocalBackend(server, _served_name(target, opts), debug=opts.debug or None)
    return Chat(target, backend, layered_params(target.entry, opts.flags, config=cfg),
                opts.system if opts.system is not None else cfg.get("system"))


def _load_choices(target: "Target", opts: ChatOptions, cfg: Mapping[str, Any]) -> str | None:
    """What in this chat changes how its local model is loaded or rendered, in words; None:
    nothing (the server's copy of the model answers as this process would)."""
    given = opts.load.given() + (["-o"] if opts.options else [])
    if given:
        return f"{', '.join(given)} given"
    configured = [key for key in _LOAD_SETTINGS if cfg.get(key) is not None] + (["options"] if cfg.get("options") else [])
    if configured:
        return f"config.toml or the alias sets {', '.join(configured)}"
    if opts.load.images:
        return "images: the vision projector is loaded here"
    if registry_mmproj(target) is not None:
        return "a vision model: its projector is loaded here"
    return None


def _own_registry(target: "Target", registry: "RegistrySource") -> str | None:
    """Why a registry model stays in this process when it comes from a registry the server has
    not loaded (`--registry`, MODELCTL_REGISTRY): the server would not know it, or know it
    otherwise. None otherwise (the registry was loaded already to resolve the name)."""
    if target.source != "registry":
        return None
    from modelctl.registry.loader import get_registry, registry_layers  # noqa: PLC0415 (modelctl.registry.loader: not on the chat --api-base path)

    extra = set(get_registry(registry).sources) - {str(p) for p in registry_layers()}
    return "a registry file of its own is in use (--registry)" if extra else None


def registry_mmproj(local: "Target") -> Path | None:
    """The vision projector a local model's registry deployment names, where a pull puts it:
    beside the model file; None when there is none."""
    if local.path is None or local.entry is None:
        return None
    for dep in local.entry.deployments:
        if dep.kind == "llama.cpp" and dep.mmproj:
            beside = local.path.parent / Path(dep.mmproj).name
            if beside.is_file():
                return beside
    return None


def _served_name(target: "Target", opts: ChatOptions) -> str:
    """The name the server is asked for: the registry id of a registry model on its default
    deployment; otherwise the file itself (the server takes paths from its own user)."""
    if target.source == "registry" and opts.service.deployment is None:
        return target.model_id
    return str(target.path)


def _debug_where(opts: ChatOptions, where: str) -> None:
    """Under --debug, one line saying where a local model answers."""
    if opts.debug:
        sys.stderr.write(safe(f"debug: local model: {where}") + "\n")
