"""`modelctl chat` with a model on a server: the same loop, flags and --json, through the
OpenAI-compatible backend, against a loopback server speaking OpenAI's wire format."""

from __future__ import annotations

import json

from providers import openai_wire

KEY = "sk-test-served-0123456789abcdef"


def test_chat_with_a_server_by_url(server, cli):  # noqa: F811
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hel", "lo", "!"], usage=(7, 3)))
    r = cli("chat", "--api-base", f"{server.url}/v1", "--model", "served-name", "-s", "Be kind.", "Hi",
            "--api-key", KEY, "--json", "--temperature", "0.5")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "Hello!" and data["id"] == "served-name" and data["template"] is None
    assert data["finish_reason"] == "stop" and data["usage"] == {"prompt_tokens": 7, "completion_tokens": 3}
    request = server.calls("/v1/chat/completions")[0]
    assert request.body["model"] == "served-name" and request.body["temperature"] == 0.5
    assert request.body["messages"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert "max_tokens" not in request.body  # the local-model default does not apply to servers
    assert request.header("authorization") == f"Bearer {KEY}"
    assert KEY not in r.output


def test_streamed_answer_to_stdout(server, cli):  # noqa: F811
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["one ", "two"]))
    r = cli("chat", "--api-base", f"{server.url}/v1", "-m", "m", "Count", "--max-tokens", "5")
    assert r.exit_code == 0, r.output
    assert r.stdout == "one two\n"
    assert server.calls("/v1/chat/completions")[0].body["max_tokens"] == 5


def test_local_only_and_server_only_flags_are_refused(server, cli, tmp_path):  # noqa: F811
    r = cli("chat", "--api-base", f"{server.url}/v1", "-m", "m", "Hi", "--template", "gemma", "--ctx", "512")
    assert r.exit_code == 2 and "--template, --ctx: only for local (llama.cpp) models" in r.output
    r = cli("chat", "--api-base", f"{server.url}/v1", "Hi")
    assert r.exit_code == 2 and "--api-base needs --model NAME" in r.output
    r = cli("chat", "-m", str(tmp_path / "x.gguf"), "Hi", "--deployment", "ollama")
    assert r.exit_code == 2 and "--deployment applies to registry models" in r.output
    assert server.requests == []


def test_a_server_that_ignores_stream_true_is_read_whole(server, cli):  # noqa: F811
    """Some OpenAI-compatible servers answer a streamed request with one JSON document."""
    server.route("POST", "/v1/chat/completions", openai_wire.completion("Whole answer", usage=(6, 2)))
    r = cli("chat", "--api-base", f"{server.url}/v1", "-m", "m", "Hi", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "Whole answer" and data["usage"] == {"prompt_tokens": 6, "completion_tokens": 2}
    assert server.calls("/v1/chat/completions")[0].body["stream"] is True
    server.route("POST", "/v1/completions", openai_wire.text_completion(" upon a time"))
    r = cli("complete", "--api-base", f"{server.url}/v1", "-m", "m", "Once")
    assert r.exit_code == 0 and r.stdout == " upon a time\n", r.output
    server.route("POST", "/v1/chat/completions", openai_wire.error(200, "quota exceeded"))
    r = cli("chat", "--api-base", f"{server.url}/v1", "-m", "m", "Hi")
    assert r.exit_code == 7 and "quota exceeded" in r.stderr and len(r.stderr.splitlines()) == 1, r.output
