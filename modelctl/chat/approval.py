"""Whether a tool the model called may run: allow, ask or deny.

Each tool has a policy: from config.toml (`[mcp.servers.NAME] approve`, `[mcp.servers.NAME.tools.TOOL]
approve`; `[tools] approve` and `[tools.NAME] approve` for the built-ins and `--functions`), else
"ask" — "allow" for a tool its MCP server marks read-only, and for the built-ins. "ask" asks the
person at the terminal, and only them: the question and the answer go through the controlling
terminal (/dev/tty), never through the model's text or stdin, so a model cannot approve its own
calls. The answers: once, for this session, always (remembered in `tool_approvals.json` in the data
directory, keyed by the tool's origin — an MCP server's command or URL, a functions file's path —
so that an "always" does not carry over to another server that takes the name), or deny. `--yes`
allows every call of one run that is not denied by config. With no terminal, a call that is not
allowed is refused: the chain stops with an error that says how to allow it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelctl.backends.base import ToolCall
from modelctl.chat.settings import APPROVALS, check_table
from modelctl.config import get_paths, user_config
from modelctl.errors import ModelctlError, UsageError
from modelctl.files import read_user_text, write_user_file
from modelctl.terminal_text import safe

if TYPE_CHECKING:
    from modelctl.tools.toolbox import Tool

ALLOW, ASK, DENY = APPROVALS
# What the person may answer at the prompt: once, this session, always, deny.
ANSWERS = {"o": "once", "once": "once", "y": "once", "yes": "once", "s": "session", "session": "session",
           "a": "always", "always": "always", "d": "deny", "deny": "deny", "n": "deny", "no": "deny"}
MAX_SHOWN_ARGUMENTS = 400


class ToolRefused(UsageError):
    """A call no one could approve: not allowed, and no terminal to ask at."""


def policy_of(tool: "Tool", config: dict[str, Any] | None = None) -> str:
    """The configured policy of `tool`, else its default (allow for what cannot change anything:
    read-only MCP tools and the built-ins; ask for the rest)."""
    cfg = user_config() if config is None else config
    where = str(get_paths().config_file)
    if tool.server is not None:
        server = cfg.get("mcp", {}).get("servers", {}).get(tool.server, {})
        per_tool = server.get("tools", {}).get(tool.remote_name, {}) if isinstance(server, dict) else {}
        found = _approve(per_tool, f"mcp.servers.{tool.server}.tools.{tool.remote_name}", where) \
            or _approve(server, f"mcp.servers.{tool.server}", where)
    else:
        table = cfg.get("tools", {})
        per_tool = table.get(tool.spec.name, {}) if isinstance(table, dict) else {}
        found = _approve(per_tool, f"tools.{tool.spec.name}", where) or _approve(table, "tools", where)
    return found or (ALLOW if tool.read_only else ASK)


def _approve(table: Any, prefix: str, where: str) -> str | None:
    if not isinstance(table, dict) or "approve" not in table:
        return None
    check_table({"approve": table["approve"]}, prefix, {"approve": str}, where)
    value = table["approve"]
    if value not in APPROVALS:
        raise UsageError(f"{where}: {prefix}.approve must be allow, ask or deny, not {value!r}")
    return str(value)


def identity(tool: "Tool", config: dict[str, Any] | None = None) -> str:
    """Where `tool` comes from, as an "always" is remembered for: an MCP server's command line or
    URL (hashed), a functions file's path, or the built-ins."""
    if tool.server is None:
        return str(tool.origin)
    cfg = user_config() if config is None else config
    server = cfg.get("mcp", {}).get("servers", {}).get(tool.server, {})
    shape = {k: server.get(k) for k in ("command", "args", "url", "cwd")} if isinstance(server, dict) else {}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    return f"mcp:{tool.server}:{digest}"


