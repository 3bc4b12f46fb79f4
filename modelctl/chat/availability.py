"""Which deployments can be used right now, and what each reports about itself.

    usable_services(models) -> [Service(model, deployment, usable, reason), ...]

A deployment is usable when what it needs is here: a llama.cpp model's GGUF file on this
machine, an API's key (environment or keys file; Azure also an endpoint), a server (Ollama, an
OpenAI-compatible or Hugging Face endpoint) that answers. Servers are probed in parallel and
without credentials: any HTTP answer, even 401, means the server is there.

A deployment that names its serving engine (`engine = "vllm"`, …) is probed as that engine
(`engines/probe.py`): usable when its health route says ready and its model list has the
deployment's `model`; its state (ready, loading, down) and load (queue, KV cache) come with it.

A probe (`reach`) is bounded whatever the server does: the whole exchange (name lookup,
connection, the answer to its last byte) ends within its timeout, at most PROBE_BYTES of the
answer are read, and JSON that is too deep or too large to build counts as no JSON. A server
that drips its answer byte by byte is "no complete answer", not a hang.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from modelctl.config import api_base_for
from modelctl.engines.probe import READY, EngineStatus, Load, probe_engine
from modelctl.errors import ModelctlError, UsageError
from modelctl.keys import find_key
from modelctl.registry.vocab import default_key_env
from modelctl.store.locate import locate
from modelctl.transport import wire
from modelctl.transport.ollama_server import normalize_tag, ollama_host
from modelctl.transport.probe_get import probe_get
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import redact_url

if TYPE_CHECKING:
    from modelctl.registry import Deployment, Model

# Seconds a server gets to accept the connection and to answer the probe, all of it.
PROBE_TIMEOUT = 1.5
# The most of a probe's answer read (a model list: Ollama's tags, an OpenAI-style /models).
PROBE_BYTES = 4 << 20
# Kinds that need nothing but a key: their service is a hosted API (not probed).
KEYED_KINDS = ("openai", "mistral", "anthropic", "gemini")


@dataclass
class Service:
    """One deployment of one model, as the service-metadata design describes a service: a model
    id and the attributes that identify its endpoint, and whether it can be used now."""

    model: "Model"
    deployment: "Deployment"
    usable: bool
    reason: str  # why it is (not) usable: "key from env OPENAI_API_KEY", "no GGUF file here", …
    engine: EngineStatus | None = None  # what a probe of its serving engine found

    @property
    def load(self) -> Load | None:
        """Its engine's load, where the engine reports one (`engines.probe.Load`)."""
        return self.engine.load_for(self.deployment.model) if self.engine else None

    @property
    def id(self) -> str:
        return f"{self.model.id}@{self.deployment.id}"

    def metadata(self) -> dict[str, Any]:
        """The `services --json` object: the service id, the registry model, the deployment's
        own metadata (model id, endpoint, api version, deployment name, …), usability."""
        meta = self.deployment.service_metadata()
        endpoint = api_base_for(self.deployment.kind) or meta.get("endpoint")
        if endpoint:
            meta["endpoint"] = redact_url(endpoint)
        if self.engine is not None:
            meta.update(self.engine.to_dict(self.deployment.model))
        return {"service": self.id, "model": self.model.id, "deployment": self.deployment.id, **meta,
                "context_window": self.model.context_window, "usable": self.usable, "reason": self.reason}


def _key_reason(kind: str, dep: "Deployment") -> tuple[bool, str]:
    key = find_key(kind, key_env=dep.key_env)
    if key.value:
        return True, f"key from {key.source}"
    return False, f"no API key (set {dep.key_env or default_key_env(kind) or kind} or `modelctl keys set {kind}`)"


def probe_url(dep: "Deployment") -> str | None:
    """The address that shows whether `dep`'s server is up, for kinds that run on a server
    (an engine deployment's: `engine_base`)."""
    if dep.engine is not None:
        return None
    if dep.kind == "ollama":
        return f"{ollama_host(dep.host)}/api/tags"
    base = api_base_for(dep.kind) or dep.api_base
    if dep.kind in ("openai-compatible", "hf-inference") and base:
        return f"{base.rstrip('/')}/models"
    return None


def engine_base(dep: "Deployment") -> str | None:
    """The api_base of a deployment that names its serving engine, where it has one."""
    return (api_base_for(dep.kind) or dep.api_base) if dep.engine is not None else None


def engine_key(dep: "Deployment") -> str | None:
    """The key an engine's model list is sent: only that of a deployment's own `key_env`."""
    return find_key(dep.kind, key_env=dep.key_env).value if dep.key_env else None


def _engine_service(model: "Model", dep: "Deployment", status: EngineStatus) -> Service:
    if status.state != READY:
        return Service(model, dep, False, status.why, status)
    if not status.serves(dep.model):
        listed = ", ".join(status.served or ()) or "nothing"
        return Service(model, dep, False, f"{status.why}, but it serves {one_line(listed, 200)}, not '{dep.model}'", status)
    return Service(model, dep, True, status.why, status)


