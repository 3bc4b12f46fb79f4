"""Headless Chromium for tests, driven through the DevTools protocol (CDP) over a WebSocket.

`Browser(origin)` starts `chromium --headless=new` with a throwaway profile, reads the address of
its DevTools socket from stderr, and opens one page. Every request the page makes to anything but
`origin` is failed before it leaves (`Fetch`) and recorded in `blocked`; every request the page
starts is recorded in `requests`; console errors, uncaught exceptions, Content-Security-Policy
violations and JavaScript dialogs are recorded too (dialogs are dismissed, so a page that opens
one does not hang). The browser is always killed on exit, with its whole process group.

The protocol's client is a minimal WebSocket (RFC 6455) over a plain socket: text frames out,
masked; frames in, reassembled. Waiting is bounded: a condition is polled by evaluating it in the
page, where a promise settles as soon as it holds or after a short while, never by sleeping here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

START_TIMEOUT_S = 60.0  # chromium's first start on a busy 2-core host
CALL_TIMEOUT_S = 60.0  # one CDP reply: a guard against a hang, never what a test measures
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# What a page may load besides its server: inline data, blob URLs and the empty page.
_LOCAL_SCHEMES = ("data:", "blob:", "about:")

# Chromium's flags: no sandbox (tests run as root in containers), nothing of its own on the network.
FLAGS = (
    "--headless=new", "--remote-debugging-port=0", "--no-sandbox", "--disable-gpu",
    "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--metrics-recording-only",
    "--disable-breakpad", "--disable-crash-reporter",
    "--window-size=1280,900",
)

# Run in every document before its own scripts (CDP's scripts are not bound by the page's CSP):
# CSP violations as the page's own `securitypolicyviolation` events report them.
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample}));
"""


def chromium_path() -> str | None:
    """Debian's `chromium` (or another Chromium-based browser on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    pass


class _WebSocket:
    """A WebSocket client, enough for CDP: text messages both ways, pings answered."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.file = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        status = self.file.readline()
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if b" 101 " not in status or headers.get("sec-websocket-accept") != accept:
            raise CDPError(f"the DevTools socket refused the handshake: {status!r}")

    def send(self, text: str) -> None:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        mask = os.urandom(4)
        # XOR with the repeated mask, as one big integer (byte by byte is slow for large messages).
        repeated = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
        self.sock.sendall(head + mask + masked)

    def _exact(self, count: int) -> bytes:
        data = self.file.read(count)
        if data is None or len(data) < count:
            raise CDPError("the DevTools socket closed")
        return data

    def _frame(self) -> tuple[int, bool, bytes]:
        first, second = self._exact(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._exact(8))[0]
        mask = self._exact(4) if second & 0x80 else b""
        payload = self._exact(size)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, bool(first & 0x80), payload

    def receive(self) -> str:
        parts: list[bytes] = []
        while True:
            opcode, final, payload = self._frame()
            if opcode == 0x8:
                raise CDPError("the DevTools socket closed")
            if opcode == 0x9:  # ping: pong with the same payload (never longer than 125 bytes)
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                parts.append(payload)
                if final:
                    return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class Blocked:
    url: str
    resource_type: str


