"""The registry's vocabulary: categories, tasks, deployment kinds, and which kinds run locally.

Entries (`model.py`), values (`values.py`), the schema (`schema.py`) and the CLI's filters all
read these; this module imports nothing from the registry, so none of them import each other for
it.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any, Mapping
from urllib.parse import urlsplit

CATEGORIES = ("foundation", "industry", "task")
TASKS = (
    "chat", "completion", "embedding", "code", "vision", "speech-to-text", "text-to-speech",
    "text-to-image", "moderation", "fill-mask", "image-classification",
    "zero-shot-image-classification", "translation", "summarization", "rerank",
)
# The command that does each task (`chat` also takes the models of chat-like tasks).
TASK_COMMANDS = {
    "chat": "chat", "code": "chat", "vision": "chat", "translation": "chat", "summarization": "chat",
    "completion": "complete", "embedding": "embed", "speech-to-text": "transcribe", "text-to-speech": "speak",
    "text-to-image": "image", "moderation": "classify", "image-classification": "classify",
    "zero-shot-image-classification": "classify", "fill-mask": "fill-mask", "rerank": None,
}
DEPLOYMENT_KINDS = (
    "llama.cpp", "ollama", "openai", "azure-openai", "openai-compatible", "hf-inference",
    "mistral", "gemini", "anthropic", "azure-ai",
)
# Serving engines an `openai-compatible` deployment may name (`engine = …`): what answers at its
# api_base, so modelctl knows how to probe it, read its load and launch it (modelctl/engines/).
ENGINES = ("vllm", "sglang", "llama-server", "llama-cpp-python", "llm-d", "kserve", "ray-serve")
STATUSES = ("active", "preview", "legacy", "deprecated")
# What a chat model can do beyond plain text (as the maintained catalogues record it).
CAPABILITIES = ("tools", "reasoning", "structured_output")
LINK_KINDS = ("model_card", "docs", "paper", "blog", "pricing", "license", "repo")

# Kinds whose model runs on this machine.
LOCAL_KINDS = frozenset({"llama.cpp", "ollama"})

_DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "azure-openai": "AZURE_OPENAI_API_KEY",
    "azure-ai": "AZURE_AI_API_KEY",
    "hf-inference": "HF_TOKEN",
    "mistral": "MISTRAL_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}


def default_key_env(kind: str) -> str | None:
    """The environment variable a deployment kind reads its key from by default."""
    return _DEFAULT_KEY_ENV.get(kind)


def today_iso() -> str:
    """Today's local date as YYYY-MM-DD: registry dates are ISO strings, which order as dates."""

    return datetime.date.today().isoformat()


def _is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local(deployment: Mapping[str, Any]) -> bool:
    """Whether a deployment table (`kind`, `api_base`) runs on this machine: a llama.cpp or
    Ollama deployment, or an OpenAI-compatible server on a loopback address."""
    kind = deployment["kind"]
    return kind in LOCAL_KINDS or (kind == "openai-compatible" and _is_loopback(deployment.get("api_base")))


# Prices per 1M tokens besides cost_input/cost_output: prompt tokens read from the provider's
# cache and written to it (registry/pricing.py), and the batch API's prices (shown, exported).
CACHE_PRICES = ("cost_cache_read", "cost_cache_write")
BATCH_PRICES = ("cost_batch_input", "cost_batch_output")
TOKEN_PRICES = ("cost_input", "cost_output", *CACHE_PRICES, *BATCH_PRICES)
