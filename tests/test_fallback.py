"""`chat --fallback`: a deployment that fails before its answer begins with a retryable error
(429, 5xx, a timeout, a refused connection) gives way to the model's next usable deployment, or
under `--model auto` to the next candidate; the switch is said on stderr and recorded in the
--json route. 401 and 400 do not fall back, nor does an answer cut off after it began. The
failing and answering services are loopback servers speaking OpenAI's wire format."""

from __future__ import annotations

import json
import socket

import pytest
from providers import openai_wire
from providers.server import closed_port_url
from registries import model, write_registry

LOCAL = {"free_tier": True, "local_capable": True}
CHAT = "/v1/chat/completions"


@pytest.fixture
def backup(second_server):
    second_server.route("POST", CHAT, openai_wire.chat_stream(["from ", "backup"]))
    return second_server


@pytest.fixture
def silent_url():
    """A server that accepts connections and never answers (a read timeout)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def registry_with(tmp_path, primary_url: str, backup_url: str):
    deployments = [{"id": name, "kind": "openai-compatible", "model": "m", "api_base": f"{url}/v1"}
                   for name, url in (("primary", primary_url), ("backup", backup_url))]
    return str(write_registry(tmp_path / "registry.toml",
                              model("t/m", *deployments, tasks=["chat"], context_window=4096, access=LOCAL)))


@pytest.fixture
def no_retries(provider_env):
    provider_env.setenv("MODELCTL_RETRIES", "0")  # each failure is final at once: no waits
    provider_env.setenv("MODELCTL_READ_TIMEOUT", "0.5")


def chat(cli, registry, *args):
    return cli("--registry", registry, "chat", "-m", "t/m", "-d", "primary", "--fallback", "--json", *args, "Hi")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_retryable_status_falls_back_to_the_next_deployment(cli, tmp_path, server, backup, no_retries, status):
    server.route("POST", CHAT, openai_wire.error(status, "busy"))
    r = chat(cli, registry_with(tmp_path, server.url, backup.url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "from backup"
    (switch,) = data["route"]["fallbacks"]
    assert switch["from"] == "t/m@primary" and switch["to"] == "t/m@backup" and switch["status"] == status
    assert data["route"]["service"] == "t/m@backup"
    assert "modelctl: t/m@primary failed (" in r.stderr and "falling back to t/m@backup" in r.stderr
    assert len(server.calls(CHAT)) == 1 and len(backup.calls(CHAT)) == 1
    assert backup.calls(CHAT)[0].body["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("failing", ["refused", "timeout"])
def test_no_connection_or_no_answer_falls_back(cli, tmp_path, backup, no_retries, silent_url, failing):
    primary = closed_port_url() if failing == "refused" else silent_url
    r = chat(cli, registry_with(tmp_path, primary, backup.url))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "from backup" and data["route"]["fallbacks"][0]["to"] == "t/m@backup"
    expected = "connection refused" if failing == "refused" else "sent nothing for 0.5 s"
    assert expected in data["route"]["fallbacks"][0]["error"]


@pytest.mark.parametrize("status, exit_code", [(401, 8), (400, 7), (404, 4)])
def test_errors_the_caller_must_fix_do_not_fall_back(cli, tmp_path, server, backup, no_retries, status, exit_code):
    server.route("POST", CHAT, openai_wire.error(status, "no"))
    r = chat(cli, registry_with(tmp_path, server.url, backup.url))
    assert r.exit_code == exit_code, r.output
    assert backup.calls(CHAT) == [] and "falling back" not in r.stderr
    assert "Traceback" not in r.output


def test_an_answer_cut_off_after_it_began_is_not_sent_again(cli, tmp_path, server, backup, no_retries):
    server.route("POST", CHAT, openai_wire.chat_stream(["partial ", "answer", " more"], drop_after=2))
    r = chat(cli, registry_with(tmp_path, server.url, backup.url))
    assert r.exit_code == 7
    data = json.loads(r.stdout)
    assert data["text"] == "partial " and data["finish_reason"] == "interrupted" and backup.calls(CHAT) == []


def test_without_fallback_a_retryable_error_is_the_answer(cli, tmp_path, server, backup, no_retries):
    server.route("POST", CHAT, openai_wire.error(503, "down"))
    registry = registry_with(tmp_path, server.url, backup.url)
    r = cli("--registry", registry, "chat", "-m", "t/m", "-d", "primary", "Hi")
    assert r.exit_code == 7 and "server error (503)" in r.stderr and backup.calls(CHAT) == []


def test_when_every_deployment_fails_the_last_error_is_reported(cli, tmp_path, server, backup, no_retries):
    server.route("POST", CHAT, openai_wire.error(429, "slow down"))
    backup.route("POST", CHAT, openai_wire.error(500, "broken"))
    r = chat(cli, registry_with(tmp_path, server.url, backup.url))
    assert r.exit_code == 7 and "server error (500)" in r.stderr
    assert "falling back to t/m@backup" in r.stderr
    assert len(server.calls(CHAT)) == 1 and len(backup.calls(CHAT)) == 1


def test_auto_falls_back_to_the_next_candidate(cli, tmp_path, server, backup, no_retries):
    server.route("POST", CHAT, openai_wire.error(503, "overloaded"))
    registry = str(write_registry(
        tmp_path / "auto.toml",
        model("t/first", {"kind": "openai-compatible", "model": "a", "api_base": f"{server.url}/v1"},
              tasks=["chat"], context_window=9_000_000, access=LOCAL),
        model("t/second", {"kind": "openai-compatible", "model": "b", "api_base": f"{backup.url}/v1"},
              tasks=["chat"], context_window=8_000_000, access=LOCAL),
    ))
    r = cli("--registry", registry, "chat", "-m", "auto", "--prefer", "largest-context", "--fallback", "--json", "Hi")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "from backup" and data["id"] == "t/second"
    assert data["route"]["selected"]["service"] == "t/first@openai-compatible"
    assert data["route"]["fallbacks"][0]["to"] == "t/second@openai-compatible"
    assert "--model auto chose t/first@openai-compatible" in r.stderr
    assert backup.calls(CHAT)[0].body["model"] == "b"
    # the history keeps the choice and the switch with the turn
    (turn,) = json.loads(cli("history", "show", str(data["conversation"]), "--json").stdout)["turns"]
    assert turn["model"] == "t/second" and turn["route"]["fallbacks"] == data["route"]["fallbacks"]
    assert turn["route"]["selected"]["service"] == "t/first@openai-compatible"


def test_a_fallback_to_another_model_uses_that_models_parameters(cli, tmp_path, server, backup, no_retries,
                                                                  modelctl_home):
    """Each model's registry defaults and its [models."ID"] config go with it: after the switch,
    the request carries the second model's, with the flags given on top."""
    server.route("POST", CHAT, openai_wire.error(503, "overloaded"))
    registry = str(write_registry(
        tmp_path / "auto.toml",
        model("t/first", {"kind": "openai-compatible", "model": "a", "api_base": f"{server.url}/v1"},
              tasks=["chat"], context_window=9_000_000, access=LOCAL,
              defaults={"temperature": 0.1, "top_p": 0.3, "max_tokens": 11}),
        model("t/second", {"kind": "openai-compatible", "model": "b", "api_base": f"{backup.url}/v1"},
              tasks=["chat"], context_window=8_000_000, access=LOCAL,
              defaults={"temperature": 0.9, "top_p": 0.7, "max_tokens": 22}),
    ))
    (modelctl_home / "config").mkdir(exist_ok=True)
    (modelctl_home / "config" / "config.toml").write_text('[models."t/second"]\ntop_p = 0.75\n')
    r = cli("--registry", registry, "chat", "-m", "auto", "--prefer", "largest-context", "--fallback", "--json",
            "--seed", "3", "Hi")
    assert r.exit_code == 0, r.output
    first, second = server.calls(CHAT)[0].body, backup.calls(CHAT)[0].body
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (0.1, 0.3, 11)
    assert (second["temperature"], second["top_p"], second["max_tokens"]) == (0.9, 0.75, 22)
    assert first["seed"] == second["seed"] == 3


