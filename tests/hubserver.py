"""A loopback HTTP server that speaks the Hugging Face Hub's download protocol.

It follows what `huggingface_hub` (file_download.py, hf_api.py, utils/_http.py) sends and expects:

    GET  /api/models/{repo}[/revision/{rev}]   model info JSON; `?blobs=true` adds size, blobId, lfs
    HEAD /{repo}/resolve/{rev}/{file}          metadata headers (X-Repo-Commit, ETag, ...)
    GET  /{repo}/resolve/{rev}/{file}          the same, then the file (or a redirect to it)
    HEAD|GET /cdn/{sha256}                     the "CDN": an LFS object, with `Range: bytes=N-` -> 206

An LFS file (every `.gguf`) answers /resolve with `302 Found` to the CDN on another host name
(`localhost` instead of `127.0.0.1`), carrying `X-Linked-Etag` (its sha256), `X-Linked-Size` and
`X-Repo-Commit`, as the Hub does; `huggingface_hub` reads the metadata from that redirect and does
not send the token to the CDN. A small file is served inline with its git blob id as ETag.
Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) so that the
client raises the same exceptions it raises against the Hub.

Faults, for tests (attributes of `HubServer`, changeable while it runs):

    drop_after     close the connection after sending this many body bytes of a CDN GET ...
    drop_times     ... for this many GETs (then serve normally); -1: every GET
    fail_status    after the drops are spent, answer CDN GETs with this status (e.g. 503) instead
    corrupt        serve wrong bytes (one flipped byte in the middle), same headers
    ignore_range   answer ranged GETs with the whole file (200), as some proxies do
    wrong_range_start  answer the next ranged GET with a 206 from this offset instead of the one
                   asked for (then serve normally), as a confused cache might
    gate           a threading.Event: a CDN GET pauses after `gate_after` bytes until it is set
                   (`gate_reached` is set when one does)
    tokens         {repo: token}: a gated repo; requests without `Authorization: Bearer token` get 401
    anonymous      a careless mirror: every file served from /resolve itself, with neither size
                   (no Content-Length, X-Linked-Size or listing size) nor sha256; the body ends
                   when the connection closes ...
    truncate_at    ... after this many bytes, when set
    model_info_body  (content type, bytes) answered to every model-info request instead
    extra_siblings   raw entries appended to the listing's `siblings` (hostile file names)
    location       where /resolve sends an LFS download instead of the CDN (`file:///etc/passwd`)

Every request is recorded in `requests` (method, path, headers) and every CDN body byte counted
in `bytes_sent`, so tests can assert what was transferred.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoFile:
    path: Path  # on disk
    sha256: str
    size: int
    lfs: bool


@dataclass
class Repo:
    repo_id: str
    commit: str = COMMIT
    files: dict[str, RepoFile] = field(default_factory=dict)
    gguf: dict[str, Any] | None = None


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


class HubServer:
    """A Hub on 127.0.0.1 (API and /resolve) with its "CDN" on localhost, same port."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, RepoFile] = {}  # sha256 -> file
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self.tokens: dict[str, str] = {}
        self.declared_sizes: dict[str, int] = {}  # sha256 -> size announced instead of the real one
        self.reset_faults()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def reset_faults(self) -> None:
        self.drop_after: int | None = None
        self.drop_times = 0
        self.fail_status: int | None = None
        self.corrupt = False
        self.ignore_range = False
        self.wrong_range_start: int | None = None
        self.gate: threading.Event | None = None
        self.gate_after = 0
        self.gate_reached = threading.Event()
        self.listeners: list = []  # callables given each Request as it arrives
        self.anonymous = False
        self.truncate_at: int | None = None
        self.model_info_body: tuple[str, bytes] | None = None
        self.extra_siblings: list = []
        self.location: str | None = None

    def reset_counters(self) -> None:
        self.requests.clear()
        self.bytes_sent = 0

    # --- content ----------------------------------------------------------------------------

    def add_file(self, repo_id: str, filename: str, path: Path | str, *, sha256: str | None = None) -> RepoFile:
        path = Path(path)
        repo = self.repos.setdefault(repo_id, Repo(repo_id))
        lfs = filename.endswith((".gguf", ".bin", ".safetensors"))
        f = RepoFile(path, sha256 or sha256_file(path), path.stat().st_size, lfs)
        repo.files[filename] = f
        if lfs:
            self.blobs[f.sha256] = f
        return f

    def add_text(self, repo_id: str, filename: str, text: str, tmp_dir: Path) -> RepoFile:
        target = Path(tmp_dir) / f"{repo_id.replace('/', '--')}--{filename.replace('/', '--')}"
        target.write_text(text)
        return self.add_file(repo_id, filename, target)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def gets(self, prefix: str = "/cdn/") -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.startswith(prefix)]

    def heads(self) -> list[Request]:
        return [r for r in self.requests if r.method == "HEAD"]


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ---------------------------------------------------------------------------

    def _record(self) -> None:
        req = Request(self.command, unquote(urlsplit(self.path).path), {k.lower(): v for k, v in self.headers.items()})
        with self.hub._lock:
            self.hub.requests.append(req)
        for listener in list(self.hub.listeners):
            listener(req)

    def _send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"Content-Type": "application/json", "X-Repo-Commit": COMMIT} if code == "EntryNotFound" else {
            "Content-Type": "application/json"
        }
        if code:
            headers["X-Error-Code"] = code
        headers["X-Error-Message"] = message
        self._send(status, headers, json.dumps({"error": message}).encode())

    def _authorized(self, repo_id: str) -> bool:
        token = self.hub.tokens.get(repo_id)
        return token is None or self.headers.get("Authorization") == f"Bearer {token}"

    # --- routes -----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        self._record()
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.startswith("/cdn/"):
            return self._cdn(path[len("/cdn/"):])
        if path.startswith("/api/models/"):
            return self._model_info(path[len("/api/models/"):], parse_qs(url.query))
        parts = path.lstrip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], parts[4])
        self._error(404, None, "Not Found")

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if not self._authorized(repo_id):
            self._error(401, "GatedRepo", "Access to model is restricted; you must be authenticated")
            return None
        return repo

    def _model_info(self, rest: str, query: dict[str, list[str]]) -> None:
        if "/revision/" in rest:
            repo_id, revision = rest.split("/revision/", 1)
        else:
            repo_id, revision = rest, "main"
        if self.hub.model_info_body is not None:
            ctype, body = self.hub.model_info_body
            return self._send(200, {"Content-Type": ctype}, body)
        repo = self._repo(repo_id)
        if repo is None:
            return
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, f in sorted(repo.files.items()):
            item: dict[str, Any] = {"rfilename": name}
            if blobs and not self.hub.anonymous:
                item["size"] = f.size
                item["blobId"] = git_blob_id(f.sha256.encode())
                if f.lfs:
                    item["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(item)
        info = {
            "_id": "0" * 24,
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": repo.commit,
            "private": False,
            "gated": False if repo_id not in self.hub.tokens else "manual",
            "disabled": False,
            "tags": ["gguf"],
            "library_name": "gguf",
            "siblings": siblings + self.hub.extra_siblings,
        }
        if repo.gguf is not None:
            info["gguf"] = repo.gguf
        self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode())

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        f = repo.files.get(filename)
        if f is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist on \"{revision}\"")
        common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes", "Vary": "Origin, Accept-Encoding"}
        if self.hub.anonymous:
            return self._anonymous(f, common)
        if f.lfs:
            size = self.hub.declared_sizes.get(f.sha256, f.size)
            headers = common | {
                "ETag": f'"{git_blob_id(f.sha256.encode())}"',
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(size),
                "Location": self.hub.location or f"{self.hub.cdn}/cdn/{f.sha256}",
                "Content-Type": "text/plain; charset=utf-8",
            }
            return self._send(302, headers, b"Found. Redirecting")
        data = f.path.read_bytes()
        headers = common | {"ETag": f'"{git_blob_id(data)}"', "Content-Type": "text/plain; charset=utf-8"}
        self._send(200, headers, data)

    def _anonymous(self, f: RepoFile, common: dict[str, str]) -> None:
        """The file itself, its length told by nothing but the end of the connection."""
        self.send_response(200)
        for k, v in (common | {"ETag": f'"{git_blob_id(f.sha256.encode())}"',
                               "Content-Type": "application/octet-stream", "Connection": "close"}).items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        if self.command == "GET":
            limit = f.size if self.hub.truncate_at is None else min(f.size, self.hub.truncate_at)
            with open(f.path, "rb") as fh:
                self.hub.bytes_sent += self._copy(fh, 0, limit)

    def _cdn(self, sha: str) -> None:
        hub = self.hub
        f = hub.blobs.get(sha)
        if f is None:
            return self._error(404, None, "NoSuchKey")
        size = f.size
        start = 0
        rng = self.headers.get("Range")
        if rng and not hub.ignore_range:
            spec = rng.strip()
            if not spec.startswith("bytes=") or not spec[6:].split("-")[0].isdigit():
                return self._error(400, None, "bad range")
            start = int(spec[6:].split("-")[0])
            with hub._lock:
                if self.command == "GET" and hub.wrong_range_start is not None:
                    start, hub.wrong_range_start = hub.wrong_range_start, None
            if start >= size:
                return self._send(416, {"Content-Range": f"bytes */{size}"})
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{sha}"',
        }
        if self.command == "GET":
            with hub._lock:
                drop = hub.drop_after is not None and hub.drop_times != 0
                if drop and hub.drop_times > 0:
                    hub.drop_times -= 1
                fail = not drop and hub.fail_status
            if fail:
                return self._error(fail, None, "Service Unavailable")
        else:
            drop = False
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = size - start
        if drop:
            limit = min(limit, hub.drop_after)
        self.wfile.flush()
        sent = self._body(f.path, start, limit, size)
        with hub._lock:
            hub.bytes_sent += sent
        if drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _body(self, path: Path, start: int, limit: int, size: int) -> int:
        hub = self.hub
        sent = 0
        with open(path, "rb") as fh:
            if hub.gate is not None and hub.gate_after:
                first = min(limit, max(0, hub.gate_after - start))
                sent += self._copy(fh, start, first)
                hub.gate_reached.set()
                if not hub.gate.wait(60):
                    return sent
                start, limit = start + first, limit - first
            if hub.corrupt:
                return sent + self._copy_corrupt(fh, start, limit, size)
            return sent + self._copy(fh, start, limit)

    def _copy(self, fh, offset: int, count: int) -> int:
        if count <= 0:
            return 0
        try:
            return self.connection.sendfile(fh, offset, count) or 0
        except (BrokenPipeError, ConnectionResetError):
            return 0

    def _copy_corrupt(self, fh, offset: int, count: int, size: int) -> int:
        fh.seek(offset)
        data = bytearray(fh.read(count))
        middle = size // 2 - offset
        if 0 <= middle < len(data):
            data[middle] ^= 0xFF
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return 0
        return len(data)


