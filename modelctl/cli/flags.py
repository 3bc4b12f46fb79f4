"""Checks on flag values that every command shares, and the shape of a group of subcommands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelctl.errors import UsageError

if TYPE_CHECKING:
    import typer


# Options whose empty value means something: `--system ''` sends no system message.
EMPTY_ALLOWED = frozenset({"system"})
# Options whose value may be all white space, though not empty: `--stop $'\n'` stops at a new line.
BLANK_ALLOWED = frozenset({"stop"})


def refuse_empty_values(command) -> None:
    """Make every text option of `command` and its subcommands refuse an empty value
    (`--provider ''`, `--since ''`): a flag given nothing is a mistake, not a request for the
    default, and is said as such instead of being ignored."""
    if getattr(command, "_empty_refused", False):
        return
    command._empty_refused = True
    for param in command.params:
        if (type(param).__name__.endswith("Option") and not param.is_flag and param.type.name in ("str", "text")
                and param.name not in EMPTY_ALLOWED):
            param.callback = _refusing_empty(param.callback, blank_ok=param.name in BLANK_ALLOWED)
    for sub in getattr(command, "commands", {}).values():
        refuse_empty_values(sub)


def _refusing_empty(callback, *, blank_ok: bool = False):
    def check(ctx, param, value):
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not (v if blank_ok else v.strip()) for v in values):
            raise UsageError(f"{param.opts[0]} needs a value; it was given an empty one")
        return callback(ctx, param, value) if callback else value
    return check


def command_group(help: str) -> "typer.Typer":
    """A group of subcommands (`modelctl config …`): its help without a subcommand, -h as --help."""
    import typer

    return typer.Typer(help=help, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
