"""One `Kit` per deployment kind: how to point a deployment at the loopback server, where its
chat requests land, and that service's own streaming and error replies. Tests that every
provider must pass (retries, cut-off streams, rejected keys) run over all kits; fixtures here are
imported by the test modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from providers import anthropic_wire, gemini_wire, hf_wire, mistral_wire, ollama_wire, openai_wire
from providers.server import FakeServer, Reply, Request

# Recognisable, so that a test can prove it never appears in any output.
FAKE_KEY = "sk-FAKE-modelctl-7f3c9a2e1b5d"

PROVIDER_ENV = (
    "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_AI_API_KEY",
    "AZURE_INFERENCE_CREDENTIAL", "AZURE_AI_ENDPOINT", "AZURE_INFERENCE_ENDPOINT", "AZURE_AI_TOKEN", "HF_TOKEN", "HUGGINGFACE_API_KEY",
    "MISTRAL_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST",
    "OLLAMA_API_KEY", "VLLM_API_KEY", "MODELCTL_RETRIES", "HF_HUB_OFFLINE",
)


@dataclass
class Kit:
    name: str
    kind: str
    chat_path: str
    deployment: Callable[[str], Any]  # server URL -> Deployment
    stream: Callable[..., Reply]  # (texts, *, drop_after=None, headers=None)
    error: Callable[..., Reply]  # (status, message, *, headers=None)
    key_env: str | None
    key_header: Callable[[Request], str | None]
    text: str = "Hello world"  # what stream(["Hello", " world"]) says

    def __repr__(self) -> str:
        return self.name


def _dep(**fields: Any):
    from modelctl.registry import Deployment

    fields.setdefault("id", fields["kind"])
    return Deployment(**fields)


def _bearer(req: Request) -> str | None:
    value = req.header("authorization") or ""
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


KITS = [
    Kit("openai", "openai", "/v1/chat/completions",
        lambda url: _dep(kind="openai", model="gpt-4o-mini", api_base=f"{url}/v1"),
        openai_wire.chat_stream, openai_wire.error, "OPENAI_API_KEY", _bearer),
    Kit("azure-openai", "azure-openai", "/openai/deployments/eastus-4o-mini/chat/completions",
        lambda url: _dep(kind="azure-openai", model="gpt-4o-mini", deployment="eastus-4o-mini", endpoint=url,
                         api_version="2024-10-21"),
        openai_wire.chat_stream, openai_wire.error, "AZURE_OPENAI_API_KEY", lambda r: r.header("api-key")),
    Kit("azure-ai", "azure-ai", "/chat/completions",
        lambda url: _dep(kind="azure-ai", model="Llama-2-7b-chat", endpoint=url),
        openai_wire.chat_stream, openai_wire.error, "AZURE_AI_API_KEY", lambda r: r.header("api-key")),
    Kit("openai-compatible", "openai-compatible", "/v1/chat/completions",
        lambda url: _dep(kind="openai-compatible", model="served-model", api_base=f"{url}/v1", key_env="VLLM_API_KEY"),
        openai_wire.chat_stream, openai_wire.error, "VLLM_API_KEY", _bearer),
    Kit("mistral", "mistral", "/v1/chat/completions",
        lambda url: _dep(kind="mistral", model=mistral_wire.MODEL, api_base=f"{url}/v1"),
        mistral_wire.chat_stream, mistral_wire.error, "MISTRAL_API_KEY", _bearer),
    Kit("anthropic", "anthropic", "/v1/messages",
        lambda url: _dep(kind="anthropic", model=anthropic_wire.MODEL, api_base=url),
        anthropic_wire.message_stream, anthropic_wire.error, "ANTHROPIC_API_KEY", lambda r: r.header("x-api-key")),
    Kit("gemini", "gemini", f"/v1beta/models/{gemini_wire.MODEL}:streamGenerateContent",
        lambda url: _dep(kind="gemini", model=gemini_wire.MODEL, api_base=f"{url}/v1beta"),
        gemini_wire.stream, gemini_wire.error, "GEMINI_API_KEY", lambda r: r.header("x-goog-api-key")),
    Kit("hf-inference", "hf-inference", "/v1/chat/completions",
        lambda url: _dep(kind="hf-inference", model=hf_wire.MODEL, api_base=url),
        hf_wire.chat_stream, hf_wire.error, "HF_TOKEN", _bearer),
    Kit("ollama", "ollama", "/api/chat",
        lambda url: _dep(kind="ollama", tag=ollama_wire.TAG, host=url),
        ollama_wire.chat_stream, ollama_wire.error, "OLLAMA_API_KEY", _bearer),
]
KIT = {k.name: k for k in KITS}


@pytest.fixture
def provider_env(monkeypatch):
    """No provider variable from the machine running the tests leaks in."""
    for var in PROVIDER_ENV:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def server(provider_env):
    srv = FakeServer().start()
    yield srv
    srv.stop()


second_server = server  # a second loopback service, for tests that need two (another deployment)


@pytest.fixture
def sleeps():
    """What the retry policy waited, instead of waiting."""
    return []


@pytest.fixture
def open_kit(server, sleeps, provider_env):
    """open_kit(kit, **options) -> a backend for that kit's deployment on the loopback server,
    with FAKE_KEY in the kit's variable and retries that record their waits."""
    from modelctl.backends.factory import open_backend
    from modelctl.transport.retry import RetryPolicy

    opened = []

    def make(kit: Kit, **options: Any):
        if kit.key_env:
            provider_env.setenv(kit.key_env, FAKE_KEY)
        options.setdefault("retry", RetryPolicy(retries=3, sleep=sleeps.append))
        backend = open_backend(None, kit.deployment(server.url), **options)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def registry_for(deployment: Any, path: Any, model_id: str = "test/served-model") -> str:
    """A one-model registry file (for `--registry`) whose only deployment is `deployment`."""
    from dataclasses import fields

    from registries import model, write_registry

    dep = {f.name: getattr(deployment, f.name) for f in fields(deployment)
           if f.name not in ("id", "files") and getattr(deployment, f.name) not in (None, ())}
    entry = model(model_id, dep, name="Served model", tasks=["chat"],
                  access={"free_tier": True, "local_capable": deployment.local})
    return str(write_registry(path, entry))