def serve(root: Path, port: int = 0) -> HubServer:  # pragma: no cover - manual use
    """Serve every file under `root` as `{owner}/{name}/{file}` (for trying the client by hand)."""
    hub = HubServer()
    for p in sorted(Path(root).glob("*/*/**/*")):
        if p.is_file():
            owner, name, *rest = p.relative_to(root).parts
            hub.add_file(f"{owner}/{name}", "/".join(rest), p)
    return hub.start()


if __name__ == "__main__":  # pragma: no cover
    import sys

    server = serve(Path(sys.argv[1]))
    print(f"HF_ENDPOINT={server.endpoint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_llamacpp_registry(path: Path, model_id: str, repo: str, files: dict[str, list[str]]) -> Path:
    """A one-model registry whose llama.cpp deployment lists `files` (quant -> its file names,
    shards in order) from the Hub repository `repo`; the first quant is the default."""
    from registries import model, write_registry

    rows = [{"quant": q, "filename": names[0], **({"shards": names} if len(names) > 1 else {})}
            for q, names in files.items()]
    dep = {"kind": "llama.cpp", "repo": repo, "default_quant": next(iter(files)), "files": rows}
    return write_registry(path, model(model_id, dep))


def make_gguf(path: Path | str, *, arch: str = "llama", file_type: int = 15, n_floats: int = 4096,
              template: str | None = None, name: str | None = "Tiny Test Model", context: int = 256,
              extra: dict[str, Any] | None = None) -> Path:
    """A small valid GGUF file: one f32 tensor of `n_floats`."""
    from ggufs import write_gguf

    return write_gguf(path, arch, name=name, file_type=file_type, context=context, template=template,
                      kv=extra, n_floats=n_floats)
