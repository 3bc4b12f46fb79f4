"""From a `ModelRef` to one frozen `Target`: the one place a model name is looked up.

    target = Resolver(registry).resolve(parse_ref("fast"))
    target.model_id, target.path, target.deployment, target.how

A `Name` is looked up through one ordered list, the first that knows it wins:

    1. a user alias (config.toml [aliases]), followed once: its model is looked up from step 2
    2. a file at that path (`x.gguf` in the working directory)
    3. the registry (an id or alias; user aliases are not the registry's)
    4. a file imported under that name (`modelctl import PATH --name NAME`)
    5. the Hugging Face cache (`OWNER/REPO[:QUANT]`, `OWNER/REPO/FILE.gguf`)
    6. the models directory (`FILE.gguf`)
    7. the Ollama server, only for a name with an Ollama tag (`llama3.2:1b`), and not when
       `--deployment` names another kind: a typo is never sent to a server

A registry model runs where its deployments say: its llama.cpp deployment when it has one (its file
must be here unless the resolver only reads, `check=False`), else its first served one;
`Target.with_deployment` is the one place a deployment is chosen by name. Nothing here opens a
backend or loads a model: `modelctl.chat.opening` does that with the target.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelctl.backends.factory import ADHOC_DEPLOYMENT_ID, adhoc_deployment
from modelctl.errors import ModelctlError, NotFoundError, UsageError
from modelctl.refs import Auto, Default, Endpoint, FileRef, HubRef, ModelRef, Name, parse_ref
from modelctl.registry import Deployment
from modelctl.transport.urls import check_url, redact_url

if TYPE_CHECKING:
    from modelctl.gguf import GGUFFile
    from modelctl.registry import Model, Registry, RegistrySource
    from modelctl.registry.aliases import Alias

TASKS = ("chat", "completion")
# Where a target was found (Target.source): the lookups, the default model's package, --api-base.
SOURCES = ("file", "registry", "import", "hf-cache", "models-dir", "ollama", "package", "endpoint")


class UnknownModel(NotFoundError):
    """No lookup knows the name (a NotFoundError: exit 4), with "did you mean" in the hint."""


@dataclass(frozen=True)
class Target:
    """What a model name turned out to be: one model, where it runs, and how it was found."""

    ref: ModelRef
    model_id: str
    source: str  # where it was found: one of SOURCES
    how: str  # how the name was understood, for --debug: "registry name", "user alias 'x' for …"
    entry: "Model | None" = None  # the registry model, where there is one
    deployment: "Deployment | None" = None  # the deployment it runs on (None: a file alone)
    path: Path | None = None  # the local GGUF (None: served, or a registry model whose file is not here)
    gguf: "GGUFFile | None" = None  # its header, read (or checked for loading)
    names: tuple[str, ...] = ()  # every name the template adapters may match
    alias: "Alias | None" = None  # the user alias it was named by
    repo: str | None = None  # a file in the Hugging Face cache: its repository
    quant: str | None = None  # … and its quantization
    checked: bool = True  # whether a local file was checked for loading (else only read)

    @property
    def is_local(self) -> bool:
        """Whether the model runs in this process from a GGUF here."""
        return self.path is not None

    @property
    def shown(self) -> str:
        """The name as the user gave it (the model id when none was given)."""
        return self.ref.text or self.model_id

    def explain(self) -> str:
        """One line for --debug: what the name was taken to be, and where it runs."""
        where = (f"the file {self.path}" if self.path else
                 f"deployment {self.deployment.id} ({self.deployment.kind})" if self.deployment else "nowhere yet")
        given = f"'{self.ref.text}'" if self.ref.text else "no --model"
        return f"{given}: {self.how} → {self.model_id}, {where}"

    def registry_model(self, what: str, hint: str | None = None) -> "Model":
        """The registry model, for a command (`what`) that works on registry models only."""
        if self.entry is None or self.source != "registry":
            raise UsageError(f"'{self.shown}' is {self.how}: {what} needs a registry model", hint=hint)
        return self.entry

    def facts(self) -> dict[str, Any]:
        """What is known of a target the registry does not describe (a file, an Ollama model),
        as `show` prints it: JSON-ready."""
        data: dict[str, Any] = {"id": self.model_id, "source": self.source, "how": self.how,
                                "alias": self.alias.name if self.alias else None}
        if self.deployment is not None:
            data["deployment"] = {"id": self.deployment.id, "kind": self.deployment.kind,
                                  "model": self.deployment.tag or self.deployment.model}
        if self.path is not None:
            from modelctl.store.quant import file_type_name, quant_from_filename  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

            meta = self.gguf.metadata if self.gguf is not None else {}
            arch = self.gguf.architecture if self.gguf is not None else None
            context = meta.get(f"{arch}.context_length") if arch else None
            data.update(path=str(self.path), size_bytes=self.gguf.file_size if self.gguf is not None else None,
                        quant=self.quant or file_type_name(meta.get("general.file_type")) or quant_from_filename(self.path.name),
                        architecture=arch, name=meta.get("general.name"),
                        context_length=context if isinstance(context, int) and not isinstance(context, bool) else None,
                        chat_template="tokenizer.chat_template" in meta)
        return data

    def with_deployment(self, deployment: str | None) -> "Target":
        """This model on its deployment `deployment` (an id or kind; None: the default one).
        Only a registry model has deployments to choose from."""
        if deployment is None:
            return self
        if self.entry is None or self.source != "registry":
            raise UsageError(f"--deployment applies to registry models; '{self.shown}' is {self.how}")
        return _on_deployment(self, self.entry, self.entry.deployment(deployment))


def _registry(source: "RegistrySource") -> "Registry":
    from modelctl.registry.loader import get_registry  # noqa: PLC0415 (modelctl.registry.loader: not on the chat --api-base path)

    return get_registry(source)


def _read(path: Path, check: bool) -> "GGUFFile":
    from modelctl.gguf import check_gguf, read_gguf  # noqa: PLC0415 (modelctl.gguf: not on the chat --api-base path)

    return check_gguf(path) if check else read_gguf(path)


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    """`test(path)`, False for a path the system cannot look at (too long, a NUL byte)."""
    try:
        return test(path)
    except (OSError, ValueError):
        return False


def _missing_file(text: str) -> NotFoundError:
    return NotFoundError(f"GGUF file {text!r} does not exist (no such file)")


def _on_deployment(target: Target, entry: "Model", dep: "Deployment") -> Target:
    """`target` (a registry model) on `dep`: a local file for llama.cpp, else the service."""
    if dep.kind != "llama.cpp":
        return replace(target, deployment=dep, path=None, gguf=None)
    from modelctl.store.locate import locate  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

    path = locate(entry)
    if path is None:
        if target.checked:
            raise NotFoundError(
                f"model '{entry.id}': its GGUF file is not on this machine",
                hint=f"modelctl pull {entry.id}, or --deployment KIND for a server, or --model PATH.gguf",
            )
        return replace(target, deployment=dep, path=None, gguf=None)  # what the registry says of it
    return replace(target, deployment=dep, path=path, gguf=_read(path, target.checked),
                   names=tuple(dict.fromkeys((*target.names, path.name))))


# The deployment kinds that speak OpenAI's wire format at a plain base URL, the format a server
# given by --api-base speaks (Azure's URLs name a deployment and an api-version: not one of them).
OPENAI_SPEAKING = ("openai-compatible", "openai")


def served_at(entry: "Model", api_base: str, name: str) -> "Deployment":
    """`entry` served by the OpenAI-compatible server at `api_base`: a copy of its first deployment
    that speaks OpenAI's format (its model name, key variable and prices kept) as the `--api-base`
    deployment, openai-compatible (a key is sent when one is set, not required), else an ad-hoc
    deployment for `name`. The registry's own deployment is never changed."""
    check_url(api_base, "--api-base")
    dep = next((d for d in entry.deployments if d.kind in OPENAI_SPEAKING and d.model), None)
    if dep is None:
        return adhoc_deployment(api_base, name)
    return replace(dep, id=ADHOC_DEPLOYMENT_ID, kind="openai-compatible", api_base=api_base, endpoint=None,
                   organization=None, key_env=dep.key_env or "OPENAI_API_KEY")


