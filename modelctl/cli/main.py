"""The `modelctl` application: global options, error handling, and the list of command modules.

Each command module defines its commands and a `register(app)` function. Command modules import
only typer and the standard library at module level, so `modelctl list` never pays for llama.cpp.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import sys
import traceback
from typing import TYPE_CHECKING, Any, Iterable, MutableMapping, NoReturn, Optional

import typer

from modelctl.cli import help, output, state
from modelctl.cli.flags import check_values
from modelctl.errors import EXIT_INTERRUPTED, ModelctlError
from modelctl.terminal_text import safe
from modelctl.version import __version__

if TYPE_CHECKING:
    from typer import _click as click  # the copy of click that typer's commands are made of

# Modules under modelctl.cli whose register(app) adds commands, in help order, with the names of
# the commands each adds.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "catalog": ("list", "search", "show"),
    "registry_cmd": ("registry",),  # registry validate|export|path
    "add_cmd": ("add",),
    "store_cmd": ("pull", "import", "rm", "du"),
    "ps_cmd": ("ps", "stop"),  # a running `modelctl serve`'s loaded models
    "prompt_cmd": ("prompt", "templates"),  # templates [show]
    "chat_cmd": ("chat", "embed"),
    "complete_cmd": ("complete",),
    "serve_cmd": ("serve",),
    "history_cmd": ("history",),  # history list|show|search|rm|export
    "usage_cmd": ("usage",),
    "image_cmd": ("image",),
    "speak_cmd": ("speak",),
    "transcribe_cmd": ("transcribe",),
    "classify_cmd": ("classify",),
    "fill_mask_cmd": ("fill-mask",),
    "keys_cmd": ("keys",),  # keys set|list|rm
    "config_cmd": ("config",),  # config get|set|unset|list|path
    "alias_cmd": ("alias",),  # alias set|list|rm
    "tools_cmd": ("tools",),  # tools list
    "mcp_cmd": ("mcp",),  # mcp add|list|rm|import
    "doctor_cmd": ("doctor",),
    "tokens_cmd": ("tokens",),
    "services_cmd": ("services",),
    "deploy_cmd": ("deploy",),  # manifests for vLLM elsewhere
}


def _debug_requested() -> bool:
    return "--debug" in sys.argv[1:] or os.environ.get("MODELCTL_DEBUG", "") not in ("", "0")


def _is_usage_error(exc: Exception) -> bool:
    # click's UsageError (vendored by newer typer releases, so matched by shape, not by class);
    # a group called without a command shows its help instead.
    if type(exc).__name__ == "NoArgsIsHelpError":
        return False
    return getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message") and hasattr(exc, "ctx")


def _usage_error(exc: Exception) -> NoReturn:
    """Bad flags or arguments: one line, like every other error, instead of click's block."""
    where = exc.ctx.command_path if exc.ctx else "modelctl"  # type: ignore[attr-defined]
    message = _shortened_words(exc.format_message().rstrip("."))  # type: ignore[attr-defined]
    output.error_line(f"{message} (see `{where} --help`)")
    raise typer.Exit(2) from None


def _shortened_words(message: str, longest: int = 120) -> str:
    """click's message with each very long word (a 5,000-digit value it echoes) cut in its middle."""

    def cut(m: re.Match[str]) -> str:
        word = m.group()
        return f"{word[:60]}…{word[-20:]} ({len(word):,} characters)"

    return re.sub(rf"\S{{{longest + 1},}}", cut, message)


def _debug_traceback() -> None:
    """Under --debug, the traceback of the error being handled: redacted, controls escaped."""
    if _debug_requested():
        for line in traceback.format_exc().splitlines():
            sys.stderr.write(safe(line) + "\n")


