"""`modelctl mcp add|list|rm|import`: the MCP servers of config.toml ([mcp.servers.NAME]), whose
tools a chat can be given (`chat -T NAME`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.flags import command_group
from modelctl.cli.help import examples
from modelctl.terminal_text import escape_controls, safe

if TYPE_CHECKING:
    from modelctl.tools.mcp_config import ServerConfig
    from modelctl.tools.mcp_edit import Imported

mcp_app = command_group("MCP servers whose tools a model can call: add, list, remove, import.")

_NAME_HELP = "The server's name: letters, digits, '_', '-' and '.'. Its tools are called NAME_TOOL."


@mcp_app.command("add", epilog=examples(
    ("A local server (a child process)", "modelctl mcp add files -- npx -y @modelcontextprotocol/server-filesystem ~/notes"),
    ("A remote server, its token from the environment",
     "modelctl mcp add search --url https://mcp.example.com/mcp --header 'Authorization=Bearer ${SEARCH_TOKEN}'"),
    ("A variable the child needs", "modelctl mcp add gh --env 'GITHUB_TOKEN=${GITHUB_TOKEN}' -- github-mcp-server stdio"),
))
def add(
    name: str = typer.Argument(..., help=_NAME_HELP),
    command: Optional[List[str]] = typer.Argument(None, metavar="[-- COMMAND [ARGS]...]",
                                                  help="The command that runs a local server (after --)."),
    url: Optional[str] = typer.Option(None, "--url", metavar="URL", help="A remote server's address (streamable HTTP)."),
    header: Optional[List[str]] = typer.Option(None, "--header", metavar="KEY=VALUE",
                                               help="A header sent to a remote server (repeatable); ${VAR} reads a variable."),
    env: Optional[List[str]] = typer.Option(None, "--env", metavar="KEY=VALUE",
                                            help="A variable for a local server (repeatable); ${VAR} reads one of yours."),
    cwd: Optional[str] = typer.Option(None, "--cwd", metavar="DIR", help="The directory a local server runs in."),
    transport: Optional[str] = typer.Option(None, "--transport", metavar="http|sse",
                                            help="sse: a remote server on the older HTTP+SSE transport."),
    approve: Optional[str] = typer.Option(None, "--approve", metavar="allow|ask|deny",
                                          help="Whether its tools run without asking (default: ask)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a server of that name."),
) -> None:
    """Add an MCP server to config.toml: a local one (`-- COMMAND ARGS`) or a remote one (`--url`).
    A call may take 60 s unless `modelctl config set mcp.servers.NAME.timeout SECONDS` says otherwise."""
    from modelctl.errors import UsageError  # noqa: PLC0415 (modelctl.errors: not on the --help path)
    from modelctl.tools.mcp_config import check_name  # noqa: PLC0415 (modelctl.tools: not on the --help path)
    from modelctl.tools.mcp_edit import Imported, add_servers, server_table  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    if bool(command) == bool(url):
        raise UsageError("give either the command of a local server (after --) or --url", hint="see `modelctl mcp add --help`")
    table = server_table(command=command, url=url, env=_pairs(env, "--env"), cwd=cwd,
                         headers=_pairs(header, "--header"), transport=transport, approve=approve)
    (server,) = add_servers([Imported(check_name(name), table)], replace=replace)
    _told(server, "added")


def _pairs(values: Optional[List[str]], flag: str) -> dict[str, str]:
    from modelctl.errors import UsageError  # noqa: PLC0415 (modelctl.errors: not on the --help path)

    pairs: dict[str, str] = {}
    for value in values or ():
        key, eq, text = value.partition("=")
        if not eq and flag == "--header":
            key, eq, text = value.partition(":")
        if not eq or not key.strip():
            raise UsageError(f"{flag} takes KEY=VALUE, not {value!r}")
        pairs[key.strip()] = text.strip() if flag == "--header" else text
    return pairs


def _told(server: "Imported", what: str) -> None:
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)

    table = server.table
    target = table.get("url") or " ".join([table.get("command", ""), *table.get("args", [])])
    notes = f" ({'; '.join(server.notes)})" if server.notes else ""
    sys.stderr.write(safe(f"modelctl: {what} the MCP server {server.name}: {target} in {get_paths().config_file}"
                          f"{notes}") + "\n")


@mcp_app.command("list", epilog=examples(
    ("The servers of config.toml", "modelctl mcp list"),
    ("Each started, its tools counted", "modelctl mcp list --tools"),
))
def list_servers(
    tools: bool = typer.Option(False, "--tools", help="Start each server and list its tools (then stop it)."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array (header values and credentials hidden).")] = False,
) -> None:
    """The MCP servers of config.toml: name, transport, command or URL, approval."""
    from modelctl.tools.mcp_config import load_servers  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    servers = load_servers()
    found: dict[str, Any] = {}
    if tools:
        from modelctl.tools.toolbox import server_tools  # noqa: PLC0415 (modelctl.tools: not on the --help path)

        found = server_tools(list(servers.values()))
    records = [_record(s, found.get(s.name), tools) for s in servers.values()]
    if as_json:
        output.print_records(records)
        return
    columns = ["NAME", "TRANSPORT", "COMMAND OR URL", *(["TOOLS"] if tools else []), "APPROVE"]
    rows = [[s.name, s.transport, s.target(), *([_count(r)] if tools else []), s.approve or "ask"]
            for s, r in zip(servers.values(), records)]
    output.table(columns, rows, "MCP servers", no_wrap=("NAME",), wrap=("COMMAND OR URL", "TOOLS"))


def _record(server: "ServerConfig", found: Any, tools: bool) -> dict[str, Any]:
    record = server.to_dict()
    if tools:
        failed = isinstance(found, Exception)
        record["tools"] = None if failed else [t.name for t in found]
        record["error"] = str(found) if failed else None
    return record


def _count(record: dict[str, Any]) -> str:
    return f"error: {record['error']}" if record["error"] else str(len(record["tools"]))


@mcp_app.command("rm", epilog=examples(
    ("Remove a server", "modelctl mcp rm files"),
    ("See which are left", "modelctl mcp list"),
))
def remove(name: str = typer.Argument(..., help="The server to remove.")) -> None:
    """Remove an MCP server from config.toml."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.tools.mcp_edit import remove_server  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    remove_server(name)
    sys.stderr.write(safe(f"modelctl: removed the MCP server {name} from {get_paths().config_file}") + "\n")


