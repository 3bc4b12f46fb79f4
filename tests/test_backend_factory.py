"""open_backend(): the class for each deployment kind, deployment choice, and nothing heavy
imported before a backend is needed."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from providers.kits import FAKE_KEY, KITS

from modelctl.backends.base import Backend, is_local, template_name
from modelctl.backends.factory import BACKENDS, open_backend
from modelctl.errors import UsageError
from modelctl.transport.debug_log import DebugLog


@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_every_kind_opens_its_backend(kit, provider_env):
    backend = open_backend(None, kit.deployment("http://127.0.0.1:9"), api_key=FAKE_KEY)
    module, name = BACKENDS[kit.kind]
    assert type(backend).__name__ == name and type(backend).__module__ == f"modelctl.backends.{module}"
    assert isinstance(backend, Backend)
    assert backend.describe  # the protocol's methods are all there
    backend.close()


@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_served_backends_are_not_local_and_switch_their_debug_log(kit, provider_env):
    out = io.StringIO()
    backend = open_backend(None, kit.deployment("http://127.0.0.1:9"), api_key=FAKE_KEY,
                           debug=DebugLog(False, out=out))
    try:
        assert isinstance(backend, Backend) and not is_local(backend)
        assert template_name(backend) is None
        backend.set_debug(True)
        backend.debug.line("test", "on")
        backend.set_debug(False)
        backend.debug.line("test", "off")
        assert out.getvalue() == "debug: test: on\n"
    finally:
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
    code = ("import sys, modelctl.keys, modelctl.backends.factory, modelctl.transport.http_client, modelctl.transport.urls, "
            "modelctl.backends.openai, modelctl.backends.anthropic, modelctl.backends.gemini, "
            "modelctl.backends.mistral, modelctl.backends.huggingface, modelctl.backends.ollama, "
            "modelctl.cli.keys_cmd; "
            "print(sorted(m for m in ('httpx', 'httpx2', 'ollama', 'huggingface_hub', 'llama_cpp', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("address", ["http://127.0.0.1:8000/v1", "https://xn--mnchen-3ya.example/v1"])
def test_checking_an_address_loads_httpx_without_its_command_line(address):
    """check_url asks httpx how it reads the address; httpx's command-line client (click, rich,
    pygments) stays unloaded, as it does for the HTTP client itself."""
    code = ("import sys\nfrom modelctl.transport.urls import check_url\n"
            f"check_url({address!r})\n"
            "print(sorted(m for m in ('httpx', 'httpx._main', 'click', 'pygments') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['httpx']"


# A malformed service address is one usage error (exit 2), never an httpx traceback.
BAD_ADDRESSES = ["http://[::1/v1", "http://gpu box:8000/v1", "http://gpu-box:80800/v1", "http://gpu-box:port/v1",
                 "http://:8000/v1", "localhost:8000"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_a_malformed_api_base_is_a_usage_error(address, cli):
    result = cli("chat", "--api-base", address, "--model", "foo", "hi")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("modelctl: error: --api-base ") and "is not a usable URL" in result.output
    assert result.output.count("\n") == 1


def test_a_malformed_api_base_in_a_real_process(run_modelctl):
    result = run_modelctl("chat", "--api-base", "http://bob:hunter2secret@[::1/v1", "--model", "foo", "hi")
    assert result.returncode == 2
    assert result.stderr == ("modelctl: error: --api-base 'http://***@[::1/v1' is not a usable URL: "
                             "expected a URL with a valid host and port (Invalid IPv6 URL)\n")


@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_a_malformed_address_for_any_deployment_is_a_usage_error(kit, provider_env):
    """--api-base with --deployment replaces the deployment's endpoint; it is checked as well."""
    for address in BAD_ADDRESSES[:4]:
        with pytest.raises(UsageError, match="is not a usable"):
            open_backend(None, kit.deployment("http://127.0.0.1:9"), api_base=address, api_key=FAKE_KEY)


@pytest.mark.parametrize("variable, kit", [("AZURE_OPENAI_ENDPOINT", "azure-openai"), ("OLLAMA_HOST", "ollama")])
def test_a_malformed_address_in_the_environment_is_a_usage_error(variable, kit, provider_env):
    from dataclasses import replace

    from providers.kits import KIT

    provider_env.setenv(variable, "http://[::1:11434")
    dep = replace(KIT[kit].deployment("http://127.0.0.1:9"), endpoint=None, host=None)
    with pytest.raises(UsageError, match="is not a usable"):
        open_backend(None, dep, api_key=FAKE_KEY)
