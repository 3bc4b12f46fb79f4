"""The shipped completion scripts match what the CLI generates, and completion answers: through
the protocol the scripts speak, and in real bash, zsh and fish (skipped where a shell is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = str(Path(sys.executable).parent)  # where the `modelctl` console script is


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(run_modelctl, shell):
    proc = run_modelctl("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert proc.returncode == 0
    shipped = (REPO / "completions" / f"modelctl.{shell}").read_text()
    assert proc.stdout == shipped, f"regenerate completions/modelctl.{shell}"


def _bash_protocol(run_modelctl, line: str) -> list[str]:
    """What the bash script receives for `line` (the word being completed is the last one)."""
    words = line.split(" ")
    env = {"_MODELCTL_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    proc = run_modelctl(env=env)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.split()


def test_bash_completion_completes_commands_and_options(run_modelctl):
    assert _bash_protocol(run_modelctl, "modelctl li") == ["list"]
    assert _bash_protocol(run_modelctl, "modelctl list --fr") == ["--free"]


@pytest.mark.parametrize("line, expected", [
    ("modelctl show gemma-3-2", ["gemma-3-270m"]),
    ("modelctl chat -m gemma-3-27", ["gemma-3-270m"]),
    ("modelctl embed --model gemma-3-27", ["gemma-3-270m"]),
    ("modelctl prompt -m gemma-3-27", ["gemma-3-270m"]),
    ("modelctl pull gemma-3-27", ["gemma-3-270m"]),
    ("modelctl rm gemma-3-27", ["gemma-3-270m"]),
    ("modelctl templates show zeph", ["zephyr"]),
    ("modelctl chat -t zeph", ["zephyr"]),
    ("modelctl list --sort c", ["context", "cost"]),
    ("modelctl list --kind oll", ["ollama"]),
    ("modelctl list --task emb", ["embedding"]),
    ("modelctl list --category f", ["foundation"]),
    ("modelctl list --provider Anthr", ["Anthropic"]),
    ("modelctl pull gemma-3-270m --quant Q4_K_", ["Q4_K_L", "Q4_K_XL", "Q4_K_M", "Q4_K_S"]),
    ("modelctl chat -d azure", ["azure-openai", "azure-ai"]),
    ("modelctl config set history.", ["history.log", "history.retention_days"]),
    ("modelctl show no-such-model-at-all", []),
])
def test_values_complete(run_modelctl, line, expected):
    assert _bash_protocol(run_modelctl, line) == expected


def test_aliases_and_imported_names_complete(run_modelctl, modelctl_home, model_path):
    assert run_modelctl("alias", "set", "speedy", "gemma-3-270m").returncode == 0
    assert run_modelctl("import", str(model_path), "--name", "spare-gemma").returncode == 0
    assert _bash_protocol(run_modelctl, "modelctl chat -m sp") == ["speedy", "spare-gemma"]
    assert _bash_protocol(run_modelctl, "modelctl alias rm s") == ["speedy"]
    assert "aliases.speedy.model" in _bash_protocol(run_modelctl, "modelctl config get aliases.")
    assert run_modelctl("alias", "rm", "speedy").returncode == 0  # the cache follows config.toml
    assert _bash_protocol(run_modelctl, "modelctl chat -m sp") == ["spare-gemma"]


def test_sessions_saved_in_the_history_complete(run_modelctl, modelctl_home, monkeypatch):
    monkeypatch.setenv("MODELCTL_HOME", str(modelctl_home))
    from modelctl.history import History

    history = History()
    for name in ("work-notes", "workshop", "holiday"):
        history.save_conversation(None, [{"role": "user", "content": "hi"}], name=name)
    history.close()
    assert _bash_protocol(run_modelctl, "modelctl chat --session wo") == ["work-notes", "workshop"]
    assert _bash_protocol(run_modelctl, "modelctl history rm --session h") == ["holiday"]


def test_a_user_registry_is_completed(run_modelctl, modelctl_home, tmp_path):
    from registries import model, write_registry

    extra = write_registry(tmp_path / "extra.toml", model("zz-private-model", {"id": "api", "kind": "openai", "model": "zz"}))
    assert _bash_protocol(run_modelctl, "modelctl show zz-pr") == []
    assert _bash_protocol(run_modelctl, f"modelctl --registry {extra} show zz-pr") == ["zz-private-model"]


def test_the_completion_path_stays_light(run_modelctl, modelctl_home):
    """A completion never imports llama.cpp, jinja2, rich or httpx; once the cache is warm it
    does not load the registry at all."""
    probe = ("import atexit, sys\n"
             "heavy = ('llama_cpp', 'jinja2', 'rich', 'httpx', 'modelctl.registry.loader', 'modelctl.templates')\n"
             "atexit.register(lambda: sys.stderr.write(repr(sorted(m for m in heavy if m in sys.modules))))\n"
             "sys.argv = ['modelctl']\n"
             "from modelctl.cli.main import run\n"
             "run()\n")
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), _MODELCTL_COMPLETE="complete_zsh",
               _TYPER_COMPLETE_ARGS="modelctl show gemma-3-27")

    def loaded() -> tuple[str, str]:
        proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        return proc.stdout, proc.stderr

    out, cold = loaded()
    assert '"gemma-3-270m"' in out
    assert cold == "['modelctl.registry.loader', 'modelctl.templates']"  # the cache is built once
    out, warm = loaded()
    assert '"gemma-3-270m"' in out and warm == "[]"
    env["_TYPER_COMPLETE_ARGS"] = "modelctl "  # subcommands with their help texts
    out, warm = loaded()
    assert "chat" in out and warm == "[]"


# --- real shells ---------------------------------------------------------------------------------


def _shell_env(modelctl_home) -> dict[str, str]:
    return dict(os.environ, MODELCTL_HOME=str(modelctl_home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def workdir(tmp_path):
    """A directory holding one file whose name starts like the words completed below."""
    (tmp_path / "zzfile.txt").write_text("")
    return tmp_path


def test_bash_script(modelctl_home, workdir):
    script = (f"source {REPO / 'completions' / 'modelctl.bash'}\n"
              "complete_line() { read -ra COMP_WORDS <<< \"$1\"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1));\n"
              "  COMPREPLY=(); _modelctl_completion modelctl; echo \"[${COMPREPLY[*]}]\"; }\n"
              "complete_line 'modelctl templates show zeph'\n"
              "complete_line 'modelctl list --sort rel'\n")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=workdir, env=_shell_env(modelctl_home),
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["[zephyr]", "[release]"], proc.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_script(modelctl_home, workdir):
    def complete(line: str) -> list[str]:
        command = f"source {REPO / 'completions' / 'modelctl.fish'}; complete -C '{line}'"
        proc = subprocess.run(["fish", "--no-config", "-c", command], cwd=workdir, env=_shell_env(modelctl_home),
                              capture_output=True, text=True, timeout=120)
        return [item.split("\t")[0] for item in proc.stdout.splitlines()]

    assert complete("modelctl show gemma-3-27") == ["gemma-3-270m"]
    assert complete("modelctl list --kind llama") == ["llama.cpp"]
    assert complete("modelctl show zz") == []  # no file names where a model name goes
    assert complete("modelctl import zz") == ["zzfile.txt"]  # but where a file goes


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script(modelctl_home, workdir):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn("zsh", ["-f", "-i"], cwd=str(workdir), encoding="utf-8", timeout=60,
                          env={**_shell_env(modelctl_home), "PS1": "ZSH> ", "TERM": "dumb"})
    try:
        child.expect("ZSH> ")
        child.sendline(f"unset zle_bracketed_paste; autoload -Uz compinit && compinit -u -D && "
                       f"source {REPO / 'completions' / 'modelctl.zsh'}")
        child.expect("ZSH> ")

        # After <TAB>, Ctrl-A and `echo LINE:` print what the command line holds.
        results = []
        for typed in ("modelctl templates show zeph", "modelctl show gemma-3-27", "modelctl show zz",
                      "modelctl import zz"):
            child.send(typed + "\t")
            child.send("\x01echo LINE:\r")
            child.expect(r"\nLINE:([^\r\n]*)\r?\n")
            results.append(child.match.group(1).strip())
            child.expect("ZSH> ")
        assert results == ["modelctl templates show zephyr", "modelctl show gemma-3-270m",
                           "modelctl show zz", "modelctl import zzfile.txt"]
    finally:
        child.close(force=True)


def test_session_names_come_from_the_history_database(modelctl_home):
    """Saved sessions (named conversations) complete; a missing or unreadable database offers
    nothing instead of failing."""
    import sqlite3

    from modelctl.cli import complete
    from modelctl.config import get_paths

    db = get_paths().history_db
    assert complete.sessions("") == []
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, name TEXT UNIQUE, created REAL, updated REAL)")
    con.executemany("INSERT INTO conversations (name, created, updated) VALUES (?, 0, 0)",
                    [("work-notes",), ("workshop",), ("holiday",), (None,)])
    con.commit()
    con.close()
    assert complete.sessions("wo") == ["work-notes", "workshop"]
    db.write_bytes(b"not a database at all" * 100)
    assert complete.sessions("wo") == []
