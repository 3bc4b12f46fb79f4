"""What every server and API backend must do, checked against each provider's own wire format on
a loopback server: stream an answer with usage and finish reason, retry 429 (honouring
Retry-After) and 5xx a bounded number of times, keep the partial answer of a stream cut off
midway, and turn 401/404/400/refused connections into clear errors that never carry the key."""

from __future__ import annotations

import pytest
from providers.kits import FAKE_KEY, KITS
from providers.server import closed_port_url

from modelctl.backends.base import GenerationParams, collect
from modelctl.errors import AuthError, BackendError, NotFoundError, OfflineError
from modelctl.transport.http_client import StreamInterrupted

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
PARAMS = GenerationParams(max_tokens=16, temperature=0.2)

# Events/lines each stream sends before its first text (so a drop can be placed after some text).
PREAMBLE = {"openai": 1, "azure-openai": 1, "azure-ai": 1, "openai-compatible": 1, "mistral": 1, "anthropic": 3}

kits = pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])


def ask(backend, messages=MESSAGES, params=PARAMS):
    return collect(backend.chat(messages, params))


@kits
def test_streams_the_answer_with_usage_and_finish_reason(kit, server, open_kit):
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world"]))
    backend = open_kit(kit)
    chunks = list(backend.chat(MESSAGES, PARAMS))
    assert "".join(c.text for c in chunks) == "Hello world"
    assert [c.text for c in chunks[:-1]] == ["Hello", " world"]
    final = chunks[-1]
    assert final.final and final.finish_reason == "stop"
    assert final.usage is not None and final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0
    assert final.timings is not None and final.timings.first_token_s is not None
    (request,) = server.calls(kit.chat_path)
    assert kit.key_header(request) == FAKE_KEY


@kits
def test_429_is_retried_after_the_wait_the_server_asks_for(kit, server, open_kit, sleeps):
    server.route("POST", kit.chat_path,
                 kit.error(429, "Rate limit reached for requests", headers={"Retry-After": "7"}),
                 kit.stream(["Hello", " world"]))
    text, final = ask(open_kit(kit))
    assert text == "Hello world" and final.finish_reason == "stop"
    assert sleeps == [7.0]
    assert len(server.calls(kit.chat_path)) == 2


@kits
def test_a_server_error_is_retried_with_backoff(kit, server, open_kit, sleeps):
    server.route("POST", kit.chat_path, kit.error(500, "The server had an error"), kit.stream(["Hello", " world"]))
    text, _ = ask(open_kit(kit))
    assert text == "Hello world"
    assert sleeps == [0.5]


@kits
def test_retries_are_bounded(kit, server, open_kit, sleeps):
    server.route("POST", kit.chat_path, kit.error(503, "Service unavailable: overloaded"))
    with pytest.raises(BackendError) as info:
        ask(open_kit(kit))
    assert "503" in str(info.value) and "overloaded" in str(info.value)
    assert "after 4 attempts" in str(info.value)
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(server.calls(kit.chat_path)) == 4


@kits
def test_a_retry_after_beyond_the_limit_is_not_waited_for(kit, server, open_kit, sleeps):
    server.route("POST", kit.chat_path, kit.error(429, "Quota exceeded", headers={"Retry-After": "3600"}))
    with pytest.raises(BackendError, match="rate limiting"):
        ask(open_kit(kit))
    assert sleeps == []


@kits
def test_a_stream_cut_off_midway_keeps_the_partial_answer(kit, server, open_kit):
    drop = PREAMBLE.get(kit.name, 0) + 2
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world", " and more"], drop_after=drop))
    backend = open_kit(kit)
    received = []
    with pytest.raises(StreamInterrupted) as info:
        for chunk in backend.chat(MESSAGES, PARAMS):
            received.append(chunk.text)
    assert "".join(received) == "Hello world"
    assert info.value.received == len("Hello world")
    assert "cut off after 11 characters" in str(info.value) and "partial answer is kept" in str(info.value)
    assert len(server.calls(kit.chat_path)) == 1  # never re-sent: the text would repeat


