"""Manifests that run a registry model on vLLM elsewhere (`modelctl deploy MODEL --emit …`), for
the user to review and apply with their own tools: Kubernetes (Deployment, Service, a
PersistentVolumeClaim for the weights cache), a KServe InferenceService on its Hugging Face
runtime (vLLM inside), a Compose file, a SkyPilot service.

Sizes come from the registry: the weights' bytes from `parameters` and the precision the weights
repository's name says (AWQ, GPTQ, FP8, …; 16-bit otherwise), the GPUs from those bytes. Secrets
appear only by reference (a Secret's name and key, an environment variable's name), never by
value: modelctl reads no cluster credentials and writes none."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelctl.engines import yamltext
from modelctl.engines.launch import context_length, original_weights, tool_format_of, tool_parser
from modelctl.errors import UsageError

if TYPE_CHECKING:
    from modelctl.registry.model import Model

TARGETS = ("k8s", "kserve", "compose", "skypilot")
VLLM_IMAGE = "vllm/vllm-openai:latest"  # pin a release (vllm/vllm-openai:vX.Y.Z) in production
PORT = 8000
CACHE = "/root/.cache/huggingface"  # HF_HOME in the vLLM image: the weights cache
KEY_ENV = "VLLM_API_KEY"  # vLLM's own variable for --api-key
HF_TOKEN_ENV = "HF_TOKEN"
HF_SECRET = "hf-token"  # a Secret the user creates (key `token`) when the weights are gated
GPU_RESOURCE = "nvidia.com/gpu"  # the NVIDIA device plugin's resource
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # GPU feature discovery's node label, in MiB
MAX_GPUS = 8  # one node; beyond it the model needs a multi-node setup this does not write
HEADROOM = 1.25  # GPU memory per byte of weights: KV cache, activations, CUDA graphs
UTILIZATION = 0.9  # the share of each GPU vLLM takes (--gpu-memory-utilization's default)

# Bytes per parameter that a repository's name announces; 16-bit (bf16/fp16) otherwise.
_PRECISION = ((re.compile(r"awq|gptq|int4|4bit|w4a16|nf4", re.I), 0.5), (re.compile(r"fp8|int8|8bit|w8a8", re.I), 1.0))
# SkyPilot's accelerator names and their memory (GiB): the candidates a service may run on.
SKY_ACCELERATORS = (("L4", 24), ("A10G", 24), ("L40S", 48), ("A100", 40), ("A100-80GB", 80), ("H100", 80),
                    ("H200", 141))
_HF_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


@dataclass(frozen=True)
class Sizing:
    """What one replica needs: `gpus` cards of at least `gpu_memory_mib` each."""

    weights_gib: float
    gpus: int
    gpu_memory_mib: int  # per card: a node's cards must have this much (GFD label, SkyPilot candidates)
    memory_gib: int  # host memory: the weights pass through it while loading
    cpus: int
    cache_gib: int  # the weights cache volume


@dataclass(frozen=True)
class Plan:
    """Everything the manifests say, worked out once from the registry entry and the flags."""

    model_id: str  # the registry id: the name the server answers with
    name: str  # the objects' name (a DNS-1035 label)
    weights: str  # the original weights' repository, which vLLM loads
    max_model_len: int | None
    sizing: Sizing
    image: str = VLLM_IMAGE
    aliases: tuple[str, ...] = ()  # the registry's other names for it, served too
    tool_parser: str | None = None  # vLLM's parser for the template family's tool calls

    @property
    def served_names(self) -> tuple[str, ...]:
        """vLLM's --served-model-name: the id first (the name in its answers), then the aliases, so a
        client (modelctl with -m ALIAS --api-base URL among them) may ask by any registry name."""
        return (self.model_id, *self.aliases)

    @property
    def key_secret(self) -> str:
        """The Secret (key `api-key`) holding the server's API key, which the user creates."""
        return f"{self.name}-api-key"


def bytes_per_parameter(repo: str) -> float:
    return next((size for pattern, size in _PRECISION if pattern.search(repo)), 2.0)


def size(parameters: int, repo: str, gpu_memory_gib: int) -> Sizing:
    """The GPUs for `parameters` weights of `repo`'s precision, assuming cards of `gpu_memory_gib`:
    the fewest (a power of two, as tensor parallelism wants) whose usable memory holds the weights
    with HEADROOM; each card must then have its share (the node selector and candidates)."""
    weights_gib = parameters * bytes_per_parameter(repo) / 2**30
    need_gib = weights_gib * HEADROOM
    gpus = 1
    while gpus * gpu_memory_gib * UTILIZATION < need_gib:
        gpus *= 2
    if gpus > MAX_GPUS:
        raise UsageError(f"{weights_gib:.0f} GiB of weights need more than {MAX_GPUS} GPUs of {gpu_memory_gib} GiB: "
                         "more than one node", hint="give --gpu-memory of larger cards, or --weights of a quantized repository")
    per_card_mib = math.ceil(need_gib / gpus / UTILIZATION * 1024)
    return Sizing(weights_gib=round(weights_gib, 1), gpus=gpus, gpu_memory_mib=per_card_mib,
                  memory_gib=math.ceil(weights_gib) + 16, cpus=4 * gpus, cache_gib=math.ceil(weights_gib * 1.2) + 10)


