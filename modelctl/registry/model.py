"""Registry values: a model, its licence, access terms, defaults and deployments.

A `Model` is a read-only view over one validated TOML table (see `schema.py`); the nested values
are small dataclasses made on first use. Treat all of them as read-only: they are not frozen
because a registry of 10,000 models is built on every start and frozen dataclasses construct
three times slower. Each knows how to turn itself back into JSON-ready data (`to_dict`), which
is also the export format.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
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


@dataclass(slots=True)
class License:
    name: str
    open_weights: bool
    url: str | None = None
    gated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _compact(self) | {"open_weights": self.open_weights, "gated": self.gated}


@dataclass(slots=True)
class Access:
    free_tier: bool
    local_capable: bool
    free_tier_notes: str | None = None
    rate_limits: str | None = None
    cost_input: float | None = None
    cost_output: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _compact(self) | {"free_tier": self.free_tier, "local_capable": self.local_capable}


@dataclass(slots=True)
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


@dataclass(slots=True)
class GGUFFile:
    quant: str
    filename: str
    size_bytes: int | None = None
    sha256: str | None = None
    shards: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _compact(self)


@dataclass(slots=True)
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
        return _raw_is_local({"kind": self.kind, "api_base": self.api_base})

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


def _value(key: str, default: Any = None) -> property:
    return property(lambda self: self._raw.get(key, default), doc=f"The entry's `{key}`.")


def _items(key: str) -> property:
    return property(lambda self: tuple(self._raw.get(key, ())), doc=f"The entry's `{key}` list.")


class Model:
    """A registry entry: a read-only view over one validated `[[models]]` table.

    Building 10,000 of these must cost next to nothing (`list` on a large registry answers in
    well under half a second), so the table is kept as parsed and the nested values (licence,
    access, defaults, deployments) are made on first use.
    """

    __slots__ = ("_raw", "source", "_license", "_access", "_defaults", "_deployments")

    def __init__(self, raw: dict[str, Any], source: str = "") -> None:
        self._raw = raw
        self.source = source  # the file the entry came from (not part of the export)
        self._license: License | None = None
        self._access: Access | None = None
        self._defaults: Defaults | None = None
        self._deployments: tuple[Deployment, ...] | None = None

    id: str = _value("id")  # type: ignore[assignment]
    name: str = _value("name")  # type: ignore[assignment]
    provider: str = _value("provider")  # type: ignore[assignment]
    category: str = _value("category")  # type: ignore[assignment]
    family: str | None = _value("family")  # type: ignore[assignment]
    description: str | None = _value("description")  # type: ignore[assignment]
    parameters: int | None = _value("parameters")  # type: ignore[assignment]
    context_window: int | None = _value("context_window")  # type: ignore[assignment]
    max_output_tokens: int | None = _value("max_output_tokens")  # type: ignore[assignment]
    embedding_dimensions: int | None = _value("embedding_dimensions")  # type: ignore[assignment]
    architecture: str | None = _value("architecture")  # type: ignore[assignment]
    release_date: str | None = _value("release_date")  # type: ignore[assignment]
    status: str = _value("status", "active")  # type: ignore[assignment]
    template: str | None = _value("template")  # type: ignore[assignment]
    tasks: tuple[str, ...] = _items("tasks")  # type: ignore[assignment]
    aliases: tuple[str, ...] = _items("aliases")  # type: ignore[assignment]
    languages: tuple[str, ...] = _items("languages")  # type: ignore[assignment]
    use_cases: tuple[str, ...] = _items("use_cases")  # type: ignore[assignment]
    limitations: tuple[str, ...] = _items("limitations")  # type: ignore[assignment]
    frameworks: tuple[str, ...] = _items("frameworks")  # type: ignore[assignment]

    @property
    def links(self) -> dict[str, str]:
        return dict(self._raw.get("links", {}))

    @property
    def license(self) -> License:
        if self._license is None:
            self._license = License(**self._raw["license"])
        return self._license

    @property
    def access(self) -> Access:
        if self._access is None:
            self._access = Access(**self._raw["access"])
        return self._access

    @property
    def defaults(self) -> Defaults:
        if self._defaults is None:
            raw = dict(self._raw.get("defaults", {}))
            raw["stop"] = tuple(raw.get("stop", ()))
            self._defaults = Defaults(**raw)
        return self._defaults

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        if self._deployments is None:
            self._deployments = tuple(_build_deployment(d) for d in self._raw["deployments"])
        return self._deployments

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, source={self.source!r})"

    # The flags below read the table directly: filters call them for every model.
    @property
    def free(self) -> bool:
        return self._raw["access"]["free_tier"]

    @property
    def local(self) -> bool:
        return any(_raw_is_local(d) for d in self._raw["deployments"])

    @property
    def open_weights(self) -> bool:
        return self._raw["license"]["open_weights"]

    def text(self, key: str) -> str:
        """A field as plain text for searching (lists joined by spaces; '' when absent)."""
        value = self._raw.get(key)
        if isinstance(value, list):
            return " ".join(value)
        return value or ""

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
        data = {k: v for k, v in self._raw.items() if k != "deployments"}
        data.update(
            aliases=list(self.aliases),
            status=self.status,
            free=self.free,
            local=self.local,
            open_weights=self.open_weights,
            license=self.license.to_dict(),
            access=self.access.to_dict(),
            deployments=[d.to_dict() for d in self.deployments],
        )
        return data

    def summary(self) -> dict[str, Any]:
        """The `list --json` object: the fields scripts filter on, plus deployment ids/kinds."""
        raw = self._raw
        return {
            "id": raw["id"],
            "name": raw["name"],
            "aliases": raw.get("aliases", []),
            "provider": raw["provider"],
            "family": raw.get("family"),
            "category": raw["category"],
            "tasks": raw["tasks"],
            "context_window": raw.get("context_window"),
            "parameters": raw.get("parameters"),
            "license": raw["license"]["name"],
            "open_weights": raw["license"]["open_weights"],
            "free": raw["access"]["free_tier"],
            "local": self.local,
            "cost_input": raw["access"].get("cost_input"),
            "cost_output": raw["access"].get("cost_output"),
            "template": raw.get("template"),
            "deployments": [
                {"id": d.get("id", d["kind"]), "kind": d["kind"], "local": _raw_is_local(d)}
                for d in raw["deployments"]
            ],
        }


def _raw_is_local(d: dict[str, Any]) -> bool:
    return d["kind"] in LOCAL_KINDS or (d["kind"] == "openai-compatible" and _is_loopback(d.get("api_base")))


def _build_deployment(raw: dict[str, Any]) -> Deployment:
    raw = dict(raw)
    files = tuple(GGUFFile(**{**f, "shards": tuple(f.get("shards", ()))}) for f in raw.pop("files", ()))
    return Deployment(id=raw.pop("id", raw["kind"]), files=files, **raw)
