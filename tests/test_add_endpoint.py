"""`modelctl registry add-endpoint URL`: a server's model list (OpenAI's `GET /models`, Ollama's
`GET /api/tags`) added to the user registry as `modelctl add` adds one model, against loopback
servers: a good list, an empty one, malformed JSON, a huge body, a 401, hostile ids."""

from __future__ import annotations

import json

import pytest
from providers import ollama_wire, openai_wire
from providers.server import Reply

from modelctl.config import get_paths
from modelctl.registry.loader import load_registry


def _models(*ids: object) -> Reply:
    return Reply(json={"object": "list", "data": [{"id": i, "object": "model", "owned_by": "me"} for i in ids]})


@pytest.fixture
def add(cli, server):
    def run(*args: str, input: str | None = None):
        return cli("registry", "add-endpoint", f"{server.url}/v1", *args, input=input)

    return run


def _user_registry() -> str:
    path = get_paths().user_registry
    return path.read_text() if path.exists() else ""


def test_every_listed_model_is_added_and_can_be_chatted_with(add, server, cli):
    server.route("GET", "/v1/models", _models("Qwen/Qwen2.5-7B-Instruct", "phi-4", "phi-4"))
    r = add("--yes", "--prefix", "box/")
    assert r.exit_code == 0, r.output
    assert "added box/Qwen/Qwen2.5-7B-Instruct" in r.stderr and "added box/phi-4" in r.stderr
    model = load_registry().get("box/phi-4")
    assert model is not None and model.deployments[0].model == "phi-4"
    assert model.deployments[0].api_base == f"{server.url}/v1"
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))
    assert cli("chat", "-m", "box/Qwen/Qwen2.5-7B-Instruct", "Hi").exit_code == 0
    assert server.calls("/v1/chat/completions")[0].body["model"] == "Qwen/Qwen2.5-7B-Instruct"


def test_ids_already_there_are_skipped_and_said_so(add, server):
    server.route("GET", "/v1/models", _models("phi-4"))
    assert add("--yes").exit_code == 0
    before = _user_registry()
    server.route("GET", "/v1/models", _models("phi-4", "gemma-3-270m", "new-one"))  # gemma-3-270m: a built-in alias
    r = add("--yes", "--json")
    assert r.exit_code == 0, r.output
    status = {o["id"]: (o["status"], o["why"]) for o in json.loads(r.stdout)}
    assert status == {"phi-4": ("skipped", "already in the registry"),
                      "gemma-3-270m": ("skipped", "already in the registry"), "new-one": ("added", None)}
    assert _user_registry().startswith(before.rstrip("\n"))


def test_dry_run_writes_nothing(add, server):
    server.route("GET", "/v1/models", _models("a", "b"))
    r = add("--dry-run")
    assert r.exit_code == 0 and "would add a" in r.stderr and "would add b" in r.stderr
    assert _user_registry() == ""


def test_without_yes_it_asks_and_a_no_adds_nothing(add, server):
    server.route("GET", "/v1/models", _models("a"))
    r = add(input="n\n")
    assert r.exit_code == 1 and "Add 1 model to your registry?" in r.stderr and "nothing added" in r.stderr
    assert _user_registry() == ""
    assert add(input="y\n").exit_code == 0 and load_registry().get("a") is not None


def test_an_ollama_server_lists_its_tags(cli, server):
    server.route("GET", "/api/tags", ollama_wire.tags())
    r = cli("registry", "add-endpoint", server.url, "--kind", "ollama", "--yes")
    assert r.exit_code == 0, r.output
    dep = load_registry().get(ollama_wire.TAG).deployments[0]
    assert (dep.kind, dep.tag, dep.host) == ("ollama", ollama_wire.TAG, server.url)


def test_an_empty_list_adds_nothing(add, server):
    server.route("GET", "/v1/models", _models())
    r = add("--yes")
    assert r.exit_code == 0 and "lists no models" in r.stderr and _user_registry() == ""


@pytest.mark.parametrize("reply, code, words", [
    (Reply(text="{not json"), 7, "JSON"),
    (Reply(json={"data": {"id": "x"}}), 7, "did not answer with a model list"),
    (Reply(json=["x"]), 7, "did not answer with a model list"),
    (Reply(401, json={"error": {"message": "Invalid API key", "type": "invalid_request_error"}}), 8, "rejected"),
])
def test_an_answer_that_is_not_a_model_list_is_one_error_and_writes_nothing(add, server, reply, code, words):
    server.route("GET", "/v1/models", reply)
    r = add("--yes")
    assert r.exit_code == code, r.output
    assert words in r.stderr and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("modelctl: error:")] == r.stderr.splitlines()[:1]
    assert _user_registry() == ""


def test_a_huge_answer_is_cut_off(add, server, monkeypatch):
    monkeypatch.setenv("MODELCTL_MAX_RESPONSE_MB", "1")
    server.route("GET", "/v1/models", _models(*(f"model-{i:07d}-{'x' * 40}" for i in range(40_000))))
    r = add("--yes")
    assert r.exit_code == 7 and "MiB" in r.stderr, r.output
    assert _user_registry() == ""


def test_hostile_ids_are_skipped_with_the_reason_and_the_rest_added(add, server):
    server.route("GET", "/v1/models", _models("ok-model", "evil\x1b[31mred", "../../etc/passwd", "/abs",
                                              "x" * 500, "with space", "m.gguf", 42, None, "auto"))
    r = add("--yes", "--json")
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout + r.stderr
    status = {o["id"]: o["status"] for o in json.loads(r.stdout)}
    assert status.pop("ok-model") == "added" and set(status.values()) == {"skipped"}
    assert len(status) == 7  # 42 and null are not names: left out
    assert load_registry().get("ok-model") is not None and "passwd" not in _user_registry()


def test_credentials_in_the_url_are_refused_before_anything_is_sent(cli, server):
    r = cli("registry", "add-endpoint", f"http://bob:hunter2secret@127.0.0.1:{server.url.rsplit(':', 1)[1]}/v1", "--yes")
    assert r.exit_code == 2 and "hunter2secret" not in r.output
    assert server.requests == [] and _user_registry() == ""


def test_an_unknown_kind_and_a_bad_url_are_usage_errors(cli, server):
    assert cli("registry", "add-endpoint", f"{server.url}/v1", "--kind", "anthropic").exit_code == 2
    assert cli("registry", "add-endpoint", "not a url").exit_code == 2
    assert server.requests == []
