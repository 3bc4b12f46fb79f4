"""The toolbox: the tools of one chat, whatever their origin, behind one interface.

    with Toolbox.open(["builtin", "files"], functions=[Path("my_tools.py")]) as box:
        box.specs()                                         # what the model is told
        box.call(ToolCall("1", "files_read_file", '{"path": "notes.md"}'))  # a ToolResult

A selected name (`chat -T NAME`) is "builtin" (every built-in), an MCP server's name (all its
tools), or one tool's name: a built-in, or an MCP tool. Every function of a `--functions` file is
in. Only the servers a selection needs are started (all at once), and `close` stops them.

Names: an MCP tool is `SERVER_TOOL` (the server's name, `_`, the tool's own name), characters
other than letters, digits, `_` and `-` replaced by `_`, cut to 64 characters (the providers'
limit): two servers cannot offer the same name unless their names make it so, and a clash among
the tools of one toolbox is an error naming both. Built-ins and functions keep their names.

`call` never raises for a tool's own failure: a tool that raises, hangs past the timeout, or
whose server stopped gives a ToolResult with `is_error`; so do arguments that are not a JSON
object. Results are text, at most MAX_RESULT_BYTES (longer ones are cut, with a note saying so).
Calls may run at once from several threads.
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from modelctl.backends.base import ToolCall, ToolSpec
from modelctl.errors import ModelctlError, NotFoundError, UsageError
from modelctl.tools.builtins import builtin_functions
from modelctl.tools.functions import FunctionFailure, LocalFunction, load_functions, run_bounded
from modelctl.tools.mcp_client import McpConnection, McpFailure, RemoteTool
from modelctl.tools.mcp_config import DEFAULT_TIMEOUT, ServerConfig, load_servers
from modelctl.tools.schema import ArgumentError

MAX_RESULT_BYTES = 1 << 20
MAX_NAME = 64
BUILTIN = "builtin"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

Runner = Callable[[dict[str, Any]], "tuple[str, bool]"]


@dataclass(frozen=True)
class Tool:
    """A tool as the chain sees it."""

    spec: ToolSpec  # its name as the model sees it: SERVER_TOOL for an MCP tool
    origin: str  # "builtin", "functions:PATH", "mcp:SERVER"
    server: str | None  # the MCP server's name, None otherwise
    remote_name: str  # its own name at its server, or in its file
    read_only: bool  # the server's readOnlyHint (built-ins: True)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        """The record `tools list --json` prints."""
        return {"name": self.name, "description": self.spec.description, "parameters": dict(self.spec.parameters),
                "origin": self.origin, "server": self.server, "remote_name": self.remote_name,
                "read_only": self.read_only}


@dataclass(frozen=True)
class ToolResult:
    """What a call gave: its text (bounded), whether it failed, and how long it took."""

    content: str
    is_error: bool
    seconds: float


def tool_name(server: str, tool: str) -> str:
    """The name a model sees for the MCP tool `tool` of `server`."""
    return _UNSAFE.sub("_", f"{server}_{tool}")[:MAX_NAME]


def bounded(text: str, limit: int = MAX_RESULT_BYTES) -> str:
    """`text`, or its first bytes and a note when its UTF-8 is longer than `limit` bytes."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    note = f"\n[modelctl: the result was cut here: it was {len(data):,} bytes, more than the {limit:,} a result may be]"
    return data[:limit - len(note.encode())].decode("utf-8", "ignore") + note