@mcp_app.command("import", epilog=examples(
    ("Claude Desktop's servers (macOS)",
     'modelctl mcp import ~/"Library/Application Support/Claude/claude_desktop_config.json"'),
    ("Cursor's, shown first", "modelctl mcp import ~/.cursor/mcp.json --dry-run"),
))
def import_(
    file: Path = typer.Argument(..., metavar="FILE", help="A JSON file with an \"mcpServers\" object ('-': stdin)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the TOML that would be added; change nothing."),
    replace: bool = typer.Option(False, "--replace", help="Replace servers of the same names."),
) -> None:
    """Add the servers of an mcpServers JSON file (Claude Desktop, Cursor, LM Studio, llama-server)."""
    from modelctl.files import load_json, read_user_text  # noqa: PLC0415 (modelctl.files: not on the --help path)
    from modelctl.tools.mcp_edit import add_servers, servers_in_json  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    where = "stdin" if str(file) == "-" else str(file)
    text = sys.stdin.read() if where == "stdin" else read_user_text(file, "MCP servers file", limit=1 << 22)
    servers = servers_in_json(load_json(text, where), where)
    if dry_run:
        from modelctl.redaction import redact  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

        sys.stdout.write(escape_controls(redact(_toml(servers))))
        return
    written = add_servers(servers, replace=replace)
    for server in servers:
        if server in written:
            _told(server, "added")
        else:
            output.warn(f"{server.name}: {'; '.join(server.notes)}")


def _toml(servers: "List[Imported]") -> str:
    """The [mcp.servers.NAME] tables of `servers`, as TOML, each with its notes as a comment."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    from modelctl.tools.mcp_edit import toml_table  # noqa: PLC0415 (modelctl.tools: not on the --help path)

    doc, mcp, tables = tomlkit.document(), tomlkit.table(is_super_table=True), tomlkit.table(is_super_table=True)
    for server in servers:
        if server.table:
            table = toml_table(server.table)
            for note in server.notes:
                table.add(tomlkit.comment(note))
            tables.add(server.name, table)
    mcp.add("servers", tables)
    doc.add("mcp", mcp)
    return tomlkit.dumps(doc)


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp", rich_help_panel=panel.SETUP, epilog=examples(
        ("Add a local server", "modelctl mcp add files -- npx -y @modelcontextprotocol/server-filesystem ~/notes"),
        ("Import Cursor's servers", "modelctl mcp import ~/.cursor/mcp.json"),
        ("See their tools", "modelctl tools list"),
    ))