@dataclass
class PageLog:
    """What a page did that a test checks: requests made and blocked, errors, CSP violations, dialogs."""

    requests: list[str] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)  # Log domain: CSP reports, failed loads, …
    dialogs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class Browser:
    """One headless Chromium with one page; a context manager that always kills the browser."""

    def __init__(self, origin: str, *, width: int = 1280, height: int = 900) -> None:
        parts = urlsplit(origin)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.width, self.height = width, height
        self.log = PageLog()
        self._profile = tempfile.mkdtemp(prefix="modelctl-chromium-")
        self._proc: subprocess.Popen[str] | None = None
        self._ws: _WebSocket | None = None
        self._session = ""
        self._next_id = 0
        self._stderr: list[str] = []
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Browser":
        path = chromium_path()
        if path is None:
            raise CDPError("no chromium on PATH")
        try:
            self._ws = _WebSocket(self._launch(path), CALL_TIMEOUT_S)
            self._open_page()
        except BaseException:
            self.close()
            raise
        return self

    def _launch(self, path: str) -> str:
        """Start chromium in its own process group; the DevTools address it prints."""
        self._proc = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        found: list[str] = []
        seen = threading.Event()

        def drain() -> None:
            assert self._proc is not None and self._proc.stderr is not None
            for line in self._proc.stderr:
                self._stderr.append(line)
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1))
                    seen.set()
            seen.set()  # it ended without listening

        threading.Thread(target=drain, daemon=True).start()
        if not seen.wait(START_TIMEOUT_S) or not found:
            raise CDPError("chromium did not start:\n" + "".join(self._stderr[-20:]))
        return found[0]

    def _open_page(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=None)["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                  session=None)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH_CSP})
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    def close(self) -> None:
        """Ask the browser to close, then kill its process group whatever it did; remove its profile."""
        if self._ws is not None:
            try:
                self._send("Browser.close", {}, session=None)
            except OSError:
                pass
            self._ws.close()
            self._ws = None
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # renderers and helpers too
            except ProcessLookupError:
                pass
            if self._proc.poll() is None:
                self._proc.wait(30)
            self._proc = None
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the protocol --------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        assert self._ws is not None, "the browser is not running"
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        return self._next_id

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = "",
             timeout: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """Send one command (to the page unless `session` is None: the browser) and wait for its
        reply, handling the events that arrive meanwhile."""
        assert self._ws is not None, "the browser is not running"
        wanted = self._send(method, params or {}, self._session if session == "" else session)
        self._ws.sock.settimeout(timeout)
        while True:
            message: dict[str, Any] = json.loads(self._ws.receive())
            if message.get("id") == wanted:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._on_event(message["method"], message.get("params", {}))

    def listen(self, method: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(params)` on each event `method` (e.g. "Network.dataReceived") from now on."""
        self._listeners.setdefault(method, []).append(callback)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        for callback in self._listeners.get(method, ()):
            callback(params)
        if method == "Fetch.requestPaused":
            self._route(params)
        elif method == "Network.requestWillBeSent":
            self.log.requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            self.log.requests.append(params["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.log.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                    for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.log.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            where = f" ({entry['url']})" if entry.get("url") else ""
            self.log.log_errors.append(f"{entry.get('source')}: {entry.get('text')}{where}")
        elif method == "Page.javascriptDialogOpening":
            self.log.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            self._send("Page.handleJavaScriptDialog", {"accept": False}, self._session)

    def _route(self, params: dict[str, Any]) -> None:
        """A request paused before it leaves: the server's own go on, anything else fails here."""
        url = params["request"]["url"]
        if self.same_origin(url):
            self._send("Fetch.continueRequest", {"requestId": params["requestId"]}, self._session)
            return
        self.log.blocked.append(Blocked(url, params.get("resourceType", "")))
        self._send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                   self._session)

    def same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin or url.startswith(_LOCAL_SCHEMES)

    def foreign_requests(self) -> list[str]:
        """Every request the page started that was not to its server (blocked or not)."""
        return [url for url in self.log.requests if not self.same_origin(url)] + \
            [b.url for b in self.log.blocked if b.url not in self.log.requests]

    # --- what tests do -------------------------------------------------------------------------

    def navigate(self, url: str, *, timeout: float = CALL_TIMEOUT_S) -> None:
        """Open `url` and wait until its document has loaded (its scripts have run)."""
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str, *, timeout: float = CALL_TIMEOUT_S) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited); an exception
        thrown there is a CDPError."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True, "userGesture": True}, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, condition: str, *, timeout: float = CALL_TIMEOUT_S, what: str = "") -> Any:
        """Wait until the JavaScript expression `condition` is truthy; its value. Each poll is one
        evaluation that settles within a second in the page (checked on each animation frame or
        every 20 ms); past `timeout` it is an AssertionError naming the condition."""
        poll = ("new Promise(resolve => { const end = performance.now() + 1000;"
                f" const check = () => {{ let v; try {{ v = ({condition}); }} catch (e) {{ v = undefined; }}"
                " if (v || performance.now() > end) resolve(v ?? null); else setTimeout(check, 20); };"
                " check(); })")
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(poll, timeout=timeout)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}"
                                     f"; page errors: {self.log.errors}")

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def fill(self, selector: str, text: str) -> None:
        """Set an input's or textarea's value as typing would, firing `input` and `change`."""
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      f" e.focus(); e.value = {json.dumps(text)};"
                      " e.dispatchEvent(new Event('input', {bubbles: true}));"
                      " e.dispatchEvent(new Event('change', {bubbles: true})); })()")

    def select(self, selector: str, value: str) -> None:
        self.fill(selector, value)

    def csp_violations(self) -> list[dict[str, Any]]:
        return self.evaluate("window.__cspViolations || []") or []

    def screenshot(self) -> bytes:
        """The page as a PNG."""
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])


# --- PNG -----------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of pixels (filters undone) of an 8-bit, non-interlaced RGB or
    RGBA PNG, as Chromium writes them; anything else is a ValueError."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    chunks: dict[bytes, list[bytes]] = {}
    at = 8
    while at < len(data):
        size, kind = struct.unpack("!I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + size]
        if zlib.crc32(kind + body) != struct.unpack("!I", data[at + 8 + size:at + 12 + size])[0]:
            raise ValueError(f"bad CRC in {kind!r}")
        chunks.setdefault(kind, []).append(body)
        at += 12 + size
    width, height, depth, colour, _, _, interlace = struct.unpack("!IIBBBBB", chunks[b"IHDR"][0])
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), previous, channels)
        rows.append(row)
        previous = row
    return width, height, rows


def _unfilter(kind: int, row: bytearray, above: bytes, bpp: int) -> bytes:
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = above[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        elif kind != 0:
            raise ValueError(f"unknown PNG filter {kind}")
    return bytes(row)


def png_colours(data: bytes, limit: int = 64) -> int:
    """How many distinct pixel values a PNG holds (counting stops at `limit`)."""
    width, _, rows = png_pixels(data)
    channels = len(rows[0]) // width
    seen: set[bytes] = set()
    for row in rows:
        seen.update(row[i:i + channels] for i in range(0, len(row), channels))
        if len(seen) >= limit:
            break
    return len(seen)
