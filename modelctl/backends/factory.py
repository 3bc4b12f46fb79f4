"""From a registry deployment (or an ad-hoc endpoint) to a ready backend for a server or API.

    open_backend(model, deployment) ─► the class for deployment.kind ─► keys, endpoint, client

Local GGUF files (`llama.cpp` deployments) are opened by the chat layer, which renders their
templates itself; everything else comes through here. Nothing is imported until it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelctl.config import api_base_for
from modelctl.errors import UsageError
from modelctl.registry.values import Deployment
from modelctl.transport.urls import check_url

if TYPE_CHECKING:
    from modelctl.backends.anthropic import AnthropicBackend
    from modelctl.backends.azure_ai import AzureAIBackend
    from modelctl.backends.base import Backend, LocalBackend
    from modelctl.backends.gemini import GeminiBackend
    from modelctl.backends.huggingface import HuggingFaceBackend
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.backends.mistral import MistralBackend
    from modelctl.backends.ollama import OllamaBackend
    from modelctl.backends.openai import OpenAIBackend
    from modelctl.registry import Deployment, Model

    # Every backend class answers the protocol: the type checker verifies these two lines.
    _SERVED: tuple[type[Backend], ...] = (OpenAIBackend, MistralBackend, AnthropicBackend, GeminiBackend,
                                         HuggingFaceBackend, OllamaBackend, AzureAIBackend)
    _LOCAL: type[LocalBackend] = LlamaCppBackend

# deployment kind -> (module under modelctl.backends, class name)
BACKENDS: dict[str, tuple[str, str]] = {
    "openai": ("openai", "OpenAIBackend"),
    "azure-openai": ("openai", "OpenAIBackend"),
    "azure-ai": ("azure_ai", "AzureAIBackend"),
    "openai-compatible": ("openai", "OpenAIBackend"),
    "mistral": ("mistral", "MistralBackend"),
    "anthropic": ("anthropic", "AnthropicBackend"),
    "gemini": ("gemini", "GeminiBackend"),
    "hf-inference": ("huggingface", "HuggingFaceBackend"),
    "ollama": ("ollama", "OllamaBackend"),
}

ADHOC_DEPLOYMENT_ID = "api-base"


def adhoc_deployment(api_base: str, model: str, *, key_env: str = "OPENAI_API_KEY") -> "Deployment":
    """The deployment behind `--api-base URL --model NAME`: any OpenAI-compatible server, with
    `--api-key` or `OPENAI_API_KEY` when it wants a key."""

    check_url(api_base, "--api-base")
    if not model:
        raise UsageError("--api-base needs --model NAME (the model name the server knows)")
    return Deployment(id=ADHOC_DEPLOYMENT_ID, kind="openai-compatible", model=model, api_base=api_base, key_env=key_env)


def open_backend(
    model: "Model | None",
    deployment: "Deployment | str | None" = None,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    debug: Any = None,
    **options: Any,
) -> "Backend":
    """A backend for `deployment` of `model` (a Deployment, a deployment id or kind, or None for
    the model's first local server deployment (Ollama, a loopback OpenAI-compatible server), else
    its first other non-llama.cpp deployment).

    `api_base` overrides the deployment's endpoint (for Azure, the resource endpoint; for
    Ollama, the host), else the user's `[api_base]` for its kind does (`config.api_base_for`;
    not for the ad-hoc `--api-base` deployment, whose address is the one given); `api_key` overrides every other source of the key; `debug` (None: follow
    `MODELCTL_DEBUG`) makes the backend describe each request on stderr, credentials redacted.
    `options` go to the backend class: `retry` (a RetryPolicy), `timeout` (seconds of silence
    allowed while reading), `transport` (an httpx transport).
    """
    dep = _pick(model, deployment)
    try:
        module_name, class_name = BACKENDS[dep.kind]
    except KeyError:
        if dep.kind == "llama.cpp":
            raise UsageError(
                "llama.cpp deployments run in-process; they are opened by the local chat, not open_backend()"
            ) from None
        raise UsageError(f"no backend for deployments of kind '{dep.kind}'") from None

    cls = getattr(importlib.import_module(f"modelctl.backends.{module_name}"), class_name)
    if model is not None and dep.kind == "anthropic" and model.max_output_tokens:
        options.setdefault("max_output_tokens", model.max_output_tokens)
    if dep.id != ADHOC_DEPLOYMENT_ID:
        api_base = api_base_for(dep.kind, api_base)
    backend: Backend = cls(dep, api_base=api_base, api_key=api_key, debug=debug, **options)
    return backend


def _pick(model: "Model | None", deployment: "Deployment | str | None") -> "Deployment":
    if deployment is not None and not isinstance(deployment, str):
        return deployment
    if model is None:
        raise UsageError("open_backend() needs a model or a deployment")
    if isinstance(deployment, str):
        return model.deployment(deployment)
    served = [d for d in model.deployments if d.kind != "llama.cpp"]
    if not served:
        raise UsageError(f"model '{model.id}' has only llama.cpp deployments; run it locally")
    return next((d for d in served if d.local), served[0])  # a local server first, as Model.deployment()
