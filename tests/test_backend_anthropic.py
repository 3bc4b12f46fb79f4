"""Anthropic's Messages API: the request (system apart, required max_tokens, stop_sequences,
headers), named stream events including a mid-stream error, one-shot answers, token counting and
model metadata, against a loopback server in Anthropic's documented wire format."""

from __future__ import annotations

import json

import pytest
from providers import anthropic_wire
from providers.kits import FAKE_KEY, KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import open_backend
from modelctl.errors import AuthError
from modelctl.transport.http_client import StreamInterrupted

ANTHROPIC = KIT["anthropic"]
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Again"},
]


def test_request_shape(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["Hi"]))
    params = GenerationParams(max_tokens=100, temperature=0.3, top_p=0.8, top_k=10, stop=("\n\nHuman:",), seed=1)
    collect(open_kit(ANTHROPIC).chat(MESSAGES, params))
    (req,) = server.requests
    assert req.header("x-api-key") == FAKE_KEY and req.header("authorization") is None
    assert req.header("anthropic-version") == "2023-06-01"
    assert req.body == {
        "model": anthropic_wire.MODEL, "max_tokens": 100, "system": "You are terse.",
        "messages": MESSAGES[1:], "temperature": 0.3, "top_p": 0.8, "top_k": 10,
        "stop_sequences": ["\n\nHuman:"], "stream": True,
    }  # seed: Anthropic has none


def test_max_tokens_defaults_to_the_models_limit_at_most_4096(server, provider_env):
    from modelctl.registry import load_registry

    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["Hi"]))
    model = next(m for m in load_registry() if any(d.kind == "anthropic" for d in m.deployments))
    dep = model.deployment("anthropic")
    from dataclasses import replace

    backend = open_backend(model, replace(dep, api_base=server.url))
    collect(backend.chat(MESSAGES[1:2], GenerationParams()))
    expected = min(model.max_output_tokens or 4096, 4096)
    assert server.requests[0].body["max_tokens"] == expected
    assert "system" not in server.requests[0].body


def test_stop_reasons_and_usage(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message_stream(["a", "b"], "max_tokens",
                                                                        input_tokens=30, output_tokens=2))
    text, final = collect(open_kit(ANTHROPIC).chat(MESSAGES, GenerationParams(max_tokens=2)))
    assert text == "ab" and final.finish_reason == "length"
    assert final.usage.to_dict() == {"prompt_tokens": 30, "completion_tokens": 2}


def test_an_error_event_midway(server, open_kit):
    events = anthropic_wire.events(["Partial"])[:4] + [anthropic_wire.error_event("overloaded_error", "Overloaded")]
    server.route("POST", "/v1/messages", Reply(events=events))
    received = []
    with pytest.raises(StreamInterrupted) as info:
        for chunk in open_kit(ANTHROPIC).chat(MESSAGES, GenerationParams()):
            received.append(chunk.text)
    assert received == ["Partial"]
    assert "Overloaded" in str(info.value) and "after 7 characters" in str(info.value)


def test_overloaded_529_is_retried(server, open_kit, sleeps):
    server.route("POST", "/v1/messages", anthropic_wire.error(529, "Overloaded"), anthropic_wire.message_stream(["ok"]))
    text, _ = collect(open_kit(ANTHROPIC).chat(MESSAGES, GenerationParams()))
    assert text == "ok" and sleeps == [0.5]


def test_one_shot(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.message("Whole answer.", usage=(11, 3)))
    text, final = collect(open_kit(ANTHROPIC).chat(MESSAGES, GenerationParams(extra={"stream": "false"})))
    assert text == "Whole answer." and final.finish_reason == "stop" and final.usage.prompt_tokens == 11
    assert "stream" not in server.requests[0].body


def test_count_tokens(server, open_kit):
    server.route("POST", "/v1/messages/count_tokens", Reply(json={"input_tokens": 14}))
    assert open_kit(ANTHROPIC).count_tokens(MESSAGES) == 14
    body = server.requests[0].body
    assert body == {"model": anthropic_wire.MODEL, "messages": MESSAGES[1:], "system": "You are terse."}


def test_describe(server, open_kit):
    server.route("GET", f"/v1/models/{anthropic_wire.MODEL}", anthropic_wire.model())
    meta = open_kit(ANTHROPIC).describe()
    assert meta["service"]["display_name"] == "Claude Haiku 3.5"
    assert meta["key_env"] == "ANTHROPIC_API_KEY" and FAKE_KEY not in json.dumps(meta)


def test_permission_error_is_an_auth_error(server, open_kit):
    server.route("POST", "/v1/messages", anthropic_wire.error(403, "Your API key does not have permission to use the specified resource."))
    with pytest.raises(AuthError, match="refused access"):
        collect(open_kit(ANTHROPIC).chat(MESSAGES, GenerationParams()))