def _unexpected(exc: BaseException) -> str:
    """The one line for an exception no part of modelctl turned into a ModelctlError."""
    if isinstance(exc, OSError) and exc.strerror:
        from modelctl.config import home_problem  # noqa: PLC0415 (modelctl.config: not on the --help path)

        where = f"{exc.filename}: " if exc.filename else ""
        return home_problem() or f"{where}{exc.strerror}"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to process"
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} (--debug shows where)"


class ModelctlGroup(help.HelpGroup):
    """Turns library errors into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelctlError as exc:
            _debug_traceback()
            output.error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("modelctl: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # Downstream closed the pipe (`modelctl list | head`): not an error worth a message.
            raise typer.Exit(output.stdout_closed()) from None
        except output.StdoutError as exc:  # stdout on a full disk, /dev/full
            raise typer.Exit(output.stdout_failed(exc)) from None
        except Exception as exc:
            if _is_usage_error(exc):
                _usage_error(exc)
            if isinstance(exc, (typer.Exit, typer.Abort)) or "click" in type(exc).__module__:
                raise  # click's own control flow
            # Whatever escaped (a full disk, a home directory that is a file): one line, exit 1.
            _debug_traceback()
            output.error_line(_unexpected(exc))
            raise typer.Exit(1) from None

    def _main_shell_completion(self, ctx_args: MutableMapping[str, Any], prog_name: str,
                               complete_var: str | None = None) -> None:
        # A <TAB> from a shell: answered as data by modelctl's own scripts (cli/shells.py). Asked
        # at every start: the scripts' module is imported only when a shell is asking.
        if not os.environ.get(complete_var or _COMPLETE_VAR):
            return None
        from modelctl.cli import shells  # noqa: PLC0415 (lazy on purpose: docs/architecture.md)

        shells.install()
        return super()._main_shell_completion(ctx_args, prog_name, complete_var)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:  # the top-level options are parsed here, outside invoke()
            check_values(self)
            if any(arg.startswith(_COMPLETION_OPTIONS) for arg in args):
                from modelctl.cli import shells  # noqa: PLC0415 (modelctl.cli.shells: not on the list --json path)

                args = shells.with_shell_values(args, _COMPLETION_OPTIONS, self.params)
            return super().make_context(info_name, args, parent=parent, **extra)
        except ModelctlError as exc:
            output.error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            _usage_error(exc)


_EXAMPLES = help.examples(
    ("Models that run on this machine without paying", "modelctl list --free --local"),
    ("One answer from the default local model", 'modelctl chat "Write one sentence about the sea."'),
    ("An interactive chat with a hosted model", "modelctl chat -m gpt-4o"),
    ("Any command's options and examples", "modelctl chat --help"),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelctl {__version__}")
        raise typer.Exit()


_COMPLETION_OPTIONS = ("--install-completion", "--show-completion")
_COMPLETE_VAR = "_MODELCTL_COMPLETE"  # set by the completion scripts when a shell asks


def _completion(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]) -> None:
    if value is not None and not ctx.resilient_parsing:
        from modelctl.cli import shells  # noqa: PLC0415 (modelctl.cli.shells: not on the list --json path)

        shells.completion_option(param.opts[0], value)
        raise typer.Exit()


def main(
    registry: Optional[str] = typer.Option(
        None,
        "--registry",
        envvar="MODELCTL_REGISTRY",
        metavar="PATH",
        help="Extra registry file layered over the built-in and user registries.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    install_completion: Optional[str] = typer.Option(
        None, _COMPLETION_OPTIONS[0], metavar="[SHELL]", callback=_completion, expose_value=False, is_eager=True,
        help="Install completion for SHELL: bash, zsh or fish (by default the shell this runs in).",
    ),
    show_completion: Optional[str] = typer.Option(
        None, _COMPLETION_OPTIONS[1], metavar="[SHELL]", callback=_completion, expose_value=False, is_eager=True,
        help="Print the completion script for SHELL: bash, zsh or fish (by default the shell this runs in).",
    ),
) -> None:
    state.set_registry_path(registry)


def make_app(modules: Iterable[str] = COMMAND_MODULES, only: str | None = None) -> typer.Typer:
    """The `modelctl` application with the commands of `modules`; with `only`, just the command
    of that name (Typer turns each registered command into a click command at every start, its
    parameters read from the signature: `list` need not pay for `search` and `show`)."""
    cli = typer.Typer(
        cls=ModelctlGroup,
        name="modelctl",
        help="List, search, pull, inspect and chat with language models: local (llama.cpp), "
        "Ollama, OpenAI-compatible servers and hosted APIs.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=False,  # modelctl's own --install-completion and --show-completion
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    cli.callback(epilog=_EXAMPLES)(main)
    for name in modules:
        importlib.import_module(f"modelctl.cli.{name}").register(cli)
    if only is not None:
        cli.registered_commands = [c for c in cli.registered_commands if c.name == only]
        cli.registered_groups = [g for g in cli.registered_groups if g.name == only]
    help.install(cli)
    return cli


def command_named(argv: list[str]) -> str | None:
    """The command a run with these arguments runs; None for help, completion, --version or a
    name that is no command (whose error lists the commands): those need every command."""
    if os.environ.get(_COMPLETE_VAR):
        return None
    args = iter(argv)
    for arg in args:
        if arg == "--registry":
            next(args, None)
        elif not arg.startswith("--registry="):
            if arg.startswith("-"):  # --help, --version, or an option modelctl does not have
                return None
            return arg if any(arg in names for names in COMMAND_MODULES.values()) else None
    return None


def modules_for(argv: list[str]) -> list[str]:
    """The command modules a run with these arguments needs: only the one that defines the
    command named, since Typer turns every registered command into a click command (their
    parameters read from their signatures) at each start; all of them when no command is named."""
    command = command_named(argv)
    if command is None:
        return list(COMMAND_MODULES)
    return [m for m, names in COMMAND_MODULES.items() if command in names]


def __getattr__(name: str) -> typer.Typer:
    # `app`, the whole CLI (for tests and tools that import it), built when first asked for.
    if name == "app":
        globals()["app"] = whole = make_app()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# A run of modelctl allocates mostly objects that live as long as the process: modules, classes,
# functions, the registry. The collector's default (a pass every 700 allocations) walks them again
# and again while a command starts, and tears them down once more at exit, where the operating
# system frees them anyway. Measured: about 3 ms of `list --json`'s 70 ms for the passes, 10 ms
# for the teardown; more for `chat`, which imports more. Reference cycles are still collected,
# only less often; at exit, objects in cycles are left unfinalized (everything modelctl writes is
# closed explicitly before that; atexit handlers still run).
_GC_THRESHOLD = 50_000


def run() -> None:
    """Console-script entry point."""
    gc.set_threshold(_GC_THRESHOLD)
    for name in ("stdout", "stderr"):  # started with the stream closed (`>&-`): as if nobody reads it
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))
    output.tolerate_unencodable()
    output.guard_stdout()
    code: int | str | None = 0
    try:
        argv = sys.argv[1:]
        make_app(modules_for(argv), only=command_named(argv))(prog_name="modelctl")
    except SystemExit as done:
        code = done.code
    except output.StdoutError as exc:  # outside a command: --version, --help
        code = output.stdout_failed(exc)
    code = _flushed(code)
    gc.freeze()  # the interpreter's teardown skips what the collector tracks (see _GC_THRESHOLD)
    sys.exit(code)


def _flushed(code: int | str | None) -> int | str | None:
    """The exit status, once stdout is flushed: here, where its failure can still be handled,
    not at exit (where Python prints a traceback and exits 120). A reader that went away is a
    quiet 0; a stdout that cannot be written (a full disk) is one line and 1. A command's own
    error status stands."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        closed = output.stdout_closed()
        return code or closed
    except OSError as exc:
        failed = output.stdout_failed(exc)
        return code or failed
    return code
