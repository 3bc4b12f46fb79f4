"""The CLI's side of a running `modelctl serve`: its state file (found, trusted or ignored),
`modelctl ps` and `modelctl stop`, and local chats that go through the server when one runs and
nothing about the chat changes how its model is loaded.

The server here is a loopback stand-in that answers `serve`'s routes as its design says (admin
routes, OpenAI's chat, completions and embeddings), found through a real state file; the CLI runs
in real processes."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from providers import openai_wire
from providers.server import FakeServer, Reply, closed_port_url

from modelctl.transport import serve_state
from modelctl.transport.serve_state import ServerInfo

TOKEN = "5e7f0c1d" * 8
REGISTRY_ID = "google/gemma-3-270m"


def info(url: str, *, pid: int | None = None, token: str = TOKEN) -> ServerInfo:
    port = int(url.rsplit(":", 1)[1])
    return ServerInfo(pid=os.getpid() if pid is None else pid, url=url, host="127.0.0.1", port=port, token=token,
                      started=1_780_000_000.0, version="0.test")


def write_raw(text: str | bytes, mode: int = 0o600) -> Path:
    path = serve_state.state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


def set_config(home: Path, text: str) -> None:
    from modelctl.config import _load_user_config

    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(text)
    _load_user_config.cache_clear()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


PS_BODY = {"models": [
    {"model": REGISTRY_ID, "path": "/m/gemma-3-270m-q4_k_m.gguf", "size_bytes": 253_113_024, "loaded_s": 312.5,
     "idle_s": 12.0, "expires_in_s": 288.0, "busy": True, "queue": 2, "requests": 7},
    {"model": "/m/other.gguf", "path": "/m/other.gguf", "size_bytes": 1024, "loaded_s": 7500.0, "idle_s": 7500.0,
     "expires_in_s": None, "busy": False, "queue": 0, "requests": 1},
]}


@pytest.fixture
def stub():
    """A loopback stand-in for `modelctl serve`, not yet named by a state file."""
    server = FakeServer().start()
    server.route("GET", "/health", Reply(json={"status": "ok", "loaded": 1}))
    server.route("GET", "/api/ps", Reply(json=PS_BODY))
    server.route("POST", "/api/stop", Reply(json={"stopped": [REGISTRY_ID]}))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hello", " there"], model=REGISTRY_ID))
    server.route("POST", "/v1/completions", openai_wire.text_stream([" blue", "."]))
    server.route("POST", "/v1/embeddings", openai_wire.embeddings([[0.6, 0.8], [1.0, 0.0]], model=REGISTRY_ID))
    yield server
    server.stop()


@pytest.fixture
def running(stub):
    """The stand-in, named by the state file as a running server (this test's own pid)."""
    serve_state.write_state(info(stub.url))
    return stub


@pytest.fixture
def gemma_home(modelctl_home):
    """MODELCTL_HOME with the Gemma GGUF in its models directory (a hard link), so that
    `-m gemma-3-270m` names the registry model and its file here without copying 250 MB."""
    from conftest import gemma_file

    models = modelctl_home / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    try:
        os.link(gemma_file(), models / "gemma-3-270m-q4_k_m.gguf")
    except OSError as exc:
        pytest.skip(f"cannot link the model into the test home: {exc}")
    return modelctl_home


# --- the state file -------------------------------------------------------------------------------


def test_the_state_file_is_written_private_and_read_back(stub, modelctl_home):
    serve_state.write_state(info(stub.url))
    path = serve_state.state_path()
    assert path == modelctl_home / "data" / "serve.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert serve_state.read_state() == info(stub.url) == serve_state.find_server()
    assert json.loads(path.read_text())["token"] == TOKEN


def test_remove_state_removes_only_the_servers_own_file(stub):
    serve_state.write_state(info(stub.url))
    serve_state.remove_state(os.getpid() + 1)  # another server's exit: the file is not its
    assert serve_state.state_path().exists()
    serve_state.remove_state(os.getpid())
    assert not serve_state.state_path().exists()
    serve_state.remove_state(os.getpid())  # gone already: nothing to do


def test_no_file_is_no_server():
    assert serve_state.read_state() is None and serve_state.find_server() is None
    assert serve_state.why_not_found() == "no modelctl server is running"


def test_a_file_whose_process_is_gone_is_stale():
    serve_state.write_state(info("http://127.0.0.1:8741", pid=dead_pid()))
    assert serve_state.read_state() is None


def test_a_process_of_another_user_counts_as_alive():
    # pid 1 is always there; signalling it is refused to anyone but root (PermissionError)
    serve_state.write_state(info("http://127.0.0.1:8741", pid=1))
    assert serve_state.read_state() is not None


GOOD = info("http://127.0.0.1:8741").to_dict()


@pytest.mark.parametrize("content", [
    "", "{", "not json", "[1, 2]", "null", '"text"', b"\xff\xfe{}", "[" * 100_000,
    json.dumps({**GOOD, "pid": "123"}), json.dumps({**GOOD, "pid": True}), json.dumps({**GOOD, "pid": -1}),
    json.dumps({**GOOD, "pid": 0}), json.dumps({**GOOD, "pid": 2**40}), json.dumps({**GOOD, "port": "8741"}),
    json.dumps({**GOOD, "token": ""}), json.dumps({**GOOD, "token": None}), json.dumps({**GOOD, "url": 5}),
    json.dumps({**GOOD, "url": "https://example.com"}), json.dumps({**GOOD, "started": "yesterday"}),
    json.dumps({k: v for k, v in GOOD.items() if k != "token"}),
    json.dumps(GOOD) + " " * (70 * 1024),
], ids=lambda c: repr(c)[:30])
def test_a_malformed_file_is_no_server(content):
    write_raw(content)
    assert serve_state.read_state() is None and serve_state.find_server() is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o666])
