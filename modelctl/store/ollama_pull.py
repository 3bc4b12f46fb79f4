"""Models on an Ollama server: pull (with progress per layer), list, delete.

The server is the deployment's `host`, else `OLLAMA_HOST`, else Ollama's default
(127.0.0.1:11434). Everything goes through the `ollama` package; its errors become modelctl's:
a server that is not running, or something that answers but not like Ollama, is a BackendError
naming the host (OfflineError when nothing answers there), an unknown model NotFoundError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelctl.errors import BackendError, NotFoundError, OfflineError
from modelctl.transport.http_client import transport_reason
from modelctl.transport.ollama_server import NOT_OLLAMA, normalize_tag, ollama_client, ollama_host, unreadable
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import redact_url

if TYPE_CHECKING:
    import httpx
    import ollama

    from modelctl.store.progress import PullProgress

LIST_TIMEOUT = 3.0


def _client(host: str | None, *, timeout: httpx.Timeout, deadline: bool = True) -> ollama.Client:
    """An ollama client for the server (`ollama_server.ollama_client`: answers bounded)."""
    return ollama_client(ollama_host(host), timeout=timeout, deadline=deadline)


def _translate(exc: BaseException, host: str, tag: str | None = None) -> Exception:
    import httpx  # noqa: PLC0415 (httpx: imported only where used)
    import ollama  # noqa: PLC0415 (ollama: imported only where used)

    host = redact_url(host)
    if isinstance(exc, ollama.ResponseError):
        text = one_line(str(exc.error))
        if exc.status_code == 404 or "not found" in text or "does not exist" in text:
            return NotFoundError(f"Ollama has no model '{tag}': {text}" if tag else f"Ollama: {text}")
        if 300 <= exc.status_code < 400:
            return BackendError(f"Ollama at {host} answered with a redirect ({exc.status_code})",
                                hint="check OLLAMA_HOST, or the deployment's host")
        return BackendError(f"Ollama at {host} answered HTTP {exc.status_code}: {text}")
    if isinstance(exc, BackendError):  # an answer beyond the limits
        return exc
    if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)):
        return OfflineError(f"cannot connect to the Ollama server at {host}: {transport_reason(exc)}",
                            hint="is `ollama serve` running? (OLLAMA_HOST)")
    if isinstance(exc, httpx.HTTPError):
        return BackendError(f"Ollama at {host}: {one_line(str(exc)) or type(exc).__name__}")
    if isinstance(exc, NOT_OLLAMA):
        # A body that is not JSON (a web page), or JSON of another shape: something else
        # answers at that address.
        return BackendError(f"the server at {host} did not answer like Ollama ({unreadable(exc)})",
                            hint="check OLLAMA_HOST, or the deployment's host")
    return exc  # type: ignore[return-value]


@dataclass
class OllamaModel:
    name: str
    size: int
    digest: str | None
    quant: str | None
    family: str | None
    parameter_size: str | None
    modified_at: str | None


def list_models(host: str | None = None, *, timeout: float = LIST_TIMEOUT) -> list[OllamaModel]:
    """The models on the server (`/api/tags`)."""
    import httpx  # noqa: PLC0415 (httpx: imported only where used)

    h = ollama_host(host)
    try:
        with _client(host, timeout=httpx.Timeout(timeout)) as client:
            resp = client.list()
    except Exception as exc:
        raise _translate(exc, h) from None
    out = []
    for m in resp.models or []:
        details = m.details
        out.append(OllamaModel(
            name=m.model or "",
            size=m.size if isinstance(m.size, int) and 0 <= m.size < 2**63 else 0,
            digest=m.digest,
            quant=details.quantization_level if details else None,
            family=details.family if details else None,
            parameter_size=details.parameter_size if details else None,
            modified_at=m.modified_at.isoformat() if m.modified_at else None,
        ))
    return out


def find_model(tag: str, host: str | None = None) -> OllamaModel | None:
    wanted = normalize_tag(tag)
    for m in list_models(host):
        if normalize_tag(m.name) == wanted:
            return m
    return None


def pull(tag: str, host: str | None = None, *, progress: "PullProgress | None" = None,
         offline: bool = False) -> OllamaModel | None:
    """Have the server pull `tag`; progress per layer. Returns the model as the server lists it."""
    import httpx  # noqa: PLC0415 (httpx: imported only where used)

    h = ollama_host(host)
    if offline:
        present = None
        try:
            present = find_model(tag, host)
        except BackendError:
            pass
        if present is not None:
            return present
        raise OfflineError(f"offline (HF_HUB_OFFLINE is set): not asking Ollama at {h} to download {tag}")
    tasks: dict[str, Any] = {}
    try:
        with _client(host, timeout=httpx.Timeout(None, connect=5.0), deadline=False) as client:
            for part in client.pull(tag, stream=True):
                digest = part.digest
                if digest and part.total and progress is not None:
                    task = tasks.get(digest)
                    if task is None:
                        task = tasks[digest] = progress.task(f"pulling {one_line(digest.removeprefix('sha256:'))[:12]}")
                    task.set_total(part.total, part.completed or 0)
                elif part.status and progress is not None:
                    progress.note(one_line(part.status))
    except (BackendError, NotFoundError):
        raise
    except Exception as exc:
        raise _translate(exc, h, tag) from None
    try:
        return find_model(tag, host)
    except BackendError:
        return None


def delete(tag: str, host: str | None = None) -> None:
    import httpx  # noqa: PLC0415 (httpx: imported only where used)

    h = ollama_host(host)
    try:
        with _client(host, timeout=httpx.Timeout(30.0, connect=5.0)) as client:
            client.delete(tag)
    except Exception as exc:
        raise _translate(exc, h, tag) from None
