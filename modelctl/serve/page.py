"""The page `modelctl serve` shows a browser: `GET /` and `GET /static/{name}`, the HTML, CSS and
JavaScript of modelctl/serve/web/, shipped in the package (no build step, nothing from another
origin). They hold no data, so they need no key: what the page shows comes from the API routes,
sent with the key the page asks for. Every response carries a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

WEB = Path(__file__).with_name("web")

CSP = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
])
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # checked each time (a 304 when unchanged): a new version shows at once
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def assets(folder: Path = WEB) -> dict[str, Asset]:
    """The page's files by name, read once. Only these names are served: any other path under
    /static/ (`..`, a subfolder, a file of another kind) is a 404 without the disk being asked."""
    found = {}
    for path in sorted(folder.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type and path.is_file():
            body = path.read_bytes()
            found[path.name] = Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def _send(asset: Asset, request: Request) -> Response:
    headers = {**HEADERS, "etag": asset.etag}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def routes() -> list[Route]:
    """`/` and `/static/{name}`, over the files as they were when the server started."""
    files = assets()

    async def index(request: Request) -> Response:
        return _send(files["index.html"], request)

    async def static(request: Request) -> Response:
        asset = files.get(request.path_params["name"])
        if asset is None:
            raise HTTPException(404)
        return _send(asset, request)

    return [Route("/", index, methods=["GET"]), Route("/static/{name:path}", static, methods=["GET"])]
