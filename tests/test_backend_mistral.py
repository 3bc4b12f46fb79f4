"""Mistral's API: OpenAI-shaped chat with Mistral's parameter names, usage in the last event,
validation errors, embeddings and model metadata, in Mistral's documented wire format."""

from __future__ import annotations

import pytest
from providers import mistral_wire
from providers.kits import FAKE_KEY, KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, collect
from modelctl.errors import BackendError

MISTRAL = KIT["mistral"]
MESSAGES = [{"role": "system", "content": "Short answers."}, {"role": "user", "content": "Bonjour"}]


def test_request_shape(server, open_kit):
    server.route("POST", "/v1/chat/completions", mistral_wire.chat_stream(["Salut"]))
    params = GenerationParams(max_tokens=50, temperature=0.7, top_p=1.0, seed=42, stop=("###",), top_k=5,
                              extra={"safe_prompt": "true"})
    text, final = collect(open_kit(MISTRAL).chat(MESSAGES, params))
    assert text == "Salut" and final.usage.to_dict() == {"prompt_tokens": 10, "completion_tokens": 3}
    (req,) = server.requests
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    assert req.body == {"model": mistral_wire.MODEL, "messages": MESSAGES, "max_tokens": 50, "temperature": 0.7,
                        "top_p": 1.0, "random_seed": 42, "stop": ["###"], "stream": True, "safe_prompt": True}


def test_validation_error_detail_is_readable(server, open_kit):
    server.route("POST", "/v1/chat/completions", Reply(422, json={
        "object": "error", "type": "invalid_request_message_error", "param": None, "code": None,
        "message": {"detail": [{"type": "less_than_equal", "loc": ["body", "temperature"],
                                "msg": "Input should be less than or equal to 1.5", "input": 3}]}}))
    with pytest.raises(BackendError) as info:
        collect(open_kit(MISTRAL).chat(MESSAGES, GenerationParams(temperature=3)))
    assert "(422): temperature: Input should be less than or equal to 1.5" in str(info.value)


def test_embeddings(server, open_kit):
    server.route("POST", "/v1/embeddings", mistral_wire.embeddings([[0.5, 0.25]]))
    assert open_kit(MISTRAL).embed(["text"]) == [[0.5, 0.25]]
    assert server.requests[0].body == {"input": ["text"], "model": mistral_wire.MODEL}


def test_describe(server, open_kit):
    server.route("GET", f"/v1/models/{mistral_wire.MODEL}", mistral_wire.model())
    service = open_kit(MISTRAL).describe()["service"]
    assert service["max_context_length"] == 32768 and service["aliases"] == ["mistral-small-2409"]