def test_a_file_open_to_others_is_ignored(mode):
    write_raw(json.dumps(GOOD), mode)
    assert serve_state.read_state() is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file away needs root")
def test_a_file_of_another_user_is_ignored():
    path = write_raw(json.dumps(GOOD))
    os.chown(path, 65534, -1)
    assert serve_state.read_state() is None


def test_a_symlink_fifo_or_directory_in_its_place_is_ignored(tmp_path):
    real = tmp_path / "real.json"
    real.write_text(json.dumps(GOOD))
    real.chmod(0o600)
    path = serve_state.state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(real)
    assert serve_state.read_state() is None
    path.unlink()
    os.mkfifo(path, 0o600)  # opened without blocking, then refused
    assert serve_state.read_state() is None
    path.unlink()
    path.mkdir()
    assert serve_state.read_state() is None


@pytest.mark.parametrize("value", ["1", "true", "yes", "ON"])
def test_modelctl_no_server_turns_it_off(running, monkeypatch, value):
    monkeypatch.setenv("MODELCTL_NO_SERVER", value)
    assert serve_state.find_server() is None and serve_state.read_state() is not None
    assert serve_state.why_not_found() == "MODELCTL_NO_SERVER is set"


def test_serve_use_false_in_config_turns_it_off(running, modelctl_home):
    set_config(modelctl_home, "[serve]\nuse = false\n")
    assert serve_state.find_server() is None
    assert serve_state.why_not_found() == "[serve] use = false in config.toml"
    set_config(modelctl_home, "[serve]\nuse = true\nport = 9000\n")
    assert serve_state.find_server() is not None


