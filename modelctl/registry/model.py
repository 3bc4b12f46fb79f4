"""Registry values: a model, its licence, access terms, defaults and deployments.

These are plain frozen dataclasses built from validated TOML tables (see `schema.py`). Each knows
how to turn itself back into JSON-ready data (`to_dict`), which is also the export format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# Kinds whose model runs on this machine.
LOCAL_KINDS = frozenset({"llama.cpp", "ollama"})


def _compact(obj: Any) -> dict[str, Any]:
    """Dataclass -> dict without None values or empty collections (the export shape)."""
    data: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None or value == () or value == {}:
            continue
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
        data[f.name] = value
    return data


def _is_loopback(url: str | None) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class License:
    name: str
    open_weights: bool
    url: str | None = None
    gated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _compact(self) | {"open_weights": self.open_weights, "gated": self.gated}


@dataclass(frozen=True)
class Access:
    free_tier: bool
    local_capable: bool
    free_tier_notes: str | None = None
    rate_limits: str | None = None
    cost_input: float | None = None
    cost_output: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _compact(self) | {"free_tier": self.free_tier, "local_capable": self.local_capable}


@dataclass(frozen=True)
class Defaults:
    """Default generation parameters; None means "not set here"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None
    repeat_penalty: float | None = None
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _compact(self)


@dataclass(frozen=True)
class GGUFFile:
    quant: str
    filename: str
    size_bytes: int | None = None
    sha256: str | None = None
    shards: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _compact(self)


@dataclass(frozen=True)
class Deployment:
    """One way to run a model. Which fields are set depends on `kind` (see schema.py)."""

    id: str
    kind: str
    model: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    deployment: str | None = None
    endpoint: str | None = None
    organization: str | None = None
    provider: str | None = None
    task: str | None = None
    key_env: str | None = None
    tag: str | None = None
    host: str | None = None
    repo: str | None = None
    revision: str | None = None
    package: str | None = None
    default_quant: str | None = None
    mmproj: str | None = None
    files: tuple[GGUFFile, ...] = ()
    cost_input: float | None = None
    cost_output: float | None = None
    notes: str | None = None

    @property
    def local(self) -> bool:
        return self.kind in LOCAL_KINDS or (
            self.kind == "openai-compatible" and _is_loopback(self.api_base)
        )

    def file_for(self, quant: str | None = None) -> GGUFFile | None:
        """The GGUF file for `quant` (case-insensitive), or the default one."""
        wanted = (quant or self.default_quant or "").lower()
        for f in self.files:
            if f.quant.lower() == wanted:
                return f
        return None if quant else (self.files[0] if self.files else None)

    def service_metadata(self) -> dict[str, Any]:
        """What a service built from this deployment reports about itself.

        In the spirit of the AI-service-metadata decision: a model id plus the attributes that
        identify the endpoint (endpoint, api version, deployment name, key variable, …).
        """
        from modelctl.registry.schema import default_key_env

        meta: dict[str, Any] = {
            "model_id": self.model or self.tag or (self.file_for().filename if self.files else None),
            "kind": self.kind,
        }
        attrs = {
            "endpoint": self.endpoint or self.api_base or self.host,
            "api_version": self.api_version,
            "deployment_name": self.deployment or (self.model if self.kind == "azure-openai" else None),
            "key_env": self.key_env or default_key_env(self.kind),
            "organization": self.organization,
            "inference_provider": self.provider,
            "repo": self.repo,
            "package": self.package,
            "revision": self.revision,
            "default_quant": self.default_quant,
            "quantizations": [f.quant for f in self.files] or None,
        }
        meta.update({k: v for k, v in attrs.items() if v is not None})
        meta["local"] = self.local
        return meta

    def to_dict(self) -> dict[str, Any]:
        return _compact(self) | {"local": self.local}


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    provider: str
    category: str
    tasks: tuple[str, ...]
    license: License
    access: Access
    deployments: tuple[Deployment, ...]
    aliases: tuple[str, ...] = ()
    family: str | None = None
    description: str | None = None
    parameters: int | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    embedding_dimensions: int | None = None
    architecture: str | None = None
    languages: tuple[str, ...] = ()
    release_date: str | None = None
    status: str = "active"
    template: str | None = None
    use_cases: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    # Where the entry came from: the file path (not part of the export).
    source: str = field(default="", compare=False)

    @property
    def free(self) -> bool:
        return self.access.free_tier

    @property
    def local(self) -> bool:
        return any(d.local for d in self.deployments)

    @property
    def open_weights(self) -> bool:
        return self.license.open_weights

    def deployment(self, ref: str | None = None) -> Deployment:
        """A deployment by id or kind; without `ref`, the first local one, else the first."""
        from modelctl.errors import NotFoundError

        if ref is None:
            return next((d for d in self.deployments if d.local), self.deployments[0])
        for d in self.deployments:
            if d.id == ref:
                return d
        for d in self.deployments:
            if d.kind == ref:
                return d
        known = ", ".join(d.id for d in self.deployments)
        raise NotFoundError(f"model '{self.id}' has no deployment '{ref}' (it has: {known})")

    def to_dict(self) -> dict[str, Any]:
        """The full entry, JSON-ready, with the derived flags the list contract promises."""
        data = _compact(self)
        data.pop("source", None)
        data.update(
            aliases=list(self.aliases),
            tasks=list(self.tasks),
            free=self.free,
            local=self.local,
            open_weights=self.open_weights,
            status=self.status,
        )
        return data

    def summary(self) -> dict[str, Any]:
        """The `list --json` object: the fields scripts filter on, plus deployment ids/kinds."""
        return {
            "id": self.id,
            "name": self.name,
            "aliases": list(self.aliases),
            "provider": self.provider,
            "family": self.family,
            "category": self.category,
            "tasks": list(self.tasks),
            "context_window": self.context_window,
            "parameters": self.parameters,
            "license": self.license.name,
            "open_weights": self.open_weights,
            "free": self.free,
            "local": self.local,
            "cost_input": self.access.cost_input,
            "cost_output": self.access.cost_output,
            "template": self.template,
            "deployments": [{"id": d.id, "kind": d.kind, "local": d.local} for d in self.deployments],
        }