def test_max_cost_refuses_before_sending(cli, tmp_path, server, provider_env):
    registry = str(write_registry(
        tmp_path / "priced.toml",
        model("t/paid", {"kind": "openai-compatible", "model": "gpt-4o", "api_base": f"{server.url}/v1",
                         "cost_input": 1000.0, "cost_output": 1000.0},
              tasks=["chat"], context_window=100000, access=LOCAL),
    ))
    server.route("POST", CHAT, openai_wire.chat_stream(["ok"]))
    r = cli("--registry", registry, "chat", "-m", "t/paid", "--max-cost", "0.01", "-n", "100", "Hi")
    assert r.exit_code == 2 and "--max-cost $0.010000: sending this to t/paid@openai-compatible may cost" in r.stderr
    assert server.calls(CHAT) == []
    r = cli("--registry", registry, "chat", "-m", "t/paid", "--max-cost", "1", "-n", "10", "Hi")
    assert r.exit_code == 0 and r.stdout == "ok\n" and len(server.calls(CHAT)) == 1


def test_in_a_conversation_each_turn_may_fall_back_and_a_final_failure_changes_nothing(tmp_path, server, backup,
                                                                                         no_retries):
    """The REPL's session over the fallback backend: a turn whose services all fail leaves the
    conversation as it was; the next turn starts from the service that answered last."""
    import modelctl
    from modelctl.errors import BackendError

    said: list[str] = []
    server.route("POST", CHAT, openai_wire.error(429, "slow down"))
    registry = modelctl.load_registry(registry_with(tmp_path, server.url, backup.url))
    options = modelctl.ChatOptions(service=modelctl.ServiceOptions(deployment="primary"))
    setup = modelctl.open_routed("t/m", [], options, fallback=True, registry=registry, say=said.append)
    session = modelctl.ChatSession(setup.backend, setup.params, model=setup.model_id)
    assert "".join(session.ask("Hi")) == "from backup" and setup.model_id == "t/m"
    assert len(said) == 1 and "falling back to t/m@backup" in said[0]
    backup.route("POST", CHAT, openai_wire.error(503, "down"))
    with pytest.raises(BackendError, match=r"server error \(503\)"):
        session.ask("Again")
    assert [m["content"] for m in session.messages] == ["Hi", "from backup"]
    assert len(server.calls(CHAT)) == 1  # the failed service is not asked again
    setup.backend.close()


def test_a_local_model_behind_fallback_keeps_its_template_and_prompt(cli, tmp_path, model_path, backup):
    """With --fallback a local model still answers through its template: --json names it and
    --debug shows the rendered prompt (the fallback wraps the model, it does not hide it)."""
    from test_tokens import GEMMA_DEPLOYMENT

    registry = str(write_registry(tmp_path / "local.toml", model(
        "t/local", GEMMA_DEPLOYMENT, {"id": "backup", "kind": "openai-compatible", "model": "m",
                                      "api_base": f"{backup.url}/v1"},
        tasks=["chat"], context_window=4096, template="gemma", access=LOCAL)))
    r = cli("--registry", registry, "chat", "-m", "t/local", "--fallback", "--json", "-n", "3", "--seed", "1", "Hi")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["template"] == "gemma"
    r = cli("--registry", registry, "chat", "-m", "t/local", "--fallback", "--debug", "-n", "3", "--seed", "1", "Hi")
    assert r.exit_code == 0 and "<start_of_turn>user" in r.stderr, r.output
    assert backup.calls(CHAT) == []
