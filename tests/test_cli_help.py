"""`--help`: every command and group ends with examples whose options are real; the options of
the commands that open a model are grouped in panels; the help is rich panels at a terminal and
plain sections piped or under NO_COLOR; no help text is eaten as rich markup; a run that is not
for help does not import rich."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import terminal_run
import typer.main

from modelctl.cli.main import make_app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile("[─━│┃╭╮╰╯]")


def _walk(command, words):
    yield words, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, [*words, name])


ROOT = typer.main.get_command(make_app())
COMMANDS = list(_walk(ROOT, []))


def _id(words: list[str]) -> str:
    return " ".join(words) or "modelctl"


def test_every_command_is_walked():
    names = {_id(words) for words, _ in COMMANDS}
    assert len(COMMANDS) > 45 and {"chat", "history export", "config set", "keys rm", "templates show"} <= names


# --- examples -----------------------------------------------------------------------------------


def invocations(line: str):
    """The argument lists of the `modelctl` runs in a shell line (through pipes, redirections and
    command substitutions)."""
    words: list[str] = []
    tokens = iter(shlex.split(line) + ["|"])
    for token in tokens:
        if token.startswith("$(modelctl"):
            yield shlex.split(token[2:-1])
        elif token in ("|", "<", ">"):
            if words and words[0] == "modelctl":
                yield words
            words = []
            if token != "|":
                next(tokens)  # the file of a redirection
        else:
            words.append(token)


def resolve(argv: list[str]) -> list[str]:
    """The command words `argv` runs; every option it gives must be one that command has."""
    command, path, subcommands = ROOT, [], True
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":  # what follows is arguments (`mcp add NAME -- COMMAND ARGS`)
            break
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            params = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            if name in ("-h", "--help"):
                continue
            assert name in params, f"{' '.join(argv)}: {name} is not an option of `{_id(['modelctl', *path])}`"
            if not params[name].is_flag and "=" not in arg:
                next(args)  # its value
        elif subcommands and arg in getattr(command, "commands", {}):
            command, path = command.commands[arg], [*path, arg]
        else:
            subcommands = False  # an argument: what follows names no subcommand
    return path


@pytest.mark.parametrize("words, command", COMMANDS, ids=[_id(w) for w, _ in COMMANDS])
def test_every_command_has_examples_that_use_it(words, command):
    assert command.epilog, f"`{_id(words)} --help` has no examples"
    lines = command.epilog.splitlines()
    comments, shell_lines = lines[0::2], lines[1::2]
    assert 2 <= len(shell_lines) <= 4 and len(comments) == len(shell_lines)
    assert all(c.startswith("# ") and len(c) > 6 for c in comments)
    paths = [resolve(argv) for line in shell_lines for argv in invocations(line)]
    assert len(paths) >= len(shell_lines)  # every example runs modelctl
    assert any(path[:len(words)] == words for path in paths), f"no example of `{_id(words)}` runs it: {paths}"


def _quoted_data(line: str):
    """The arguments of a shell line that are JSON text (they start with `[` or `{`)."""
    return [word for word in shlex.split(line) if word[:1] in "[{"]


@pytest.mark.parametrize("words, command", COMMANDS, ids=[_id(w) for w, _ in COMMANDS])
def test_the_json_in_examples_is_json(words, command):
    """A messages list or an inline schema in an example can be pasted as it is (no `{{` left
    over from a format string)."""
    import json

    for line in command.epilog.splitlines()[1::2]:
        for text in _quoted_data(line):
            json.loads(text)


@pytest.mark.parametrize("words, default", [(["chat"], "SmolLM2-135M-Instruct"), (["embed"], "Gemma 3 270M"),
                                            (["complete"], "Gemma 3 270M")])
def test_the_model_option_names_the_commands_own_default(words, default):
    """chat's default model is the instruction-tuned one; complete's and embed's the base model."""
    command = ROOT.commands[words[0]]
    model = next(p for p in command.params if "--model" in p.opts)
    assert model.help.split("config.toml, else ", 1)[1].startswith(default), model.help


# --- options -----------------------------------------------------------------------------------

# Flags that only share a spelling: `list --task` filters the listing, `add --task` records a task.
OWN_MEANING = {"--task", "--kind", "--image"}


def _declaration(param) -> tuple:
    """What makes two options one: their type, its bounds, repetition, flag-ness and completion
    (not the help text or metavar, which a command may word for itself)."""
    return (type(param.type).__name__, getattr(param.type, "min", None), getattr(param.type, "max", None),
            param.multiple, getattr(param, "is_flag", None), getattr(param, "_custom_shell_complete", None) is not None)


def test_an_option_is_the_same_in_every_command_that_takes_it():
    """The same flags take the same values, checked and completed alike, wherever they appear:
    `-m` completes model names in every command, `--ctx` is at least 16 in every command."""
    seen: dict[tuple, dict[tuple, list[str]]] = {}
    for words, command in COMMANDS:
        for param in _options(command):
            flags = tuple(sorted((*param.opts, *param.secondary_opts)))
            if not OWN_MEANING & set(flags):
                seen.setdefault(flags, {}).setdefault(_declaration(param), []).append(_id(words))
    differing = {flags: found for flags, found in seen.items() if len(found) > 1}
    assert not differing, differing
    assert len(seen[("--model", "-m")][(("StringParamType", None, None, False, False, True))]) >= 12


