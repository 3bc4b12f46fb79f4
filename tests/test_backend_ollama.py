"""A model on an Ollama server through the ollama package: /api/chat options and streamed JSON
lines, Ollama's own timings, /api/show for describe() and --debug, /api/embed, the host from
OLLAMA_HOST, and a missing model, against Ollama's documented wire format."""

from __future__ import annotations

import pytest
from providers import ollama_wire
from providers.kits import KIT

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.factory import open_backend
from modelctl.errors import NotFoundError
from modelctl.transport.ollama_server import ollama_host

OLLAMA = KIT["ollama"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_request_shape(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["Hel", "lo"]))
    params = GenerationParams(max_tokens=30, temperature=0.2, top_p=0.9, top_k=20, seed=5, repeat_penalty=1.1,
                              stop=("<|eot_id|>",), extra={"num_ctx": "4096", "keep_alive": "10m"})
    collect(open_kit(OLLAMA).chat(MESSAGES, params))
    (req,) = server.requests
    assert req.body.pop("tools", []) == []  # the ollama package always sends the (empty) tool list
    assert req.body == {
        "model": ollama_wire.TAG, "messages": MESSAGES, "stream": True, "keep_alive": "10m",
        "options": {"num_predict": 30, "temperature": 0.2, "top_p": 0.9, "top_k": 20, "seed": 5,
                    "repeat_penalty": 1.1, "stop": ["<|eot_id|>"], "num_ctx": 4096},
    }


def test_timings_come_from_ollama(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["Hel", "lo"]))
    text, final = collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams()))
    assert text == "Hello" and final.finish_reason == "stop"
    assert final.usage.to_dict() == {"prompt_tokens": 26, "completion_tokens": 4}
    t = final.timings
    assert t.load_s == pytest.approx(0.2) and t.tokens_per_second == pytest.approx(40.0)
    assert t.prompt_eval_tokens == 26 and t.first_token_s is not None


def test_length_finish(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["a"], reason="length"))
    assert collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams(max_tokens=1)))[1].finish_reason == "length"


def test_one_shot(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.chat_whole("Whole answer"))
    text, final = collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams(extra={"stream": "false"})))
    assert text == "Whole answer" and final.usage.completion_tokens == 4
    assert server.requests[0].body["stream"] is False


def test_a_missing_model_says_how_to_pull_it(server, open_kit):
    server.route("POST", "/api/chat", ollama_wire.error(404, f'model "{ollama_wire.TAG}" not found, try pulling it first'))
    with pytest.raises(NotFoundError) as info:
        collect(open_kit(OLLAMA).chat(MESSAGES, GenerationParams()))
    assert f"has no model '{ollama_wire.TAG}'" in str(info.value)
    assert info.value.hint == f"pull it first: ollama pull {ollama_wire.TAG}"


def test_describe_reports_what_api_show_says(server, open_kit):
    server.route("POST", "/api/show", ollama_wire.show())
    meta = open_kit(OLLAMA).describe()
    assert meta["model_id"] == ollama_wire.TAG and meta["endpoint"] == server.url
    service = meta["service"]
    assert service["context_length"] == 131072 and service["quantization_level"] == "Q8_0"
    assert service["template"] == ollama_wire.TEMPLATE and service["capabilities"] == ["completion", "tools"]
    assert server.requests[0].body == {"model": ollama_wire.TAG}


def test_debug_shows_the_template_ollama_applies(server, open_kit, capsys):
    server.route("POST", "/api/show", ollama_wire.show())
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["ok"]))
    collect(open_kit(OLLAMA, debug=True).chat(MESSAGES, GenerationParams()))
    err = capsys.readouterr().err
    assert "debug: ollama template:" in err and "debug:   <|start_header_id|>user<|end_header_id|>" in err
    assert f"debug: request: POST {server.url}/api/chat" in err and '"num_predict"' not in err


def test_embeddings(server, open_kit):
    server.route("POST", "/api/embed", ollama_wire.embed([[0.1, 0.2], [0.3, 0.4]]))
    assert open_kit(OLLAMA).embed(["a", "b"]) == [[0.1, 0.2], [0.3, 0.4]]
    assert server.requests[0].body == {"model": ollama_wire.TAG, "input": ["a", "b"]}


def test_the_host_comes_from_ollama_host(server, provider_env):
    from modelctl.registry import Deployment

    provider_env.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
    server.route("POST", "/api/chat", ollama_wire.chat_stream(["ok"]))
    backend = open_backend(None, Deployment(id="ollama", kind="ollama", tag=ollama_wire.TAG))
    assert collect(backend.chat(MESSAGES, GenerationParams()))[0] == "ok"
    assert backend.describe()["endpoint"] == server.url


@pytest.mark.parametrize("raw, url", [
    (None, "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    (":8080", "http://127.0.0.1:8080"),
    ("example.com:9000", "http://example.com:9000"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://[::1]:11434/", "http://[::1]:11434"),
])
def test_host_forms(raw, url, provider_env):
    assert ollama_host(raw) == url
