"""One offline policy for every command that reaches a host: a name that does not resolve (`.invalid`
never does, with or without a network) or a port where nothing listens is exit 9 with one line,
at once: such a failure is not retried (`--debug` shows every retry, and shows none here)."""

from __future__ import annotations

import pytest
from hubserver import closed_port
from providers.kits import FAKE_KEY
from registries import model, write_registry

UNRESOLVABLE = "http://nonexistent.invalid"


@pytest.fixture(params=["unresolvable", "refused"])
def dead(request) -> str:
    """The address of a host that cannot be reached."""
    return UNRESOLVABLE if request.param == "unresolvable" else f"http://127.0.0.1:{closed_port()}"


@pytest.fixture
def offline_run(run_modelctl, tmp_path, dead):
    """run(*args): modelctl with a registry whose every service lives at `dead`."""
    here = {"free_tier": True, "local_capable": dead.startswith("http://127.")}  # a loopback server runs here
    registry = write_registry(
        tmp_path / "registry.toml",
        model("t/chat", {"kind": "openai-compatible", "model": "m", "api_base": f"{dead}/v1"}, tasks=["chat"],
              access=here),
        model("t/claude", {"kind": "anthropic", "model": "claude-x", "api_base": dead}, tasks=["chat"],
              context_window=200000),
        model("t/image", {"kind": "openai-compatible", "model": "sdxl", "api_base": f"{dead}/v1"},
              tasks=["text-to-image"], access=here),
        model("t/ollama", {"kind": "ollama", "tag": "tiny:latest", "host": dead}, tasks=["chat"]),
    )
    env = {"MODELCTL_REGISTRY": str(registry), "ANTHROPIC_API_KEY": FAKE_KEY, "OPENAI_API_KEY": FAKE_KEY,
           "MODELCTL_RETRIES": "3"}
    return lambda *args: run_modelctl(*args, env=env, timeout=60)


def offline(run, *args: str, words: tuple[str, ...] = ("cannot connect",), debug: bool = True) -> None:
    """`modelctl ARGS` exits 9 with one line holding `words`; with --debug (which writes a line
    before every retry, and the traceback) it shows no retry."""
    result = run(*args)
    assert result.returncode == 9, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), result.stderr
    assert result.stdout == "" and all(w in lines[0] for w in words), lines[0]
    if debug:
        result = run(*args, "--debug")
        assert result.returncode == 9 and "debug: request:" in result.stderr, result.stderr
        assert "debug: retry:" not in result.stderr, result.stderr


def test_chat(offline_run, dead):
    offline(offline_run, "chat", "-m", "t/chat", "Hi")
    offline(offline_run, "chat", "--api-base", f"{dead}/v1", "-m", "m", "Hi")
    offline(offline_run, "chat", "-m", "t/claude", "Hi")


def test_a_task_command(offline_run):
    offline(offline_run, "image", "-m", "t/image", "a cat")


def test_pull_from_ollama(offline_run):
    offline(offline_run, "pull", "t/ollama", "--deployment", "ollama", words=("cannot connect", "Ollama"), debug=False)


def test_chat_with_an_ollama_model(offline_run):
    offline(offline_run, "chat", "-m", "t/ollama", "Hi", words=("cannot connect", "Ollama"))


def test_a_server_that_answers_503_is_retried_and_the_debug_log_says_so(run_modelctl):
    """The counterpart: what is retried shows a `debug: retry:` line."""
    from providers import openai_wire
    from providers.server import FakeServer

    server = FakeServer().start()
    try:
        server.route("POST", "/v1/chat/completions", openai_wire.error(503, "overloaded"))
        result = run_modelctl("chat", "--api-base", f"{server.url}/v1", "-m", "m", "--debug", "Hi",
                              env={"MODELCTL_RETRIES": "1"})
    finally:
        server.stop()
    assert result.returncode == 7 and result.stderr.count("debug: retry:") == 1, result.stderr


def test_tokens_estimates_when_the_count_endpoint_cannot_be_reached(offline_run):
    """`tokens` asks Anthropic's count endpoint; unreachable, it says so and estimates at once."""
    result = offline_run("tokens", "-m", "t/claude", "Hello there")
    assert result.returncode == 0, result.stderr
    assert "cannot connect" in result.stderr and "estimating instead" in result.stderr
    assert "estimated" in result.stdout