class Toolbox:
    """The tools of one chat and what runs them; `open` builds one, `close` stops its servers."""

    def __init__(self, tools: Sequence[Tool], runners: Mapping[str, Runner],
                 connections: Sequence[McpConnection] = ()) -> None:
        self.tools = tuple(tools)
        self._by_name = {t.name: t for t in self.tools}
        self._runners = dict(runners)
        self._connections = list(connections)

    @classmethod
    def open(cls, selected: Sequence[str], functions: Sequence[Path] = (), *, timeout: float = DEFAULT_TIMEOUT,
             servers: Mapping[str, ServerConfig] | None = None) -> "Toolbox":
        """The toolbox for the names `selected` and the functions files `functions`; the MCP
        servers come from config.toml unless `servers` are given. An unknown name is a
        NotFoundError, a server that cannot start a BackendError naming it, a clash of names a
        UsageError naming both tools."""
        local = {f.spec.name: f for f in builtin_functions()}
        from_files = [f for path in functions for f in load_functions(Path(path))]
        picked = _Selection(selected, local, {f.spec.name for f in from_files})
        if picked.needs_servers:
            servers = load_servers() if servers is None else servers
        picked.resolve(servers or {})
        connections = start_servers([(servers or {})[n] for n in picked.servers], timeout)[0]
        try:
            chosen = [*_local_tools(picked.local), *_local_tools(from_files)]
            chosen += picked.remote_tools(connections)
            return cls(_unique(chosen), _runners(chosen, picked.local + from_files, connections, timeout), connections)
        except BaseException:
            for connection in connections:
                connection.close()
            raise

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self.tools)

    def get(self, name: str) -> Tool | None:
        return self._by_name.get(name)

    def call(self, call: ToolCall) -> ToolResult:
        """Run one call; a failure is an error result, never an exception."""
        started = time.monotonic()
        try:
            runner = self._runners.get(call.name)
            if runner is None:
                raise ArgumentError(f"there is no tool {call.name!r} (the tools: {', '.join(self._by_name) or 'none'})")
            text, is_error = runner(call.arguments_json())
        except Exception as exc:
            text, is_error = _failure(exc), True
        return ToolResult(bounded(text), is_error, time.monotonic() - started)

    def close(self) -> None:
        """Stop the servers this toolbox started."""
        connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> "Toolbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def available_tools(functions: Sequence[Path] = (), *, timeout: float = DEFAULT_TIMEOUT,
                    servers: Mapping[str, ServerConfig] | None = None,
                    notify: Callable[[str], None] | None = None) -> list[Tool]:
    """Every tool there is: the built-ins, those of `functions` files, and every tool of every
    configured MCP server (started to list them, then stopped). A server that cannot be listed is
    a BackendError naming it, or, with `notify`, a message to it (and its tools are left out)."""
    tools = _local_tools(builtin_functions()) + _local_tools([f for p in functions for f in load_functions(Path(p))])
    configs = list((load_servers() if servers is None else servers).values())
    for found in server_tools(configs, timeout=timeout).values():
        if isinstance(found, ModelctlError):
            if notify is None:
                raise found
            notify(str(found))
        else:
            tools += found
    return tools


def server_tools(configs: Sequence[ServerConfig], *, timeout: float = DEFAULT_TIMEOUT
                 ) -> dict[str, list[Tool] | ModelctlError]:
    """Each server's tools, or why it could not list them; the servers are started at once,
    then stopped."""
    started, failed = start_servers(configs, timeout, keep_going=True)
    try:
        listed = {c.name: [_remote_tool(c.name, t) for t in c.tools] for c in started}
    finally:
        for connection in started:
            connection.close()
    return {c.name: listed[c.name] if c.name in listed else failed[c.name] for c in configs}


def start_servers(configs: Sequence[ServerConfig], timeout: float, *, keep_going: bool = False
                  ) -> tuple[list[McpConnection], dict[str, ModelctlError]]:
    """(the servers started, at once; {name: why} of those that failed). Without `keep_going`
    the first failure is raised, the other servers stopped."""
    connections = [McpConnection(c, timeout) for c in configs]
    started: list[McpConnection] = []
    failed: dict[str, ModelctlError] = {}
    try:
        for connection in connections:
            connection.begin()
        for connection in connections:
            try:
                connection.wait_started()
                started.append(connection)
            except ModelctlError as exc:
                if not keep_going:
                    raise
                failed[connection.name] = exc
    except BaseException:
        for connection in connections:
            connection.close()
        raise
    return started, failed