@kits
def test_a_rejected_key_is_an_auth_error_that_never_shows_the_key(kit, server, open_kit, sleeps):
    # The server echoes the key it was given, as some do: the message must still not carry it.
    server.route("POST", kit.chat_path, kit.error(401, f"Incorrect API key provided: {FAKE_KEY}."))
    with pytest.raises(AuthError) as info:
        ask(open_kit(kit))
    text = f"{info.value} {info.value.hint or ''}"
    assert FAKE_KEY not in text
    assert "Incorrect API key provided: ***" in text
    assert info.value.exit_code == 8
    assert sleeps == []


@kits
def test_404_names_the_model_or_deployment(kit, server, open_kit):
    server.route("POST", kit.chat_path, kit.error(404, "The model does not exist"))
    with pytest.raises(NotFoundError) as info:
        ask(open_kit(kit))
    name = {"azure-openai": "eastus-4o-mini"}.get(kit.name) or kit.deployment(server.url).model or kit.deployment(server.url).tag
    assert f"'{name}'" in str(info.value)
    assert "The model does not exist" in str(info.value)


@kits
def test_400_carries_the_providers_own_message(kit, server, open_kit, sleeps):
    server.route("POST", kit.chat_path, kit.error(400, "max_tokens: 999999 > 8192, the maximum"))
    with pytest.raises(BackendError) as info:
        ask(open_kit(kit))
    assert not isinstance(info.value, AuthError)
    assert "max_tokens: 999999 > 8192, the maximum" in str(info.value)
    assert info.value.exit_code == 7 and sleeps == []


@kits
@pytest.mark.parametrize("where", ["refused", "unresolvable"])
def test_an_unreachable_host_is_an_offline_error_at_once(kit, server, open_kit, sleeps, where):
    """Nothing listening, or a name that does not resolve (.invalid never does): OfflineError,
    without the retries a broken connection gets (the same answer would come a second later)."""
    from modelctl.backends.factory import open_backend
    from modelctl.transport.retry import RetryPolicy

    url = closed_port_url() if where == "refused" else "http://nonexistent.invalid"
    backend = open_backend(None, kit.deployment(url), api_key=FAKE_KEY if kit.name != "ollama" else None,
                           retry=RetryPolicy(retries=2, sleep=sleeps.append))
    with pytest.raises(OfflineError) as info:
        ask(backend)
    assert info.value.exit_code == 9
    assert sleeps == []
    if kit.name != "ollama":  # the ollama package words its own message
        assert ("connection refused" if where == "refused" else "does not resolve") in str(info.value)


@kits
def test_debug_describes_the_request_with_the_key_redacted(kit, server, open_kit, capsys):
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world"]))
    ask(open_kit(kit, debug=True))
    err = capsys.readouterr().err
    assert FAKE_KEY not in err
    assert "debug: request: POST http://127.0.0.1:" in err and kit.chat_path.split("/")[-1] in err
    assert "***" in err  # the credential header is shown, hidden
    assert '"Say hello"' in err  # the body, messages included
    assert "debug: response: 200" in err
    assert "debug: answer: finish reason stop" in err


@kits
def test_closing_a_stream_early_releases_it(kit, server, open_kit):
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world", "!"]))
    backend = open_kit(kit)
    stream = backend.chat(MESSAGES, PARAMS)
    first = next(iter(stream))
    assert first.text == "Hello"
    stream.close()  # what Ctrl-C does through the chat loop
    text, final = ask(backend)  # the backend is still usable
    assert text == "Hello world!" and final.finish_reason == "stop"


def test_chat_json_prints_the_partial_answer_of_a_cut_off_stream(server, provider_env, cli, tmp_path):
    """`modelctl chat --json`: a stream dropped midway still prints its object, then exits 7."""
    import json

    from providers.kits import KIT, registry_for

    kit = KIT["openai-compatible"]
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world", " and more"], drop_after=PREAMBLE[kit.name] + 2))
    registry = registry_for(kit.deployment(server.url), tmp_path / "registry.toml")
    result = cli("--registry", registry, "chat", "-m", "test/served-model", "Say hello", "--json",
                 env={"VLLM_API_KEY": FAKE_KEY, "MODELCTL_RETRIES": "0"})
    assert result.exit_code == 7
    data = json.loads(result.stdout)
    assert data["text"] == "Hello world" and data["finish_reason"] == "interrupted"
    assert "cut off after 11 characters" in data["error"]
    assert result.stderr.startswith("modelctl: error: ") and FAKE_KEY not in result.output
