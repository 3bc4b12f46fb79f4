"""OpenAI, Azure OpenAI and OpenAI-compatible servers: request shapes, parameters, keys,
one-shot answers, embeddings, metadata and the stream's own errors, against OpenAI's documented
wire format on a loopback server."""

from __future__ import annotations

import json

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY, KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import adhoc_deployment, open_backend
from modelctl.errors import AuthError, NotFoundError, UsageError
from modelctl.transport.http_client import StreamInterrupted

OPENAI, AZURE, COMPATIBLE = KIT["openai"], KIT["azure-openai"], KIT["openai-compatible"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def dep(**fields):
    from modelctl.registry import Deployment

    fields.setdefault("id", fields["kind"])
    return Deployment(**fields)


def test_openai_request_shape(server, open_kit):
    server.route("POST", OPENAI.chat_path, openai_wire.chat_stream(["Hi"]))
    backend = open_kit(OPENAI)
    params = GenerationParams(max_tokens=32, temperature=0.5, top_p=0.9, seed=7, stop=("END",), top_k=40,
                              extra={"presence_penalty": "0.5", "user": "alice"})
    collect(backend.chat(MESSAGES, params))
    (req,) = server.calls(OPENAI.chat_path)
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    assert req.header("content-type") == "application/json"
    assert req.body == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_completion_tokens": 32, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"],
        "stream": True, "stream_options": {"include_usage": True},
        "presence_penalty": 0.5, "user": "alice",
    }  # top_k: OpenAI has none, so it is not sent


def test_openai_organization_header(server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["ok"]))
    backend = open_backend(None, dep(kind="openai", model="gpt-4o", api_base=f"{server.url}/v1", organization="org-42"))
    collect(backend.chat(MESSAGES, GenerationParams()))
    assert server.requests[0].header("openai-organization") == "org-42"


def test_finish_reason_length_and_usage(server, open_kit):
    server.route("POST", OPENAI.chat_path, openai_wire.chat_stream(["a", "b"], finish="length", usage=(20, 2)))
    text, final = collect(open_kit(OPENAI).chat(MESSAGES, GenerationParams(max_tokens=2)))
    assert text == "ab" and final.finish_reason == "length"
    assert final.usage.to_dict() == {"prompt_tokens": 20, "completion_tokens": 2}


def test_one_shot_without_streaming(server, open_kit):
    server.route("POST", OPENAI.chat_path, openai_wire.completion("Hello there.", finish="stop", usage=(9, 3)))
    chunks = list(open_kit(OPENAI).chat(MESSAGES, GenerationParams(extra={"stream": "false"})))
    assert [c.text for c in chunks] == ["Hello there.", ""]
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage.completion_tokens == 3
    body = server.requests[0].body
    assert "stream" not in body and "stream_options" not in body


def test_error_event_inside_the_stream(server, open_kit):
    events = [(None, json.dumps(openai_wire.chunk("Par"))),
              (None, json.dumps({"error": {"message": "The server had an error while processing your request.",
                                           "type": "server_error", "param": None, "code": None}}))]
    server.route("POST", OPENAI.chat_path, Reply(events=events))
    stream = open_kit(OPENAI).chat(MESSAGES, GenerationParams())
    assert next(stream).text == "Par"
    with pytest.raises(StreamInterrupted, match="server had an error while processing"):
        next(stream)


def test_a_stream_that_ends_without_finishing(server, open_kit):
    events = [(None, json.dumps(openai_wire.chunk("Half")))]  # then the server ends the response cleanly
    server.route("POST", OPENAI.chat_path, Reply(events=events))
    with pytest.raises(StreamInterrupted, match="ended before the answer was finished"):
        collect(open_kit(OPENAI).chat(MESSAGES, GenerationParams()))


# Every kit whose stream is OpenAI's chat.completion.chunk events ending in `data: [DONE]`.
DONE_KITS = [KIT[name] for name in ("openai", "azure-openai", "openai-compatible", "mistral", "hf-inference")]


@pytest.mark.parametrize("kit", DONE_KITS, ids=str)
def test_done_ends_the_answer_when_no_finish_reason_was_sent(kit, server, open_kit):
    # Some servers send no finish_reason; [DONE] is the explicit end of the answer all the same.
    events = [(None, json.dumps(openai_wire.chunk(t))) for t in ("Hello", " world")] + [(None, "[DONE]")]
    server.route("POST", kit.chat_path, Reply(events=events))
    text, final = collect(open_kit(kit).chat(MESSAGES, GenerationParams()))
    assert text == "Hello world" and final.finish_reason == "stop"