@pytest.mark.parametrize("text, message", [
    ('[serve]\nuse = "no"\n', "serve.use must be true or false, not str 'no'"),
    ("serve = 1\n", "[serve] must be a table"),
])
def test_a_wrong_serve_use_is_a_usage_error(modelctl_home, text, message):
    from modelctl.errors import UsageError

    set_config(modelctl_home, text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        serve_state.find_server()


def test_answers_is_a_connection_to_the_address():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        assert serve_state.answers(info(f"http://127.0.0.1:{listener.getsockname()[1]}"))
    finally:
        listener.close()
    assert not serve_state.answers(info(closed_port_url()))


# --- ps and stop ----------------------------------------------------------------------------------

NO_SERVER = "modelctl: error: no modelctl server is running (start one with `modelctl serve`)\n"


@pytest.mark.parametrize("args", [["ps"], ["ps", "--json"], ["stop", "gemma-3-270m"], ["stop", "--all"]])
def test_without_a_server_ps_and_stop_say_so_in_one_line(run_modelctl, args):
    r = run_modelctl(*args)
    assert (r.returncode, r.stderr, r.stdout) == (9, NO_SERVER, "")


def test_ps_lists_the_loaded_models_with_the_local_token(run_modelctl, running):
    r = run_modelctl("ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "SIZE", "LOADED", "IDLE", "UNTIL", "QUEUE", "BUSY"]
    assert lines[1].split() == [REGISTRY_ID, "241.4", "MiB", "5m", "12s", "ago", "12s", "4m", "48s", "2", "yes"]
    assert lines[2].split() == ["/m/other.gguf", "1.0", "KiB", "2h", "5m", "ago", "2h", "5m", "never", "0", "no"]
    (request,) = running.calls("/api/ps")
    assert request.header("authorization") == f"Bearer {TOKEN}"


def test_ps_json_has_the_server_and_its_models(run_modelctl, running):
    r = run_modelctl("ps", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["server"] == {"url": running.url, "pid": os.getpid(), "version": "0.test", "started": 1_780_000_000.0}
    assert data["models"] == PS_BODY["models"]
    assert TOKEN not in r.stdout + r.stderr


def test_ps_with_nothing_loaded(run_modelctl, running):
    running.route("GET", "/api/ps", Reply(json={"models": []}))
    r = run_modelctl("ps")
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == f"modelctl: no model is loaded in the modelctl server at {running.url} (pid {os.getpid()})\n"


@pytest.mark.parametrize("body", [{"models": "many"}, {"models": [{"model": 5}]}, [], {"models": [{"busy": "yes"}]},
                                  {"models": [{"model": "m", "size_bytes": "big"}]}])
def test_a_malformed_ps_answer_is_one_line(run_modelctl, running, body):
    running.route("GET", "/api/ps", Reply(json=body))
    r = run_modelctl("ps")
    assert r.returncode == 7 and r.stderr.startswith("modelctl: error: the modelctl server at ")
    assert r.stderr.count("\n") == 1 and "sent an answer modelctl cannot use" in r.stderr


def test_a_server_that_left_its_file_and_does_not_answer(run_modelctl, stub):
    serve_state.write_state(info(closed_port_url()))  # its pid (ours) alive, nothing at its port
    r = run_modelctl("ps")
    assert r.returncode == 9 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("modelctl: error: cannot connect to the modelctl server at http://127.0.0.1:")


def test_stop_unloads_a_model_by_any_name(run_modelctl, running):
    r = run_modelctl("stop", "gemma-3-270m")
    assert (r.returncode, r.stdout) == (0, f"unloaded {REGISTRY_ID}\n"), r.stderr
    (request,) = running.calls("/api/stop")
    assert request.body == {"model": "gemma-3-270m"} and request.header("authorization") == f"Bearer {TOKEN}"


def test_stop_sends_a_relative_path_whole(run_modelctl, running):
    r = run_modelctl("stop", "./models/x.gguf")
    assert r.returncode == 0, r.stderr
    assert running.calls("/api/stop")[0].body == {"model": str(Path.cwd() / "models" / "x.gguf")}


def test_stop_all(run_modelctl, running):
    running.route("POST", "/api/stop", Reply(json={"stopped": [REGISTRY_ID, "/m/other.gguf"]}),
                  Reply(json={"stopped": []}), openai_wire.error(404, "'*' is not loaded", type="not_found_error"))
    r = run_modelctl("stop", "--all")
    assert (r.returncode, r.stdout) == (0, f"unloaded {REGISTRY_ID}\nunloaded /m/other.gguf\n")
    assert running.calls("/api/stop")[0].body == {"model": "*"}
    for _ in range(2):  # nothing loaded, said either way
        r = run_modelctl("stop", "--all")
        assert (r.returncode, r.stdout) == (0, "")
        assert r.stderr == f"modelctl: no model was loaded in the modelctl server at {running.url}\n"


@pytest.mark.parametrize("reply", [
    openai_wire.error(404, "model 'qwen' is not loaded", type="not_found_error"),
    Reply(json={"stopped": []}),
])
def test_stop_of_a_model_not_loaded(run_modelctl, running, reply):
    running.route("POST", "/api/stop", reply)
    r = run_modelctl("stop", "qwen")
    assert (r.returncode, r.stdout) == (4, "")
    assert r.stderr == (f"modelctl: error: 'qwen' is not loaded in the modelctl server at {running.url} "
                        f"(pid {os.getpid()}) (`modelctl ps` lists the loaded models)\n")


@pytest.mark.parametrize("args", [["stop"], ["stop", "x", "--all"]])
def test_stop_needs_one_model_or_all(run_modelctl, running, args):
    r = run_modelctl(*args)
    assert (r.returncode, r.stderr) == (2, "modelctl: error: give one MODEL to unload, or --all (not both)\n")
    assert not running.calls("/api/stop")


def test_a_rejected_token_says_where_it_came_from(run_modelctl, running):
    running.route("GET", "/api/ps", openai_wire.error(401, "invalid API key", type="authentication_error"))
    r = run_modelctl("ps")
    assert r.returncode == 8 and "is another server listening at that address?" in r.stderr
    assert TOKEN not in r.stderr


# --- local chats through the server -----------------------------------------------------------------


def served(*args: str, options=None, debug: bool = True, task: str = "chat"):
    """`open_chat("gemma-3-270m", …)` with these load flags: the Chat, not yet sending anything."""
    from modelctl.chat.opening import ChatOptions, LoadOptions, open_chat

    load = LoadOptions(**dict(zip(args[::2], args[1::2])))
    return open_chat("gemma-3-270m", ChatOptions(load=load, options=options or {}, debug=debug, task=task))


def where(chat) -> str:
    from modelctl.backends.served_local import ServedLocalBackend

    return "server" if isinstance(chat.backend, ServedLocalBackend) else "here"


def test_a_local_chat_goes_through_the_running_server(gemma_home, running, capsys, monkeypatch):
    chat = served()
    assert where(chat) == "server"
    assert chat.local is not None and chat.model_id == REGISTRY_ID and chat.deployment.kind == "llama.cpp"
    err = capsys.readouterr().err
    assert f"debug: local model: served by the running modelctl server at {running.url} (pid {os.getpid()})\n" in err
    monkeypatch.setenv("MODELCTL_NO_SERVER", "1")
    here = served()
    assert where(here) == "here" and here.params == chat.params  # the registry's defaults, sent with each request


@pytest.mark.parametrize("task", ["chat", "completion"])
def test_without_a_server_it_runs_here(gemma_home, capsys, task):
    assert where(served(task=task)) == "here"
    assert "debug: local model: in this process (no modelctl server is running)\n" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, words", [
    ("n_ctx", 256, "--ctx given"), ("n_gpu_layers", 0, "--gpu-layers given"), ("n_threads", 1, "--threads given"),
    ("template", "chatml", "--template given"), ("images", True, "images: the vision projector is loaded here"),
])
def test_a_load_flag_keeps_the_chat_here(gemma_home, running, capsys, field, value, words):
    assert where(served(field, value)) == "here"
    assert f"debug: local model: in this process ({words}" in capsys.readouterr().err
    assert not running.requests


def test_a_llama_option_keeps_the_chat_here(gemma_home, running, capsys):
    assert where(served(options={"n_batch": "64"})) == "here"
    assert "in this process (-o given)" in capsys.readouterr().err


@pytest.mark.parametrize("config, words", [
    ("[chat]\nctx = 512\n", "ctx"),
    ("[chat]\ntemplate = \"chatml\"\n", "template"),
    ("[chat.options]\nn_batch = 64\n", "options"),
    (f'[models."{REGISTRY_ID}"]\nthreads = 2\ngpu_layers = 0\n', "gpu_layers, threads"),
    ('[aliases.tiny]\nmodel = "gemma-3-270m"\noptions = { n_ubatch = 32 }\n', "options"),
])
def test_a_load_setting_in_config_keeps_the_chat_here(gemma_home, running, capsys, config, words):
    set_config(gemma_home, config)
    from modelctl.chat.opening import ChatOptions, open_chat

    chat = open_chat("tiny" if "aliases" in config else "gemma-3-270m", ChatOptions(debug=True))
    assert where(chat) == "here"
    assert f"in this process (config.toml or the alias sets {words})" in capsys.readouterr().err


def test_sampling_settings_do_not_keep_it_here(gemma_home, running):
    set_config(gemma_home, '[chat]\ntemperature = 0.2\nsystem = "Be brief."\n[serve]\nport = 9\n')
    chat = served()
    assert where(chat) == "server" and chat.params.temperature == 0.2 and chat.system == "Be brief."


def test_turned_off_or_not_answering_it_runs_here(gemma_home, stub, monkeypatch, capsys):
    serve_state.write_state(info(closed_port_url()))
    assert where(served()) == "here"
    assert (f"in this process (the modelctl server at {serve_state.read_state().url}, pid {os.getpid()}, "
            "does not answer)") in capsys.readouterr().err
    serve_state.write_state(info(stub.url))
    monkeypatch.setenv("MODELCTL_NO_SERVER", "1")
    assert where(served()) == "here"
    assert "in this process (MODELCTL_NO_SERVER is set)" in capsys.readouterr().err


def test_a_file_or_another_deployment_is_asked_for_by_its_path(gemma_home, running, model_path):
    from modelctl.chat.opening import open_chat

    chat = open_chat(str(model_path))
    assert where(chat) == "server" and chat.backend.deployment.model == str(model_path)


def test_without_debug_nothing_is_said(gemma_home, running, capsys):
    served(debug=False)
    assert capsys.readouterr().err == ""


# Real runs of the CLI: what crosses the wire, what the user sees, what the history keeps.


def test_a_chat_through_the_server_end_to_end(gemma_home, running, run_modelctl):
    r = run_modelctl("chat", "-m", "gemma-3-270m", "hi", "-n", "3", "--debug")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Hello there\n"
    assert f"debug: local model: served by the running modelctl server at {running.url}" in r.stderr
    assert TOKEN not in r.stderr  # the --debug request log hides it
    assert not running.calls("/v1/models")  # --debug describes the server from its state file
    (request,) = running.calls("/v1/chat/completions")
    assert request.header("x-modelctl-client-logs") == "1"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.body["model"] == REGISTRY_ID and request.body["max_tokens"] == 3 and request.body["stream"]
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]
    (turn,) = json.loads(run_modelctl("history", "export", "--json").stdout)  # logged here, once
    assert (turn["model"], turn["deployment"], turn["deployment_kind"]) == (REGISTRY_ID, "pypi", "llama.cpp")
    assert (turn["answer"], turn["prompt_tokens"], turn["completion_tokens"]) == ("Hello there", 9, 2)


