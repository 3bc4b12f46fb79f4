"""`modelctl tools list`: every tool a chat can be given, with its schema and where it comes from
(the built-ins, `--functions` files, the MCP servers of config.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.flags import command_group
from modelctl.cli.help import examples

if TYPE_CHECKING:
    from modelctl.tools.toolbox import Tool

tools_app = command_group("The tools a model can call: built-ins, Python functions and MCP servers' tools.")

@tools_app.command("list", epilog=examples(
    ("Every tool, from every source", "modelctl tools list"),
    ("The tools of one MCP server, as JSON with their schemas", "modelctl tools list -T files --json"),
    ("What a functions file offers", "modelctl tools list --functions my_tools.py -T builtin"),
))
def list_tools(
    tool: Annotated[Optional[List[str]], opt.reworded(
        opt.Tools, "Only these (repeatable): a tool's name, an MCP server's name (all its tools), or builtin.")] = None,
    functions: opt.Functions = None,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array: name, description, parameters "
                                          "(a JSON Schema), origin, server, remote_name, read_only.")] = False,
) -> None:
    """Every tool available: its name as a model sees it, its origin and its arguments. Each MCP
    server is started to list its tools, then stopped; one that cannot be is named (exit code 7)."""
    from modelctl.errors import BackendError  # noqa: PLC0415 (modelctl.errors: not on the --help path)
    from modelctl.tools.toolbox import Toolbox, available_tools  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    failed: list[str] = []

    def report(message: str) -> None:
        failed.append(message)
        output.warn(message)

    if tool:
        with Toolbox.open(tool, functions or ()) as box:
            found = list(box.tools)
    else:
        found = available_tools(functions or (), notify=report)
    if as_json:
        output.print_records([t.to_dict() for t in found])
    else:
        output.table(["NAME", "ORIGIN", "ARGUMENTS", "DESCRIPTION"], [_row(t) for t in found], "Tools",
                     no_wrap=("NAME",), wrap=("DESCRIPTION",), drop=("ARGUMENTS",))
    if failed:
        raise BackendError(f"{len(failed)} MCP server{'s' if len(failed) > 1 else ''} could not be listed")


def _row(tool: "Tool") -> list[str]:
    parameters: Any = tool.spec.parameters
    properties = parameters.get("properties") or {}
    required = set(parameters.get("required") or ())
    arguments = ", ".join(name if name in required else f"{name}?" for name in properties)
    origin = tool.origin + (" (read-only)" if tool.read_only and tool.server else "")
    return [tool.name, origin, arguments or "-", tool.spec.description.strip().split("\n")[0] or "-"]


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools", rich_help_panel=panel.SETUP, epilog=examples(
        ("Every tool there is", "modelctl tools list"),
        ("Add an MCP server's tools", "modelctl mcp add files -- npx -y @modelcontextprotocol/server-filesystem ~/notes"),
    ))
