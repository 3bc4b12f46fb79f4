"""The scripting contract (README, "Scripting"): stdout carries data only, `--json` everywhere
with `id` for a model, plain text under NO_COLOR at a real terminal (pexpect), piped stdin as
the prompt. Servers are loopback ones speaking OpenAI's wire format."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from hubserver import make_gguf
from providers import openai_wire
from providers.server import FakeServer

pytestmark = pytest.mark.usefixtures("hf_env")

MODELCTL = str(Path(sys.executable).with_name("modelctl"))
ESCAPE = re.compile(r"\x1b[\[\]()]")


@pytest.fixture
def served():
    server = FakeServer().start()
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["**Red**, ", "green."]))
    server.route("POST", "/v1/embeddings", openai_wire.embeddings([[0.5, 0.25]]))
    yield server
    server.stop()


# --- one vocabulary ---------------------------------------------------------------------------


def json_of(cli, *args: str, input: str | None = None):
    r = cli(*args, "--json", input=input)
    assert r.exit_code == 0, (args, r.output)
    return json.loads(r.stdout)


def test_a_model_is_id_in_every_json_output(cli, served, tmp_path):
    api = ("--api-base", f"{served.url}/v1", "-m", "served-name")
    assert all("id" in m for m in json_of(cli, "list", "--limit", "3"))
    assert "gpt-4o" in [h["id"] for h in json_of(cli, "search", "gpt-4o")]  # deprecated: after the models in service
    assert json_of(cli, "show", "gpt-4o")["id"] == "gpt-4o"
    assert json_of(cli, "chat", *api, "Colours?")["id"] == "served-name"
    assert json_of(cli, "embed", *api, "a colour")["id"] == "served-name"
    gguf = make_gguf(tmp_path / "tiny.Q4_K_M.gguf")
    assert json_of(cli, "import", str(gguf), "--name", "tiny")["id"] == "tiny"
    [entry] = json_of(cli, "list", "--installed")
    assert entry["id"] == "tiny" and entry["registry_id"] is None
    assert [m["id"] for m in json_of(cli, "du")["models"]] == ["tiny"]
    assert json_of(cli, "rm", "tiny", "-y")["id"] == "tiny"
    for data in (entry, json_of(cli, "du")):
        assert "name" not in data and "model_id" not in data and "model" not in data


def test_embed_without_json_prints_one_vector_a_line(cli, served):
    r = cli("embed", "--api-base", f"{served.url}/v1", "-m", "e", "a colour")
    assert r.exit_code == 0, r.output
    assert r.stdout == "0.5 0.25\n"


# --- stdout is data, stdin is a prompt --------------------------------------------------------


def test_piped_stdin_is_the_prompt_and_stdout_only_the_answer(run_modelctl, served):
    r = run_modelctl("chat", "--api-base", f"{served.url}/v1", "-m", "m", "--debug", input="Name two colours\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "**Red**, green.\n"  # a pipe gets the answer as it came: no Markdown rendering
    assert "debug: request: POST" in r.stderr
    [request] = served.calls("/v1/chat/completions")
    assert request.body["messages"] == [{"role": "user", "content": "Name two colours\n"}]  # as piped


def test_a_declined_rm_asks_on_stderr(run_modelctl, tmp_path):
    assert run_modelctl("import", str(make_gguf(tmp_path / "m.gguf")), "--name", "mine").returncode == 0
    r = run_modelctl("rm", "mine", input="n\n")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[-2:] == ["Remove 1 item? [y/N] ", "modelctl: nothing removed"]


# --- NO_COLOR at a real terminal --------------------------------------------------------------


def at_terminal(args: list[str], home: Path, **env: str) -> str:
    """What `modelctl ARGS` writes to a real terminal (a pty), after it exits 0."""
    from terminal_run import at_terminal as run_at_terminal

    return run_at_terminal(args, 160, MODELCTL_HOME=str(home), **env)


def test_no_color_gives_plain_text_at_a_terminal(modelctl_home, served):
    listing = ["list", "--provider", "openai", "--limit", "3"]
    assert ESCAPE.search(at_terminal(listing, modelctl_home))  # styled by default: the check can fail
    plain = at_terminal(listing, modelctl_home, NO_COLOR="1")
    assert "gpt" in plain and not ESCAPE.search(plain), repr(plain)
    shown = at_terminal(["show", "gpt-4o"], modelctl_home, NO_COLOR="1")
    assert "gpt-4o" in shown and not ESCAPE.search(shown), repr(shown)
    answer = at_terminal(["chat", "--api-base", f"{served.url}/v1", "-m", "m", "Colours?"], modelctl_home,
                         NO_COLOR="1")
    assert "Red" in answer and not ESCAPE.search(answer), repr(answer)


def _text_options():
    """(command words, option) for every text option of every command and subcommand."""
    import typer.main

    from modelctl.cli.flags import EMPTY_ALLOWED
    from modelctl.cli.main import make_app

    def walk(command, words):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*words, name])
            return
        for param in command.params:
            if (type(param).__name__.endswith("Option") and not param.is_flag and param.type.name == "str"
                    and param.name not in EMPTY_ALLOWED):
                yield words, param.opts[0]

    return list(walk(typer.main.get_command(make_app()), []))


TEXT_OPTIONS = _text_options()


def test_every_text_option_is_covered():
    assert len(TEXT_OPTIONS) > 60 and (["list"], "--provider") in TEXT_OPTIONS
    assert (["history", "export"], "--output") in TEXT_OPTIONS


@pytest.mark.parametrize("words,option", TEXT_OPTIONS, ids=[" ".join(w) + " " + o for w, o in TEXT_OPTIONS])
def test_an_empty_value_is_a_usage_error_not_the_default(cli, words, option):
    from modelctl.cli.flags import BLANK_ALLOWED

    # white space is a value for the options that take it (`--stop $'\n'`), only "" is not
    result = cli(*words, option, "" if option.lstrip("-") in BLANK_ALLOWED else " ")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"modelctl: error: {option} needs a value; it was given an empty one"
    assert result.stdout == ""


def test_an_empty_top_level_option_is_refused_too(cli):
    result = cli("--registry", "", "show", "gpt-4o")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == "modelctl: error: --registry needs a value; it was given an empty one"