def test_done_without_a_finish_reason_is_a_whole_answer_on_the_command_line(server, cli):
    events = [(None, json.dumps(openai_wire.chunk("Hello"))), (None, "[DONE]")]
    server.route("POST", COMPATIBLE.chat_path, Reply(events=events))
    result = cli("chat", "--api-base", f"{server.url}/v1", "--model", "m", "Hi", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["finish_reason"] == "stop"


def test_missing_key_names_the_variable(provider_env):
    with pytest.raises(AuthError) as info:
        open_backend(None, dep(kind="openai", model="gpt-4o"))
    assert "no API key for OpenAI" in str(info.value)
    assert "set OPENAI_API_KEY" in info.value.hint and "modelctl keys set openai" in info.value.hint


def test_key_precedence_flag_env_file(server, provider_env):
    from modelctl.keys import store_key

    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["ok"]))
    d = dep(kind="openai", model="gpt-4o", api_base=f"{server.url}/v1")
    store_key("openai", "sk-from-the-keys-file")
    collect(open_backend(None, d).chat(MESSAGES, GenerationParams()))
    provider_env.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    collect(open_backend(None, d).chat(MESSAGES, GenerationParams()))
    collect(open_backend(None, d, api_key="sk-from-the-flag").chat(MESSAGES, GenerationParams()))
    sent = [r.header("authorization") for r in server.requests]
    assert sent == ["Bearer sk-from-the-keys-file", "Bearer sk-from-the-environment", "Bearer sk-from-the-flag"]


def test_a_deployment_key_env_replaces_the_default_variable(server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", "sk-not-this-one")
    provider_env.setenv("TEAM_OPENAI_KEY", "sk-team-key-123")
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["ok"]))
    d = dep(kind="openai", model="gpt-4o", api_base=f"{server.url}/v1", key_env="TEAM_OPENAI_KEY")
    collect(open_backend(None, d).chat(MESSAGES, GenerationParams()))
    assert server.requests[0].header("authorization") == "Bearer sk-team-key-123"


# --- Azure -------------------------------------------------------------------------------------


def test_azure_request_shape(server, open_kit):
    server.route("POST", AZURE.chat_path, openai_wire.chat_stream(["Hi"]))
    collect(open_kit(AZURE).chat(MESSAGES, GenerationParams(max_tokens=10, top_k=5)))
    (req,) = server.requests
    assert req.path == "/openai/deployments/eastus-4o-mini/chat/completions"
    assert req.query == {"api-version": ["2024-10-21"]}
    assert req.header("api-key") == FAKE_KEY and req.header("authorization") is None
    assert "model" not in req.body  # the deployment in the URL names it
    assert req.body["max_tokens"] == 10 and "top_k" not in req.body


def test_azure_endpoint_from_the_environment(server, provider_env):
    provider_env.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("AZURE_OPENAI_ENDPOINT", server.url + "/")
    server.route("POST", "/openai/deployments/gpt-4o/chat/completions", openai_wire.chat_stream(["Hi"]))
    backend = open_backend(None, dep(kind="azure-openai", model="gpt-4o", api_version="2024-10-21"))
    text, _ = collect(backend.chat(MESSAGES, GenerationParams()))
    assert text == "Hi"
    meta = backend.describe()
    assert meta["deployment_name"] == "gpt-4o" and meta["api_version"] == "2024-10-21"
    assert meta["endpoint"] == server.url and meta["key_source"] == "env AZURE_OPENAI_API_KEY"


def test_azure_without_an_endpoint_says_what_to_set(provider_env):
    provider_env.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    with pytest.raises(UsageError) as info:
        open_backend(None, dep(kind="azure-openai", model="gpt-4o", api_version="2024-10-21"))
    assert "AZURE_OPENAI_ENDPOINT" in info.value.hint


def test_azure_unknown_deployment(server, open_kit):
    server.route("POST", AZURE.chat_path, openai_wire.azure_error(
        404, "DeploymentNotFound", "The API deployment for this resource does not exist."))
    with pytest.raises(NotFoundError) as info:
        collect(open_kit(AZURE).chat(MESSAGES, GenerationParams()))
    assert "no deployment 'eastus-4o-mini'" in str(info.value) and "api-version 2024-10-21" in str(info.value)


