"""Google's Gemini API: contents with user/model roles, systemInstruction, generationConfig, the
key in a header (never the URL), SSE events that are whole responses, a bad key reported as 400
API_KEY_INVALID, embeddings and token counts, against Gemini's documented wire format."""

from __future__ import annotations

import pytest
from providers import gemini_wire
from providers.kits import FAKE_KEY, KIT
from providers.server import Reply

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import open_backend
from modelctl.errors import AuthError, BackendError

GEMINI = KIT["gemini"]
BASE = f"/v1beta/models/{gemini_wire.MODEL}"
MESSAGES = [
    {"role": "system", "content": "Answer in French."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Bonjour"},
    {"role": "user", "content": "Thanks"},
]


def test_request_shape(server, open_kit):
    server.route("POST", f"{BASE}:streamGenerateContent", gemini_wire.stream(["Merci"]))
    params = GenerationParams(max_tokens=64, temperature=0.1, top_p=0.5, top_k=3, seed=9, stop=("END",),
                              extra={"responseMimeType": "text/plain", "safetySettings": '[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]'})
    collect(open_kit(GEMINI).chat(MESSAGES, params))
    (req,) = server.requests
    assert req.query == {"alt": ["sse"]}
    assert req.header("x-goog-api-key") == FAKE_KEY and "key" not in req.query
    assert req.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "Thanks"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        "generationConfig": {"temperature": 0.1, "topP": 0.5, "topK": 3, "maxOutputTokens": 64, "seed": 9,
                             "stopSequences": ["END"], "responseMimeType": "text/plain"},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }


def test_streamed_text_finish_and_usage(server, open_kit):
    server.route("POST", f"{BASE}:streamGenerateContent", gemini_wire.stream(["Mer", "ci"], "MAX_TOKENS", usage=(12, 2)))
    text, final = collect(open_kit(GEMINI).chat(MESSAGES, GenerationParams()))
    assert text == "Merci" and final.finish_reason == "length"
    assert final.usage.to_dict() == {"prompt_tokens": 12, "completion_tokens": 2}


def test_a_bad_key_is_an_auth_error(server, open_kit):
    server.route("POST", f"{BASE}:streamGenerateContent", gemini_wire.bad_key())
    with pytest.raises(AuthError, match="API key not valid"):
        collect(open_kit(GEMINI).chat(MESSAGES, GenerationParams()))


def test_google_api_key_is_accepted_too(server, provider_env):
    provider_env.setenv("GOOGLE_API_KEY", FAKE_KEY)
    server.route("POST", f"{BASE}:streamGenerateContent", gemini_wire.stream(["ok"]))
    backend = open_backend(None, GEMINI.deployment(server.url))
    collect(backend.chat(MESSAGES, GenerationParams()))
    assert server.requests[0].header("x-goog-api-key") == FAKE_KEY
    assert backend.describe()["key_source"] == "env GOOGLE_API_KEY"


def test_a_blocked_prompt(server, open_kit):
    server.route("POST", f"{BASE}:streamGenerateContent", Reply(events=[(None, '{"promptFeedback": {"blockReason": "SAFETY"}}')]))
    with pytest.raises(BackendError, match="refused the prompt \\(SAFETY\\)"):
        collect(open_kit(GEMINI).chat(MESSAGES, GenerationParams()))


def test_one_shot(server, open_kit):
    server.route("POST", f"{BASE}:generateContent", Reply(json=gemini_wire.response("Tout.", "STOP", (5, 1))))
    text, final = collect(open_kit(GEMINI).chat(MESSAGES, GenerationParams(extra={"stream": "false"})))
    assert text == "Tout." and final.finish_reason == "stop" and final.usage.completion_tokens == 1
    assert server.requests[0].query == {}


def test_count_tokens_with_a_system_instruction(server, open_kit):
    server.route("POST", f"{BASE}:countTokens", Reply(json={"totalTokens": 21}))
    assert open_kit(GEMINI).count_tokens(MESSAGES) == 21
    request = server.requests[0].body["generateContentRequest"]
    assert request["model"] == f"models/{gemini_wire.MODEL}"
    assert request["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}


def test_embeddings(server, provider_env):
    provider_env.setenv("GEMINI_API_KEY", FAKE_KEY)
    from modelctl.registry import Deployment

    server.route("POST", "/v1beta/models/text-embedding-004:batchEmbedContents",
                 Reply(json={"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}))
    backend = open_backend(None, Deployment(id="g", kind="gemini", model="models/text-embedding-004",
                                            api_base=f"{server.url}/v1beta"))
    assert backend.embed(["a", "b"]) == [[0.1, 0.2], [0.3, 0.4]]
    assert server.requests[0].body == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}},
    ]}


def test_describe(server, open_kit):
    server.route("GET", BASE, gemini_wire.model())
    meta = open_kit(GEMINI).describe()
    assert meta["service"]["inputTokenLimit"] == 1_048_576 and meta["service"]["displayName"] == "Gemini 2.0 Flash"