def object_name(model_id: str) -> str:
    """A DNS-1035 label from a model id (lower case, `-` for anything else, a letter first, at
    most 63 characters): Kubernetes object, Compose service and SkyPilot names."""
    name = re.sub(r"[^a-z0-9]+", "-", model_id.lower()).strip("-")
    if not name[:1].isalpha():
        name = "m-" + name
    return name[:63].rstrip("-")


def plan(model: Model, *, weights: str | None = None, name: str | None = None, gpu_memory_gib: int = 80,
         max_model_len: int | None = None, image: str = VLLM_IMAGE) -> Plan:
    """The Plan for `model`; UsageError where the registry lacks what a manifest needs."""
    if weights is None and not model.open_weights:
        raise UsageError(f"'{model.id}' has no open weights: only its provider serves it")
    if weights is not None and not _HF_REPO.fullmatch(weights):
        raise UsageError(f"--weights '{weights}' is not a Hugging Face repository (OWNER/NAME)")
    repo = weights or original_weights(model)
    if repo is None:
        raise UsageError(f"the registry gives no weights repository for '{model.id}'",
                         hint="give one with --weights OWNER/NAME, a Hugging Face repository vLLM can load")
    if not model.parameters:
        raise UsageError(f"the registry gives no parameter count for '{model.id}': its GPUs cannot be sized")
    if name is not None and object_name(name) != name:
        raise UsageError(f"--name '{name}' is not a DNS label (lower-case letters, digits and '-', a letter first, "
                         "at most 63 characters)")
    return Plan(model_id=model.id, aliases=model.aliases, name=name or object_name(model.id), weights=repo,
                max_model_len=context_length(max_model_len, model.context_window),
                sizing=size(model.parameters, repo, gpu_memory_gib), image=image,
                tool_parser=tool_parser("vllm", tool_format_of(model.template)))


def vllm_args(p: Plan) -> list[str]:
    """`vllm serve`'s arguments, the API key left to VLLM_API_KEY in the environment."""
    args = [p.weights, "--served-model-name", *p.served_names, "--host", "0.0.0.0", "--port", str(PORT)]
    if p.max_model_len:
        args += ["--max-model-len", str(p.max_model_len)]
    if p.sizing.gpus > 1:
        args += ["--tensor-parallel-size", str(p.sizing.gpus)]
    if p.tool_parser:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", p.tool_parser]
    return args


def _labels(p: Plan) -> dict[str, str]:
    return {"app.kubernetes.io/name": p.name, "app.kubernetes.io/component": "inference-server"}


def _secret_env(env: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": env, "valueFrom": {"secretKeyRef": ref}}


def _resources(s: Sizing) -> dict[str, Any]:
    amounts = {"cpu": str(s.cpus), "memory": f"{s.memory_gib}Gi", GPU_RESOURCE: str(s.gpus)}
    return {"requests": dict(amounts), "limits": {GPU_RESOURCE: str(s.gpus)}}


def _placement(s: Sizing) -> dict[str, Any]:
    """Nodes whose GPUs have each card's share of memory (GPU feature discovery's label), and the
    NVIDIA taint tolerated."""
    term = {"matchExpressions": [{"key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(s.gpu_memory_mib - 1)]}]}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}},
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def kubernetes(p: Plan) -> list[dict[str, Any]]:
    """A PersistentVolumeClaim (the weights cache), a Deployment of one vLLM replica, a Service."""
    labels = _labels(p)
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{p.name}-cache", "labels": labels},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{p.sizing.cache_gib}Gi"}}}}
    container = {
        "name": "vllm", "image": p.image, "command": ["vllm", "serve"], "args": vllm_args(p),
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [_secret_env(KEY_ENV, p.key_secret, "api-key"), _secret_env(HF_TOKEN_ENV, HF_SECRET, "token", optional=True)],
        "resources": _resources(p.sizing),
        "volumeMounts": [{"name": "cache", "mountPath": CACHE}, {"name": "shm", "mountPath": "/dev/shm"}],
        # Loading takes minutes (a download, then the weights onto the GPUs): up to an hour here.
        "startupProbe": _probe("/health", 10, 360), "readinessProbe": _probe("/health", 5, 3),
        "livenessProbe": _probe("/health", 10, 6),
    }
    pod = {"containers": [container], **_placement(p.sizing),
           "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": f"{p.name}-cache"}},
                       {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": p.name, "labels": labels},
                  # One replica holds the cache volume (ReadWriteOnce): the old one stops before the new starts.
                  "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": p.name, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}
    return [pvc, deployment, service]