def reach(url: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str, Any]:
    """GET `url` without credentials (those written into it are left out too): (answered, what
    happened, its JSON body or None), all within `timeout` seconds (see the module docstring)."""
    answer = probe_get(url, timeout, PROBE_BYTES)
    if answer.status is None:
        return False, answer.why, None
    try:
        body = wire.loads(answer.body) if answer.status == 200 else None
    except ValueError:  # not JSON, nested too deep, too many values
        body = None
    return True, f"server answered at {answer.why}", body


def _ollama_has(body: Any, tag: str | None) -> bool:
    """Whether an Ollama /api/tags answer lists `tag` (`name` and `name:latest` are the same)."""
    if not tag or not isinstance(body, dict) or not isinstance(body.get("models"), list):
        return True  # nothing to compare: the server being up is all that is known
    names = {normalize_tag(str(m.get(k))) for m in body["models"] if isinstance(m, dict) for k in ("name", "model")}
    return normalize_tag(tag) in names


def check(model: "Model", dep: "Deployment", probes: dict[str, tuple[bool, str, Any]],
          engines: dict[str, EngineStatus] | None = None) -> Service:
    """Whether `dep` of `model` is usable, given the answers to the server probes (by URL) and
    to the engine probes (by api_base)."""
    kind = dep.kind
    base = engine_base(dep)
    if base is not None and engines is not None and base in engines:
        return _engine_service(model, dep, engines[base])
    if kind == "llama.cpp":
        try:
            path = locate(model)
        except ModelctlError as exc:
            return Service(model, dep, False, str(exc))
        return Service(model, dep, path is not None, f"file {path}" if path else "its GGUF file is not on this machine")
    url = probe_url(dep)
    if url is not None:
        answered, what, body = probes[url]
        if answered and kind == "ollama" and not _ollama_has(body, dep.tag):
            return Service(model, dep, False, f"{what}, but it has no '{dep.tag}' (ollama pull {dep.tag})")
        return Service(model, dep, answered, what)
    if kind == "azure-openai":
        ok, why = _key_reason(kind, dep)
        if ok and not (api_base_for(kind) or dep.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")):
            return Service(model, dep, False, "no endpoint (set AZURE_OPENAI_ENDPOINT or the deployment's endpoint)")
        return Service(model, dep, ok, why)
    if kind in KEYED_KINDS or kind == "hf-inference":
        return Service(model, dep, *_key_reason(kind, dep))
    return Service(model, dep, False, f"no way to reach '{kind}' deployments without an api_base")


def services(models: Iterable["Model"], *, timeout: float = PROBE_TIMEOUT,
             reach_url: Callable[[str, float], tuple[bool, str, Any]] = reach) -> list[Service]:
    """Every deployment of `models`, each checked (usable or not, and why); each distinct server
    is probed once, all of them at the same time."""
    if not 0 < timeout < math.inf:  # NaN too
        raise UsageError(f"a probe's timeout is a positive number of seconds, not {timeout}")
    pairs = [(m, d) for m in models for d in m.deployments]
    urls: list[str] = []
    engine_jobs: dict[str, tuple[str, str | None]] = {}  # api_base -> (engine, key): one probe per address
    problems: dict[str, str] = {}
    for model, dep in pairs:
        try:
            url = probe_url(dep)
            base = engine_base(dep)
            if base is not None and dep.engine is not None and base not in engine_jobs:
                engine_jobs[base] = (dep.engine, engine_key(dep))
        except ModelctlError as exc:  # an OLLAMA_HOST that cannot be used
            problems[f"{model.id}@{dep.id}"] = str(exc)
            continue
        if url is not None and url not in urls:
            urls.append(url)
    probes: dict[str, tuple[bool, str, Any]] = {}
    engines: dict[str, EngineStatus] = {}
    if urls or engine_jobs:
        with ThreadPoolExecutor(max_workers=min(16, len(urls) + len(engine_jobs))) as pool:
            engine_answers = [pool.submit(probe_engine, engine, base, key=key, timeout=timeout)
                              for base, (engine, key) in engine_jobs.items()]
            probes = dict(zip(urls, pool.map(lambda u: reach_url(u, timeout), urls)))
            engines = dict(zip(engine_jobs, (f.result() for f in engine_answers)))
    found = []
    for model, dep in pairs:
        problem = problems.get(f"{model.id}@{dep.id}")
        found.append(Service(model, dep, False, problem) if problem else check(model, dep, probes, engines))
    return found


def usable_services(models: Iterable["Model"], **options: Any) -> list[Service]:
    """The deployments of `models` that can be used now (`services`, the usable ones)."""
    return [s for s in services(models, **options) if s.usable]
