"""Checks on flag values that every command shares, and the shape of a group of subcommands."""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any, Callable

import typer

from modelctl.errors import UsageError
from modelctl.numbers import OPTION_INT_RANGE, number_problem

if TYPE_CHECKING:
    import typer
    from typer import _click as click  # the copy of click that typer's commands are made of


# Options whose empty value means something: `--system ''` sends no system message.
EMPTY_ALLOWED = frozenset({"system"})
# Options whose value may be all white space, though not empty: `--stop $'\n'` stops at a new line.
BLANK_ALLOWED = frozenset({"stop"})


# Parameters that name files: their value may hold bytes that are not UTF-8 (a file name on
# Linux), passed on to the file system as Python decoded them. Every other text is refused then.
PATH_PARAMS = frozenset({"registry", "path", "model", "messages", "template", "schema", "image", "mmproj",
                         "audio", "output", "output_file"})


_TEXT_TYPES = ("str", "text")
_NUMBER_TYPES = ("float", "float range", "int", "int range", "integer", "integer range")
_SURROGATE = re.compile("[\ud800-\udfff]")  # how Python hands on bytes that are not UTF-8

_checked: weakref.WeakSet[click.Command] = weakref.WeakSet()  # the commands given their checks

Check = Callable[["click.Parameter", Any], None]  # (click parameter, one value) -> None, or a UsageError
Callback = Callable[["click.Context", "click.Parameter", Any], Any]  # click's parameter callback


def check_values(command: click.Command) -> None:
    """Give every option and argument of `command` and its subcommands the checks its type calls
    for, run as click reads each value, before any command runs:

    - text options refuse an empty value (`--provider ''`, `--since ''`): a flag given nothing
      is a mistake, not a request for the default (EMPTY_ALLOWED and BLANK_ALLOWED aside);
    - text refuses bytes that are not UTF-8 (`show $'\\xff'`), except in PATH_PARAMS;
    - numbers refuse NaN and infinity (`--max-cost nan` compares false with every cost, so it
      would lift the cap; `1e309` reads as infinity), and whole numbers given to an option
      outside OPTION_INT_RANGE (narrowed by the option's own `min`/`max`)."""
    if command in _checked:
        return
    _checked.add(command)
    for param in command.params:
        checks = _checks_for(param)
        if checks:
            param.callback = _checking(param.callback, checks)
    for sub in getattr(command, "commands", {}).values():
        check_values(sub)


def _checks_for(param: click.Parameter) -> list[Check]:
    option = param.param_type_name == "option"
    kind = param.type.name
    checks: list[Check] = []
    if kind in _TEXT_TYPES:
        if option and not getattr(param, "is_flag", False) and param.name not in EMPTY_ALLOWED:
            checks.append(_refuse_blank if param.name in BLANK_ALLOWED else _refuse_empty)
        if param.name not in PATH_PARAMS:
            checks.append(_refuse_undecodable)
    elif kind in _NUMBER_TYPES:
        checks.append(_refuse_unusable_number)
    return checks


def _checking(callback: Callback | None, checks: list[Check]) -> Callback:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None:
                for each in checks:
                    each(param, v)
        return callback(ctx, param, value) if callback else value
    return check


def _name(param: click.Parameter) -> str:
    return param.opts[0] if param.param_type_name == "option" else param.human_readable_name.strip("[].")


def _refuse_empty(param: click.Parameter, value: Any) -> None:
    if isinstance(value, str) and not value.strip():
        raise UsageError(f"{param.opts[0]} needs a value; it was given an empty one")


def _refuse_blank(param: click.Parameter, value: Any) -> None:
    if isinstance(value, str) and not value:
        raise UsageError(f"{param.opts[0]} needs a value; it was given an empty one")


def _refuse_undecodable(param: click.Parameter, value: Any) -> None:
    if isinstance(value, str) and _SURROGATE.search(value):
        try:
            raw = value.encode("utf-8", "surrogateescape")  # the bytes as they were given
        except UnicodeEncodeError:  # a surrogate no decoding made (a caller's own string)
            raw = value.encode("utf-8", "backslashreplace")
        shown = repr(raw[:60])[1:]  # b'...' without the b: each byte that is not ASCII as \xNN
        raise UsageError(f"{_name(param)} {shown}{'…' if len(raw) > 60 else ''}: not UTF-8 text",
                         hint="modelctl takes names and text in UTF-8")


def _refuse_unusable_number(param: click.Parameter, value: Any) -> None:
    int_range = None
    if param.param_type_name == "option":
        low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
        int_range = (OPTION_INT_RANGE[0] if low is None else low, OPTION_INT_RANGE[1] if high is None else high)
    problem = number_problem(value, int_range)
    if problem:
        raise UsageError(f"{_name(param)} {value}: {problem}")


def command_group(help: str) -> "typer.Typer":
    """A group of subcommands (`modelctl config …`): its help without a subcommand, -h as --help."""

    return typer.Typer(help=help, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
