"""How `--help` looks.

At a terminal (and NO_COLOR unset or empty): Typer's rich help, each command's options in the
panels their `rich_help_panel` names. Piped, or with NO_COLOR: click's plain help, the same
groups as plain sections. Either way a command's epilog holds its examples (`examples()`), shown
line for line under "Examples". Only typer, already loaded, is imported here: rich only when help
is printed at a terminal.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any, Callable

from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

from modelctl.chat.terminal import out, styled

if TYPE_CHECKING:
    import typer
    from typer import _click as click  # the copy of click that typer's commands are made of

# The panels the options of the commands that open a model fall in, in the order they are shown.
MODEL = "Model"
GENERATION = "Generation"
OUTPUT = "Output"
STRUCTURED = "Structured output"
REASONING = "Reasoning"
HISTORY = "History"
SELECTION = "Selection & cost"
IMAGES = "Images"
TOOLS = "Tools"
SERVER = "Server/API"
LOCAL = "Local (llama.cpp)"
DEBUG = "Debug"
_PANEL_ORDER = (MODEL, GENERATION, OUTPUT, STRUCTURED, REASONING, TOOLS, HISTORY, SELECTION, IMAGES, SERVER, LOCAL, DEBUG)

# The sections of `modelctl --help`: the panels the commands fall in, in the order they are shown.
FIND = "Find models"
STORE = "Local models"
GENERATE = "Chat and generate"
TASKS = "Other tasks"
RECORDS = "History and usage"
SETUP = "Settings and checks"
_COMMAND_PANEL_ORDER = (FIND, STORE, GENERATE, TASKS, RECORDS, SETUP)


def examples(*pairs: tuple[str, str]) -> str:
    """A command's epilog: its examples, each (what it does, the command line)."""
    return "\n".join(f"# {what}\n{line}" for what, line in pairs)


def _styled() -> bool:
    return styled(sys.stdout)


class _Help:
    """Help for a command or a group: rich at a terminal, plain sections elsewhere."""

    epilog: str | None
    rich_markup_mode: Any

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _order_panels(self)
        if not _styled():
            self.rich_markup_mode = None  # click's formatter, through the methods below
            super().format_help(ctx, formatter)  # type: ignore[misc]
            return
        self.rich_markup_mode = "rich"
        _reflow(self)
        epilog, self.epilog = self.epilog, None  # the examples get a panel of their own
        try:
            super().format_help(ctx, formatter)  # type: ignore[misc]
        finally:
            self.epilog = epilog
        if epilog:
            _examples_panel(epilog)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Arguments, Options, then each panel of options, as plain sections."""
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            record = param.get_help_record(ctx)
            if record is not None:
                default = "Arguments" if param.param_type_name == "argument" else "Options"
                sections.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(record)
        for name, records in sections.items():
            if records:
                with formatter.section(name):
                    formatter.write_dl(records)
        if isinstance(self, TyperGroup):
            self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """A group's commands, in the sections their `rich_help_panel` names."""
        sections: dict[str, list[tuple[str, str]]] = {"Commands": []}
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]  # type: ignore[attr-defined]
        shown = [(name, c) for name, c in commands if c is not None and not c.hidden]
        limit = formatter.width - 6 - max((len(name) for name, _ in shown), default=0)
        for name, command in shown:
            panel = getattr(command, "rich_help_panel", None) or "Commands"
            sections.setdefault(panel, []).append((name, command.get_short_help_str(limit)))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The examples, line for line (click would rewrap them as a paragraph)."""
        if self.epilog:
            with formatter.section("Examples"):
                for line in self.epilog.splitlines():
                    formatter.write(f"{'':>{formatter.current_indent}}{line}\n" if line else "\n")


def _reflow(command: Any) -> None:
    """Help text as paragraphs that the terminal wraps: Typer's rich help keeps the line breaks of
    a docstring, which its own panels then break again."""

    def flowed(text: str) -> str:
        return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))

    if command.help:
        command.help = flowed(command.help)
    for sub in getattr(command, "commands", {}).values():
        if sub.help and not sub.short_help:
            sub.short_help = flowed(sub.help).split("\n\n")[0]


def _order_panels(command: Any) -> None:
    """Options, and a group's commands, in the order of their panels (within one, as declared),
    so that both kinds of help show them so: Model first, Debug last."""
    def rank(order: tuple[str, ...]) -> Callable[[Any], int]:
        return lambda item: order.index(item.rich_help_panel) if getattr(item, "rich_help_panel", None) in order else -1

    command.params.sort(key=rank(_PANEL_ORDER))
    if isinstance(getattr(command, "commands", None), dict):
        by_panel = sorted(command.commands.items(), key=lambda pair: rank(_COMMAND_PANEL_ORDER)(pair[1]))
        command.commands = dict(by_panel)


def _examples_panel(epilog: str) -> None:
    """The examples at a terminal, in a panel like Typer's: comments dim, commands bold."""
    from rich.panel import Panel  # noqa: PLC0415 (rich: imported only where used)
    from rich.text import Text  # noqa: PLC0415 (rich: imported only where used)

    text = Text()
    for i, line in enumerate(epilog.splitlines()):
        text.append(("\n" if i else "") + line, style="dim" if line.startswith("#") else "bold")
    out().print(Panel(text, title="Examples", title_align="left", border_style="dim"))


class HelpCommand(_Help, TyperCommand):
    """A command whose help is described above."""


class HelpGroup(_Help, TyperGroup):
    """A group whose help is described above."""


def install(app: "typer.Typer") -> None:
    """Give every command and group of `app` (before Typer turns them into click commands) the
    help described above."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):  # Typer's default
            info.cls = HelpCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _set_group_class(group.typer_instance)
            install(group.typer_instance)


def _set_group_class(app: "typer.Typer") -> None:
    if isinstance(app.info.cls, DefaultPlaceholder) or app.info.cls in (None, TyperGroup):
        app.info.cls = HelpGroup