def test_complete_and_embed_go_through_the_server(gemma_home, running, run_modelctl):
    r = run_modelctl("complete", "-m", "gemma-3-270m", "The sky is", "-n", "2")
    assert (r.returncode, r.stdout) == (0, " blue.\n"), r.stderr
    assert running.calls("/v1/completions")[0].body["prompt"] == "The sky is"
    r = run_modelctl("embed", "-m", "gemma-3-270m", "a", "b")
    assert (r.returncode, r.stdout) == (0, "0.6 0.8\n1.0 0.0\n"), r.stderr
    (request,) = running.calls("/v1/embeddings")
    assert request.body == {"input": ["a", "b"], "model": REGISTRY_ID}
    assert request.header("x-modelctl-client-logs") == "1"


def test_a_schema_and_no_think_travel_as_the_server_reads_them(gemma_home, running, run_modelctl):
    running.route("POST", "/v1/chat/completions", openai_wire.chat_stream(['{"a": 1}'], model=REGISTRY_ID))
    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}'
    r = run_modelctl("chat", "-m", "gemma-3-270m", "json please", "--schema", schema, "--no-think")
    assert r.returncode == 0, r.stderr
    body = running.calls("/v1/chat/completions")[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["a"]
    assert body["think"] is False and "chat_template_kwargs" not in body


def test_an_error_from_the_server_is_one_line(gemma_home, running, run_modelctl):
    running.route("POST", "/v1/chat/completions", openai_wire.error(404, "model 'x' not found", type="not_found_error"))
    r = run_modelctl("chat", "-m", "gemma-3-270m", "hi")
    assert r.returncode == 4 and r.stderr.count("\n") == 1
    assert f"the modelctl server at {running.url}/v1 (pid {os.getpid()}) has no model '{REGISTRY_ID}'" in r.stderr


def test_a_chat_through_the_server_does_not_load_llama_cpp(gemma_home, running):
    from test_cli_startup import _imported

    imported = _imported(gemma_home, "chat", "-m", "gemma-3-270m", "hi", "-n", "1")
    assert "modelctl.backends.served_local" in imported
    assert not imported & {"llama_cpp", "modelctl.backends.llamacpp", "jinja2", "modelctl.templates.jinja"}


# --- against the real `modelctl serve` --------------------------------------------------------------

GREEDY = ("--temperature", "0", "--seed", "1")


@pytest.fixture
def real_server(gemma_home):
    """`modelctl serve` in a real process, for the same user (home) as the CLI runs below."""
    import modelctl

    if not (Path(modelctl.__file__).parent / "serve" / "app.py").exists():
        pytest.skip("modelctl serve is not in this tree")
    pytest.importorskip("llama_cpp")
    from serve_process import ServeProcess

    with ServeProcess(gemma_home, "--keep-alive", "-1") as server:
        yield server


def test_through_a_real_server_the_answers_are_the_in_process_ones(real_server, run_modelctl):
    here = {"MODELCTL_NO_SERVER": "1"}
    runs = [("chat", "-m", "gemma-3-270m", "Name a colour.", "-n", "6", *GREEDY),
            ("complete", "-m", "gemma-3-270m", "The sky is", "-n", "6", *GREEDY),
            ("embed", "-m", "gemma-3-270m", "a cat", "a dog")]
    for args in runs:
        served = run_modelctl(*args, "--debug") if args[0] != "embed" else run_modelctl(*args)
        alone = run_modelctl(*args, env=here)
        assert served.returncode == alone.returncode == 0, served.stderr + alone.stderr
        assert served.stdout == alone.stdout and served.stdout.strip(), args
        if args[0] != "embed":
            assert f"debug: local model: served by the running modelctl server at {real_server.url}" in served.stderr
    turns = json.loads(run_modelctl("history", "export", "--json").stdout)
    assert len(turns) == 4  # chat and complete, each once here and once through the server: logged by the CLI only
    assert {t["model"] for t in turns} == {REGISTRY_ID} and {t["deployment_kind"] for t in turns} == {"llama.cpp"}
    assert not any(t.get("key_label") for t in turns)


def test_ps_and_stop_with_a_real_server(real_server, run_modelctl):
    r = run_modelctl("ps")
    assert (r.returncode, r.stdout) == (0, "") and "no model is loaded" in r.stderr
    assert run_modelctl("chat", "-m", "gemma-3-270m", "hi", "-n", "1").returncode == 0
    models = json.loads(run_modelctl("ps", "--json").stdout)["models"]
    assert [(m["model"], m["busy"], m["queue"], m["expires_in_s"]) for m in models] == [(REGISTRY_ID, False, 0, None)]
    assert models[0]["size_bytes"] == 253_113_024 and models[0]["loaded_s"] >= 0
    r = run_modelctl("stop", "gemma-3-270m")
    assert (r.returncode, r.stdout) == (0, f"unloaded {REGISTRY_ID}\n"), r.stderr
    assert json.loads(run_modelctl("ps", "--json").stdout)["models"] == []
    r = run_modelctl("stop", "gemma-3-270m")
    assert r.returncode == 4 and "'gemma-3-270m' is not loaded in the modelctl server" in r.stderr
    r = run_modelctl("stop", "--all")
    assert (r.returncode, r.stdout) == (0, "") and "no model was loaded" in r.stderr


def test_a_server_that_stopped_or_died_leaves_the_cli_in_process(real_server, run_modelctl):
    assert real_server.state_path.exists()
    assert run_modelctl("ps").returncode == 0  # answering requests: its loop (and signal handling) runs
    assert real_server.stop() == 0 and not real_server.state_path.exists()  # SIGTERM: its file removed
    r = run_modelctl("chat", "-m", "gemma-3-270m", "hi", "-n", "1", "--debug")
    assert r.returncode == 0 and "debug: local model: in this process (no modelctl server is running)" in r.stderr


def test_a_killed_server_leaves_a_stale_file_that_is_ignored(real_server, run_modelctl):
    real_server.kill()  # SIGKILL: no chance to remove its file
    assert real_server.state_path.exists()
    r = run_modelctl("ps")
    assert (r.returncode, r.stderr) == (9, NO_SERVER)
    r = run_modelctl("chat", "-m", "gemma-3-270m", "hi", "-n", "1", "--debug")
    assert r.returncode == 0 and "debug: local model: in this process (no modelctl server is running)" in r.stderr
