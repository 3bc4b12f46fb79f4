"""Registry values: a deployment, the GGUF files it lists, a model's licence, access terms and defaults.

Small dataclasses made on first use from a validated table (`Model` keeps the table itself).
Treat them as read-only: they are not frozen because frozen dataclasses construct three times
slower, and a listing may build thousands. Each turns itself back into JSON-ready data
(`to_dict`), which is also the export format.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypedDict

from modelctl.registry.vocab import default_key_env, is_local


class _TierThreshold(TypedDict):
    above_input_tokens: int


class PriceTier(_TierThreshold, total=False):
    """A long-prompt price as the registry writes it: a prompt of more than `above_input_tokens`
    tokens is billed at these prices (one of them at least; registry/pricing.py)."""

    cost_input: float
    cost_output: float
    cost_cache_read: float
    cost_cache_write: float


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
    cost_cache_read: float | None = None  # prompt tokens read from the provider's cache
    cost_cache_write: float | None = None  # prompt tokens written to it
    cost_batch_input: float | None = None  # the batch API's prices
    cost_batch_output: float | None = None
    price_tiers: tuple[PriceTier, ...] = ()  # prices for long prompts (registry/pricing.py)
    unit_prices: dict[str, float] | None = None  # prices not per token (registry/pricing.py)
    prices_as_of: str | None = None

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
class RepoFile:
    """A GGUF file a llama.cpp deployment lists: one quantization in its repository (or package),
    with its shards when it is split. Not the file's contents: `modelctl.gguf.GGUFFile`
    is a parsed header."""

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
    engine: str | None = None  # the serving engine at api_base (vocab.ENGINES), for openai-compatible
    tag: str | None = None
    host: str | None = None
    repo: str | None = None
    revision: str | None = None
    package: str | None = None
    default_quant: str | None = None
    mmproj: str | None = None
    files: tuple[RepoFile, ...] = ()
    cost_input: float | None = None
    cost_output: float | None = None
    cost_cache_read: float | None = None  # prompt tokens read from the provider's cache
    cost_cache_write: float | None = None  # prompt tokens written to it
    cost_batch_input: float | None = None  # the batch API's prices
    cost_batch_output: float | None = None
    price_tiers: tuple[PriceTier, ...] = ()  # prices for long prompts (registry/pricing.py)
    unit_prices: dict[str, float] | None = None  # prices not per token (registry/pricing.py)
    prices_as_of: str | None = None
    notes: str | None = None

    @property
    def local(self) -> bool:
        return is_local({"kind": self.kind, "api_base": self.api_base})

    def file_for(self, quant: str | None = None) -> RepoFile | None:
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
        default = self.file_for()
        meta: dict[str, Any] = {
            "model_id": self.model or self.tag or (default.filename if default else None),
            "kind": self.kind,
        }
        attrs = {
            "endpoint": self.endpoint or self.api_base or self.host,
            "api_version": self.api_version,
            "deployment_name": self.deployment or (self.model if self.kind == "azure-openai" else None),
            "key_env": self.key_env or default_key_env(self.kind),
            "organization": self.organization,
            "engine": self.engine,
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


def build_deployment(raw: dict[str, Any]) -> Deployment:
    raw = dict(raw)
    files = tuple(RepoFile(**{**f, "shards": tuple(f.get("shards", ()))}) for f in raw.pop("files", ()))
    tiers = tuple(raw.pop("price_tiers", ()))
    return Deployment(id=raw.pop("id", raw["kind"]), files=files, price_tiers=tiers, **raw)