# --- panels -------------------------------------------------------------------------------------


def _options(command):
    return [p for p in command.params if p.param_type_name == "option" and p.name != "help"]


def test_chat_options_are_grouped():
    chat = ROOT.commands["chat"]
    panels = [getattr(p, "rich_help_panel", None) for p in _options(chat)]
    assert None not in panels, [p.opts for p in _options(chat) if not getattr(p, "rich_help_panel", None)]
    assert {"Model", "Generation", "Output", "Structured output", "Reasoning", "History", "Selection & cost",
            "Server/API", "Local (llama.cpp)", "Debug"} <= set(panels)


@pytest.mark.parametrize("words, command", [(w, c) for w, c in COMMANDS if len(_options(c)) >= 15],
                         ids=lambda x: _id(x) if isinstance(x, list) else "")
def test_a_command_with_many_options_groups_them_all(words, command):
    ungrouped = [p.opts[0] for p in _options(command) if not getattr(p, "rich_help_panel", None)]
    assert not ungrouped, f"{_id(words)}: {ungrouped}"


def test_the_top_level_help_groups_the_commands():
    panels = {getattr(c, "rich_help_panel", None) for c in ROOT.commands.values()}
    assert None not in panels and len(panels) >= 5


# --- no help text is rich markup ----------------------------------------------------------------


def _texts(command):
    yield command.help or ""
    yield command.short_help or ""
    yield getattr(command, "rich_help_panel", None) or ""
    for param in command.params:
        yield getattr(param, "help", None) or ""
        yield getattr(param, "rich_help_panel", None) or ""


@pytest.mark.parametrize("words, command", COMMANDS, ids=[_id(w) for w, _ in COMMANDS])
def test_help_texts_read_the_same_through_rich_markup(words, command):
    """Typer's rich help reads help text as markup: `[chat] model` would lose `[chat]`."""
    from rich.text import Text

    for text in _texts(command):
        assert Text.from_markup(text).plain == text, f"{_id(words)}: {text!r}"


# --- how it looks ---------------------------------------------------------------------------------


def at_terminal(args: list[str], columns: int, **extra: str) -> str:
    pytest.importorskip("pexpect")
    return ANSI.sub("", terminal_run.at_terminal(args, columns, **extra)).replace("\r\n", "\n")


CHAT_SECTIONS = ["Arguments", "Options", "Model", "Generation", "Output", "Structured output", "Reasoning",
                 "History", "Selection & cost", "Images", "Server/API", "Local (llama.cpp)", "Debug", "Examples"]


def _sections_in_order(text: str, pattern: str) -> list[str]:
    found = [(text.find(pattern.format(name)), name) for name in CHAT_SECTIONS]
    assert all(at >= 0 for at, _ in found), [name for at, name in found if at < 0]
    return [name for _, name in sorted(found)]


def test_piped_help_is_plain_sections_with_examples(run_modelctl):
    for env in ({}, {"NO_COLOR": ""}):  # piped: plain whatever NO_COLOR says
        text = run_modelctl("chat", "--help", env=env).stdout
        assert not ANSI.search(text) and not BOX.search(text)
        assert _sections_in_order(text, "\n{}:\n") == CHAT_SECTIONS
        assert '\nExamples:\n  # One answer from the default local model\n  modelctl chat "' in text


@pytest.mark.parametrize("no_color", ["1", "yes"])
def test_help_under_no_color_at_a_terminal_is_plain(no_color):
    text = at_terminal(["chat", "--help"], 100, NO_COLOR=no_color)
    assert not BOX.search(text)
    assert _sections_in_order(text, "\n{}:\n") == CHAT_SECTIONS


@pytest.mark.parametrize("columns", [80, 120])
def test_help_at_a_terminal_is_rich_panels_that_fit(columns):
    from rich.cells import cell_len

    text = at_terminal(["chat", "--help"], columns)
    assert _sections_in_order(text, "╭─ {} ─") == CHAT_SECTIONS
    assert all(cell_len(line) <= columns for line in text.splitlines())
    top = at_terminal(["--help"], columns)
    assert top.index("╭─ Find models") < top.index("╭─ Chat and generate") < top.index("╭─ Examples")
    group = at_terminal(["history", "--help"], columns)
    assert "╭─ Examples" in group and "modelctl history list" in group


def test_a_run_that_is_not_for_help_does_not_import_rich(modelctl_home):
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: sys.stderr.write(repr(sorted(m for m in ('rich', 'typer.rich_utils') "
             "if m in sys.modules))))\n"
             "sys.argv = ['modelctl', 'list', '--json']\n"
             "from modelctl.cli.main import run\n"
             "run()\n")
    env = terminal_run.terminal_env(80, MODELCTL_HOME=str(modelctl_home))
    proc = subprocess.run([sys.executable, "-c", probe], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "[]", proc.stderr
