"""From the MODEL argument to a ready backend: which file, which template, which defaults.

    MODEL (path | registry id/alias | installed name | hf:OWNER/REPO | none)
        ─► LocalModel (GGUF path, registry entry, names)
        ─► template (modelctl.templates.resolve_template) ─► LlamaCppBackend
    registry defaults ◄ config [chat] ◄ [models."ID"] ◄ alias options ◄ flags  ─►  GenerationParams

With no MODEL, the user's `[chat] model` is used, else the default model for the task
(`store.default_model`: SmolLM2-135M-Instruct to chat, Gemma 3 270M to complete text and embed,
both shipped on PyPI). A user alias (config.toml [aliases]) stands for
its model, and its options are defaults below the flags. Every name `list --installed` shows is a
MODEL (`store.installed.find_installed`: a cached GGUF found without a network call; an Ollama
tag). A registry model without a llama.cpp deployment (a hosted API, a server), or an Ollama
model, gets its backend from `modelctl.backends.factory.open_backend`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from modelctl.backends.base import NUMBER_PARAMS, REASONING_PARAMS, GenerationParams
from modelctl.chat.settings import CONFIG_KEYS as CONFIG_KEYS
from modelctl.chat.settings import CONFIG_MINIMUMS as CONFIG_MINIMUMS
from modelctl.errors import BackendError, ModelctlError, NotFoundError, UsageError

# The registry, the store and GGUF reading are imported where a name is looked up: a chat with
# `--api-base URL -m NAME` (a script's call) needs none of them.
if TYPE_CHECKING:
    from modelctl.backends.base import Backend
    from modelctl.gguf import GGUFFile
    from modelctl.registry import Deployment, Model, Registry, RegistrySource

# llama.cpp's GGML_MAX_N_THREADS: more threads than this abort the process (std::bad_alloc).
MAX_THREADS = 512
# Used for local models when neither the registry, the config nor a flag sets max_tokens: base
# models (like the embedded default) may never emit an end-of-generation token.
DEFAULT_MAX_TOKENS = 512
_PARAM_KEYS = tuple(NUMBER_PARAMS)  # `stop` accumulates: it is overlaid apart


@dataclass
class LocalModel:
    """A GGUF file on this machine, and what the registry knows about it (if anything)."""

    path: Path
    model_id: str
    gguf: "GGUFFile"
    entry: "Model | None" = None
    names: list[str] = field(default_factory=list)  # for the template adapters


def _registry(source: "RegistrySource") -> "Registry":
    from modelctl.registry.loader import get_registry

    return get_registry(source)


def looks_like_path(name: str) -> bool:
    return (
        name.lower().endswith(".gguf")
        or name.startswith(("/", "./", "../", "~"))
        or os.sep in name and Path(name).expanduser().exists()
        or Path(name).expanduser().is_file()
    )


def _entry_for_file(path: Path, registry: "RegistrySource") -> "Model | None":
    """The registry entry one of whose llama.cpp files has this file name, if any."""
    try:
        return _registry(registry).model_for_file(path)
    except ModelctlError:
        return None  # a broken user registry must not stop a chat with a file


def _file_of(model: "Model") -> Path:
    """The local GGUF of a registry model with a llama.cpp deployment (NotFoundError if absent)."""
    from modelctl.store.locate import locate

    path = locate(model)
    if path is None:
        raise NotFoundError(
            f"model '{model.id}': its GGUF file is not on this machine",
            hint=f"modelctl pull {model.id}, or --deployment KIND for a server, or --model PATH.gguf",
        )
    return path


def _local(path: Path, model_id: str, entry: "Model | None", names: list[str], check: bool) -> LocalModel:
    """A LocalModel whose file is checked for loading (`check`), or only read."""
    from modelctl.gguf import check_gguf, read_gguf

    return LocalModel(path, model_id, check_gguf(path) if check else read_gguf(path), entry, names)


def _from_entry(entry: "Model", check: bool) -> "LocalModel | ServedModel":
    """A registry model's local file; unchecked (`prompt`), a model whose file is not here is
    given as its llama.cpp deployment, for what the registry says of it."""
    if not check:
        from modelctl.store.locate import locate

        path = locate(entry)
        if path is None:
            return ServedModel(entry, entry.deployment("llama.cpp"))
    else:
        path = _file_of(entry)
    return _local(path, entry.id, entry, [entry.id, *entry.aliases, path.name], check)


@dataclass
class ServedModel:
    """A model reached through a server or API deployment: a registry model's, or (`entry`
    None) a model the Ollama server has that the registry does not know."""

    entry: "Model | None"
    deployment: "Deployment"

    @property
    def model_id(self) -> str:
        return self.entry.id if self.entry else str(self.deployment.tag or self.deployment.model)


def _from_path(path: Path, registry: "RegistrySource", check: bool) -> LocalModel:
    """MODEL given as a path: the file, named as the registry names it when it knows the file."""
    if not check and not path.is_file():  # the check says what the path is instead
        raise NotFoundError(f"GGUF file {str(path)!r} does not exist")
    from modelctl.gguf import check_gguf, read_gguf

    info = check_gguf(path) if check else read_gguf(path)
    entry = _entry_for_file(path, registry)
    names = ([entry.id, *entry.aliases] if entry else []) + [path.name]
    return LocalModel(path, entry.id if entry else path.name, info, entry, names)


def _registry_entry(name: str, registry: "RegistrySource", path_like: bool) -> "Model | None":
    """The registry model named `name`, or None; a registry that cannot be loaded stops only a
    name that could be a registry id (a missing file's path is reported as missing)."""
    try:
        return _registry(registry).get(name)
    except ModelctlError:
        if path_like:
            return None
        raise


def _installed_file(name: str, registry: "RegistrySource", check: bool) -> LocalModel | None:
    """A name that is no registry id: an imported file's, or one `list --installed` shows for a
    GGUF in the Hugging Face cache or the models directory, or `hf:OWNER/REPO[:QUANT]` — all
    found without a network call."""
    from modelctl.store.installed import find_installed
    from modelctl.store.locate import find_import

    imported = find_import(name)
    if imported is not None:
        return _local(imported, name, None, [name, imported.name], check)
    found = find_installed(name, registry=registry)
    if found is None or found.path is None:
        return None
    path = Path(found.path)
    entry = _entry_for_file(path, registry)
    names = [found.name, *([entry.id, *entry.aliases] if entry else []), *([found.repo] if found.repo else []), path.name]
    return _local(path, entry.id if entry else found.name, entry, names, check)


def _ollama_model(name: str) -> ServedModel | None:
    """A model the Ollama server at OLLAMA_HOST has under the tag `name` (as `list --installed`
    shows it), when the server answers."""
    from modelctl.registry import Deployment
    from modelctl.store import ollama_pull

    if name.startswith(("hf:", ".", "/", "~")):
        return None  # a Hub repository or a path, not a tag
    try:
        found = ollama_pull.find_model(name)
    except ModelctlError:
        return None
    return ServedModel(None, Deployment(id="ollama", kind="ollama", tag=found.name)) if found else None


def _resolve_entry(name: str, registry: "RegistrySource") -> "Model":
    """The registry model `name`, or NotFoundError with suggestions (and, for a Hub repository
    name, how to download it)."""
    from modelctl.store.pull import is_hf_spec

    if is_hf_spec(name):
        raise NotFoundError(f"{name.strip()} is not on this machine", hint=f"modelctl pull {name.strip()}")
    try:
        return _registry(registry).resolve(name)
    except NotFoundError as exc:
        if name.count("/") == 1 and not name.startswith((".", "/", "~")):
            raise NotFoundError(exc.message, hint=f"{exc.hint}; for a Hugging Face repository: "
                                f"modelctl pull hf:{name.strip()}") from None
        raise


def resolve_target(name: str | None, deployment: str | None = None, *, registry: "RegistrySource" = None,
                   check: bool = True, task: str = "chat") -> "LocalModel | ServedModel":
    """MODEL (and --deployment) -> a checked local GGUF, or a server/API deployment.

    A registry model runs locally when it has a llama.cpp deployment (its file must be on this
    machine) unless `deployment` names another one; a model without one runs where the registry
    says (a local server first). With `check=False` a file is only read (its header), not
    checked for loading. Without a name (and no `[chat] model` in config.toml), the default model
    for `task` ("chat" or "completion").
    """
    if not name:
        name = user_chat_config().get("model")
    if name and not looks_like_path(name):
        from modelctl.registry.aliases import find_alias

        alias = find_alias(name)
        if alias is not None:
            try:
                return _resolve_target(alias.model, deployment, registry, check)
            except NotFoundError as exc:
                if not _names_the_target(exc, alias.model):
                    raise
                raise NotFoundError(f"alias '{alias.name}' names {exc.message}", hint=exc.hint) from None
    return _resolve_target(name, deployment, registry, check, task)


def _names_the_target(exc: NotFoundError, target: str) -> bool:
    """Whether `exc` says the alias's own target is unknown (not, say, a missing deployment)."""
    return exc.message == f"unknown model '{target}'"


def _default_target(task: str, registry: "RegistrySource", check: bool) -> "LocalModel | ServedModel":
    """The default model for `task` (chat: SmolLM2-135M-Instruct; completion: Gemma 3 270M), from
    its registry entry, or from its package alone where the registry cannot be read."""
    from modelctl.store.default_model import DEFAULT_MODELS, default_model, default_model_path

    found = default_model(task)
    if found is None:
        preferred = DEFAULT_MODELS[task][0]
        raise UsageError("no --model given and no default model is installed",
                         hint=f"{preferred.install}, or pass --model PATH.gguf")
    entry = None
    try:
        entry = _registry(registry).get(found.id)
    except ModelctlError:
        pass
    if entry is not None:
        return _from_entry(entry, check)
    path = default_model_path(task)
    assert path is not None
    return _local(path, found.id, None, [found.id, path.name], check)


def _resolve_target(name: str | None, deployment: str | None, registry: "RegistrySource",
                    check: bool, task: str = "chat") -> "LocalModel | ServedModel":
    if not name or looks_like_path(name) or name.startswith("hf:"):
        if deployment:
            raise UsageError("--deployment applies to registry models")
    if not name:
        return _default_target(task, registry, check)
    path_like = looks_like_path(name)
    if path_like and Path(name).expanduser().exists():
        return _from_path(Path(name).expanduser(), registry, check)
    entry = _registry_entry(name, registry, path_like)
    if entry is None and not deployment:
        local = _installed_file(name, registry, check)
        if local is not None:
            return local
    if entry is None and path_like:
        return _from_path(Path(name).expanduser(), registry, check)  # says that it does not exist
    if entry is None and not deployment:
        on_ollama = _ollama_model(name)
        if on_ollama is not None:
            return on_ollama
    if entry is None:
        entry = _resolve_entry(name, registry)
    if deployment:
        dep = entry.deployment(deployment)
        return _from_entry(entry, check) if dep.kind == "llama.cpp" else ServedModel(entry, dep)
    if any(d.kind == "llama.cpp" for d in entry.deployments):
        return _from_entry(entry, check)
    return ServedModel(entry, entry.deployment())


def resolve_local_model(name: str | None, *, registry: "RegistrySource" = None) -> LocalModel:
    """The checked local GGUF file for MODEL."""
    target = resolve_target(name, registry=registry)
    if not isinstance(target, LocalModel):
        deployments = target.entry.deployments if target.entry else (target.deployment,)
        kinds = ", ".join(sorted({d.kind for d in deployments}))
        raise BackendError(
            f"model '{target.model_id}' has no llama.cpp deployment (it has: {kinds})",
            hint="pass --model PATH.gguf",
        )
    return target


def user_chat_config() -> dict[str, Any]:
    """The [chat] table of config.toml, type-checked."""
    from modelctl.chat.settings import chat_config

    return chat_config()


def user_defaults(model_id: str | None, model: str | None = None, *, local: bool = True) -> dict[str, Any]:
    """The config a chat with `model_id` (a registry id, or None) starts from: [chat], over it
    [models."ID"], over that the options of the alias `model` was given as. Their backend
    options are merged under `options` ([chat]'s only for a local model: they are llama.cpp's)."""
    from modelctl.chat.settings import model_config, split_alias_options
    from modelctl.registry.aliases import find_alias

    chat = user_chat_config()
    model = model or chat.get("model")  # the default model may be an alias too
    layers = [chat if local else {k: v for k, v in chat.items() if k != "options"}, model_config(model_id)]
    alias = find_alias(model) if model and not looks_like_path(model) else None
    if alias is not None:
        defaults, backend_options = split_alias_options(alias.options)
        layers.append({**defaults, "options": backend_options})
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if k != "options"})
    merged["options"] = {k: v for layer in layers for k, v in layer.get("options", {}).items()}
    return merged


