"""open_backend(): the class for each deployment kind, deployment choice, and nothing heavy
imported before a backend is needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelctl.backends.base import Backend
from modelctl.backends.factory import BACKENDS, open_backend
from modelctl.errors import UsageError

from providers.kits import FAKE_KEY, KITS, provider_env  # noqa: F401 (fixture)


@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_every_kind_opens_its_backend(kit, provider_env):
    backend = open_backend(None, kit.deployment("http://127.0.0.1:9"), api_key=FAKE_KEY)
    module, name = BACKENDS[kit.kind]
    assert type(backend).__name__ == name and type(backend).__module__ == f"modelctl.backends.{module}"
    assert isinstance(backend, Backend)
    assert backend.describe  # the protocol's methods are all there
    backend.close()


def test_a_registry_model_picks_its_first_api_deployment(provider_env):
    from modelctl.registry import load_registry

    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    model = load_registry().resolve("gpt-4o")
    backend = open_backend(model)
    assert backend.kind == model.deployments[0].kind
    provider_env.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    azure = open_backend(model, "azure-openai", api_base="https://example.openai.azure.com")
    assert azure.kind == "azure-openai" and azure.endpoint == "https://example.openai.azure.com"


def test_a_local_server_deployment_comes_before_a_hosted_one(provider_env):
    from modelctl.registry import load_registry

    model = next(m for m in load_registry()
                 if [d.kind for d in m.deployments][:2] == ["hf-inference", "ollama"])
    assert open_backend(model).kind == "ollama"


def test_llama_cpp_deployments_are_not_opened_here():
    from modelctl.registry import Deployment

    with pytest.raises(UsageError, match="in-process"):
        open_backend(None, Deployment(id="l", kind="llama.cpp", repo="x/y"))
    with pytest.raises(UsageError):
        open_backend(None, None)


def test_importing_the_backends_costs_nothing():
    code = ("import sys, modelctl.keys, modelctl.backends.factory, modelctl.backends.http, "
            "modelctl.backends.openai, modelctl.backends.anthropic, modelctl.backends.gemini, "
            "modelctl.backends.mistral, modelctl.backends.huggingface, modelctl.backends.ollama, "
            "modelctl.cli.keys_cmd; "
            "print(sorted(m for m in ('httpx', 'httpx2', 'ollama', 'huggingface_hub', 'llama_cpp', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
