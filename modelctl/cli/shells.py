"""Shell completion for bash, zsh and fish: the scripts, and the answers modelctl gives them.

The candidates are data (model ids and provider names come from registries a user may have
downloaded), so no script evaluates, expands or splits what modelctl answers. A script sets
`_MODELCTL_COMPLETE=complete_<shell>` and `_MODELCTL_COMPLETE_LINE` (the command line up to the
cursor; bash also `_MODELCTL_COMPLETE_WORD`, readline's word), and reads back lines:

    files | values           first line: no candidates, complete file names | the candidates
    VALUE<TAB>DESCRIPTION    zsh and fish: one candidate a line, the description optional;
                             they quote what they insert (zsh's compadd, fish itself)
    REPLACEMENT              bash: what readline puts in place of its word, quoted here

A value holding a control character or a line separator cannot be one line of this answer nor
one word on the command line: it is not offered (`shell_complete.offerable`). File names are offered
only where a file may go: a parameter whose metavar names one (FILE, PATH, .gguf) or a value
typed as a path (`./`, `/`, `~`).

Scripts installed by earlier versions (Typer's: zsh's `eval`s the answer, bash's glob-expands
it) send no `_MODELCTL_COMPLETE_LINE`; they are answered in their own format, with only the
candidates that need no quoting at all, until `--install-completion` replaces them.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from typer._completion_classes import BashComplete, FishComplete, ZshComplete

from modelctl.cli.shell_complete import offerable
from modelctl.errors import ModelctlError, NotFoundError, UsageError
from modelctl.files import MiB, atomic_write, read_user_text

try:  # typer >= 0.20 vendors click
    from typer._click import shell_completion as _click_completion
except ImportError:  # pragma: no cover
    from click import shell_completion as _click_completion  # type: ignore[no-redef]

LINE_VAR = "_MODELCTL_COMPLETE_LINE"
WORD_VAR = "_MODELCTL_COMPLETE_WORD"
_PATH_WORDS = ("FILE", "PATH", "GGUF", "DIR")
# What a script from an earlier version can take unquoted.
_PLAIN = re.compile(r"[\w.+@%,/=:-]+", re.ASCII)
# Characters bash takes literally outside quotes; every other ASCII one gets a backslash.
_BASH_SAFE = re.compile(r"[\w./@%+,:=-]", re.ASCII)
# readline's default word breaks (COMP_WORDBREAKS) other than white space.
_WORD_BREAKS = "\"'><=;|&(:@"

# The scripts, as they are shipped (completions/ at the top of the repository links to them).
SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    """The completion script for `shell` (one of SHELLS). Each reads modelctl's answer as data:
    a line `files` or `values`, then one candidate a line; nothing in it is evaluated."""
    return (Path(__file__).parent / "completion_scripts" / f"modelctl.{shell}").read_text(encoding="utf-8")


# --- reading the command line --------------------------------------------------------------------


def _last_word(line: str) -> tuple[int, str, str | None]:
    """Where the last word of `line` starts, that word without its quoting, and the quote left
    open at its end (`'`, `"` or None): '…' and "…" quote, a backslash escapes the next
    character (in "…" only the ones it escapes there)."""
    start, word, quote, escaped = 0, [], None, False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
            if quote == '"' and ch not in '"\\$`':
                word.append("\\")
            word.append(ch)
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
            else:
                word.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\n":
            start, word = i + 1, []
        else:
            word.append(ch)
    return start, "".join(word), quote


def _wants_files(obj: Any, incomplete: str) -> bool:
    """Whether the word being completed (for `obj`, what click completes it with) can be a file."""
    if not hasattr(obj, "param_type_name"):  # a command: its subcommands and options, never files
        return False
    if getattr(obj, "is_flag", False):
        return False
    if incomplete.startswith(("/", "./", "../", "~")):
        return True
    metavar = (getattr(obj, "metavar", None) or "").upper()
    return any(word in metavar for word in _PATH_WORDS)


def _one_line(text: str | None) -> str:
    """A help text as one line of printable text."""
    return " ".join("".join(ch if offerable(ch) else " " for ch in text or "").split())


def _candidates(shell: Any, line: str) -> tuple[list[tuple[str, str]], bool]:
    """The (value, description) of each candidate for the last word of `line`, whole words
    (`--model=gemma-3-270m` for `--model=ge`), and whether file names should be offered instead."""
    start, incomplete, _ = _last_word(line)
    args = _click_completion.split_arg_string(line[:start])[1:]
    try:
        ctx = _click_completion._resolve_context(shell.cli, shell.ctx_args, shell.prog_name, args)
        obj, value = _click_completion._resolve_incomplete(ctx, args, incomplete)
        items = obj.shell_complete(ctx, value)
    except Exception:
        return [], False
    # click completes the value of `--model=ge` (`ge`); the shells replace the whole word.
    head = incomplete[: len(incomplete) - len(value)] if incomplete.endswith(value) else ""
    found = [(head + str(item.value), _one_line(item.help)) for item in items]
    found = [(v, h) for v, h in found if offerable(v)]
    return found, not found and _wants_files(obj, value)


# --- bash ----------------------------------------------------------------------------------------


def _bash_quote(text: str, quote: str | None) -> str:
    """`text` as bash reads it literally after an open `quote` (or none)."""
    if quote == "'":
        return text.replace("'", "'\\''")
    if quote == '"':  # `!` is history expansion even there: it goes outside the quotes
        return re.sub(r'(["\\$`])', r"\\\1", text).replace("!", '"\\!"')
    return "".join(ch if ord(ch) > 127 or _BASH_SAFE.match(ch) else "\\" + ch for ch in text)


def _bash_replacements(values: list[str], line: str, word: str) -> list[str]:
    """What readline puts in place of its `word` (COMP_WORDS[COMP_CWORD]) for each value.

    readline's word is what follows the last of COMP_WORDBREAKS in the shell word (`mo` of
    `org:mo`, `gem` of `--model=gem`), and an opening quote it starts with stays; the part of the
    value before it is on the line already. A value that does not start with what is typed
    there is left out."""
    start = _last_word(line)[0]
    typed = next(k for k in range(len(word), -1, -1) if line.endswith(word[:k]))  # the cursor may be mid-word
    cut = len(line) - typed
    if typed and (word[0] in "'\"" or (typed == 1 and word[0] in _WORD_BREAKS)):
        cut += 1  # readline's word starts after an opening quote, or after a break ending the line
    _, before, quote = _last_word(line[start:cut]) if cut > start else (0, "", None)
    return [_bash_quote(v[len(before):], quote) for v in values if v.startswith(before)]


class _Answering:
    """Answers the current scripts (`LINE_VAR` set) with `_lines`; the scripts of earlier
    versions in Typer's formats, with only the candidates they can take unquoted (the current
    scripts' answers do not pass through `get_completions`)."""

    def _lines(self, found: list[tuple[str, str]], line: str) -> list[str]:
        return [f"{value}\t{help}" if help else value for value, help in found]

    def complete(self) -> str:
        line = os.environ.get(LINE_VAR)
        if line is None:
            try:
                answer: str = super().complete()  # type: ignore[misc]
                return answer
            except Exception:  # a request without the variables its script sets
                return ""
        found, files = _candidates(self, line)
        return "\n".join(["files" if files else "values", *self._lines(found, line)])

    def get_completions(self, args: list[str], incomplete: str) -> list[Any]:
        items = super().get_completions(args, incomplete)  # type: ignore[misc]
        return [item for item in items if _PLAIN.fullmatch(str(item.value))]


