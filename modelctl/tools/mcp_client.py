"""MCP servers as tool sources, through the `mcp` SDK (the optional extra `modelctl[tools]`,
imported here only, when the first server starts).

The SDK is asynchronous; modelctl's callers are not. Every server's session runs on one event loop
in a daemon thread, started with the first server; `McpConnection.start`, `call` and `close` are
called from any thread and wait for the loop, each for a bounded time:

- `start` connects, lists the server's tools and returns them, within the server's timeout (at
  least a minute);
- `call` waits at most the server's timeout (60 s unless its config says), then gives up on the
  call (the SDK tells the server it was cancelled); a call that fails otherwise (the server
  stopped, the connection broke) ends the session, and the next call starts the server again
  (at most MAX_RESTARTS times a session);
- `close` ends the session: a child is asked to stop (its stdin closed), then killed.

A local server (stdio) is a child process in a session of its own, with a minimal environment:
PATH, HOME, LANG and TMPDIR from modelctl's, what its `env` names, and what the SDK adds
everywhere (USER, LOGNAME, SHELL, TERM) — no API key unless its config names one. Its stderr is
kept (the last 8 KiB) for the messages of its failures, never shown as it comes.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import weakref
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Coroutine, TextIO

from modelctl.errors import BackendError, UsageError
from modelctl.redaction import redact
from modelctl.tools.mcp_config import ServerConfig, expand, expanded_table
from modelctl.version import __version__

INSTALL_HINT = "pip install 'modelctl[tools]'"
# What a local server's child gets from modelctl's environment (besides what its `env` names).
CHILD_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR")
MAX_STDERR_BYTES = 8192
MAX_LIST_PAGES = 100
# The largest server-sent event an HTTP server's answer may be (results beyond MAX_RESULT_BYTES
# are cut by the toolbox; this bounds what is read to get there).
MAX_EVENT_BYTES = 32 << 20
# The least time a server has to start and list its tools, whatever its calls' timeout (a first
# `npx -y …` downloads the server).
MIN_START_SECONDS = 60.0
# How long the SDK's shutdown of one server may take (its own waits are bounded: 2 s for the
# child to exit once its stdin is closed, 2 s more after SIGTERM, then SIGKILL).
CLOSE_SECONDS = 10.0
# How many times a server that stopped during a session is started again for a later call.
MAX_RESTARTS = 2


@dataclass(frozen=True)
class RemoteTool:
    """A tool as its server lists it."""

    name: str
    description: str
    parameters: dict[str, Any]
    read_only: bool


class McpFailure(Exception):
    """A call that got no answer: the server stopped, hung or could not be reached. The message
    names the server."""


class _Loop:
    """One asyncio event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="modelctl mcp", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_loop: _Loop | None = None
_loop_lock = threading.Lock()
# Connections not closed yet: closed at exit, so that no child outlives modelctl.
_live: "weakref.WeakSet[McpConnection]" = weakref.WeakSet()


def _background() -> _Loop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = _Loop()
            atexit.register(_close_all)
        return _loop


def _close_all() -> None:
    for connection in list(_live):
        connection.close()


def _import_mcp() -> Any:
    try:
        import mcp  # noqa: PLC0415 (mcp: optional, and 0.6 s to import: only where a server starts)
    except ImportError:
        raise UsageError("MCP servers need the mcp package, which is not installed", hint=INSTALL_HINT) from None
    return mcp


