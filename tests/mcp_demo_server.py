"""A small MCP server written with the `mcp` SDK, for the tests: run as a script it serves on
stdio (a child process); `build()` gives the server itself, to run in-process or over HTTP.

Its tools: echo (read-only), environment (the names of the variables it sees, one's value, its
process id), fail (raises), crash (writes a line to stderr and exits), hang (never answers), big
(10,000,000 characters).
"""

from __future__ import annotations

import json
import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

BIG = 10_000_000


def build(name: str = "demo") -> MCPServer:
    server = MCPServer(name)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @server.tool(structured_output=False)
    def environment(name: str = "") -> str:
        """The names of the environment's variables, and the value of `name`."""
        return json.dumps({"names": sorted(os.environ), "value": os.environ.get(name), "pid": os.getpid()})

    @server.tool()
    def fail(message: str) -> str:
        """Fail with this message."""
        raise ToolError(message)

    @server.tool()
    def crash() -> str:
        """Exit in the middle of the call."""
        print("giving up: the disk is on fire", file=sys.stderr, flush=True)
        os._exit(3)

    @server.tool()
    async def hang() -> str:
        """Never answer."""
        await anyio.sleep_forever()
        return "unreachable"

    @server.tool(structured_output=False)
    def big() -> str:
        """Ten million characters."""
        return "x" * BIG

    return server


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--fail":
        print("cannot start: no configuration file", file=sys.stderr, flush=True)
        sys.exit(2)
    build(os.environ.get("DEMO_NAME", "demo")).run()