class ModelctlBashComplete(_Answering, BashComplete):
    def _lines(self, found: list[tuple[str, str]], line: str) -> list[str]:
        return _bash_replacements([value for value, _ in found], line, os.environ.get(WORD_VAR, ""))


class ModelctlZshComplete(_Answering, ZshComplete):
    pass


class ModelctlFishComplete(_Answering, FishComplete):
    pass


def install() -> None:
    """Answer completion requests with the classes above."""
    _click_completion.add_completion_class(ModelctlBashComplete, "bash")
    _click_completion.add_completion_class(ModelctlZshComplete, "zsh")
    _click_completion.add_completion_class(ModelctlFishComplete, "fish")


# --- --show-completion and --install-completion --------------------------------------------------

_AUTO = "auto"  # the value of an option given without one: the shell modelctl runs in


def with_shell_values(args: list[str], options: tuple[str, ...], params: list[Any]) -> list[str]:
    """`args` with `options` (`--show-completion`, `--install-completion`) given no shell (last,
    or before another option) as `--show-completion=auto`: a click option takes a value or none,
    not either. Only modelctl's own options (`params`) are looked at, up to the command."""
    takes_value = {opt for p in params if not getattr(p, "is_flag", True) for opt in p.opts}
    out = list(args)
    skip = False
    for i, arg in enumerate(out):
        if skip:
            skip = False
        elif not arg.startswith("-") or arg == "--":
            break  # the command: its own options follow
        elif arg in options and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = f"{arg}={_AUTO}"
        else:
            skip = arg in takes_value
    return out


def _detected_shell() -> str | None:
    try:
        import shellingham  # noqa: PLC0415 (shellingham: optional)

        return str(shellingham.detect_shell()[0])
    except Exception:  # not installed, or no shell found among the parent processes
        return Path(os.environ.get("SHELL", "")).name or None


def _shell(value: str) -> str:
    name = _detected_shell() if value == _AUTO else value
    if name is None:
        raise UsageError("cannot tell which shell this is: name it (bash, zsh or fish)")
    if name not in SHELLS:
        raise UsageError(f"completion is available for bash, zsh and fish, not {name!r}")
    return name


def completion_option(option: str, value: str) -> None:
    """Print (`--show-completion`) or install (`--install-completion`) the script for the shell
    `value` names."""
    shell = _shell(value)
    if option == "--show-completion":
        sys.stdout.write(script(shell))
        return
    path = _install(shell)
    print(f"{shell} completion installed in {path}; it takes effect in new {shell} sessions")


# Where Typer installed the scripts of earlier versions: installing replaces them.
_INSTALLED = {
    "bash": ".bash_completions/modelctl.sh",
    "zsh": ".zfunc/_modelctl",
    "fish": ".config/fish/completions/modelctl.fish",
}


def _install(shell: str) -> Path:
    home = Path.home()
    path = home / _INSTALLED[shell]
    try:
        atomic_write(path, script(shell).encode())
        if shell == "bash":
            _add_line(home / ".bashrc", f"source {shlex.quote(str(path))}", str(path))
        elif shell == "zsh":
            _add_line(home / ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit", ".zfunc")
    except OSError as exc:
        raise ModelctlError(f"cannot install {shell} completion: {exc.filename or path}: {exc.strerror or exc}") from None
    return path


def _add_line(rc: Path, line: str, present: str) -> None:
    """Append `line` to the shell's start-up file `rc` unless it mentions `present` already."""

    try:
        text = read_user_text(rc, "shell start-up file", limit=16 * MiB)
    except NotFoundError:
        text = ""
    if present not in text:
        with open(rc, "a", encoding="utf-8") as fh:
            fh.write(("\n" if text and not text.endswith("\n") else "") + line + "\n")
