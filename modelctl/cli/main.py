"""The `modelctl` application: global options, error handling, and the list of command modules.

Each command module defines its commands and a `register(app)` function. Command modules import
only typer and the standard library at module level, so `modelctl list` never pays for llama.cpp.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from modelctl import __version__
from modelctl.cli import state
from modelctl.errors import EXIT_INTERRUPTED, ModelctlError

# Modules under modelctl.cli whose register(app) adds commands, in help order.
COMMAND_MODULES = [
    "catalog",  # list, search, show
    "registry_cmd",  # registry validate|export|path
    "store_cmd",  # pull, import, rm, du
    "prompt_cmd",  # prompt, templates [show]
    "chat_cmd",  # chat, embed
    "keys_cmd",  # keys set|list|rm
]


def _debug_requested() -> bool:
    return "--debug" in sys.argv[1:] or os.environ.get("MODELCTL_DEBUG", "") not in ("", "0")


def _is_usage_error(exc: Exception) -> bool:
    # click's UsageError (vendored by newer typer releases, so matched by shape, not by class);
    # a group called without a command shows its help instead.
    if type(exc).__name__ == "NoArgsIsHelpError":
        return False
    return getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message") and hasattr(exc, "ctx")


def _usage_error(exc: Exception) -> None:
    """Bad flags or arguments: one line, like every other error, instead of click's block."""
    where = exc.ctx.command_path if exc.ctx else "modelctl"  # type: ignore[attr-defined]
    message = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
    typer.echo(f"modelctl: error: {message} (see `{where} --help`)", err=True)
    raise typer.Exit(2) from None


class ModelctlGroup(TyperGroup):
    """Turns library errors into one line on stderr and a documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModelctlError as exc:
            if _debug_requested():
                import traceback

                traceback.print_exc()
            typer.echo(f"modelctl: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("modelctl: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # Downstream closed the pipe (`modelctl list | head`): not an error worth a traceback.
            sys.stderr.close()
            raise typer.Exit(0) from None
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            _usage_error(exc)

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the top-level options are parsed here, outside invoke()
            return super().make_context(info_name, args, parent=parent, **extra)
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            _usage_error(exc)


app = typer.Typer(
    cls=ModelctlGroup,
    name="modelctl",
    help="List, search, pull, inspect and chat with language models: local (llama.cpp), "
    "Ollama, OpenAI-compatible servers and hosted APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelctl {__version__}")
        raise typer.Exit()


@app.callback()
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
) -> None:
    state.set_registry_path(registry)


for _name in COMMAND_MODULES:
    importlib.import_module(f"modelctl.cli.{_name}").register(app)


def run() -> None:
    """Console-script entry point."""
    app(prog_name="modelctl")
