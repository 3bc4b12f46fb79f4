"""The live sources of `modelctl registry update --live`: models.dev's catalogue and LiteLLM's
price table, fetched over HTTP (the formats are read by `sources.py`, as for the installed data).

Each source is fetched with a conditional request: the body and its ETag are kept in the cache
dir (`registry-sources/NAME.json` and `NAME.etag`, the ETag file holding the body's sha256 too),
and the next run sends `If-None-Match`, so a 304 reuses the copy without downloading it again.
Requests go through the bounded HTTP client (`MODELCTL_MAX_RESPONSE_MB`, no redirects followed).
With `HF_HUB_OFFLINE=1` nothing is sent: the cached copy is used, or the update stops (exit 9).
The copies are saved only once the whole update has been checked (`save`), never for a dry run,
so a bad answer never replaces a good copy.

    MODELCTL_MODELS_DEV_URL   models.dev's catalogue (default https://models.dev/api.json)
    MODELCTL_LITELLM_URL      LiteLLM's price table (default: its file in the LiteLLM repository)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelctl.config import get_paths, offline_requested
from modelctl.errors import BackendError, OfflineError
from modelctl.files import atomic_write
from modelctl.transport import wire
from modelctl.transport.http_client import ErrorContext, HttpClient, parse_json
from modelctl.transport.urls import check_url, redact_url


@dataclass(frozen=True)
class LiveSource:
    name: str  # the format, as `sources.parse` knows it
    title: str
    default_url: str
    env: str  # the variable that overrides the URL

    def url(self) -> str:
        url = os.environ.get(self.env, "").strip() or self.default_url
        return check_url(url, self.env if os.environ.get(self.env, "").strip() else f"{self.title}'s address")

    def label(self, url: str) -> str:
        return f"{self.title} {redact_url(url)}"


LIVE_SOURCES = (
    LiveSource("models-dev", "models.dev", "https://models.dev/api.json", "MODELCTL_MODELS_DEV_URL"),
    LiveSource("litellm", "LiteLLM", "https://raw.githubusercontent.com/BerriAI/litellm/main/"
               "model_prices_and_context_window.json", "MODELCTL_LITELLM_URL"),
)


@dataclass(frozen=True)
class Fetched:
    """One source's document as this run reads it, and what `save` keeps of it."""

    source: LiveSource
    data: Any
    label: str
    body: bytes
    etag: str | None
    fresh: bool  # downloaded by this run (not the cached copy)

    def document(self) -> tuple[Any, str]:
        """(the document, its label): a loader, as `update.read_sources` takes them."""
        return self.data, self.label


def cache_dir() -> Path:
    return get_paths().cache_dir / "registry-sources"


def _cached(source: LiveSource) -> tuple[bytes, str | None] | None:
    """The cached body and its ETag, or None when there is no intact copy."""
    folder = cache_dir()
    try:
        body = (folder / f"{source.name}.json").read_bytes()
        digest, _, etag = (folder / f"{source.name}.etag").read_text(encoding="utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if digest != hashlib.sha256(body).hexdigest():
        return None  # a copy whose body and ETag do not belong together is not used
    return body, etag.strip() or None


def fetch(source: LiveSource) -> Fetched:
    """`source`'s document: downloaded, or the cached copy after a 304 (or when offline)."""
    url = source.url()
    label = source.label(url)
    cached = _cached(source)
    ctx = ErrorContext(f"source {label}", endpoint=url)
    if offline_requested():
        if cached is None:
            raise OfflineError(f"offline (HF_HUB_OFFLINE is set) and no copy of {label} was fetched before",
                               hint="run `modelctl registry update` without --live to read the installed packages")
        return Fetched(source, _parse(ctx, cached[0]), label, cached[0], cached[1], fresh=False)
    client = HttpClient(ctx)
    try:
        response = client.get_if_changed(url, cached[1] if cached else None)
        if response is None and cached is not None:  # 304: the copy is current
            return Fetched(source, _parse(ctx, cached[0]), label, cached[0], cached[1], fresh=False)
        if response is None:
            raise BackendError(f"{ctx.provider} answered 304 Not Modified to a request that was not conditional")
        body = response.content
        return Fetched(source, parse_json(ctx, response, body), label, body,
                       response.headers.get("etag"), fresh=True)
    finally:
        client.close()


def _parse(ctx: ErrorContext, body: bytes) -> Any:
    try:
        return wire.loads(body)
    except ValueError as exc:
        raise BackendError(f"{ctx.provider}: the cached copy is not JSON ({exc})") from None


def fetch_all() -> list[Fetched]:
    return [fetch(source) for source in LIVE_SOURCES]


def save(fetched: list[Fetched]) -> None:
    """Keep each freshly downloaded body and its ETag for the next run's conditional request."""
    folder = cache_dir()
    for f in fetched:
        if not f.fresh:
            continue
        atomic_write(folder / f"{f.source.name}.json", f.body)
        digest = hashlib.sha256(f.body).hexdigest()
        atomic_write(folder / f"{f.source.name}.etag", f"{digest}\n{f.etag or ''}\n".encode())
