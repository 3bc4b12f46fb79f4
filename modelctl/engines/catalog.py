"""What modelctl knows of each serving engine a deployment may name (`engine = …`): where it
answers health and model-list probes, which of its Prometheus series say how loaded it is, and
how a user installs it. Facts only: probing, launching and manifests read them from here."""

from __future__ import annotations

from dataclasses import dataclass

from modelctl.registry.vocab import ENGINES


@dataclass(frozen=True)
class Engine:
    name: str  # as in the registry (vocab.ENGINES)
    label: str  # as people write it
    health_path: str | None  # relative to the server's root; None: the model list is the probe
    metrics_path: str | None  # Prometheus text; None: the engine exports none at its own address
    waiting: tuple[str, ...] = ()  # series of requests queued, first found wins
    running: tuple[str, ...] = ()  # series of requests being answered
    kv_cache: tuple[str, ...] = ()  # series of the KV cache's use, a fraction 0 to 1
    install: str = ""  # one line: how to get it
    local_weights: str = "repo"  # what it loads: "repo" (the original weights) or "gguf"
    # Started by `serve --engine`: seconds from SIGTERM to SIGKILL when stopped, and whether its
    # first process stops the rest itself (SIGTERM to it alone, then SIGKILL to the group).
    stop_grace_s: float = 10.0
    leader_stops: bool = False
    replicas: bool = False  # runs several copies of the model (`serve --engine … --replicas N`)


ENGINE_FACTS: dict[str, Engine] = {e.name: e for e in (
    Engine("vllm", "vLLM", "/health", "/metrics",
           waiting=("vllm:num_requests_waiting",), running=("vllm:num_requests_running",),
           kv_cache=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
           install="pip install vllm (Linux, a CUDA or ROCm GPU; see docs.vllm.ai)"),
    Engine("sglang", "SGLang", "/health", "/metrics",
           waiting=("sglang:num_queue_reqs",), running=("sglang:num_running_reqs",),
           kv_cache=("sglang:token_usage",),
           install="pip install 'sglang[all]' (Linux, a CUDA GPU; see docs.sglang.io)"),
    Engine("llama-server", "llama.cpp server", "/health", "/metrics",
           waiting=("llamacpp:requests_deferred",), running=("llamacpp:requests_processing",),
           kv_cache=("llamacpp:kv_cache_usage_ratio",),  # older builds only; newer ones export none
           install="install llama.cpp (its release archives, brew install llama.cpp, or a source build) "
                   "so that llama-server is on PATH",
           local_weights="gguf"),
    Engine("llama-cpp-python", "llama-cpp-python server", None, None,
           install="pip install 'llama-cpp-python[server]'", local_weights="gguf"),
    Engine("llm-d", "llm-d", None, None, install="a Kubernetes cluster with llm-d's Helm charts (llm-d.ai)"),
    Engine("kserve", "KServe", None, None, install="a Kubernetes cluster with KServe (kserve.github.io)"),
    # /metrics and its series: modelctl's own Ray Serve application (engines/ray_app.py); another
    # Ray Serve app publishes its metrics elsewhere, and its load reads as unknown.
    Engine("ray-serve", "Ray Serve", "/-/healthz", "/metrics",
           waiting=("modelctl_ray:requests_waiting",), running=("modelctl_ray:requests_running",),
           install="pip install 'modelctl[ray]' (ray[serve])", local_weights="gguf",
           # Ray stops its cluster in 6 to 9 s on 2 cores; its workers sit in process groups of
           # their own and outlive a raylet signalled with them
           stop_grace_s=20.0, leader_stops=True, replicas=True),
)}
assert tuple(ENGINE_FACTS) == ENGINES, "every engine of the registry's vocabulary has its facts here"


def engine_facts(name: str) -> Engine:
    """The facts of engine `name` (one of vocab.ENGINES; the schema refused any other)."""
    return ENGINE_FACTS[name]