def registry_target(entry: "Model", deployment: "Deployment", *, check: bool = True) -> Target:
    """The registry model `entry` on `deployment`, as the resolver would give it by its id."""
    target = Target(Name(entry.id), entry.id, "registry", "registry name", entry, names=(entry.id, *entry.aliases),
                    checked=check)
    return _on_deployment(target, entry, deployment)


class Resolver:
    """Looks names up (see the module docstring). `check`: a local file is checked for loading
    (chat, complete) rather than only read (prompt, tokens). Without `locate`, a registry model's
    file is not looked for (show, rm, pull, alias: the registry entry is what they need). With no
    name, `default` (the user's `[chat] model`) is looked up, else the default model for `task`
    ("chat" or "completion"). `vet` sees a registry model as soon as it is found, before its file
    is looked for: a command refuses a model it cannot use for what it is, not for where it is."""

    def __init__(self, registry: "RegistrySource" = None, *, check: bool = True, task: str = "chat",
                 default: str | None = None, locate: bool = True,
                 vet: "Callable[[Model], None] | None" = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {task!r}")
        self._source = registry
        self._loaded: "Registry | None" = None
        self.check, self.task, self.default, self.locate, self.vet = check, task, default, locate, vet

    @property
    def registry(self) -> "Registry":
        if self._loaded is None:
            self._loaded = _registry(self._source)
        return self._loaded

    def resolve(self, ref: "ModelRef | str | None", deployment: str | None = None, *, aliases: bool = True) -> Target:
        """The target `ref` names (a string is parsed first), on `deployment` when one is given;
        without `aliases`, a name is not looked up among the user's aliases."""
        if ref is None or isinstance(ref, str):
            ref = parse_ref(ref)
        if deployment is not None and isinstance(ref, (FileRef, HubRef)):
            what = "a file" if isinstance(ref, FileRef) else "a Hub repository"
            raise UsageError(f"--deployment applies to registry models, not to {what}")
        if isinstance(ref, Auto):
            raise UsageError("--model auto lets modelctl choose a service for a chat: name a model here")
        if isinstance(ref, Endpoint):
            return self._endpoint(ref, deployment)
        if isinstance(ref, Default):
            return self._default(ref, deployment)
        if isinstance(ref, FileRef):
            return self._file(ref, ref.path)
        if isinstance(ref, HubRef):
            return self._hub(ref)
        return self._name(ref, deployment) if aliases else self._lookup(ref, deployment)

    # -- the forms -------------------------------------------------------------------------

    def _endpoint(self, ref: Endpoint, deployment: str | None) -> Target:
        """`-m NAME --api-base URL`: a model the registry (or a user alias) knows keeps its entry
        (defaults, template, prices) and only moves to URL; any other name is a model the server
        knows by that name."""
        if deployment is not None:  # a registry model's deployment, at another address
            return self._name(Name(ref.name), deployment)
        known = self.known_model(ref.name)
        if known is None:
            return Target(ref, ref.name, "endpoint", "a model of the server at --api-base",
                          deployment=adhoc_deployment(ref.api_base, ref.name), checked=self.check)
        entry, alias, how = known
        if self.vet is not None:
            self.vet(entry)
        names = tuple(dict.fromkeys((entry.id, *entry.aliases, *((alias.name,) if alias else ()))))
        return Target(ref, entry.id, "registry", f"{how} at --api-base {redact_url(ref.api_base)}", entry,
                      served_at(entry, ref.api_base, ref.name), names=names, alias=alias, checked=False)

    def known_model(self, name: str) -> "tuple[Model, Alias | None, str] | None":
        """The registry model `name` names (itself, or a user alias for it), with the alias and
        how it was found; None for any other name, a broken registry included: the server at
        --api-base may know a name the registry does not."""
        from modelctl.registry.aliases import find_alias  # noqa: PLC0415 (modelctl.registry.aliases: not on the chat --api-base path)

        try:
            alias = find_alias(name)
            target = parse_ref(alias.model) if alias is not None else Name(name)
            entry = self.registry.get(target.text) if isinstance(target, Name) else None
        except ModelctlError:
            return None
        if entry is None:
            return None
        return entry, alias, f"user alias '{alias.name}' for registry name" if alias else "registry name"

    def _default(self, ref: Default, deployment: str | None) -> Target:
        if self.default:  # the user's [chat] model
            inner = self.resolve(parse_ref(self.default), deployment)
            return replace(inner, how=f"[chat] model in config.toml, {inner.how}")
        from modelctl.store.default_model import DEFAULT_MODELS, default_model, default_model_path  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

        found = default_model(self.task)
        if found is None:
            raise UsageError("no --model given and no default model is installed",
                             hint=f"{DEFAULT_MODELS[self.task][0].install}, or pass --model PATH.gguf")
        entry = None
        try:
            entry = self.registry.get(found.id)
        except ModelctlError:
            pass  # the default model runs from its package alone
        how = f"the default model to {self.task}"
        if entry is not None:
            return self._entry(ref, entry, how, deployment)
        if deployment is not None:
            raise UsageError("--deployment applies to registry models, and the registry cannot be read")
        path = default_model_path(self.task)
        assert path is not None
        return Target(ref, found.id, "package", how, path=path, gguf=_read(path, self.check), names=(found.id, path.name),
                      checked=self.check)

    def _file(self, ref: ModelRef, path: Path, source: str = "file", how: str = "a file") -> Target:
        """A GGUF given by path, named as the registry names it when it knows the file."""
        if not _is(path, Path.exists):
            raise _missing_file(ref.text)
        gguf = _read(path, self.check)
        entry = None
        try:
            entry = self.registry.model_for_file(path)
        except ModelctlError:
            pass  # a broken registry must not stop a chat with a file
        names = ((entry.id, *entry.aliases) if entry else ()) + (path.name,)
        dep = next((d for d in entry.deployments if d.kind == "llama.cpp"), None) if entry else None
        return Target(ref, entry.id if entry else path.name, source, how, entry, dep, path, gguf, names,
                      checked=self.check)

    def _hub(self, ref: HubRef) -> Target:
        found = self._installed(ref, ref.spec)
        if found is None:
            raise NotFoundError(f"{ref.text} is not on this machine", hint=f"modelctl pull {ref.spec}")
        return found

    def _entry(self, ref: ModelRef, entry: "Model", how: str, deployment: str | None = None) -> Target:
        """A registry model on `deployment`, else on its llama.cpp deployment when it has one,
        else on its first served one."""
        if self.vet is not None:
            self.vet(entry)
        if deployment is not None:
            dep = entry.deployment(deployment)
        else:
            dep = next((d for d in entry.deployments if d.kind == "llama.cpp"), None) or entry.deployment()
        if not self.locate:
            return Target(ref, entry.id, "registry", how, entry, dep, names=(entry.id, *entry.aliases), checked=False)
        return replace(registry_target(entry, dep, check=self.check), ref=ref, how=how)

    # -- a Name: the ordered lookups -------------------------------------------------------

    def _name(self, ref: Name, deployment: str | None) -> Target:
        from modelctl.registry.aliases import find_alias  # noqa: PLC0415 (modelctl.registry.aliases: not on the chat --api-base path)

        alias = find_alias(ref.text)  # 1. a user alias
        if alias is None:
            return self._lookup(ref, deployment)
        inner_ref = parse_ref(alias.model)
        try:
            if isinstance(inner_ref, Name):
                inner = self._lookup(inner_ref, deployment)
            else:
                inner = self.resolve(inner_ref).with_deployment(deployment)
        except UnknownModel as exc:
            raise UnknownModel(f"alias '{alias.name}' names {exc.message}", hint=exc.hint) from None
        names = tuple(dict.fromkeys((*inner.names, alias.name)))
        return replace(inner, ref=ref, alias=alias, names=names, how=f"user alias '{alias.name}' for {inner.how}")

    def _lookup(self, ref: Name, deployment: str | None) -> Target:
        """Steps 2 to 7 for a name that is not (or no longer) an alias."""
        path = Path(ref.text)
        if _is(path, Path.is_file) or (ref.could_be_file and _is(path, Path.exists)):  # 2. a file here
            return self._file(ref, path).with_deployment(deployment)
        entry = self._registry_entry(ref)  # 3. the registry
        if entry is not None:
            return self._entry(ref, entry, "registry name", deployment)
        found = self._imported(ref) or self._installed(ref, ref.text)  # 4, 5, 6
        if found is not None:
            return found.with_deployment(deployment)  # a file has no deployments to choose from
        if ref.ollama_tag and deployment in (None, "ollama"):  # 7. an Ollama server
            served = self._ollama(ref)
            if served is not None:
                return served
        raise self._unknown(ref)

    def _registry_entry(self, ref: Name) -> "Model | None":
        """The registry model of that name; a registry that cannot be loaded stops only a name
        that could not be a file's."""
        try:
            return self.registry.get(ref.text)
        except ModelctlError:
            if ref.could_be_file:
                return None
            raise

    def _imported(self, ref: Name) -> Target | None:
        from modelctl.store.locate import find_import  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

        path = find_import(ref.text)
        if path is None:
            return None
        return Target(ref, ref.text, "import", "an imported file", path=path, gguf=_read(path, self.check),
                      names=(ref.text, path.name), checked=self.check)

    def _installed(self, ref: ModelRef, name: str) -> Target | None:
        """A GGUF `list --installed` shows under `name`: in the Hugging Face cache or the models
        directory (no network)."""
        from modelctl.store.installed import find_installed  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

        found = find_installed(name, registry=lambda: self.registry)
        if found is None or found.path is None:
            return None
        path = Path(found.path)
        target = (self._file(ref, path, "hf-cache", "a file in the Hugging Face cache") if found.repo
                  else self._file(ref, path, "models-dir", "a file in the models directory"))
        names = tuple(dict.fromkeys((found.name, *target.names, *((found.repo,) if found.repo else ()))))
        model_id = target.model_id if target.entry else found.name
        return replace(target, model_id=model_id, names=names, repo=found.repo, quant=found.quant)

    def _ollama(self, ref: Name) -> Target | None:
        from modelctl.store import ollama_pull  # noqa: PLC0415 (modelctl.store: not on the chat --api-base path)

        try:
            found = ollama_pull.find_model(ref.text)
        except ModelctlError:
            return None
        if found is None:
            return None
        return Target(ref, found.name, "ollama", "a model of the Ollama server",
                      deployment=Deployment(id="ollama", kind="ollama", tag=found.name), checked=self.check)

    def _unknown(self, ref: Name) -> NotFoundError:
        if ref.could_be_file:
            return _missing_file(ref.text)
        hint = self.registry.did_you_mean(ref.text)
        if ref.repo_like:
            hint += f"; for a Hugging Face repository: modelctl pull hf:{ref.text}"
        elif not self.registry.suggest(ref.text) and ":" not in ref.text:
            hint += f"; a model on an Ollama server is named with its tag ({ref.text}:latest)"
        return UnknownModel(f"unknown model '{ref.text}'", hint=hint)


def resolve(name: "ModelRef | str | None", deployment: str | None = None, *, registry: "RegistrySource" = None,
            check: bool = True, task: str = "chat", default: str | None = None) -> Target:
    """`Resolver(...).resolve(name, deployment)`."""
    return Resolver(registry, check=check, task=task, default=default).resolve(name, deployment)