def kserve(p: Plan) -> dict[str, Any]:
    """A KServe InferenceService (serving.kserve.io/v1beta1) on the Hugging Face runtime, which
    serves generative models with vLLM and speaks OpenAI's API under /openai/v1."""
    args = [f"--model_name={p.model_id}", f"--model_id={p.weights}", "--backend=vllm"]
    if p.max_model_len:
        args.append(f"--max_model_len={p.max_model_len}")
    if p.sizing.gpus > 1:
        args.append(f"--tensor-parallel-size={p.sizing.gpus}")
    model = {"modelFormat": {"name": "huggingface"}, "args": args,
             "env": [_secret_env(HF_TOKEN_ENV, HF_SECRET, "token", optional=True)],
             "resources": _resources(p.sizing)}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": p.name, "labels": _labels(p)},
            "spec": {"predictor": {"minReplicas": 1, "model": model, **_placement(p.sizing)}}}


def compose(p: Plan) -> dict[str, Any]:
    """A Compose file: the vLLM image on this host's GPUs, the key and token from the environment
    (`${VLLM_API_KEY:?…}` stops `docker compose up` when it is unset)."""
    check = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/health')"
    service = {
        "image": p.image, "command": vllm_args(p), "ports": [f"{PORT}:{PORT}"], "ipc": "host",
        "environment": {KEY_ENV: f"${{{KEY_ENV}:?set {KEY_ENV} to the key clients will send}}",
                        HF_TOKEN_ENV: f"${{{HF_TOKEN_ENV}:-}}"},
        "volumes": [f"hf-cache:{CACHE}"],
        "healthcheck": {"test": ["CMD", "python3", "-c", check], "interval": "10s", "retries": 3, "start_period": "30m"},
        "deploy": {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": p.sizing.gpus, "capabilities": ["gpu"]}]}}},
    }
    return {"name": p.name, "services": {p.name: service}, "volumes": {"hf-cache": {}}}


def skypilot(p: Plan) -> dict[str, Any]:
    """A SkyPilot service (`sky serve up`): vLLM on any accelerator with each card's share of
    memory, ready when /v1/models answers with the key; the key and token are SkyPilot secrets,
    given at launch (`--secret VLLM_API_KEY`)."""
    need_gib = p.sizing.gpu_memory_mib / 1024
    accelerators = {name: p.sizing.gpus for name, gib in SKY_ACCELERATORS if gib >= need_gib}
    run = "vllm serve " + " ".join(_sh(a) for a in vllm_args(p)) + f" --api-key ${KEY_ENV}\n"
    return {
        "name": p.name,
        "service": {"readiness_probe": {"path": "/v1/models", "headers": {"Authorization": f"Bearer ${KEY_ENV}"},
                                        "initial_delay_seconds": 1800},
                    "replica_policy": {"min_replicas": 1, "max_replicas": 1}},
        "resources": {"accelerators": accelerators, "ports": PORT, "disk_size": max(p.sizing.cache_gib, 100),
                      "memory": f"{p.sizing.memory_gib}+"},
        "secrets": {KEY_ENV: None, HF_TOKEN_ENV: None},
        "setup": "pip install vllm\n",
        "run": run,
    }


def _sh(arg: str) -> str:
    """`arg` for a POSIX shell line: bare when it is plain, else single-quoted."""
    return arg if re.fullmatch(r"[A-Za-z0-9_./:=@+-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Manifest:
    filename: str  # its name in the output directory
    text: str


_EMITTERS: dict[str, Callable[[Plan], tuple[str, str]]] = {
    "k8s": lambda p: (f"{p.name}.k8s.yaml", yamltext.dump_all(kubernetes(p))),
    "kserve": lambda p: (f"{p.name}.kserve.yaml", yamltext.dump(kserve(p))),
    "compose": lambda p: ("compose.yaml", yamltext.dump(compose(p))),
    "skypilot": lambda p: (f"{p.name}.sky.yaml", yamltext.dump(skypilot(p))),
}


def check_target(target: str) -> str:
    """`target` when it is one of TARGETS, else a UsageError naming them."""
    if target not in _EMITTERS:
        raise UsageError(f"unknown --emit '{target}' (known: {', '.join(TARGETS)})")
    return target


def emit(p: Plan, target: str) -> Manifest:
    """The manifest of `target` (one of TARGETS) as YAML text."""
    return Manifest(*_EMITTERS[check_target(target)](p))
