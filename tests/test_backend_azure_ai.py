"""The Azure AI model catalog kind (`azure-ai`): its URL shapes, `api-version`, key or Entra
token, `extra-parameters` header, embeddings and `/info`, against the Azure AI model inference
API's documented wire format on a loopback server. The failure modes every kind shares (retries,
cut-off streams, rejected keys) run over it in test_backend_reliability.py."""

from __future__ import annotations

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY, KIT, registry_for
from providers.server import Reply

from modelctl.backends.azure_ai import DEFAULT_API_VERSION, inference_endpoint
from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import open_backend
from modelctl.errors import AuthError, UsageError

AZURE_AI = KIT["azure-ai"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.FAKE-entra-token"


def dep(url, **fields):
    from modelctl.registry import Deployment

    fields.setdefault("model", "Llama-2-7b-chat")
    return Deployment(id="azure-ai", kind="azure-ai", endpoint=url, **fields)


def test_serverless_request_shape(server, open_kit):
    server.route("POST", "/chat/completions", openai_wire.chat_stream(["Hi", "!"], usage=(12, 2)))
    backend = open_kit(AZURE_AI)
    params = GenerationParams(max_tokens=16, temperature=0.2, top_p=0.9, seed=3, stop=("END",),
                              extra={"safe_prompt": "true"})
    text, final = collect(backend.chat(MESSAGES, params))
    assert text == "Hi!" and final.usage.to_dict() == {"prompt_tokens": 12, "completion_tokens": 2}
    (req,) = server.calls("/chat/completions")
    assert req.query == {"api-version": [DEFAULT_API_VERSION]}
    assert req.header("api-key") == FAKE_KEY and req.header("authorization") is None
    assert req.header("extra-parameters") == "pass-through"  # so safe_prompt reaches the model
    assert req.body == {
        "model": "Llama-2-7b-chat", "messages": MESSAGES,
        "max_tokens": 16, "temperature": 0.2, "top_p": 0.9, "seed": 3, "stop": ["END"],
        "stream": True, "safe_prompt": True,
    }  # no stream_options: the API does not define it


def test_model_inference_endpoint_names_the_deployment_and_api_version(server, provider_env):
    provider_env.setenv("AZURE_AI_API_KEY", FAKE_KEY)
    server.route("POST", "/models/chat/completions", openai_wire.chat_stream(["ok"]))
    backend = open_backend(None, dep(f"{server.url}/models", model="Mistral-large-2407",
                                     deployment="mistral-large-eu", api_version="2024-08-01-preview"))
    assert collect(backend.chat(MESSAGES, GenerationParams()))[0] == "ok"
    (req,) = server.calls("/models/chat/completions")
    assert req.body["model"] == "mistral-large-eu"
    assert req.query == {"api-version": ["2024-08-01-preview"]}


@pytest.mark.parametrize("given, expected", [
    ("https://contoso.services.ai.azure.com", "https://contoso.services.ai.azure.com/models"),
    ("https://contoso.services.ai.azure.com/", "https://contoso.services.ai.azure.com/models"),
    ("https://contoso.cognitiveservices.azure.com", "https://contoso.cognitiveservices.azure.com/models"),
    ("https://contoso.services.ai.azure.com/models", "https://contoso.services.ai.azure.com/models"),
    ("https://llama-2-7b-chat-xyz.eastus2.models.ai.azure.com",
     "https://llama-2-7b-chat-xyz.eastus2.models.ai.azure.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_a_bare_resource_address_gets_the_models_path(given, expected):
    assert inference_endpoint(given) == expected


def test_an_entra_token_goes_as_bearer_and_is_never_shown(server, provider_env, capsys):
    provider_env.setenv("AZURE_AI_TOKEN", TOKEN)
    server.route("POST", "/chat/completions", openai_wire.error(401, "Token expired"))
    backend = open_backend(None, dep(server.url), debug=True)
    with pytest.raises(AuthError) as err:
        collect(backend.chat(MESSAGES, GenerationParams()))
    (req,) = server.calls("/chat/completions")
    assert req.header("authorization") == f"Bearer {TOKEN}" and req.header("api-key") is None
    assert "AZURE_AI_TOKEN" in str(err.value) and "expire" in str(err.value)
    assert TOKEN not in str(err.value) and TOKEN not in capsys.readouterr().err


def test_an_explicit_key_wins_over_the_token(server, provider_env):
    provider_env.setenv("AZURE_AI_TOKEN", TOKEN)
    server.route("POST", "/chat/completions", openai_wire.chat_stream(["ok"]))
    collect(open_backend(None, dep(server.url), api_key=FAKE_KEY).chat(MESSAGES, GenerationParams()))
    assert server.requests[0].header("api-key") == FAKE_KEY


def test_the_endpoint_comes_from_the_environment(server, provider_env):
    provider_env.setenv("AZURE_AI_API_KEY", FAKE_KEY)
    provider_env.setenv("AZURE_AI_ENDPOINT", server.url)
    server.route("POST", "/chat/completions", openai_wire.chat_stream(["ok"]))
    assert collect(open_backend(None, dep(None)).chat(MESSAGES, GenerationParams()))[0] == "ok"


def test_no_endpoint_and_no_key_are_clear_errors(provider_env):
    with pytest.raises(AuthError, match="no API key for Azure AI model catalog.*AZURE_AI_API_KEY"):
        open_backend(None, dep("https://x.eastus2.models.ai.azure.com"))
    provider_env.setenv("AZURE_AI_API_KEY", FAKE_KEY)
    with pytest.raises(UsageError, match="needs its endpoint.*AZURE_AI_ENDPOINT"):
        open_backend(None, dep(None))


def test_embeddings_and_info(server, open_kit):
    server.route("POST", "/embeddings", openai_wire.embeddings([[0.1, 0.2], [0.3, 0.4]]))
    server.route("GET", "/info", Reply(json={
        "model_name": "Llama-2-7b-chat", "model_type": "chat-completion", "model_provider_name": "Meta"}))
    backend = open_kit(AZURE_AI)
    assert backend.embed(["a", "b"]) == [[0.1, 0.2], [0.3, 0.4]]
    (req,) = server.calls("/embeddings")
    assert req.body == {"model": "Llama-2-7b-chat", "input": ["a", "b"]}
    assert req.query == {"api-version": [DEFAULT_API_VERSION]}
    meta = backend.describe()
    assert meta["service"] == {"model_name": "Llama-2-7b-chat", "model_type": "chat-completion",
                               "model_provider_name": "Meta"}
    assert meta["kind"] == "azure-ai" and meta["key_env"] == "AZURE_AI_API_KEY"


def test_chat_cli_through_a_registry_deployment(server, provider_env, cli, tmp_path):
    provider_env.setenv("AZURE_AI_API_KEY", FAKE_KEY)
    server.route("POST", "/chat/completions", openai_wire.chat_stream(["Hello", " there"]))
    registry = registry_for(AZURE_AI.deployment(server.url), tmp_path / "r.toml")
    result = cli("--registry", registry, "chat", "-m", "test/served-model", "Hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello there\n"
    assert FAKE_KEY not in result.output
