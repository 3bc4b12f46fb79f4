"""`modelctl serve` in a real process, through the official `openai` client and plain HTTP: every
route, the model field as `-m` takes it, OpenAI-shaped errors, keys and budgets, the history the
requests leave, `/api/ps` and `/api/stop`, and a clean stop.

Local answers come from the real Gemma 3 270M GGUF; the "hosted" model is gpt-4o-mini at a loopback
server that speaks OpenAI's wire format (tests/providers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from serve_process import ServeProcess

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.usefixtures("model_path")

LOCAL = "gemma-3-270m"
GREEDY = {"temperature": 0, "seed": 1, "max_tokens": 6}
KEY = "serve-test-key-0123456789"


def _home(tmp_path_factory, name: str, config: str = "") -> Path:
    home = tmp_path_factory.mktemp(name)
    if config:
        (home / "config").mkdir(parents=True)
        (home / "config" / "config.toml").write_text(config)
    return home


@pytest.fixture(scope="module")
def upstream():
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream):
    """One server for the module, with a hosted model (gpt-4o-mini at the loopback upstream)."""
    home = _home(tmp_path_factory, "serve-home", f'[api_base]\nopenai = "{upstream.url}/v1"\n')
    with ServeProcess(home, "--keep-alive", "10m", env={"OPENAI_API_KEY": FAKE_KEY}).serving() as proc:
        yield proc


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served.base, api_key="unused", max_retries=0, timeout=120)


def turns(home: Path) -> list[sqlite3.Row]:
    path = home / "data" / "history.sqlite3"
    if not path.exists():  # nothing logged yet
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM turns ORDER BY id").fetchall()
    finally:
        db.close()


# --- the OpenAI surface ---------------------------------------------------------------------------


def test_chat_streamed_and_whole_say_the_same(client):
    messages = [{"role": "user", "content": "Name a colour."}]
    whole = client.chat.completions.create(model=LOCAL, messages=messages, **GREEDY)
    assert whole.object == "chat.completion"
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens >= 1 and whole.usage.prompt_tokens >= 1
    chunks = list(client.chat.completions.create(model=LOCAL, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}, **GREEDY))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert whole.model == chunks[0].model  # the registry id that answered


def test_the_answering_deployment_is_in_the_headers_and_body(served):
    reply = httpx.post(f"{served.base}/chat/completions", timeout=120, json={
        "model": LOCAL, "messages": [{"role": "user", "content": "hi"}], **GREEDY})
    assert reply.status_code == 200
    assert reply.headers["x-modelctl-deployment"] == reply.json()["modelctl"]["deployment"]
    assert reply.json()["modelctl"]["kind"] == "llama.cpp"
    assert reply.headers["x-modelctl-model"] == reply.json()["model"]


def test_completions_and_embeddings(client):
    text = client.completions.create(model=LOCAL, prompt="The capital of France is", **GREEDY)
    assert text.object == "text_completion" and text.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=LOCAL, prompt="The capital of France is", stream=True, **GREEDY) if c.choices)
    assert streamed == text.choices[0].text
    vectors = client.embeddings.create(model=LOCAL, input=["hello", "world"])
    assert [d.index for d in vectors.data] == [0, 1]
    assert len(vectors.data[0].embedding) == len(vectors.data[1].embedding) > 16
    assert vectors.data[0].embedding != vectors.data[1].embedding


def test_models_lists_what_runs_here_with_context_and_prices(client):
    models = {m.id: m for m in client.models.list()}
    local = next(m for m in models.values() if m.model_extra["modelctl"]["kind"] == "llama.cpp")
    assert local.model_extra["context_window"]
    hosted = models["gpt-4o-mini"]  # its key is present
    assert hosted.model_extra["pricing"]["input"] > 0
    assert "claude-3-5-haiku-latest" not in models and not any(m.startswith("claude") for m in models)  # no key


def test_a_hosted_model_answers_through_the_server_with_its_cost(served, upstream, client):
    upstream.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hel", "lo"], usage=(1000, 20)))
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    answer = reply.parse()
    assert answer.choices[0].message.content == "Hello"
    cost = float(reply.headers["x-modelctl-cost"])
    assert cost > 0 and answer.model_extra["modelctl"]["cost"] == pytest.approx(cost)
    sent = upstream.calls("/v1/chat/completions")[-1]
    assert sent.header("authorization") == f"Bearer {FAKE_KEY}"  # the server's key, upstream only
    assert FAKE_KEY not in reply.http_response.text and FAKE_KEY not in served.stderr


def test_reasoning_is_reasoning_content(served, upstream):
    upstream.route("POST", "/v1/chat/completions",
                   openai_wire.chat_stream(["<think>2+2 is 4</think>", "4"], usage=(10, 5)))
    reply = httpx.post(f"{served.base}/chat/completions", timeout=60, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "2+2?"}]})
    message = reply.json()["choices"][0]["message"]
    assert message["content"] == "4" and message["reasoning_content"] == "2+2 is 4"


def test_json_schema_response_format_holds(client):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}
    answer = client.chat.completions.create(
        model=LOCAL, messages=[{"role": "user", "content": "Give a number."}], temperature=0, max_tokens=24,
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    value = json.loads(answer.choices[0].message.content)
    assert isinstance(value["n"], int)


# --- errors -----------------------------------------------------------------------------------------


def test_errors_are_the_clients_own_exceptions(client, served):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model-anywhere", messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as wrong:
        client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "x"}],
                                       extra_body={"max_tokens": "many"})
    assert wrong.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as legacy:
        client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "x"}],
                                       functions=[{"name": "f"}])
    assert "tools" in legacy.value.message
    with pytest.raises(openai.BadRequestError) as full:
        client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "word " * 40_000}])
    assert full.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400),
    (b'{"model": 3, "messages": []}', 400),
    (b'[1, 2]', 400),
    (b'{"model": "gemma-3-270m", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400),
])
def test_malformed_bodies(served, body, status):
    reply = httpx.post(f"{served.base}/chat/completions", content=body, timeout=30,
                       headers={"content-type": "application/json"})
    assert reply.status_code == status
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_a_body_over_the_limit_is_413_before_it_is_read(served):
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {100 * 2**20}\r\n\r\n{{".encode())
        answer = b""
        while b"request_too_large" not in answer and len(answer) < 65536:
            part = conn.recv(65536)
            if not part:
                break
            answer += part
    assert answer.decode().startswith("HTTP/1.1 413") and b"request_too_large" in answer


def test_unknown_routes_and_methods_are_openai_errors(served):
    assert httpx.get(f"{served.base}/nope", timeout=30).json()["error"]["code"] == "not_found"
    wrong = httpx.get(f"{served.base}/chat/completions", timeout=30)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_a_path_is_refused_unless_allowed(served, model_path):
    reply = httpx.post(f"{served.base}/chat/completions", timeout=30, json={
        "model": str(model_path), "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 400 and "file paths" in reply.json()["error"]["message"]
    missing = httpx.post(f"{served.base}/chat/completions", timeout=30, json={
        "model": "/nonexistent/x.gguf", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.json()["error"]["message"] == reply.json()["error"]["message"].replace(str(model_path), "/nonexistent/x.gguf")


# --- the history, ps and stop -------------------------------------------------------------------------


def test_each_request_is_a_history_turn_and_the_cli_as_client_logs_its_own(served):
    before = len(turns(served.home))
    env = dict(os.environ, MODELCTL_HOME=str(served.home), NO_COLOR="1", MODELCTL_NO_SERVER="1")
    done = subprocess.run([sys.executable, "-m", "modelctl", "chat", "--api-base", served.base, "-m", LOCAL,
                           "--temperature", "0", "--max-tokens", "4", "hi"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = turns(served.home)[before:]
    kinds = sorted(row["deployment_kind"] for row in rows)
    assert kinds == ["llama.cpp", "openai-compatible"]  # the server's turn and the client's
    assert rows[0]["answer"] == rows[1]["answer"] == done.stdout.strip()


def test_a_conversation_sent_whole_each_turn_is_one_conversation_in_the_history(served, client):
    """A client sends the whole conversation with each request: the turns that go on from one
    land in it; a new conversation, or one whose earlier answer was changed, starts another."""
    before = len(turns(served.home))
    messages: list = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a river."}]
    for follow_up in ("And a lake?", "And a sea?"):
        answer = client.chat.completions.create(model=LOCAL, messages=messages, **GREEDY)
        messages += [answer.choices[0].message, {"role": "user", "content": follow_up}]  # as the SDK's users do
    client.chat.completions.create(model=LOCAL, messages=messages, **GREEDY)
    edited = [*messages[:2], {"role": "assistant", "content": "Not what it said."}, messages[3]]
    client.chat.completions.create(model=LOCAL, messages=edited, **GREEDY)
    client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "Name a tree."}], **GREEDY)
    rows = turns(served.home)[before:]
    ids = [row["conversation_id"] for row in rows]
    assert ids[0] == ids[1] == ids[2] and len(set(ids)) == 3, ids


def test_a_client_may_name_the_conversation_it_goes_on(served, client):
    """`x-modelctl-conversation` names the logged conversation a request goes on (the page sends
    it for a session continued from the history): checked, never trusted."""
    before = len(turns(served.home))
    river = [{"role": "user", "content": "Name a river."}]
    answer = client.chat.completions.create(model=LOCAL, messages=river, **GREEDY).choices[0].message.content
    client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "Name a tree."}], **GREEDY)
    first, tree = (row["conversation_id"] for row in turns(served.home)[before:])
    going_on = [*river, {"role": "assistant", "content": answer}, {"role": "user", "content": "And a lake?"}]
    for named in (first, tree):
        client.chat.completions.create(model=LOCAL, messages=going_on, **GREEDY,
                                       extra_headers={"x-modelctl-conversation": str(named)})
    rows = turns(served.home)[before + 2:]
    assert rows[0]["conversation_id"] == first  # it goes on from it
    assert rows[1]["conversation_id"] not in (first, tree)  # it does not go on from the tree: a new one
    bad = httpx.post(f"{served.base}/chat/completions", timeout=60, json={"model": LOCAL, "messages": river},
                     headers={"x-modelctl-conversation": "twelve"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-modelctl-conversation"


def test_ps_and_stop(served):
    httpx.post(f"{served.base}/completions", timeout=120, json={"model": LOCAL, "prompt": "a", "max_tokens": 1})
    auth = {"authorization": f"Bearer {served.token}"}
    rows = httpx.get(f"{served.url}/api/ps", headers=auth, timeout=30).json()["models"]
    gemma = next(r for r in rows if r["path"].endswith(".gguf"))
    assert gemma["busy"] is False and gemma["queue"] == 0 and gemma["size_bytes"] > 0
    assert len({r["path"] for r in rows}) == len(rows)  # one resident copy per file
    assert httpx.post(f"{served.url}/api/stop", json={"model": LOCAL}, headers=auth, timeout=60).json()["stopped"]
    assert httpx.get(f"{served.url}/api/ps", headers=auth, timeout=30).json()["models"] == []
    again = httpx.post(f"{served.url}/api/stop", json={"model": LOCAL}, headers=auth, timeout=60)
    assert again.status_code == 404


def test_metrics_count_requests_tokens_and_first_tokens(served, client):
    client.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "hi"}], **GREEDY)
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert 'modelctl_requests_total{model="google/gemma-3-270m",deployment="pypi",status="200"}' in text
    assert "modelctl_time_to_first_token_seconds_count" in text and "modelctl_queue_depth" in text


# --- keys and budgets -----------------------------------------------------------------------------------


def test_keys_are_required_and_labelled(tmp_path_factory):
    home = _home(tmp_path_factory, "serve-keys")
    with ServeProcess(home, "--api-key", KEY) as proc:
        assert httpx.get(f"{proc.url}/health", timeout=30).status_code == 200  # no key needed
        bad = openai.OpenAI(base_url=proc.base, api_key="wrong-key-0123456789", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert httpx.get(f"{proc.base}/models", timeout=30).status_code == 401
        good = openai.OpenAI(base_url=proc.base, api_key=KEY, max_retries=0, timeout=120)
        good.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "hi"}], **GREEDY)
        chosen = good.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], **GREEDY)
        assert chosen.model_extra["modelctl"]["kind"] == "llama.cpp"  # no provider key here: a local model
        assert proc.stop() == 0
    rows = turns(home)
    assert [r["key_label"] for r in rows] == ["key-1", "key-1"]
    dump = "\n".join(json.dumps(dict(r)) for r in rows) + (home / "data" / "history.sqlite3").read_bytes().decode("latin-1")
    assert KEY not in dump and KEY not in proc.stderr


def test_a_spent_budget_is_429_and_a_free_model_still_answers(tmp_path_factory, upstream):
    home = _home(tmp_path_factory, "serve-budget", f'[api_base]\nopenai = "{upstream.url}/v1"\n')
    keys = home / "keys.toml"
    keys.write_text(f'[keys.alice]\nkey = "{KEY}"\nbudget_day = 0.0\n')
    keys.chmod(0o600)
    with ServeProcess(home, "--keys-file", str(keys), env={"OPENAI_API_KEY": FAKE_KEY}) as proc:
        alice = openai.OpenAI(base_url=proc.base, api_key=KEY, max_retries=0, timeout=120)
        with pytest.raises(openai.RateLimitError) as over:
            alice.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert over.value.body["code"] == "budget_exceeded" and "alice" in over.value.message
        assert over.value.response.headers.get("retry-after")
        assert not upstream.calls("/v1/chat/completions") or all(
            c.header("authorization") == f"Bearer {FAKE_KEY}" for c in upstream.calls("/v1/chat/completions"))
        alice.chat.completions.create(model=LOCAL, messages=[{"role": "user", "content": "hi"}], **GREEDY)
        assert proc.stop() == 0


def test_a_budget_holds_the_cost_of_the_tools_a_request_sends(tmp_path_factory, upstream):
    """The definitions of a request's tools are prompt tokens too: a budget that covers the
    question alone refuses the same question sent with tools."""
    home = _home(tmp_path_factory, "serve-budget-tools", f'[api_base]\nopenai = "{upstream.url}/v1"\n')
    keys = home / "keys.toml"
    keys.write_text(f'[keys.alice]\nkey = "{KEY}"\nbudget_day = 0.00001\n')  # ~60 prompt tokens of gpt-4o-mini
    keys.chmod(0o600)
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Looks a thing up. " * 8,
                                               "parameters": {"type": "object", "properties": {}}}} for i in range(4)]
    question = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    upstream.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"], usage=(9, 1)))
    sent = len(upstream.calls("/v1/chat/completions"))
    with ServeProcess(home, "--keys-file", str(keys), env={"OPENAI_API_KEY": FAKE_KEY}) as proc:
        headers = {"authorization": f"Bearer {KEY}"}
        with_tools = httpx.post(f"{proc.base}/chat/completions", json={**question, "tools": tools}, headers=headers,
                                timeout=120)
        assert with_tools.status_code == 429 and with_tools.json()["error"]["code"] == "budget_exceeded"
        assert len(upstream.calls("/v1/chat/completions")) == sent
        alone = httpx.post(f"{proc.base}/chat/completions", json=question, headers=headers, timeout=120)
        assert alone.status_code == 200, alone.text
        assert proc.stop() == 0


def test_a_non_loopback_bind_needs_a_key(tmp_path_factory):
    home = _home(tmp_path_factory, "serve-open")
    done = subprocess.run([sys.executable, "-m", "modelctl", "serve", "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MODELCTL_HOME=str(home)))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs API keys" in done.stderr


def test_sigint_stops_cleanly_and_removes_the_state_file(tmp_path_factory):
    home = _home(tmp_path_factory, "serve-stop")
    proc = ServeProcess(home).start()
    try:
        assert proc.state_path.exists() and proc.state["pid"] == proc.proc.pid
        assert oct(proc.state_path.stat().st_mode & 0o777) == "0o600"
        assert proc.stop(signal.SIGINT) == 0
        assert not proc.state_path.exists()
    finally:
        proc.kill()


def test_a_fallback_group_moves_on_before_the_first_byte(tmp_path_factory):
    upstream = FakeServer().start()
    try:
        home = _home(tmp_path_factory, "serve-fallback",
                     f'[api_base]\nopenai = "{upstream.url}/v1"\n[serve.fallback]\nfast = ["gpt-4o-mini", "{LOCAL}"]\n')
        upstream.route("POST", "/v1/chat/completions", openai_wire.error(503, "overloaded"))
        env = {"OPENAI_API_KEY": FAKE_KEY, "MODELCTL_RETRIES": "0"}
        with ServeProcess(home, env=env) as proc:
            client = openai.OpenAI(base_url=proc.base, api_key="x", max_retries=0, timeout=120)
            assert "fast" in {m.id for m in client.models.list()}
            answer = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}], **GREEDY)
            switches = answer.model_extra["modelctl"]["fallbacks"]
            assert answer.model_extra["modelctl"]["kind"] == "llama.cpp"
            assert [s["status"] for s in switches] == [503]
            assert "modelctl_fallbacks_total{" in httpx.get(f"{proc.url}/metrics", timeout=30).text
            assert proc.stop() == 0
    finally:
        upstream.stop()


def test_conversations_taking_turns_keep_their_evaluated_prefix(client):
    def ask(history: list[dict]) -> tuple[str, int, int]:
        answer = client.chat.completions.create(model=LOCAL, messages=history, **GREEDY)
        details = answer.usage.prompt_tokens_details
        return answer.choices[0].message.content, answer.usage.prompt_tokens, details.cached_tokens if details else 0

    a = [{"role": "user", "content": "Tell me about rivers. " * 30}]
    b = [{"role": "user", "content": "Tell me about mountains. " * 30}]
    text_a, first_a, _ = ask(a)
    ask(b)  # another conversation takes the model in between
    a += [{"role": "assistant", "content": text_a}, {"role": "user", "content": "And lakes?"}]
    _, prompt, cached = ask(a)
    assert cached >= first_a > 100 and prompt > cached  # only the new turn was evaluated


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_a_local_model_calls_a_tool_in_openais_format_and_reads_the_result(client):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    asked = client.chat.completions.create(model=LOCAL, messages=messages, tools=[WEATHER], max_tokens=40,
                                           temperature=0, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = asked.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    streamed = list(client.chat.completions.create(
        model=LOCAL, messages=messages, tools=[WEATHER], max_tokens=40, temperature=0, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    deltas = [c.choices[0].delta.tool_calls for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert deltas and deltas[0][0].function.name == "get_weather"
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 C"}]
    answer = client.chat.completions.create(model=LOCAL, messages=messages, tools=[WEATHER], max_tokens=8, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
