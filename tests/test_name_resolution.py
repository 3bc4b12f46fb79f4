"""Every form of every name resolves the same way in every command, with the same exit code: a
table of commands × forms. Names are parsed once (`modelctl.refs`) and looked up once
(`modelctl.resolver`), so `show`, `rm`, `pull`, `prompt`, `tokens`, `chat`, `complete`, `embed` and
the task commands agree. An unknown name is answered from the registry alone: no server hears of
a typo (OLLAMA_HOST points at a loopback listener that counts connections)."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from hubserver import closed_port, make_gguf
from test_model_names import plant

pytestmark = pytest.mark.usefixtures("hf_env")
pytest.importorskip("gguf")

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
HI = '[{"role": "user", "content": "Hi"}]'
CACHED = "other-tool/Tiny-GGUF"
CACHED_ID = f"{CACHED}/tiny.Q4_K_M.gguf"


class Listener:
    """A loopback TCP listener that counts the connections made to it and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread waits in
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def ollama(monkeypatch):
    listener = Listener()
    monkeypatch.setenv("OLLAMA_HOST", listener.url)
    yield listener
    listener.close()


@pytest.fixture
def names(cli, tmp_path, hf_env, modelctl_home, monkeypatch) -> Path:
    """A home with one model of every kind a name can reach: a file of the user's own (by path
    and by alias), an imported file, a file in the Hugging Face cache, one in the models
    directory, and aliases to a registry model, to nothing and to a file that is gone. The
    working directory holds the user's file; the Hub is a closed port."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for folder in ("own", "src", "imp"):
        (tmp_path / folder).mkdir()
    own = make_gguf(tmp_path / "own" / "mine.Q8_0.gguf", template=TEMPLATE, name="Mine")
    plant(hf_env, CACHED, "tiny.Q4_K_M.gguf", make_gguf(tmp_path / "src" / "tiny.gguf", template=TEMPLATE))
    from modelctl.config import get_paths

    get_paths().models_dir.mkdir(parents=True, exist_ok=True)
    make_gguf(get_paths().models_dir / "loose.Q4_K_M.gguf", template=TEMPLATE)
    assert cli("import", str(make_gguf(tmp_path / "imp" / "other.gguf", template=TEMPLATE)),
               "--name", "imported-one").exit_code == 0
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[aliases]\nto-file = "{own}"\nto-registry = "google/gemma-3-270m"\n'
                      'dangling = "no-such-model"\nto-missing = "/nowhere/gone.gguf"\n')
    monkeypatch.chdir(own.parent)
    return own


# What each form names, as `show --json` gives its id.
FOUND = {
    "{own}": "mine.Q8_0.gguf",
    "./mine.Q8_0.gguf": "mine.Q8_0.gguf",
    "mine.Q8_0.gguf": "mine.Q8_0.gguf",
    "to-file": "mine.Q8_0.gguf",
    "TO-FILE": "mine.Q8_0.gguf",
    "imported-one": "imported-one",
    f"hf:{CACHED}": CACHED_ID,
    f"hf:{CACHED}:Q4_K_M": CACHED_ID,
    f"hf.co/{CACHED}": CACHED_ID,
    f"huggingface.co/{CACHED}": CACHED_ID,
    CACHED: CACHED_ID,
    CACHED_ID: CACHED_ID,
    "loose.Q4_K_M.gguf": "loose.Q4_K_M.gguf",
    "gemma-3-270m": "google/gemma-3-270m",
    "GOOGLE/Gemma-3-270M": "google/gemma-3-270m",
    "to-registry": "google/gemma-3-270m",
}


def spelled(form: str, own: Path) -> str:
    return form.format(own=own)


@pytest.mark.parametrize("form", list(FOUND))
def test_every_form_names_the_same_model_in_show_and_prompt(cli, names, form):
    name = spelled(form, names)
    r = cli("show", name, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["id"] == FOUND[form]
    r = cli("prompt", "-m", name, "--json", input=HI)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["prompt"]


def command(name: str, what: str) -> tuple[list[str], str | None]:
    """The arguments that name `name` in command `what`, and its stdin."""
    return {
        "chat": (["chat", "-m", name, "Hi"], None),
        "complete": (["complete", "-m", name, "Hi"], None),
        "embed": (["embed", "-m", name, "Hi"], None),
        "tokens": (["tokens", "-m", name, "Hi"], None),
        "prompt": (["prompt", "-m", name], HI),
        "show": (["show", name], None),
        "rm": (["rm", name, "-y"], None),
        "pull": (["pull", name], None),
        "classify": (["classify", "-m", name, "Hi"], None),
    }[what]


COMMANDS = ["chat", "complete", "embed", "tokens", "prompt", "show", "rm", "pull", "classify"]
# form -> (exit code, words of the one error line); the same in every command.
FAILING = {
    "no-such-modle": (4, "unknown model 'no-such-modle'"),
    "nobody/nothing": (4, "unknown model 'nobody/nothing'"),
    "./nowhere.gguf": (4, "does not exist"),
    "nowhere/gone.gguf": (4, "does not exist"),
    "~/nowhere-at-all.gguf": (4, "does not exist"),
    "gone.gguf": (4, "does not exist"),
    "dangling": (4, "alias 'dangling' names unknown model 'no-such-model'"),
    "to-missing": (4, "does not exist"),
    "hf:nobody/nothing": (4, "not on this machine"),
    "hf.co/nobody/nothing": (4, "not on this machine"),
    "hf:Q4_K_M": (2, "not a Hugging Face repository id"),
    "hf:": (2, "not hf:OWNER/REPO"),
    "hf:a/../b": (2, "not a Hugging Face repository id"),
    "auto": (2, "--model auto"),
    "": (2, "empty"),
}
# A Hub repository that is not here is what pull downloads: it is not a failure there.
# `chat -m auto` lets the selector choose.
NOT_FOR = {"pull": {"hf:nobody/nothing", "hf.co/nobody/nothing"}, "chat": {"auto"}}


def one_error(r, code: int, words: str) -> None:
    assert r.exit_code == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), r.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in r.output


@pytest.mark.parametrize("what", COMMANDS)
@pytest.mark.parametrize("form", list(FAILING))
def test_a_name_that_names_nothing_fails_alike_everywhere(cli, names, ollama, form, what):
    if form in NOT_FOR.get(what, ()):
        pytest.skip(f"{what} takes {form!r}: a download, or the selector's choice")
    args, stdin = command(form, what)
    code, words = FAILING[form]
    one_error(cli(*args, input=stdin), code, words)
    assert ollama.connections == 0


@pytest.mark.parametrize("what", ["chat", "complete", "embed", "tokens", "pull"])
@pytest.mark.parametrize("form", ["{own}", "./mine.Q8_0.gguf", "to-file", f"hf:{CACHED}", f"hf.co/{CACHED}",
                                  CACHED, "imported-one", "loose.Q4_K_M.gguf", "hf:nobody/nothing",
                                  "hf.co/nobody/nothing"])
def test_a_deployment_is_for_registry_models_only(cli, names, form, what):
    args, stdin = command(spelled(form, names), what)
    one_error(cli(*args, "-d", "openai", input=stdin), 2, "--deployment applies to registry models")


@pytest.mark.parametrize("what", ["chat", "tokens", "show", "rm", "pull"])
@pytest.mark.parametrize("typo, suggestion", [("gemma-3-27m", "gemma-3-270m"), ("gpt-4oo", "gpt-4o"),
                                              ("smollm2-135m-instrct", "smollm2-135m-instruct")])
def test_an_unknown_name_gets_did_you_mean_without_a_network_call(cli, names, ollama, typo, suggestion, what):
    args, stdin = command(typo, what)
    r = cli(*args, input=stdin)
    assert r.exit_code == 4, r.output
    assert "did you mean" in r.stderr.lower() and suggestion in r.stderr.lower(), r.stderr
    assert ollama.connections == 0


def test_only_a_name_with_an_ollama_tag_is_asked_of_the_ollama_server(cli, names, ollama):
    r = cli("show", "llama3.2:1b")
    assert r.exit_code == 4 and "unknown model 'llama3.2:1b'" in r.stderr
    assert ollama.connections >= 1
    before = ollama.connections
    assert cli("show", "llama3.2").exit_code == 4 and ollama.connections == before
    r = cli("chat", "-m", "llama3.2:1b", "-d", "openai", "Hi")  # another kind named: Ollama is not asked
    assert r.exit_code == 4 and ollama.connections == before


def test_an_alias_to_a_file_works_for_show_and_is_told_in_debug(cli, names):
    r = cli("show", "to-file", "--json")
    data = json.loads(r.stdout)
    assert data["path"] == str(names) and data["source"] == "file" and data["alias"] == "to-file"
    assert data["architecture"] == "llama" and data["chat_template"] is True
    r = cli("show", "to-file")
    assert r.exit_code == 0 and str(names) in r.stdout and "user alias 'to-file'" in r.stdout


def test_rm_of_an_alias_to_a_users_own_file_never_deletes_it_unasked(cli, names):
    for args in (["rm", "to-file", "-y"], ["rm", "to-file"], ["rm", str(names), "--yes"]):
        r = cli(*args)
        assert r.exit_code == 1, r.output
        assert "your own file" in r.stderr and str(names) in r.stderr and "nothing removed" in r.stderr
        assert names.is_file()
    assert "modelctl alias rm to-file" in cli("rm", "to-file", "-y").stderr


def test_rm_of_an_alias_to_a_file_in_the_store_removes_it(cli, names, modelctl_home):
    from modelctl.config import get_paths

    loose = get_paths().models_dir / "loose.Q4_K_M.gguf"
    assert cli("alias", "set", "lo", "loose.Q4_K_M.gguf").exit_code == 0
    r = cli("rm", "lo", "-y", "--json")
    assert r.exit_code == 0, r.output
    assert not loose.exists() and json.loads(r.stdout)["freed_bytes"] > 0


def test_pull_of_a_file_here_has_nothing_to_pull(cli, names):
    for name in ("to-file", str(names), "imported-one", f"hf:{CACHED}"[3:]):
        r = cli("pull", name)
        assert r.exit_code == 0, r.output
        assert "nothing to pull" in r.stderr and r.stdout.strip().endswith(".gguf")


def test_the_same_alias_resolves_the_same_in_the_library(names):
    from modelctl.resolver import Resolver

    a = Resolver(check=False).resolve("to-file")
    b = Resolver(check=False).resolve(str(names))
    assert (a.path, a.model_id, a.source) == (b.path, b.model_id, b.source) == (names, "mine.Q8_0.gguf", "file")
    assert a.alias is not None and a.alias.name == "to-file" and "to-file" in a.names
    assert "user alias 'to-file'" in a.explain() and os.fspath(names) in a.explain()


def test_debug_says_how_a_name_was_understood(cli, names):
    r = cli("chat", "-m", "to-registry", "--debug", "--dry-run", "Hi")
    assert r.exit_code == 0, r.output
    assert "debug: name: 'to-registry': user alias 'to-registry' for registry name → google/gemma-3-270m" in r.stderr


@pytest.mark.parametrize("what", ["show", "chat", "prompt", "tokens", "rm", "pull"])
@pytest.mark.parametrize("name", ["x" * 100_000, "./" + "y" * 5000 + ".gguf", "a/" * 3000 + "m.gguf",
                                  "~no-such-user-here/x.gguf", "/" + "d/" * 2000])
def test_a_name_no_file_system_can_hold_is_not_found_not_a_crash(cli, names, ollama, what, name):
    args, stdin = command(name, what)
    r = cli(*args, input=stdin)
    assert r.exit_code == 4, (r.exit_code, r.stderr[-300:])
    assert r.stderr.startswith("modelctl: error: ") and len(r.stderr.splitlines()) == 1
    assert ollama.connections == 0
