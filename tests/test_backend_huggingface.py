"""Hugging Face inference through huggingface_hub's InferenceClient, against a loopback server
that speaks Text Generation Inference's wire format (Messages API, feature extraction, /info)."""

from __future__ import annotations

import pytest
from providers import hf_wire
from providers.kits import FAKE_KEY, KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import open_backend
from modelctl.errors import AuthError, BackendError

HF = KIT["hf-inference"]
MESSAGES = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}]


def test_request_shape(server, open_kit):
    server.route("POST", "/v1/chat/completions", hf_wire.chat_stream(["Hi", "!"]))
    params = GenerationParams(max_tokens=20, temperature=0.4, top_p=0.9, seed=3, stop=("</s>",),
                              extra={"frequency_penalty": "0.1"})
    text, final = collect(open_kit(HF).chat(MESSAGES, params))
    assert text == "Hi!" and final.usage.to_dict() == {"prompt_tokens": 15, "completion_tokens": 3}
    (req,) = server.requests
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    body = req.body
    assert body["model"] == hf_wire.MODEL and body["messages"] == MESSAGES
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "seed", "stop", "frequency_penalty")} == {
        "max_tokens": 20, "temperature": 0.4, "top_p": 0.9, "seed": 3, "stop": ["</s>"], "frequency_penalty": 0.1}


def test_huggingface_api_key_is_accepted_too(server, provider_env):
    provider_env.setenv("HUGGINGFACE_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/chat/completions", hf_wire.chat_stream(["ok"]))
    collect(open_backend(None, HF.deployment(server.url)).chat(MESSAGES, GenerationParams()))
    assert server.requests[0].header("authorization") == f"Bearer {FAKE_KEY}"


def test_the_router_needs_a_key(provider_env, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    from modelctl.registry import Deployment

    with pytest.raises(AuthError) as info:
        open_backend(None, Deployment(id="hf", kind="hf-inference", model=hf_wire.MODEL))
    assert "HF_TOKEN" in info.value.hint


def test_validation_error_message(server, open_kit):
    server.route("POST", "/v1/chat/completions", hf_wire.error(
        422, "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8192. Given: 9000"))
    with pytest.raises(BackendError) as info:
        collect(open_kit(HF).chat(MESSAGES, GenerationParams(max_tokens=9000)))
    assert "must be <= 8192" in str(info.value)


def test_an_error_event_midway(server, open_kit):
    events = hf_wire.chat_stream(["Par"]).events[:1] + [
        (None, '{"error": "Request failed during generation: Server error: CUDA out of memory", "error_type": "generation"}')]
    server.route("POST", "/v1/chat/completions", Reply(events=events))
    stream = open_kit(HF).chat(MESSAGES, GenerationParams())
    assert next(stream).text == "Par"
    with pytest.raises(BackendError, match="CUDA out of memory"):
        next(stream)


def test_one_shot(server, open_kit):
    server.route("POST", "/v1/chat/completions", Reply(json={
        "object": "chat.completion", "id": "", "created": 1, "model": hf_wire.MODEL, "system_fingerprint": "3.0.1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole."}, "logprobs": None,
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}))
    text, final = collect(open_kit(HF).chat(MESSAGES, GenerationParams(extra={"stream": "false"})))
    assert text == "Whole." and final.finish_reason == "length" and final.usage.completion_tokens == 2


def test_embeddings_through_feature_extraction(server, open_kit):
    server.route("POST", "/", Reply(json=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    first, second = open_kit(HF).embed(["a", "b"])  # float32 on the way through numpy
    assert first == pytest.approx([0.1, 0.2, 0.3]) and second == pytest.approx([0.4, 0.5, 0.6])
    assert server.requests[0].body["inputs"] == ["a", "b"]


def test_token_vectors_are_mean_pooled(server, open_kit):
    server.route("POST", "/", Reply(json=[[[1.0, 0.0], [3.0, 2.0]]]))
    assert open_kit(HF).embed(["a"]) == [[2.0, 1.0]]


def test_describe_reads_the_endpoint_info(server, open_kit):
    server.route("GET", "/info", hf_wire.info())
    meta = open_kit(HF).describe()
    assert meta["service"]["max_total_tokens"] == 8192 and meta["service"]["version"] == "3.0.1"
    assert meta["endpoint"] == server.url


def test_debug_shows_the_request_the_client_sent(server, open_kit, capsys):
    server.route("POST", "/v1/chat/completions", hf_wire.chat_stream(["ok"]))
    collect(open_kit(HF, debug=True).chat(MESSAGES, GenerationParams()))
    err = capsys.readouterr().err
    assert f"debug: request: POST {server.url}/v1/chat/completions" in err
    assert "authorization: Bearer ***" in err and FAKE_KEY not in err
    from huggingface_hub.utils import get_session

    hooks = get_session().event_hooks
    assert len(hooks["request"]) == 1 and not hooks["response"]  # ours are gone again
