"""Shell completion: the scripts modelctl prints, installs and ships, the answers it gives them,
and real bash, zsh and fish completing through them, registry ids written to attack a shell
included (zsh and fish are skipped where missing)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = str(Path(sys.executable).parent)  # where the `modelctl` console script is
SHELLS = ("bash", "zsh", "fish")


def _shipped(shell: str) -> str:
    return (REPO / "completions" / f"modelctl.{shell}").read_text()


def _needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")


# --- the scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_show_completion_prints_the_shipped_script_of_the_shell_named(run_modelctl, shell):
    for args in (["--show-completion", shell], [f"--show-completion={shell}"],
                 ["--registry", "elsewhere.toml", "--show-completion", shell]):
        proc = run_modelctl(*args)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert proc.stdout == _shipped(shell), f"regenerate completions/modelctl.{shell}"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_show_completion_alone_prints_the_script_of_the_shell_it_runs_in(modelctl_home, shell):
    _needs(shell)
    proc = subprocess.run([shell, "-c", "modelctl --show-completion; exit $?"], capture_output=True, text=True,
                          env={**_shell_env(modelctl_home), "SHELL": shutil.which(shell)}, timeout=120)
    assert proc.returncode == 0 and proc.stdout == _shipped(shell), (proc.returncode, proc.stdout[:300], proc.stderr)


@pytest.mark.parametrize("value", ["powershell", "tcsh", "list", "", "zsh ", "ba"])
def test_show_and_install_completion_refuse_other_shells(run_modelctl, tmp_path, value):
    for option in ("--show-completion", "--install-completion"):
        proc = run_modelctl(option, value, env={"HOME": str(tmp_path)})
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        assert proc.stderr.startswith("modelctl: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shell, script, rc_file", [
    ("bash", ".bash_completions/modelctl.sh", ".bashrc"),
    ("zsh", ".zfunc/_modelctl", ".zshrc"),
    ("fish", ".config/fish/completions/modelctl.fish", None),
])
def test_install_completion_writes_the_script_and_one_start_up_line(run_modelctl, tmp_path, shell, script, rc_file):
    """Where earlier versions installed theirs, which it replaces."""
    (tmp_path / ".bashrc").write_text("alias ll='ls -l'")  # no newline at the end
    (tmp_path / ".zshrc").write_text("setopt autocd\n")
    (tmp_path / script).parent.mkdir(parents=True)
    (tmp_path / script).write_text("eval $(an earlier script)")
    for _ in range(2):
        proc = run_modelctl("--install-completion", shell, env={"HOME": str(tmp_path)})
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert f"{shell} completion installed in {tmp_path / script}" in proc.stdout
    assert (tmp_path / script).read_text() == _shipped(shell)
    rc = {".bashrc": "alias ll='ls -l'", ".zshrc": "setopt autocd\n"}
    if rc_file == ".bashrc":
        rc[rc_file] += f"\nsource {tmp_path / script}\n"
    elif rc_file == ".zshrc":
        rc[rc_file] += "fpath+=~/.zfunc; autoload -Uz compinit; compinit\n"
    assert {name: (tmp_path / name).read_text() for name in rc} == rc


def test_install_completion_into_an_odd_home_says_what_is_wrong(run_modelctl, tmp_path):
    os.mkfifo(tmp_path / ".bashrc")  # read as it is, it would block
    proc = run_modelctl("--install-completion", "bash", env={"HOME": str(tmp_path)}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "FIFO" in proc.stderr, proc.stderr
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    proc = run_modelctl("--install-completion", "fish", env={"HOME": str(home)}, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("modelctl: error: cannot install fish completion: "), proc.stderr


# --- the answers ---------------------------------------------------------------------------------


def _answer(run_modelctl, shell: str, line: str, word: str | None = None, env: dict | None = None
            ) -> tuple[str, list[str]]:
    """What a script of `shell` reads back for `line` (the command line up to the cursor): the
    first line (`files` or `values`) and the candidates. For bash, `word` is readline's word
    (the last one of `line` unless given)."""
    env = {"_MODELCTL_COMPLETE": f"complete_{shell}", "_MODELCTL_COMPLETE_LINE": line, **(env or {})}
    if shell == "bash":
        env["_MODELCTL_COMPLETE_WORD"] = line.split(" ")[-1] if word is None else word
    proc = run_modelctl(env=env, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    kind, *lines = proc.stdout.removesuffix("\n").split("\n")
    return kind, lines


def _values(run_modelctl, line: str) -> list[str]:
    kind, lines = _answer(run_modelctl, "bash", line)
    assert kind == "values"
    return lines


def test_bash_completion_completes_commands_and_options(run_modelctl):
    assert _values(run_modelctl, "modelctl li") == ["list"]
    assert _values(run_modelctl, "modelctl list --fr") == ["--free"]


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
    ("modelctl serve --engine llama", ["llama-server", "llama-cpp-python"]),
    ("modelctl serve --engine ray-serve gemma-3-27", ["gemma-3-270m"]),
    ("modelctl registry add-endpoint http://gpu:8000/v1 --engine s", ["sglang"]),
    ("modelctl deploy qwen2.5-7b --emit k", ["k8s", "kserve"]),
    ("modelctl list --task emb", ["embedding"]),
    ("modelctl list --category f", ["foundation"]),
    ("modelctl list --provider Anthr", ["Anthropic"]),
    ("modelctl pull gemma-3-270m --quant Q4_K_", ["Q4_K_L", "Q4_K_XL", "Q4_K_M", "Q4_K_S"]),
    ("modelctl chat -d azure", ["azure-openai", "azure-ai"]),
    ("modelctl config set history.", ["history.log", "history.retention_days"]),
    ("modelctl show no-such-model-at-all", []),
])
def test_values_complete(run_modelctl, line, expected):
    assert _values(run_modelctl, line) == expected


def test_aliases_and_imported_names_complete(run_modelctl, modelctl_home, model_path):
    assert run_modelctl("alias", "set", "speedy", "gemma-3-270m").returncode == 0
    assert run_modelctl("import", str(model_path), "--name", "spare-gemma").returncode == 0
    assert _values(run_modelctl, "modelctl chat -m sp") == ["speedy", "spare-gemma"]
    assert _values(run_modelctl, "modelctl alias rm s") == ["speedy"]
    assert "aliases.speedy.model" in _values(run_modelctl, "modelctl config get aliases.")
    assert run_modelctl("alias", "rm", "speedy").returncode == 0  # the cache follows config.toml
    assert _values(run_modelctl, "modelctl chat -m sp") == ["spare-gemma"]


def test_sessions_saved_in_the_history_complete(run_modelctl, modelctl_home, monkeypatch):
    monkeypatch.setenv("MODELCTL_HOME", str(modelctl_home))
    from modelctl.history import History

    history = History()
    for name in ("work-notes", "workshop", "holiday"):
        history.save_conversation(None, [{"role": "user", "content": "hi"}], name=name)
    history.close()
    assert _values(run_modelctl, "modelctl chat --session wo") == ["work-notes", "workshop"]
    assert _values(run_modelctl, "modelctl history rm --session h") == ["holiday"]


def test_a_user_registry_is_completed(run_modelctl, modelctl_home, tmp_path):
    from registries import model, write_registry

    extra = write_registry(tmp_path / "extra.toml", model("zz-private-model", {"id": "api", "kind": "openai", "model": "zz"}))
    assert _values(run_modelctl, "modelctl show zz-pr") == []
    assert _values(run_modelctl, f"modelctl --registry {extra} show zz-pr") == ["zz-private-model"]


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
               _MODELCTL_COMPLETE_LINE="modelctl show gemma-3-27")

    def loaded() -> tuple[list[str], str]:
        proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        return proc.stdout.splitlines(), proc.stderr

    out, cold = loaded()
    assert out == ["values", "gemma-3-270m"]
    assert cold == "['modelctl.registry.loader', 'modelctl.templates']"  # the cache is built once
    out, warm = loaded()
    assert out == ["values", "gemma-3-270m"] and warm == "[]"
    env["_MODELCTL_COMPLETE_LINE"] = "modelctl "  # subcommands with their help texts
    out, warm = loaded()
    assert any(line.startswith("chat\t") for line in out) and warm == "[]"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_answer_says_where_file_names_go(run_modelctl, shell):
    for line in ("modelctl import zz", "modelctl chat --mmproj x", "modelctl show ./", "modelctl show ~/m"):
        assert _answer(run_modelctl, shell, line) == ("files", []), line
    for line in ("modelctl show zz", "modelctl list --free zz", "modelctl zz"):
        assert _answer(run_modelctl, shell, line) == ("values", []), line


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_one_line_descriptions(run_modelctl, shell):
    kind, lines = _answer(run_modelctl, shell, "modelctl ")
    commands = dict(line.split("\t") for line in lines)
    assert kind == "values" and {"chat", "list", "show"} <= set(commands) and all(commands.values())
    kind, lines = _answer(run_modelctl, shell, "modelctl list --fre")
    assert lines == ["--free\tOnly models usable without paying."] or lines[0].startswith("--free\t")


def test_an_option_value_after_equals_is_answered_as_what_each_shell_replaces(run_modelctl):
    """zsh and fish replace the whole word, bash (with = among COMP_WORDBREAKS) what follows =."""
    assert _answer(run_modelctl, "zsh", "modelctl chat --model=gemma-3-2") == ("values", ["--model=gemma-3-270m"])
    assert _answer(run_modelctl, "fish", "modelctl chat --model=gemma-3-2") == ("values", ["--model=gemma-3-270m"])
    assert _answer(run_modelctl, "bash", "modelctl chat --model=gemma-3-2", "gemma-3-2") == ("values", ["gemma-3-270m"])
    kind, lines = _answer(run_modelctl, "bash", "modelctl chat --model=", "=")
    assert "gemma-3-270m" in lines and not any("=" in line for line in lines)
    # With a COMP_WORDBREAKS without =, readline's word is all of it.
    assert _answer(run_modelctl, "bash", "modelctl chat --model=gemma-3-2", "--model=gemma-3-2") == (
        "values", ["--model=gemma-3-270m"])


def test_bash_quoting_reads_back_as_the_value_in_every_quote(tmp_path):
    """What bash reads from each quoted value, after nothing, an opened ' and an opened " (readline
    closes them), is the value: printable ASCII and other characters in random words."""
    from modelctl.cli.shells import _bash_quote

    rng = random.Random(20)
    alphabet = [chr(c) for c in range(32, 127)] + list("äß€模型😀\u00a0")
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(300)]
    values += ["~", "~x", "-x", "#x", "!x", "a!b", "'", '"', "\\", "$(touch x)", "`x`", "{a,b}", "*", "=x"]
    script = ""
    for quote in ("", "'", '"'):
        script += "".join(f"printf '%s\\0' {quote}{_bash_quote(v, quote or None)}{quote}\n" for v in values)
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=tmp_path, capture_output=True,
                          timeout=60)
    assert proc.stderr == b""
    assert proc.stdout.decode().split("\0")[:-1] == values * 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("plant", ["fifo", "device", "directory", "deep", "damaged", "too-large", "garbage"])
def test_an_odd_completion_cache_is_never_waited_on(run_modelctl, modelctl_home, plant):
    """A FIFO (it would block), a device, a directory, or a file that is not the cache as written
    in its place: the candidates are still offered, the file rebuilt where it can be."""
    from modelctl.config import get_paths

    cache = get_paths().cache_dir / "completion.json"
    if plant == "damaged":  # the keys of a current cache, a part that is not lists of names
        assert _values(run_modelctl, "modelctl show gemma-3-2") == ["gemma-3-270m"]
        data = json.loads(cache.read_text())
        data["registry"]["models"] = [1, None, ["gemma-3-270m"]]
        cache.write_text(json.dumps(data))
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        if plant == "fifo":
            os.mkfifo(cache)
        elif plant == "device":
            cache.symlink_to("/dev/zero")
        elif plant == "directory":
            cache.mkdir()
        elif plant == "deep":
            cache.write_text("[" * 100_000)
        elif plant == "too-large":
            with open(cache, "wb") as fh:
                fh.truncate(33 * 2**20)
        else:
            cache.write_bytes(b"\xff\xfe{\x00")
    assert _values(run_modelctl, "modelctl show gemma-3-2") == ["gemma-3-270m"]
    assert _values(run_modelctl, "modelctl list --provider Goo") == ["Google"]
    if plant != "directory":
        assert cache.is_file() and not cache.is_symlink() and cache.stat().st_size < 2**20


# --- real shells ---------------------------------------------------------------------------------


def _shell_env(modelctl_home) -> dict[str, str]:
    return dict(os.environ, MODELCTL_HOME=str(modelctl_home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


# Ids and names that attack a shell that evaluates, splits or globs its candidates. Those holding a
# control character or a line separator cannot be one word of a completion: never offered.
HOSTILE = {
    "zqa": "zqa-$(touch marker-a)x",
    "zqb": "zqb-`touch marker-b`",
    "zqc": "zqc-x;touch marker-c",
    "zqd": "zqd-*",  # the directory holds zqd-file, zqe-f and zqf-a
    "zqe": "zqe-?",
    "zqf": "zqf-[ab]",
    "zqg": "zqg-a b  c",
    "zqh": "zqh-it's",
    "zqi": 'zqi-say "hi"',
    "zqm": "zqm-ünïcödé-模型",
    "zqn": "zqn-org:model",
    "zqo": "zqo-back\\slash",
    "zqp": "zqp-bang!x",
    "zqq": "zqq-a&b|c>d<e",
    "zqr": "zqr-{a,b}",
    "zqs": "zqs-$HOME",
    "zqt": "zqt-#x",
    "zqv": "zqv-a=b",
    "-zq": "-zq-dash",
    "~zq": "~zq-home",
}
UNOFFERABLE = {"zqj": "zqj-\ntouch marker-j", "zqk": "zqk-\tx", "zql": "zql-\x1b[31mred", "zqu": "zqu-\rx",
               "zqw": "zqw-\u2028x"}


@pytest.fixture
def hostile_home(modelctl_home, tmp_path):
    """A user registry holding HOSTILE and UNOFFERABLE ids (one with a hostile alias, all with a
    hostile provider name), and a working directory whose files the globs among them match."""
    from registries import model, write_registry

    from modelctl.config import get_paths

    api = {"id": "api", "kind": "openai", "model": "m"}
    models = [model(i, api, provider="Prov $(touch marker-p)") for i in [*HOSTILE.values(), *UNOFFERABLE.values()]]
    models[0]["aliases"] = ["zqx-alias;$(touch marker-x)"]
    get_paths().user_registry.parent.mkdir(parents=True, exist_ok=True)
    write_registry(get_paths().user_registry, *models)
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name in ("zqd-file", "zqe-f", "zqf-a", "zzfile.txt"):
        (workdir / name).write_text("")
    return workdir


# `modelctl` becomes a function that prints the words it is given: what <TAB> put on the line,
# run with <Enter>, shows what the shell would pass to modelctl.
_PRINT_ARGS = {
    "bash": "modelctl() { printf 'ARG<%s>\\n' \"$@\"; }",
    "zsh": "modelctl() { printf 'ARG<%s>\\n' \"$@\" }",
    "fish": "function modelctl; printf 'ARG<%s>\\n' $argv; end",
}


def _complete_and_run(shell: str, script: str, workdir: Path, env: dict[str, str], typed: list[str]) -> list[list[str]]:
    """For each line: type it, <TAB>, <Enter> in an interactive `shell` that sourced `script`;
    the words each line passed."""
    pexpect = pytest.importorskip("pexpect")
    args = {"bash": ["--norc", "--noprofile", "-i"], "zsh": ["-f", "-i"],
            "fish": ["--no-config", "-i", "-C", "function fish_greeting; end"]}[shell]
    setup = {"bash": "", "zsh": "unset zle_bracketed_paste; autoload -Uz compinit && compinit -u -D && ",
             "fish": ""}[shell] + f"source {script}; {_PRINT_ARGS[shell]}"
    child = pexpect.spawn(shell, args, cwd=str(workdir), encoding="utf-8", timeout=60,
                          env={**env, "PS1": "$ ", "TERM": "dumb", "LC_ALL": "C.UTF-8"})
    words = []
    try:
        # `echo SY''NC<n>` prints a line that its own echo on the terminal does not hold.
        for n, line in enumerate([setup, *typed]):
            child.send(line + ("\t\r" if n else "\r"))
            child.send(f"echo SY''NC{n}\r")
            child.expect(f"SYNC{n}\r\n")
            words.append(re.findall(r"ARG<(.*?)>\r\n", child.before, re.S))
    finally:
        child.close(force=True)
    return words[1:]


@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_ids_are_offered_literally(modelctl_home, hostile_home, shell):
    """Each id reaches modelctl as it is: nothing in it runs, expands, globs or splits, whatever
    quote the word was opened with; ids that cannot be offered are not."""
    _needs(shell)
    expected: dict[str, list[str]] = {f"modelctl show {prefix}": ["show", value] for prefix, value in HOSTILE.items()}
    expected.update({f"modelctl show {prefix}": ["show", prefix] for prefix in UNOFFERABLE})
    expected.update({
        "modelctl show -zq": ["show", "-zq"],  # a word starting with - is an option: after --, a value
        "modelctl show -- -zq": ["show", "--", "-zq-dash"],
        "modelctl show 'zqg": ["show", HOSTILE["zqg"]],
        "modelctl show 'zqh": ["show", HOSTILE["zqh"]],
        'modelctl show "zqa': ["show", HOSTILE["zqa"]],
        'modelctl show "zqp': ["show", HOSTILE["zqp"]],
        'modelctl show "zqo': ["show", HOSTILE["zqo"]],
        "modelctl show zqg-a\\ ": ["show", HOSTILE["zqg"]],
        "modelctl show ZQA": ["show", "ZQA" + HOSTILE["zqa"][3:]],
        "modelctl show zqn-org:m": ["show", HOSTILE["zqn"]],
        "modelctl chat --model=zqb": ["chat", "--model=" + HOSTILE["zqb"]],
        "modelctl chat -m zqx": ["chat", "-m", "zqx-alias;$(touch marker-x)"],
        "modelctl list --provider Pro": ["list", "--provider", "Prov $(touch marker-p)"],
        "modelctl show zzf": ["show", "zzf"],  # no file names where a model goes
        "modelctl import zzf": ["import", "zzfile.txt"],  # but where a file does
    })
    if shell == "zsh":  # an unquoted ~ starts a named directory there
        expected["modelctl show \\~zq"] = expected.pop("modelctl show ~zq")
    before = sorted(os.listdir(hostile_home))
    got = _complete_and_run(shell, str(REPO / "completions" / f"modelctl.{shell}"), hostile_home,
                            _shell_env(modelctl_home), list(expected))
    assert dict(zip(expected, got)) == expected
    assert sorted(os.listdir(hostile_home)) == before  # no marker file


@pytest.mark.parametrize("shell", SHELLS)
def test_scripts_of_earlier_versions_get_only_plain_candidates(modelctl_home, hostile_home, tmp_path, shell):
    """Typer's scripts, which earlier versions installed (zsh's evaluates the answer, bash's
    globs it): still answered, with nothing that needs quoting."""
    _needs(shell)
    from typer._completion_shared import get_completion_script

    script = tmp_path / f"earlier.{shell}"
    script.write_text(get_completion_script(prog_name="modelctl", complete_var="_MODELCTL_COMPLETE", shell=shell))
    typed = ["modelctl show zqa-", "modelctl show zqb", "modelctl list --provider Pro", "modelctl show gemma-3-2",
             "modelctl show zqn"]
    before = sorted(os.listdir(hostile_home))
    got = _complete_and_run(shell, str(script), hostile_home, _shell_env(modelctl_home), typed)
    assert got == [["show", "zqa-"], ["show", "zqb"], ["list", "--provider", "Pro"], ["show", "gemma-3-270m"],
                   ["show", HOSTILE["zqn"]]]
    assert sorted(os.listdir(hostile_home)) == before


@pytest.mark.parametrize("shell", SHELLS)
def test_commands_options_and_values_complete_in_each_shell(modelctl_home, tmp_path, shell):
    _needs(shell)
    typed = ["modelctl templates show zeph", "modelctl list --sort rel", "modelctl list --fr", "modelctl li",
             "modelctl list --kind llama"]
    got = _complete_and_run(shell, str(REPO / "completions" / f"modelctl.{shell}"), tmp_path,
                            _shell_env(modelctl_home), typed)
    assert got == [["templates", "show", "zephyr"], ["list", "--sort", "release"], ["list", "--free"], ["list"],
                   ["list", "--kind", "llama.cpp"]]


def test_session_names_come_from_the_history_database(modelctl_home):
    """Saved sessions (named conversations) complete; a missing or unreadable database offers
    nothing instead of failing."""
    import sqlite3

    from modelctl.cli import shell_complete
    from modelctl.config import get_paths

    db = get_paths().history_db
    assert shell_complete.sessions("") == []
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, name TEXT UNIQUE, created REAL, updated REAL)")
    con.executemany("INSERT INTO conversations (name, created, updated) VALUES (?, 0, 0)",
                    [("work-notes",), ("workshop",), ("holiday",), (None,)])
    con.commit()
    con.close()
    assert shell_complete.sessions("wo") == ["work-notes", "workshop"]
    db.write_bytes(b"not a database at all" * 100)
    assert shell_complete.sessions("wo") == []


def test_a_model_registry_update_added_is_completed_after_a_warm_cache(run_modelctl, modelctl_home, monkeypatch):
    """The generated layer (`registry update`) is one of the files the cached candidates are
    checked against: a model it adds is offered without waiting for another change."""
    from registries import model, write_registry

    monkeypatch.setenv("MODELCTL_HOME", str(modelctl_home))
    from modelctl.config import get_paths

    assert _values(run_modelctl, "modelctl show zz-gen") == []  # the cache is warm now
    layer = get_paths().generated_registry
    layer.parent.mkdir(parents=True, exist_ok=True)
    write_registry(layer, model("zz-generated-model", {"id": "api", "kind": "openai", "model": "zz"}))
    assert _values(run_modelctl, "modelctl show zz-gen") == ["zz-generated-model"]