# --- compatible servers and ad-hoc endpoints ----------------------------------------------------


def test_compatible_server_without_a_key_sends_none_and_passes_sampling(server, provider_env):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["ok"], usage=None))
    backend = open_backend(None, dep(kind="openai-compatible", model="qwen2.5", api_base=f"{server.url}/v1"))
    text, final = collect(backend.chat(MESSAGES, GenerationParams(top_k=20, repeat_penalty=1.1)))
    assert text == "ok" and final.usage is None  # this server ignores include_usage
    req = server.requests[0]
    assert req.header("authorization") is None
    assert req.body["top_k"] == 20 and req.body["repeat_penalty"] == 1.1


def test_compatible_server_that_wants_a_key_says_how_to_give_one(server, provider_env):
    server.route("POST", "/v1/chat/completions", openai_wire.error(401, "Invalid API Key", type="invalid_api_key"))
    backend = open_backend(None, dep(kind="openai-compatible", model="m", api_base=f"{server.url}/v1"))
    with pytest.raises(AuthError) as info:
        collect(backend.chat(MESSAGES, GenerationParams()))
    assert "--api-key" in info.value.hint


def test_ad_hoc_api_base_uses_openai_api_key(server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["ok"]))
    backend = open_backend(None, adhoc_deployment(f"{server.url}/v1", "my-model"))
    collect(backend.chat(MESSAGES, GenerationParams()))
    req = server.requests[0]
    assert req.header("authorization") == f"Bearer {FAKE_KEY}" and req.body["model"] == "my-model"


def test_ad_hoc_api_base_is_checked():
    with pytest.raises(UsageError):
        adhoc_deployment("localhost:8000", "m")
    with pytest.raises(UsageError):
        adhoc_deployment("http://localhost:8000/v1", "")


def test_a_wrong_base_url_hints_at_v1(server, provider_env):
    backend = open_backend(None, dep(kind="openai-compatible", model="m", api_base=server.url))
    with pytest.raises(NotFoundError, match="usually ends in /v1"):
        collect(backend.chat(MESSAGES, GenerationParams()))


# --- embeddings and metadata --------------------------------------------------------------------


def test_embeddings_in_input_order(server, open_kit):
    server.route("POST", "/v1/embeddings", openai_wire.embeddings([[0.1, 0.2], [0.3, 0.4]]))
    vectors = open_kit(OPENAI).embed(["first", "second"])
    assert vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert server.requests[0].body == {"input": ["first", "second"], "model": "gpt-4o-mini"}


def test_azure_embeddings_go_to_the_deployment(server, open_kit):
    server.route("POST", "/openai/deployments/eastus-4o-mini/embeddings", openai_wire.embeddings([[1.0]]))
    assert open_kit(AZURE).embed(["x"]) == [[1.0]]
    assert server.requests[0].body == {"input": ["x"]}


def test_describe_merges_registry_metadata_and_the_live_model(server, open_kit):
    server.route("GET", "/v1/models/gpt-4o-mini", openai_wire.model("gpt-4o-mini"))
    meta = open_kit(OPENAI).describe()
    assert meta["model_id"] == "gpt-4o-mini" and meta["kind"] == "openai"
    assert meta["endpoint"] == f"{server.url}/v1" and meta["key_env"] == "OPENAI_API_KEY"
    assert meta["key_source"] == "env OPENAI_API_KEY"
    assert meta["service"] == {"id": "gpt-4o-mini", "created": 1715367049, "owned_by": "system"}
    assert FAKE_KEY not in json.dumps(meta)


def test_describe_survives_an_unreachable_service(server, open_kit, sleeps):
    server.route("GET", "/v1/models/gpt-4o-mini", openai_wire.error(500, "boom"))
    meta = open_kit(OPENAI).describe()
    assert "boom" in meta["service"]["error"]
    assert sleeps == []  # metadata is not worth retrying


def test_describe_lists_what_a_compatible_server_serves(server, open_kit):
    server.route("GET", "/v1/models", Reply(json={"object": "list", "data": [
        {"id": "served-model", "object": "model", "owned_by": "vllm", "max_model_len": 8192}]}))
    meta = open_kit(COMPATIBLE).describe()
    assert meta["service"] == {"served_models": ["served-model"], "id": "served-model", "owned_by": "vllm",
                               "max_model_len": 8192}
    assert meta["local"] is True