@dataclass
class Remembered:
    """The "always" answers, in a small JSON file of the data directory."""

    path: Path = field(default_factory=lambda: get_paths().data_dir / "tool_approvals.json")

    def load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(read_user_text(self.path, "tool approvals", limit=1 << 20))
        except (OSError, ValueError, ModelctlError):  # none yet, or unreadable: nothing remembered
            return {}
        allowed = data.get("allow") if isinstance(data, dict) else None
        if not isinstance(allowed, dict):
            return {}
        return {k: [t for t in v if isinstance(t, str)] for k, v in allowed.items() if isinstance(v, list)}

    def allows(self, origin: str, tool: str) -> bool:
        return tool in self.load().get(origin, [])

    def remember(self, origin: str, tool: str) -> None:
        allowed = self.load()
        allowed.setdefault(origin, [])
        if tool not in allowed[origin]:
            allowed[origin].append(tool)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": 1, "allow": allowed}, indent=2, sort_keys=True) + "\n"
        write_user_file(self.path, body.encode(), "tool approvals")


Ask = Callable[["Tool", ToolCall], str]


@dataclass
class Approver:
    """Decides each call: `allows(tool, call)` is True to run it, False to deny it; a call that
    must be asked about with no one to ask raises ToolRefused."""

    yes: bool = False  # --yes: allow what config does not deny, for this run
    ask: Ask | None = None  # None: no terminal (calls that are not allowed are refused)
    remembered: Remembered = field(default_factory=Remembered)
    config: dict[str, Any] | None = None  # None: config.toml
    session: set[tuple[str, str]] = field(default_factory=set)

    def allows(self, tool: "Tool", call: ToolCall) -> bool:
        policy = policy_of(tool, self.config)
        if policy == DENY:
            return False
        origin = identity(tool, self.config)
        key = (origin, tool.spec.name)
        if policy == ALLOW or self.yes or key in self.session or self.remembered.allows(origin, tool.spec.name):
            return True
        if self.ask is None:
            raise ToolRefused(f"the model called {tool.spec.name}, which needs your approval, and there is no "
                              "terminal to ask at",
                              hint=f"allow it: --yes for this run, or approve = \"allow\" for it in config.toml ({_config_key(tool)})")
        answer = self.ask(tool, call)
        if answer == "session":
            self.session.add(key)
        elif answer == "always":
            self.remembered.remember(origin, tool.spec.name)
        return answer != "deny"


def _config_key(tool: "Tool") -> str:
    if tool.server is not None:
        return f"[mcp.servers.{tool.server}.tools.{tool.remote_name}]"
    return f"[tools.{tool.spec.name}]"


def shown_call(call: ToolCall) -> str:
    """`name({arguments})`, cut to a line's worth, safe for a terminal."""
    arguments = call.arguments if len(call.arguments) <= MAX_SHOWN_ARGUMENTS else \
        call.arguments[:MAX_SHOWN_ARGUMENTS] + f"… ({len(call.arguments):,} characters)"
    return safe(f"{call.name}({arguments})")


def terminal_ask() -> Ask | None:
    """A prompt at the controlling terminal, or None when there is none."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(fd)

    def ask(tool: "Tool", call: ToolCall) -> str:
        where = f" (MCP server {tool.server})" if tool.server else f" ({tool.origin})"
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, f"modelctl: the model calls {shown_call(call)}{safe(where)}\n".encode())
            while True:
                os.write(fd, b"Allow it? [o]nce, this [s]ession, [a]lways, [d]eny: ")
                line = _read_line(fd)
                if line is None:  # end of input at the terminal: no
                    return "deny"
                answer = ANSWERS.get(line.strip().lower())
                if answer is not None:
                    return answer
        finally:
            os.close(fd)

    return ask


MAX_ANSWER_BYTES = 256


def _read_line(fd: int) -> str | None:
    """A line typed at the terminal (at most MAX_ANSWER_BYTES are kept); None at its end."""
    data = b""
    while True:
        byte = os.read(fd, 1)
        if not byte:
            return None if not data else data.decode("utf-8", "replace")
        if byte == b"\n":
            return data.decode("utf-8", "replace")
        if len(data) < MAX_ANSWER_BYTES:
            data += byte