class _Selection:
    """What the names of `chat -T` pick: built-ins, whole servers, single MCP tools."""

    def __init__(self, selected: Sequence[str], builtins: Mapping[str, LocalFunction], functions: set[str]) -> None:
        self.names = list(dict.fromkeys(selected))
        self.builtins = builtins
        self.functions = functions
        self.local: list[LocalFunction] = []
        self.servers: list[str] = []  # the servers to start
        self.whole: list[str] = []  # the servers all of whose tools are in
        self.single: list[str] = []  # MCP tools named one by one
        self.needs_servers = any(n != BUILTIN and n not in builtins and n not in functions for n in self.names)

    def resolve(self, servers: Mapping[str, ServerConfig]) -> None:
        for name in self.names:
            if name == BUILTIN:
                self._add(*self.builtins.values())
            elif name in servers:
                self.whole.append(name)
                self._start(name)
            elif name in self.builtins:
                self._add(self.builtins[name])
            elif name not in self.functions:
                owners = [s for s in servers if name.startswith(tool_name(s, ""))]
                if not owners:
                    raise _unknown(name, [BUILTIN, *servers, *self.builtins, *self.functions])
                self.single.append(name)
                for owner in owners:
                    self._start(owner)

    def _add(self, *functions: LocalFunction) -> None:
        self.local += [f for f in functions if f not in self.local]

    def _start(self, server: str) -> None:
        if server not in self.servers:
            self.servers.append(server)

    def remote_tools(self, connections: Sequence[McpConnection]) -> list[Tool]:
        """The tools of the whole servers, then those named one by one."""
        by_server = {c.name: [_remote_tool(c.name, t) for t in c.tools] for c in connections}
        chosen = [t for server in self.whole for t in by_server[server]]
        for name in self.single:
            found = [t for tools in by_server.values() for t in tools if t.name == name]
            if not found:
                offered = [t.name for tools in by_server.values() for t in tools]
                close = difflib.get_close_matches(name, offered, n=3)
                raise NotFoundError(f"no MCP tool named '{name}'" + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                                    hint="see `modelctl tools list`")
            chosen += found
        return chosen


def _unknown(name: str, known: Iterable[str]) -> NotFoundError:
    close = difflib.get_close_matches(name, list(known), n=3)
    return NotFoundError(f"no tool or MCP server named '{name}'" + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                         hint="see `modelctl tools list` and `modelctl mcp list`")


def _local_tools(functions: Sequence[LocalFunction]) -> list[Tool]:
    return [Tool(f.spec, f.origin, None, f.fn.__name__, f.origin == BUILTIN) for f in functions]


def _remote_tool(server: str, tool: RemoteTool) -> Tool:
    spec = ToolSpec(tool_name(server, tool.name), tool.description, tool.parameters)
    return Tool(spec, f"mcp:{server}", server, tool.name, tool.read_only)


def _unique(tools: Sequence[Tool]) -> list[Tool]:
    """The tools, each once; two different tools of one name are a UsageError naming both."""
    seen: dict[str, Tool] = {}
    for tool in tools:
        other = seen.setdefault(tool.name, tool)
        if other != tool:
            raise UsageError(f"two tools are named {tool.name}: {_described(other)} and {_described(tool)}",
                             hint="leave one of them out, or rename an MCP server (mcp rm, mcp add)")
    return list(seen.values())


def _described(tool: Tool) -> str:
    if tool.server is not None:
        return f"'{tool.remote_name}' of the MCP server '{tool.server}'"
    return "the built-in" if tool.origin == BUILTIN else f"the function in {tool.origin.removeprefix('functions:')}"


def _runners(tools: Sequence[Tool], functions: Sequence[LocalFunction], connections: Sequence[McpConnection],
             timeout: float) -> dict[str, Runner]:
    local = {f.spec.name: f for f in functions}
    servers = {c.name: c for c in connections}
    runners: dict[str, Runner] = {}
    for tool in tools:
        if tool.server is None:
            runners[tool.name] = _local_runner(local[tool.name], timeout)
        else:
            runners[tool.name] = _remote_runner(servers[tool.server], tool.remote_name)
    return runners


def _local_runner(function: LocalFunction, timeout: float) -> Runner:
    def run(arguments: dict[str, Any]) -> tuple[str, bool]:
        return run_bounded(lambda: function.run(arguments), timeout, function.spec.name), False

    return run


def _remote_runner(connection: McpConnection, name: str) -> Runner:
    def run(arguments: dict[str, Any]) -> tuple[str, bool]:
        return connection.call(name, arguments)

    return run


def _failure(exc: Exception) -> str:
    """The text of an error result: modelctl's own words, or the exception a tool raised."""
    if isinstance(exc, (McpFailure, FunctionFailure, ArgumentError)):
        return str(exc)
    if isinstance(exc, ModelctlError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