def layered_params(entry: "Model | None", flags: GenerationParams, *, local: bool = True,
                   config: Mapping[str, Any] | None = None) -> GenerationParams:
    """Built-in defaults (local models only), registry defaults, the user's `config` (by
    default [chat] over the entry's [models."ID"]), then the flags."""
    params = GenerationParams(max_tokens=DEFAULT_MAX_TOKENS if local else None)
    if entry is not None:
        d = entry.defaults
        params = params.overlay(**{k: getattr(d, k) for k in _PARAM_KEYS}, stop=tuple(d.stop))
    cfg = config if config is not None else user_defaults(entry.id if entry else None)
    params = params.overlay(**{k: cfg.get(k) for k in _PARAM_KEYS}, stop=_config_stops(cfg))
    from modelctl.chat.session import check_params

    flagged = {k: getattr(flags, k) for k in (*_PARAM_KEYS, *REASONING_PARAMS)}
    return check_params(params.overlay(**flagged, stop=flags.stop, extra=flags.extra))


def _config_stops(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """config.toml's (or an alias's) stop strings, their escapes read as --stop reads them."""
    from modelctl.backends.stops import unescape_stop

    return tuple(unescape_stop(s, "stop in config.toml") for s in cfg.get("stop", ()))


def choose_template(local: LocalModel, template: str | None):
    """The conversation template: --template, the registry's, the GGUF's own, adapters, fallback
    (`source == "fallback"`: no template is known for the model)."""
    from modelctl.templates import resolve_template

    tpl = resolve_template(
        template=template,
        registry_template=local.entry.template if local.entry else None,
        gguf_metadata=local.gguf.metadata,
        names=local.names,
    )
    return tpl


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


@dataclass
class ChatSetup:
    """Everything `modelctl chat` decided before the first token."""

    model_id: str
    backend: "Backend"
    params: GenerationParams
    system: str | None
    local: LocalModel | None = None  # None for a model on a server or API
    entry: "Model | None" = None  # the registry model, where there is one
    deployment: "Deployment | None" = None  # its deployment in use (None: a file)
    # How the service was chosen, for output and records: `service`, `selected` (--model auto's
    # choice and reasons), `fallbacks` (each switch --fallback made).
    route: dict[str, Any] = field(default_factory=dict)


def _refuse_completion_only(entry: "Model | None", name: str | None) -> None:
    """A base model the registry lists for text completion only is not chatted with by accident:
    its answers to a chat template are poor. `--template` chats anyway."""
    if entry is not None and "completion" in entry.tasks and "chat" not in entry.tasks:
        anyway = ", or --template NAME to chat anyway" if any(d.kind == "llama.cpp" for d in entry.deployments) else ""
        raise UsageError(f"'{entry.id}' is a base model for text completion, not chat",
                         hint=f"use `modelctl complete -m {name or entry.id} TEXT`{anyway}")


def open_chat(
    model: str | None,
    *,
    template: str | None = None,
    system: str | None = None,
    flags: GenerationParams | None = None,
    options: Mapping[str, Any] | None = None,
    n_ctx: int | None = None,
    n_gpu_layers: int | None = None,
    n_threads: int | None = None,
    deployment: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    debug: bool | None = None,
    need_template: bool = True,
    registry: "RegistrySource" = None,
    notify: Callable[[str], None] | None = None,
    allow_retired: bool = False,
) -> ChatSetup:
    """Resolve MODEL, its template and parameters, and build the backend (a local model is not
    loaded yet). `options` are `-o KEY=VALUE`: llama.cpp parameters for a local model, extra
    request fields for a server or API. `api_base` without `deployment` means an OpenAI-compatible
    server that knows MODEL by that name. `notify` hears what the user should know (a template
    guessed, a context window lowered, the safe CPU path taken, a deprecated model); by default it
    is logged. A registry model its provider has retired is refused unless `allow_retired`."""
    if notify is None:
        import logging

        notify = logging.getLogger("modelctl").warning
    flags = flags or GenerationParams()
    local_flags = (("--template", template), ("--ctx", n_ctx), ("--gpu-layers", n_gpu_layers), ("--threads", n_threads))

    def served(entry: "Model | None", dep: "Deployment", model_id: str) -> ChatSetup:
        given = [flag for flag, value in local_flags if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only for local (llama.cpp) models; '{model_id}' runs on a server or API")
        if entry is not None:
            from modelctl.registry.lifecycle import check_use

            check_use(entry, _registry(registry), notify, allow_retired=allow_retired)
        from modelctl.backends.factory import open_backend
        from modelctl.chat.settings import api_base_for

        cfg = user_defaults(entry.id if entry else None, model, local=False)
        backend = open_backend(entry, dep, api_base=api_base or api_base_for(dep.kind), api_key=api_key,
                               debug=debug or None)
        params = layered_params(entry, flags.overlay(extra={**cfg["options"], **(options or {})}), local=False,
                                config=cfg)
        return ChatSetup(model_id, backend, params, system if system is not None else cfg.get("system"),
                         entry=entry, deployment=dep)

    if api_base and not deployment:
        from modelctl.backends.factory import adhoc_deployment

        if not model:
            raise UsageError("--api-base needs --model NAME (the model name the server knows)")
        return served(None, adhoc_deployment(api_base, model), model)
    if need_template and not template and model and not looks_like_path(model):
        loaded = _registry(registry)  # loaded once: resolve_target looks the name up in it too
        registry = loaded
        _refuse_completion_only(loaded.get(model), model)
    target = resolve_target(model, deployment, registry=registry, task="chat" if need_template else "completion")
    if isinstance(target, ServedModel):
        return served(target.entry, target.deployment, target.model_id)
    if api_base or api_key:
        raise UsageError(f"--api-base and --api-key are for servers and APIs; '{target.model_id}' runs here")

    from modelctl.backends.llamacpp import LlamaCppBackend

    cfg = user_defaults(target.entry.id if target.entry else None, model)
    tpl = choose_template(target, template or cfg.get("template")) if need_template else None
    if tpl is not None and tpl.source == "fallback":
        notify(f"no chat template known for {target.model_id}; using '{tpl.name}' (choose one with --template)")
    backend = LlamaCppBackend(
        target.path,
        template=tpl,
        model_id=target.model_id,
        n_ctx=n_ctx or cfg.get("ctx"),
        n_gpu_layers=n_gpu_layers if n_gpu_layers is not None else cfg.get("gpu_layers"),
        n_threads=_threads(n_threads or cfg.get("threads")),
        options=_thread_options({**cfg.get("options", {}), **(options or {})}),
        gguf=target.gguf,
    )
    if backend.ctx_clamped_from is not None:
        notify(f"a context window of {backend.ctx_clamped_from} tokens is more than {target.model_id} was "
             f"trained for; using its {backend.n_ctx}")
    local_dep = next((d for d in target.entry.deployments if d.kind == "llama.cpp"), None) if target.entry else None
    return ChatSetup(target.model_id, backend, layered_params(target.entry, flags, config=cfg),
                     system if system is not None else cfg.get("system"), target, entry=target.entry,
                     deployment=local_dep)