class McpConnection:
    """A session with one MCP server."""

    def __init__(self, config: ServerConfig, timeout: float) -> None:
        self.config = config
        self.timeout = config.timeout or timeout
        self.tools: list[RemoteTool] = []
        self._client: Any = None
        self._closing = asyncio.Event()
        self._finished = threading.Event()
        self._task: Future[Any] | None = None
        self._ready: Future[list[RemoteTool]] = Future()
        self._stderr: _StderrTail | None = None
        self._closed = False  # by close(): not started again
        self._restart_lock = threading.Lock()
        self.restarts = 0

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> list[RemoteTool]:
        """Connect and list the server's tools: `begin`, then `wait_started`."""
        self.begin()
        return self.wait_started()

    def begin(self) -> None:
        """Start connecting, without waiting (several servers start at once)."""
        _import_mcp()
        _live.add(self)
        self._task = _background().submit(self._run(self._ready))

    def wait_started(self) -> list[RemoteTool]:
        """The server's tools, once it answered; BackendError naming the server when it cannot
        be started, does not answer within its timeout, or fails to list its tools."""
        waited = max(self.timeout, MIN_START_SECONDS)
        try:
            self.tools = self._ready.result(waited)
        except FutureTimeout:
            self.close()
            raise BackendError(f"MCP server '{self.name}' did not answer within {waited:g} s"
                               f"{self._last_words()}", hint=f"its timeout is set in [mcp.servers.{self.name}]") from None
        except (UsageError, BackendError):
            self.close()
            raise
        except BaseException as exc:  # the SDK's errors come in exception groups
            self.close()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise BackendError(f"MCP server '{self.name}' could not be started: {self._describe(exc)}"
                               f"{self._last_words()}") from None
        return self.tools

    async def _run(self, ready: Future[list[RemoteTool]]) -> None:
        """The session, from connecting to closing, in one task (the SDK's contexts are entered
        and left in the same task)."""
        try:
            async with self._session() as client:
                if self._stderr is not None:
                    self._stderr.close_writer()  # the child holds its own end: EOF comes when it exits
                tools = await _list_tools(client)
                self._client = client
                ready.set_result(tools)
                await self._closing.wait()
        except BaseException as exc:  # the failure is the caller's to report (ready), or the next call's
            if not ready.done():
                ready.set_exception(exc)
        finally:
            self._client = None
            if self._stderr is not None:
                self._stderr.close_writer()
            self._finished.set()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Any]:
        mcp = _import_mcp()
        info = mcp.types.Implementation(name="modelctl", version=__version__)
        async with mcp.Client(self._transport(), client_info=info, cache=None) as client:
            yield client

    def _transport(self) -> Any:
        config, what = self.config, f"mcp.servers.{self.config.name}"
        if config.transport == "memory":
            return config.server
        if config.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: PLC0415 (mcp: optional)

            self._stderr = _StderrTail()
            params = StdioServerParameters(
                command=expand(config.command or "", f"{what}.command"),
                args=[expand(a, f"{what}.args") for a in config.args],
                env=child_environment(config),
                cwd=str(Path(expand(config.cwd, f"{what}.cwd")).expanduser()) if config.cwd else None,
            )
            return stdio_client(params, errlog=self._stderr.writer)
        url = expand(config.url or "", f"{what}.url")
        headers = expanded_table(config.headers, f"{what}.headers")
        if config.transport == "sse":
            from mcp.client.sse import sse_client  # noqa: PLC0415 (mcp: optional)

            return sse_client(url, headers=headers)
        return _streamable_http(url, headers)

    def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(the result's text, whether the server marked it an error); McpFailure when the call
        got no answer within the timeout, or the server stopped (a server that stopped before
        the call is started again first, MAX_RESTARTS times at most)."""
        client = self._client or self._started_again()
        future = _background().submit(client.call_tool(tool, arguments))
        try:
            result = future.result(self.timeout)
        except FutureTimeout:
            future.cancel()
            raise McpFailure(f"MCP server '{self.name}' did not answer the call of {tool} within "
                             f"{self.timeout:g} s") from None
        except BaseException as exc:  # the SDK's errors come in exception groups
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # Ctrl-C stops the call, and the chat
                future.cancel()
                raise
            failure = McpFailure(f"MCP server '{self.name}' failed during the call of {tool}: "
                                 f"{self._describe(exc)}{self._last_words()}")
            self._end()  # a session a call broke in is not used again: the next call starts anew
            raise failure from None
        return result_text(result), bool(result.is_error)

    def _started_again(self) -> Any:
        """The session of the server started again, for a call after it stopped; McpFailure when
        it was closed, has been started again MAX_RESTARTS times, or does not start."""
        with self._restart_lock:
            if self._client is not None:  # another thread's call started it
                return self._client
            last = self._last_words()
            if self._closed or self.restarts >= MAX_RESTARTS:
                again = f" (started again {self.restarts} times)" if self.restarts else ""
                raise McpFailure(f"MCP server '{self.name}' is not running{again}{last}")
            self.restarts += 1
            self._end()
            self._closing, self._ready, self._stderr = asyncio.Event(), Future(), None
            self._finished.clear()
            try:
                self.begin()
                self.wait_started()
            except (UsageError, BackendError) as exc:
                raise McpFailure(f"MCP server '{self.name}' stopped{last}, and could not be started again: "
                                 f"{exc}") from None
            return self._client

    def close(self) -> None:
        """End the session (a child stops, or is killed), waiting a bounded time; the server is
        not started again."""
        self._closed = True
        self._end()

    def _end(self) -> None:
        task, self._task = self._task, None
        _live.discard(self)
        if task is None:
            return
        loop = _background().loop
        loop.call_soon_threadsafe(self._closing.set)
        if not self._finished.wait(CLOSE_SECONDS):
            task.cancel()
            self._finished.wait(CLOSE_SECONDS)
        if self._stderr is not None:
            self._stderr.close_writer()

    def _last_words(self) -> str:
        """"; it said: …", the last line a local server wrote to stderr, or ""."""
        line = self._stderr.last_line() if self._stderr is not None else ""
        return f"; it said: {line}" if line else ""

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, in one line, for an exception from the SDK (a group's first)."""
        while isinstance(getattr(exc, "exceptions", None), (list, tuple)) and exc.exceptions:  # type: ignore[attr-defined]
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        if isinstance(exc, FileNotFoundError) and self.config.transport == "stdio":
            return f"command '{self.config.command}' not found"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        name = type(exc).__name__
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if name.endswith(("ConnectError", "ConnectTimeout")):
            return f"cannot connect to {self.config.url}" + (f" ({detail})" if detail else "")
        if type(exc).__module__.startswith("mcp") or name == "ClosedResourceError":
            return detail or "the connection closed"
        return redact(f"{name}: {detail}" if detail else name)


def child_environment(config: ServerConfig) -> dict[str, str]:
    """A local server's environment: CHILD_VARIABLES from modelctl's, and its `env`."""
    env = {name: os.environ[name] for name in CHILD_VARIABLES if name in os.environ}
    env.update(expanded_table(config.env, f"mcp.servers.{config.name}.env"))
    return env


@asynccontextmanager
async def _streamable_http(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """The streamable HTTP transport, with the server's headers on every request."""
    import httpx2  # noqa: PLC0415 (httpx2: the mcp SDK's HTTP client, optional)
    from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415 (mcp: optional)

    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
        async with streamable_http_client(url, http_client=http, max_sse_event_size=MAX_EVENT_BYTES) as streams:
            yield streams


async def _list_tools(client: Any) -> list[RemoteTool]:
    tools: list[Any] = []
    cursor = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return [RemoteTool(t.name, t.description or t.title or "", dict(t.input_schema or {}),
                       bool(t.annotations and t.annotations.read_only_hint)) for t in tools]


def result_text(result: Any) -> str:
    """A tool's result as text: its content blocks joined (text as it is; images, audio and
    binary resources described, not included), or its structured content as JSON."""
    parts = [_block_text(block) for block in result.content or ()]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False, default=str)]
    return "\n".join(parts)


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {len(block.data) * 3 // 4:,} bytes, not shown]"
    if kind == "resource_link":
        return f"[resource: {block.uri}" + (f" ({block.name})" if getattr(block, "name", None) else "") + "]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return str(text)
        return f"[resource: {resource.uri}, {resource.mime_type or 'binary'}, {len(resource.blob) * 3 // 4:,} bytes, not shown]"
    return f"[{kind or 'unknown'} content, not shown]"


class _StderrTail:
    """A pipe for a child's stderr, read by a daemon thread that keeps its last bytes."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.writer: TextIO = os.fdopen(write_fd, "w")
        self._reader = os.fdopen(read_fd, "rb")
        self._tail = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="modelctl mcp stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._reader:
            while chunk := self._reader.read1(65536):
                with self._lock:
                    self._tail = (self._tail + chunk)[-MAX_STDERR_BYTES:]

    def close_writer(self) -> None:
        """Close modelctl's end of the pipe (the child has its own): EOF comes when the child exits."""
        if not self.writer.closed:
            self.writer.close()

    def last_line(self) -> str:
        """The last line written, redacted ("" when there is none), once the child has exited
        or a second has passed."""
        self.close_writer()
        self._thread.join(1.0)
        with self._lock:
            lines = self._tail.decode("utf-8", "replace").strip().splitlines()
        return redact(lines[-1].strip())[:500] if lines else ""
