"""config.toml's MCP servers: one `[mcp.servers.NAME]` table each, read and checked here.

    [mcp.servers.files]                       # a local server, run as a child process (stdio)
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"]
    env = { DEBUG = "1" }                     # added to the child's minimal environment
    cwd = "/home/me"
    timeout = 30                              # seconds per call (default 60)
    approve = "ask"                           # allow | ask | deny, for all its tools
    [mcp.servers.files.tools.write_file]
    approve = "deny"                          # for one tool

    [mcp.servers.search]                      # a remote server (streamable HTTP; "sse": the older one)
    url = "https://mcp.example.com/mcp"
    headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
    transport = "http"

config.toml keeps no credentials: a value in `env`, `headers`, `args` or `url` may name an
environment variable as `${NAME}`, read when the server starts (an unset one is an error naming
it). Server names are letters, digits, `_`, `-` and `.`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from modelctl.config import get_paths, user_config
from modelctl.errors import UsageError
from modelctl.redaction import ENV_REFERENCE, credential_name, redact_data, remember_secret
from modelctl.transport.urls import check_url

APPROVALS = ("allow", "ask", "deny")
TRANSPORTS = ("stdio", "http", "sse")
DEFAULT_TIMEOUT = 60.0
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The keys of a [mcp.servers.NAME] table and their types; `env` and `headers` hold strings,
# `tools` holds a table per tool with `approve`.
SERVER_KEYS: dict[str, type | tuple[type, ...]] = {
    "command": str, "args": list, "env": dict, "cwd": str, "url": str, "headers": dict, "transport": str,
    "timeout": (int, float), "approve": str, "tools": dict,
}
STRING_TABLES = ("env", "headers")
_TOOL_KEYS = ("approve",)
_REFERENCE = re.compile(ENV_REFERENCE)
_TYPE_WORDS = {str: "a string", list: "a list of strings", dict: "a table", (int, float): "a number of seconds"}


@dataclass(frozen=True)
class ServerConfig:
    """An MCP server as config.toml describes it (values as written, `${NAME}` unexpanded), or
    an in-process server (`in_process`, for Python callers and tests)."""

    name: str
    transport: str  # "stdio", "http", "sse" or "memory"
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    approve: str | None = None
    tool_approvals: Mapping[str, str] = field(default_factory=dict)
    server: Any = None  # an `mcp` Server or MCPServer, for transport "memory"

    @classmethod
    def in_process(cls, name: str, server: Any, *, timeout: float | None = None) -> "ServerConfig":
        """A server object of the `mcp` SDK, run in this process (no child, no network)."""
        return cls(check_name(name), "memory", timeout=timeout, server=server)

    @property
    def identity(self) -> str:
        """What the server is, whatever it is called: its command and arguments, or its URL
        (remembered approvals are keyed by it)."""
        if self.transport == "stdio":
            return json.dumps([self.command, *self.args])
        return self.url or f"memory:{self.name}"

    def target(self) -> str:
        """The command line or the URL, as `mcp list` shows it."""
        if self.transport == "stdio":
            return " ".join(_shell_word(w) for w in (self.command or "", *self.args))
        return self.url or "(in process)"

    def to_dict(self) -> dict[str, Any]:
        """The record `mcp list --json` prints: header values and credentials hidden."""
        record: dict[str, Any] = {"name": self.name, "transport": self.transport}
        if self.transport == "stdio":
            record.update(command=self.command, args=list(self.args), env=dict(self.env), cwd=self.cwd)
        else:
            record.update(url=self.url, headers=dict(self.headers))
        record.update(timeout=self.timeout, approve=self.approve, tools=dict(self.tool_approvals))
        hidden: dict[str, Any] = redact_data(record)
        return hidden


def _shell_word(word: str) -> str:
    return word if word and re.fullmatch(r"[\w@%+=:,./-]+", word) else json.dumps(word)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"'{name}' is not a usable MCP server name",
                         hint="use letters, digits, '_', '-' and '.', at most 64 characters")
    return name


def load_servers() -> dict[str, ServerConfig]:
    """The servers of config.toml's [mcp.servers], checked, in the file's order."""
    where = str(get_paths().config_file)
    return servers_from(user_config().get("mcp", {}), where)


def servers_from(mcp: Any, where: str) -> dict[str, ServerConfig]:
    """The servers of an [mcp] table; UsageError naming `where` and the key for a bad one."""
    if not isinstance(mcp, dict):
        raise UsageError(f"{where}: [mcp] must be a table")
    unknown = [k for k in mcp if k != "servers"]
    if unknown:
        raise UsageError(f"{where}: unknown key mcp.{unknown[0]}", hint="[mcp] holds [mcp.servers.NAME] tables")
    servers = mcp.get("servers", {})
    if not isinstance(servers, dict):
        raise UsageError(f"{where}: mcp.servers must hold one table per server")
    return {name: check_server(name, table, where) for name, table in servers.items()}


def check_server(name: str, table: Any, where: str) -> ServerConfig:
    """One [mcp.servers.NAME] table as a ServerConfig; UsageError naming the key at fault."""
    prefix = f"mcp.servers.{_quoted(name)}"
    try:
        check_name(name)
    except UsageError as exc:
        raise UsageError(f"{where}: {prefix}: {exc.message}", hint=exc.hint) from None
    if not isinstance(table, dict):
        raise UsageError(f"{where}: {prefix} must be a table")
    for key, value in table.items():
        check_key([key], value, prefix, where)
    command, url = table.get("command"), table.get("url")
    if (command is None) == (url is None):
        raise UsageError(f"{where}: {prefix} needs either command (a local server) or url (a remote one)")
    transport = table.get("transport") or ("stdio" if command is not None else "http")
    if (transport == "stdio") != (command is not None):
        raise UsageError(f"{where}: {prefix}.transport = \"{transport}\" does not go with "
                         f"{'command' if command is not None else 'url'}")
    for key in ("args", "env", "cwd") if url is not None else ("headers",):
        if key in table:
            raise UsageError(f"{where}: {prefix}.{key} is for {'local' if url is not None else 'remote'} servers only")
    tools = table.get("tools", {})
    return ServerConfig(
        name, transport, command=command, args=tuple(table.get("args", ())), env=dict(table.get("env", {})),
        cwd=table.get("cwd"), url=url, headers=dict(table.get("headers", {})),
        timeout=float(table["timeout"]) if "timeout" in table else None, approve=table.get("approve"),
        tool_approvals={tool: settings["approve"] for tool, settings in tools.items() if "approve" in settings},
    )


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def check_key(rest: list[str], value: Any, prefix: str, where: str = "") -> None:
    """The key `rest` of a server's table `prefix` (`["command"]`, `["env", "DEBUG"]`,
    `["tools", "write_file", "approve"]`) holds a value it may; UsageError (naming `where`, the
    file) otherwise."""
    key = f"{prefix}.{'.'.join(rest)}"
    lead = f"{where}: " if where else ""
    expected = setting_type(rest)
    if expected is None:
        raise UsageError(f"{lead}unknown key {key}", hint="known: " + ", ".join(SERVER_KEYS))
    if not isinstance(value, expected) or isinstance(value, bool):
        raise UsageError(f"{lead}{key} must be {_TYPE_WORDS[expected]}, not {type(value).__name__} {value!r}")
    if isinstance(value, dict):
        for name, item in value.items():
            check_key([*rest, name], item, prefix, where)
        return
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise UsageError(f"{lead}{key} must be a list of strings")
    problem = _leaf_problem(rest, value)
    if problem:
        raise UsageError(f"{lead}{key} {problem}")
    if rest == ["url"] and isinstance(value, str) and not _REFERENCE.search(value):
        check_url(value, f"{lead}{key}")


def _leaf_problem(rest: list[str], value: Any) -> str | None:
    if rest[-1] == "approve" and value not in APPROVALS:
        return f"must be one of {', '.join(APPROVALS)}, not {value!r}"
    if rest == ["transport"] and value not in TRANSPORTS:
        return f"must be one of {', '.join(TRANSPORTS)}, not {value!r}"
    if rest == ["timeout"] and not 0 < value <= 86_400:
        return f"must be more than 0 and at most 86400 seconds, not {value!r}"
    if rest in (["command"], ["url"]) and not value.strip():
        return "must not be empty"
    return None


def setting_type(rest: list[str]) -> type | tuple[type, ...] | None:
    """The type of a key under [mcp.servers.NAME] (`rest` the parts after NAME), None for an
    unknown one."""
    if len(rest) == 1:
        return SERVER_KEYS.get(rest[0])
    if len(rest) == 2 and rest[0] in STRING_TABLES:
        return str
    if rest[0] == "tools" and len(rest) == 2:
        return dict
    if rest[0] == "tools" and len(rest) == 3 and rest[2] in _TOOL_KEYS:
        return str
    return None


def is_table(rest: list[str]) -> bool:
    """Whether `rest` (after mcp.servers.NAME) names a table a server's may hold."""
    return (not rest or len(rest) == 1 and rest[0] in (*STRING_TABLES, "tools")
            or len(rest) == 2 and rest[0] == "tools")


def expand(text: str, what: str) -> str:
    """`text` with each `${NAME}` replaced by that environment variable's value; UsageError
    naming `what` for one that is not set."""
    return _REFERENCE.sub(lambda m: _variable(m[0][2:-1], what), text)


def _variable(name: str, what: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise UsageError(f"{what} names ${{{name}}}, which is not set in the environment")
    return value


def expanded_table(table: Mapping[str, str], what: str) -> dict[str, str]:
    """`env` or `headers` with their `${NAME}` references read. A value under a credential's
    name, or read from a variable named like one, is a secret from now on: hidden wherever
    modelctl prints it (a server's own messages included)."""
    out: dict[str, str] = {}
    for key, text in table.items():
        out[key] = expand(text, f"{what}.{key}")
        named = [m[0][2:-1] for m in _REFERENCE.finditer(text)]
        if credential_name(key) or any(credential_name(n) for n in named):
            for secret in (out[key], *(os.environ[n] for n in named)):
                remember_secret(secret)
    return out
