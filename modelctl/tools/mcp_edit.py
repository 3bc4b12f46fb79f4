"""Adding, importing and removing MCP servers in config.toml (`modelctl mcp add|import|rm`),
each change written in place with the rest of the file kept (config_edit.py).

`import` reads the `mcpServers` JSON that Claude Desktop, Cursor, LM Studio and llama-server
share (VS Code's `servers` too):

    {"mcpServers": {"files": {"command": "npx", "args": ["-y", "…"], "env": {"KEY": "…"}},
                    "search": {"url": "https://…/mcp", "headers": {"Authorization": "Bearer …"}},
                    "old": {"type": "sse", "url": "https://…/sse"}}}

config.toml keeps no credentials: an `env` value that is one becomes `${KEY}`, read from the
environment when the server starts (and the import says so); a header, argument or URL that holds
one is refused, to be written as `${VARIABLE}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelctl.config import get_paths
from modelctl.config_edit import edit_config, set_in, unset_in
from modelctl.errors import NotFoundError, UsageError
from modelctl.redaction import credential_problem, redact
from modelctl.tools.mcp_config import NAME, check_name, check_server

# How each client spells a transport, as config.toml's `transport`.
_TRANSPORTS = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamable_http": "http",
               "streamablehttp": "http", "sse": "sse"}
# Keys of an imported server that become config.toml keys as they are.
_KEPT = ("command", "args", "env", "cwd", "url", "headers")
_IGNORED_QUIETLY = ("type", "transport", "disabled")


@dataclass
class Imported:
    """A server as it will be written: its name, its table, and what the import changed."""

    name: str
    table: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def server_table(*, command: list[str] | None = None, url: str | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, headers: dict[str, str] | None = None, transport: str | None = None,
                 approve: str | None = None) -> dict[str, Any]:
    """The [mcp.servers.NAME] table of `mcp add`'s flags (checked when written)."""
    table: dict[str, Any] = {}
    if command:
        table.update(command=command[0], args=list(command[1:]))
    if url is not None:
        table["url"] = url
    optional = {"env": env, "cwd": cwd, "headers": headers, "transport": transport, "approve": approve}
    table.update({k: v for k, v in optional.items() if v not in (None, {}, [])})
    if not table.get("args"):
        table.pop("args", None)
    return table


def add_servers(servers: list[Imported], *, replace: bool = False) -> list[Imported]:
    """Write `servers` (those with a table) into config.toml, all or none, and return them; a
    name already there is a UsageError unless `replace`."""
    writing = [s for s in servers if s.table]
    for server in writing:
        check_server(server.name, server.table, "the server to add")
        _refuse_credentials(server)

    def change(doc: Any) -> None:
        present = doc.get("mcp", {}).get("servers", {})
        existing = [s.name for s in writing if s.name in present]
        if existing and not replace:
            raise UsageError(f"{get_paths().config_file} already has the MCP server{'s' if len(existing) > 1 else ''} "
                             f"{', '.join(existing)}", hint="add --replace to replace it, or choose another name")
        _super_tables(doc)
        for server in writing:
            unset_in(doc, ["mcp", "servers", server.name])
            set_in(doc, ["mcp", "servers", server.name], toml_table(server.table))

    edit_config(change)
    return writing


def _super_tables(doc: Any) -> None:
    """[mcp] and [mcp.servers], where missing, as tables written only as their servers' headers."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    if "mcp" not in doc:
        doc.add("mcp", tomlkit.table(is_super_table=True))
    if "servers" not in doc["mcp"]:
        doc["mcp"].add("servers", tomlkit.table(is_super_table=True))


def remove_server(name: str) -> None:
    """Remove [mcp.servers.NAME] (and [mcp] when it is left empty); NotFoundError when absent."""

    def change(doc: Any) -> bool:
        if not unset_in(doc, ["mcp", "servers", name]):
            return False
        if not doc["mcp"]["servers"]:
            del doc["mcp"]["servers"]
        if not doc["mcp"]:
            del doc["mcp"]
        return True

    if not edit_config(change):
        raise NotFoundError(f"no MCP server '{name}' in {get_paths().config_file}", hint="see `modelctl mcp list`")


def toml_table(table: dict[str, Any]) -> Any:
    """A [table] whose own tables (`env`, `headers`, `tools`) are written inline."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    out = tomlkit.table()
    for key, value in table.items():
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            value = inline
        out.add(key, value)
    return out


def servers_in_json(data: Any, where: str) -> list[Imported]:
    """The servers of an `mcpServers` (or VS Code `servers`) JSON document, as config.toml
    tables; UsageError naming `where` and the server for one that cannot be imported."""
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f"{where} has no \"mcpServers\" object", hint='it looks like {"mcpServers": {"NAME": {...}}}')
    imported = [_imported(str(name), entry, where) for name, entry in servers.items()]
    names = [s.name for s in imported]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{where}: several servers would be called {', '.join(twice)}")
    return imported


def _imported(name: str, entry: Any, where: str) -> Imported:
    server = Imported(_usable_name(name), {})
    if server.name != name:
        server.notes.append(f"named {server.name} (from {name!r})")
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: the server {name!r} is not a JSON object")
    if entry.get("disabled") is True:
        server.notes.append("disabled there: not imported")
        return server
    kind = str(entry.get("type", entry.get("transport", "")) or "").lower()
    transport = _TRANSPORTS.get(kind) if kind else ("stdio" if "command" in entry else "http")
    if transport is None:
        raise UsageError(f"{where}: the server {name!r} uses the transport {kind!r}",
                         hint="modelctl connects to stdio, streamable HTTP and SSE servers")
    server.table = {k: entry[k] for k in _KEPT if k in entry and entry[k] not in (None, "", [], {})}
    if transport == "sse":
        server.table["transport"] = "sse"
    ignored = [k for k in entry if k not in _KEPT and k not in _IGNORED_QUIETLY]
    if ignored:
        server.notes.append(f"left out: {', '.join(ignored)}")
    _move_credentials_to_environment(server)
    _refuse_credentials(server)
    check_server(server.name, server.table, f"{where}: the server {name!r}")
    return server


def _usable_name(name: str) -> str:
    if NAME.fullmatch(name):
        return name
    return check_name(re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:64] or "server")


def _move_credentials_to_environment(server: Imported) -> None:
    """An `env` value that is a credential becomes `${KEY}`, read from the environment when the
    server starts, and a note says so."""
    env = server.table.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if isinstance(value, str) and credential_problem(f"env.{key}", value):
                env[key] = f"${{{key}}}"
                server.notes.append(f"env {key} is read from your environment (${{{key}}}): set it there")


def _refuse_credentials(server: Imported) -> None:
    """A UsageError for a credential written into the table (a header, an argument, the URL)."""
    for key, value in server.table.items():
        problem = credential_problem(f"mcp.servers.{server.name}.{key}", value)
        if problem:
            raise UsageError(f"{redact(problem)}; config.toml keeps no credentials",
                             hint="write the secret as ${VARIABLE} (e.g. \"Bearer ${API_TOKEN}\") and set the "
                                  "variable in your environment")
