"""Checks on flag values that every command shares, and the shape of a group of subcommands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelctl.errors import UsageError

if TYPE_CHECKING:
    import typer


def require_values(**flags: str | None) -> None:
    """An empty value for a flag that names something (`--template ''`) is a mistake, not a
    request for the default: say so rather than ignore the flag. Keyword names are flag names
    with `_` for `-`."""
    for name, value in flags.items():
        if value is not None and not value.strip():
            raise UsageError(f"--{name.replace('_', '-')} needs a value; it was given an empty one")


def command_group(help: str) -> "typer.Typer":
    """A group of subcommands (`modelctl config …`): its help without a subcommand, -h as --help."""
    import typer

    return typer.Typer(help=help, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
