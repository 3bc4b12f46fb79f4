"""A loopback HTTP server that speaks the part of Ollama's API the model store uses.

    GET    /api/tags     {"models": [{name, model, modified_at, size, digest, details}]}
    POST   /api/pull     {"model", "stream"}: NDJSON progress lines, then {"status": "success"};
                         an unknown model streams {"error": "pull model manifest: file does not exist"}
    DELETE /api/delete   {"model"}: 200, or 404 {"error": "model '...' not found"}

As in Ollama's docs/api.md: names default to the `latest` tag, a pull reports one
`pulling <digest>` line per layer with `total` and `completed`, then `verifying sha256 digest`,
`writing manifest` and `success`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _full(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaServer:
    def __init__(self) -> None:
        self.library: dict[str, dict[str, Any]] = {}  # models the "registry" can pull
        self.local: dict[str, dict[str, Any]] = {}  # models on this server
        self.requests: list[tuple[str, str, Any]] = []
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.host = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def publish(self, name: str, *, size: int = 1_000_000, quant: str = "Q4_K_M", family: str = "gemma3",
                parameter_size: str = "268.10M") -> None:
        digest = hashlib.sha256(name.encode()).hexdigest()
        self.library[_full(name)] = {
            "name": _full(name), "model": _full(name), "modified_at": "2025-01-01T00:00:00Z", "size": size,
            "digest": digest,
            "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                        "parameter_size": parameter_size, "quantization_level": quant},
        }

    def start(self) -> "OllamaServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_state: OllamaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        st = self.server_state
        st.requests.append(("GET", self.path, None))
        if self.path == "/api/tags":
            return self._json(200, {"models": list(st.local.values())})
        self._json(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        st = self.server_state
        body = self._body()
        st.requests.append(("DELETE", self.path, body))
        name = _full(body.get("model") or body.get("name") or "")
        if self.path == "/api/delete":
            if st.local.pop(name, None) is None:
                return self._json(404, {"error": f"model '{name}' not found"})
            return self._json(200, {})
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        st = self.server_state
        body = self._body()
        st.requests.append(("POST", self.path, body))
        if self.path != "/api/pull":
            return self._json(404, {"error": "not found"})
        name = _full(body.get("model") or body.get("name") or "")
        model = st.library.get(name)
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if model is None:
            lines.append({"error": "pull model manifest: file does not exist"})
        else:
            digest = "sha256:" + model["digest"]
            total = model["size"]
            for done in (0, total // 2, total):
                lines.append({"status": f"pulling {model['digest'][:12]}", "digest": digest, "total": total,
                              "completed": done})
            lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
            st.local[name] = model
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = (json.dumps(line) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
