"""Hugging Face Hub downloads into the Hub's own cache, resumable and verified.

Files land where `huggingface_hub` puts them (`<cache>/models--OWNER--NAME/blobs/<etag>`, linked
from `snapshots/<commit>/<filename>`, `refs/<revision>` naming the commit), so a file any other
tool already downloaded is reused, and what modelctl downloads is theirs too. The settings come
from the environment at call time: `HF_ENDPOINT`, `HF_TOKEN` (else the token file under
`HF_HOME`), `HF_HUB_OFFLINE`, `HF_HUB_CACHE`/`HF_HOME`.

`huggingface_hub` answers the metadata questions (`get_hf_file_metadata`: commit, ETag, size and
where to download from; `HfApi.model_info(files_metadata=True)`: a repository's files with their
LFS sha256), and its exceptions are turned into modelctl's. The body itself is fetched by
`modelctl.store.transfer`, because `hf_hub_download` deletes its partial file when a download
fails (huggingface_hub >= 1.x): here the partial file is `blobs/<etag>.incomplete` and the next
pull continues it.

For each file, in order:
  1. the file name is checked (it must stay inside the snapshot directory);
  2. offline (`HF_HUB_OFFLINE=1`): the cached copy or OfflineError, no network at all;
  3. HEAD through `huggingface_hub`; the registry's sha256 must equal the Hub's LFS sha256;
  4. free disk space is checked for everything still missing, before any byte is fetched;
  5. under the lock `huggingface_hub` itself takes for that blob (`.locks/.../<etag>.lock`), an
     existing blob is verified (once; the verification is remembered) and linked, or the blob is
     downloaded into `<etag>.incomplete`, verified against the sha256, and renamed into place.
     A file whose sha256 does not match is deleted, never kept.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urljoin

from modelctl.config import file_lock, hf_token_path, offline_requested
from modelctl.errors import (
    AuthError,
    BackendError,
    ModelctlError,
    ModelFileError,
    NotFoundError,
    OfflineError,
)
from modelctl.files import atomic_write, read_kept_text, read_token_file, sha256_file, unlink_if_link
from modelctl.gguf import read_gguf
from modelctl.redaction import redact, strip_credentials
from modelctl.refs import check_repo_id
from modelctl.registry.schema import safe_relative_path
from modelctl.store import index, transfer
from modelctl.store.paths import hf_cache_dir, lock_path, repo_folder, safe_join
from modelctl.store.progress import PullProgress
from modelctl.terminal_text import DEL_C1, char_class
from modelctl.transport import wire
from modelctl.transport.http_client import hooked_session, hub_session_hooks
from modelctl.transport.response_limits import LimitExceeded
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import check_url, redact_url
from modelctl.units import human_bytes
from modelctl.version import __version__

if TYPE_CHECKING:
    from modelctl.store.transfer import Transfer, TransferProgress

DEFAULT_ENDPOINT = "https://huggingface.co"
METADATA_TIMEOUT = 10.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
_C1 = char_class(DEL_C1)  # control characters safe_relative_path lets through (CSI is \x9b)


# What huggingface_hub raises for an answer it cannot read: JSON that does not parse (a web
# page) or nests too deep, or of another shape than it expects.
NOT_HUB = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


class DiskSpaceError(ModelctlError):
    """Not enough free disk space for a download (checked before it starts)."""


@dataclass(frozen=True)
class HubSettings:
    endpoint: str  # as given: what requests go to
    token: str | None
    offline: bool
    cache: Path

    @property
    def offline_reason(self) -> str:
        return "offline (HF_HUB_OFFLINE is set)"

    @property
    def shown(self) -> str:
        """The endpoint as messages show it: credentials hidden."""
        return redact_url(self.endpoint)

    @property
    def public(self) -> str:
        """The endpoint as files may keep it: without credentials."""
        return strip_credentials(self.endpoint)


def settings() -> HubSettings:
    """The Hub settings from the environment, read now."""
    endpoint = check_url((os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/"), "HF_ENDPOINT")
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    if token is None:
        token = read_token_file(hf_token_path())
    return HubSettings(endpoint, token, offline_requested(), hf_cache_dir())


# --- errors -----------------------------------------------------------------------------------


@contextmanager
def hub_errors(s: HubSettings, repo: str, filename: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub's and the HTTP client's exceptions into modelctl's, one line each."""
    import httpx2  # noqa: PLC0415 (httpx2: imported only where used)
    from huggingface_hub import errors as hf  # noqa: PLC0415 (huggingface_hub: imported only where used)

    what = f"{repo}/{filename}" if filename else repo
    try:
        with hooked_session(hub_session_hooks(httpx2)):
            yield
    except LimitExceeded as exc:
        raise BackendError(f"the answer from {s.shown} for {what} {exc.why}") from None
    except hf.GatedRepoError:
        raise AuthError(
            f"{repo} is gated on {s.shown}: access must be granted first",
            hint="request access on the model page, then set HF_TOKEN" if not s.token else "your HF_TOKEN has no access to it",
        ) from None
    except hf.RepositoryNotFoundError:
        raise NotFoundError(
            f"repository {repo} not found on {s.shown}",
            hint="check the name; a private repository needs HF_TOKEN" if not s.token else None,
        ) from None
    except hf.RevisionNotFoundError:
        raise NotFoundError(f"{repo}: revision not found on {s.shown}") from None
    except hf.RemoteEntryNotFoundError:
        raise NotFoundError(f"{repo} has no file {filename!r}") from None
    except hf.OfflineModeIsEnabled:
        raise OfflineError(f"{s.offline_reason}: cannot reach {s.shown} for {what}") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise AuthError(f"{s.shown} refused access to {what} (HTTP {status})",
                            hint="check HF_TOKEN" if s.token else "set HF_TOKEN") from None
        raise BackendError(f"{s.shown} answered HTTP {status} for {what}") from None
    except hf.FileMetadataError as exc:
        raise BackendError(f"{s.shown} did not answer like the Hugging Face Hub for {what}: {_short(exc)}") from None
    except NOT_HUB as exc:
        why = "JSON nested too deeply" if isinstance(exc, RecursionError) else _short(exc)
        raise BackendError(f"{s.shown} did not answer like the Hugging Face Hub for {what} ({why})",
                           hint="check HF_ENDPOINT") from None
    except Exception as exc:
        if _is_connection_error(exc):
            raise OfflineError(f"cannot reach {s.shown} ({_short(exc)}): offline?") from None
        raise


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "TimeoutException", "NetworkError", "ProxyError", "ConnectionError"})


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return one_line(redact(text[0])) if text else type(exc).__name__


# --- what the Hub says ------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    revision: str
    commit: str
    etag: str
    size: int | None
    url: str  # where the body is fetched from (the CDN for LFS files)
    sha256: str | None  # the LFS sha256 (the ETag of an LFS file), when the Hub says it


@dataclass(frozen=True)
class RepoEntry:
    filename: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class RepoListing:
    repo: str
    commit: str | None
    files: list[RepoEntry]
    gguf: dict[str, Any] | None = None
    skipped: list[str] = field(default_factory=list)  # names in the listing that cannot name a file


def file_metadata(s: HubSettings, repo: str, filename: str, revision: str | None = None) -> RemoteFile:
    """HEAD one file through huggingface_hub."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url  # noqa: PLC0415 (huggingface_hub: imported only where used)

    revision = revision or "main"
    url = hf_hub_url(repo, filename, revision=revision, endpoint=s.endpoint)
    with hub_errors(s, repo, filename):
        meta = get_hf_file_metadata(url, token=s.token or False, endpoint=s.endpoint, timeout=METADATA_TIMEOUT)
    if not meta.commit_hash or not meta.etag:
        raise BackendError(
            f"{s.shown} did not answer like the Hugging Face Hub for {repo}/{filename} "
            "(no X-Repo-Commit or ETag header); check HF_ENDPOINT"
        )
    for label, value in (("commit", meta.commit_hash), ("ETag", meta.etag)):
        if not _SAFE_NAME.fullmatch(value):
            raise ModelFileError(f"refusing the {label} {value!r} from {s.shown}: not a plain name")
    sha = meta.etag if _SHA256.fullmatch(meta.etag) else None
    location = urljoin(url, meta.location) if meta.location else url
    return RemoteFile(repo, filename, revision, meta.commit_hash, meta.etag, _size(meta.size), location, sha)


def _size(value: object) -> int | None:
    """A file size from a server, or None when it is not a whole number of bytes a file can have."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63 else None


def list_repo(s: HubSettings, repo: str, revision: str | None = None) -> RepoListing:
    """A repository's files with their sizes and LFS sha256 (`model_info(files_metadata=True)`).
    What the listing says is checked: a file whose name could not be a file here is left out
    (and named in `skipped`), a size or sha256 of the wrong shape counts as unknown."""
    check_repo_id(repo)
    if s.offline:
        raise OfflineError(f"{s.offline_reason}: cannot list the files of {repo}")
    from huggingface_hub import HfApi  # noqa: PLC0415 (huggingface_hub: imported only where used)

    with hub_errors(s, repo):
        info = HfApi(endpoint=s.endpoint, token=s.token or False).model_info(
            repo, revision=revision, files_metadata=True, timeout=METADATA_TIMEOUT
        )
        siblings = info.siblings if isinstance(info.siblings, list) else []
        files, skipped = [], []
        for sib in siblings:
            entry = _entry(sib)
            if entry is None:
                skipped.append(str(getattr(sib, "rfilename", "?"))[:100])
            else:
                files.append(entry)
    commit = info.sha if isinstance(info.sha, str) and _SAFE_NAME.fullmatch(info.sha) else None
    return RepoListing(repo, commit, files, info.gguf if isinstance(info.gguf, dict) else None, skipped)


def usable_name(name: object) -> bool:
    """Whether a file name from a server can name a file in the cache: a plain relative path
    (`safe_relative_path`), each part at most 255 bytes, no part of only dots or spaces."""

    if not isinstance(name, str) or len(name) > 1024 or safe_relative_path(name) or _C1.search(name):
        return False
    return all(len(part.encode("utf-8", "surrogatepass")) <= 255 and part.strip(". ") for part in name.split("/"))


def _entry(sib: object) -> RepoEntry | None:
    """A listing's file, its size and sha256 checked; None for a name that cannot be used."""
    name = getattr(sib, "rfilename", None)
    if not isinstance(name, str) or not usable_name(name) or wire.clean_text(name) != name:
        return None
    lfs = getattr(sib, "lfs", None)
    size = _size(getattr(lfs, "size", None) if lfs is not None else getattr(sib, "size", None))
    sha = getattr(lfs, "sha256", None) if lfs is not None else None
    sha = sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha.lower()) else None
    return RepoEntry(name, size, sha)


# --- the cache --------------------------------------------------------------------------------


def _commit_for(storage: Path, revision: str) -> str | None:
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    try:
        ref = safe_join(storage / "refs", revision, what="revision")
    except ModelFileError:
        return None
    return (read_kept_text(ref, limit=4096) or "").strip() or None


@dataclass(frozen=True)
class CachedGroup:
    """A model's files (one file, or its shards in order) as found in one cached snapshot."""

    paths: list[Path]  # those present, in order
    missing: list[str]  # the names that snapshot lacks; [] when the model is complete


def _snapshot_candidates(storage: Path, revision: str | None, any_snapshot: bool) -> list[Path]:
    """The revision's own snapshot, then (with `any_snapshot`) every other one, newest first."""
    snapshots = storage / "snapshots"
    commit = _commit_for(storage, revision or "main")
    candidates = [snapshots / commit] if commit else []
    if any_snapshot and snapshots.is_dir():
        others = [p for p in snapshots.iterdir() if p.is_dir() and p.name != commit]
        candidates.extend(sorted(others, key=lambda p: p.stat().st_mtime, reverse=True))
    return candidates


def _in_snapshot(snapshot: Path, filenames: list[str]) -> CachedGroup:
    paths, missing = [], []
    for name in filenames:
        try:
            path = safe_join(snapshot, name)
        except ModelFileError:
            path = None
        if path is not None and path.is_file():
            paths.append(path)
        else:
            missing.append(name)
    return CachedGroup(paths, missing)


def cached_group(repo: str, filenames: list[str], revision: str | None = None, *, any_snapshot: bool = False,
                 cache: Path | None = None) -> CachedGroup:
    """`filenames` (a model's shards) at `revision` (default main), all from one snapshot.

    llama.cpp finds a model's other shards beside its first one, so they only count together: the
    first candidate snapshot (see `_snapshot_candidates`) that has them all; else the first that
    has some of them, with the names it lacks; else nothing present and every name missing.
    """
    try:
        storage = repo_folder(repo, cache)
    except ModelctlError:
        return CachedGroup([], list(filenames))
    partial = None
    for snapshot in _snapshot_candidates(storage, revision, any_snapshot):
        found = _in_snapshot(snapshot, filenames)
        if not found.missing:
            return found
        if partial is None and found.paths:
            partial = found
    return partial or CachedGroup([], list(filenames))


def cached_file(repo: str, filename: str, revision: str | None = None, *, any_snapshot: bool = False,
                cache: Path | None = None) -> Path | None:
    """The cached copy of `filename` at `revision` (default main), or None.

    With `any_snapshot`, a copy in any cached snapshot will do (newest first) when the revision's
    own snapshot does not have it.
    """
    found = cached_group(repo, [filename], revision, any_snapshot=any_snapshot, cache=cache)
    return None if found.missing else found.paths[0]


def _link(blob: Path, pointer: Path) -> None:
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        if pointer.exists() and os.path.samefile(pointer, blob):
            return
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:  # no symlinks here (some Windows setups): a hard link, else a copy
        try:
            os.link(blob, pointer)
        except OSError:
            shutil.copyfile(blob, pointer)


def _write_ref(storage: Path, revision: str, commit: str) -> None:
    if revision == commit:
        return

    ref = safe_join(storage / "refs", revision, what="revision")
    if (read_kept_text(ref, limit=4096) or "").strip() == commit:
        return
    atomic_write(ref, commit.encode())


def free_space(directory: Path) -> int | None:
    for path in (directory, *directory.parents):
        try:
            return shutil.disk_usage(path).free
        except OSError:
            continue
    return None


def check_disk(need: int, directory: Path) -> None:
    """DiskSpaceError when `directory`'s file system has less than `need` bytes free."""

    if need <= 0:
        return
    free = free_space(directory)
    if free is not None and free < need:
        raise DiskSpaceError(
            f"not enough disk space in {directory}: the download needs {human_bytes(need)} "
            f"({need:,} bytes), {human_bytes(free)} is free"
        )


# --- pulling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """A file to pull, with what the registry knows about it."""

    filename: str
    sha256: str | None = None
    size: int | None = None
    role: str = "model"  # model | shard | mmproj


@dataclass
class Pulled:
    filename: str
    path: Path  # the snapshot path (a link to the blob)
    blob: Path
    size: int
    sha256: str | None  # verified digest, when one was known
    commit: str | None
    revision: str
    transferred: int = 0  # bytes fetched over the network by this pull
    reused: bool = False  # already in the cache
    role: str = "model"
    notes: list[str] = field(default_factory=list)


def _sha_file(path: Path, task: TransferProgress | None = None) -> str:
    if task is not None:
        task.start(path.stat().st_size, 0)
    return sha256_file(path, task.advance if task is not None else None)


def _partial_size(path: Path) -> int:
    try:
        st = os.lstat(path)  # a link there is not a partial download (transfer replaces it)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def pull_files(
    repo: str,
    wanted: list[Wanted],
    *,
    revision: str | None = None,
    progress: "PullProgress | None" = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Pulled]:
    """Pull `wanted` from `repo` into the Hub cache (see the module docstring); in order."""

    check_repo_id(repo)
    s = settings()
    progress = progress or PullProgress(quiet=True)
    note = on_note or (lambda _msg: None)
    revision = revision or "main"
    storage = repo_folder(repo, s.cache)
    for w in wanted:
        safe_join(storage / "snapshots" / "x", w.filename)

    if s.offline:
        out = []
        for w in wanted:
            path = cached_file(repo, w.filename, revision, cache=s.cache)
            if path is None:
                raise OfflineError(
                    f"{s.offline_reason}: {repo}/{w.filename} is not in the Hugging Face cache "
                    f"({s.cache}); unset HF_HUB_OFFLINE to download it"
                )
            out.append(_cached_result(path, w, revision))
        return out

    remotes: list[RemoteFile] = []
    for w in wanted:
        try:
            r = file_metadata(s, repo, w.filename, revision)
        except OfflineError:
            path = cached_file(repo, w.filename, revision, cache=s.cache)
            if path is None or len(wanted) > 1 and not all(
                cached_file(repo, x.filename, revision, cache=s.cache) for x in wanted
            ):
                raise
            note(f"cannot reach {s.shown}; using the cached copies")
            return [_cached_result(cached_file(repo, x.filename, revision, cache=s.cache), x, revision)  # type: ignore[arg-type]
                    for x in wanted]
        if w.sha256 and r.sha256 and w.sha256.lower() != r.sha256:
            raise ModelFileError(
                f"{repo}/{w.filename} on {s.shown} has sha256 {r.sha256}, but the registry expects "
                f"{w.sha256}: the registry entry or the repository changed; nothing was downloaded"
            )
        if w.size and r.size and w.size != r.size and not w.sha256:
            note(f"warning: {w.filename} is {r.size:,} bytes on the Hub, the registry says {w.size:,}")
        remotes.append(r)

    need = 0
    for r, w in zip(remotes, wanted, strict=True):
        blob = storage / "blobs" / r.etag
        if not blob.exists():
            size = r.size or w.size or 0
            need += max(0, size - _partial_size(blob.with_name(blob.name + ".incomplete")))
    check_disk(need, storage)

    return [_fetch(s, r, w, storage, progress, note) for r, w in zip(remotes, wanted, strict=True)]


def _cached_result(path: Path, w: Wanted, revision: str) -> Pulled:
    blob = Path(os.path.realpath(path))
    commit = path.parent.name if path.parent.parent.name == "snapshots" else None
    return Pulled(w.filename, path, blob, blob.stat().st_size, None, commit, revision, 0, True, w.role)


def _fetch(s: HubSettings, r: RemoteFile, w: Wanted, storage: Path, progress: "PullProgress",
           note: Callable[[str], None]) -> Pulled:
    from filelock import Timeout  # noqa: PLC0415 (filelock: imported only where used)

    blob = storage / "blobs" / r.etag
    pointer = safe_join(storage / "snapshots" / r.commit, r.filename)
    expected = (w.sha256 or r.sha256 or "").lower() or None
    lock_file = lock_path(r.repo, r.etag, s.cache)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = file_lock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        note(f"another download of {r.filename} is in progress; waiting for it")
        lock.acquire()
    try:
        # The folders are made under the lock: `modelctl rm` leaves a repo folder alone while
        # one of its blob locks is held.
        blob.parent.mkdir(parents=True, exist_ok=True)
        unlink_if_link(blob)  # a blob is a file of its own: a link there (to anything) is downloaded over
        _write_ref(storage, r.revision, r.commit)
        result = Pulled(r.filename, pointer, blob, 0, expected, r.commit, r.revision, role=w.role)
        if blob.exists() and expected is None and not _complete(r, blob):
            blob.unlink()  # installed before completeness was checked: fetch it again
            note(f"the cached {r.filename} is not a complete GGUF file; downloading it again")
        if blob.exists():
            if expected is None or index.is_verified(index.read_index(), blob, expected):
                _link(blob, pointer)
                result.size, result.reused = blob.stat().st_size, True
                return result
            digest = _sha_file(blob, progress.task(f"verifying {r.filename}"))
            if digest == expected:
                _link(blob, pointer)
                result.size, result.reused = blob.stat().st_size, True
                return result
            blob.unlink()
            note(f"the cached {r.filename} did not match its sha256 and was deleted; downloading it again")
        partial = blob.with_name(blob.name + ".incomplete")
        size = r.size or w.size
        auth = (transfer.origin(s.endpoint), f"Bearer {s.token}") if s.token else None
        try:
            t = transfer.download(r.url, partial, size=size, auth=auth, progress=progress.task(r.filename),
                                  headers={"User-Agent": _user_agent()})
        except transfer.TransferInterrupted as exc:
            done = f" after {exc.have:,} of {size:,} bytes" if size else ""
            if exc.have == 0 and str(exc).startswith("cannot connect"):
                raise OfflineError(f"cannot download {r.repo}/{r.filename}: {exc}") from None
            raise BackendError(
                f"the download of {r.repo}/{r.filename} stopped{done}: {exc}",
                hint="run the same command again to resume where it stopped",
            ) from None
        except transfer.TransferError as exc:
            if exc.discard:
                partial.unlink(missing_ok=True)
            if exc.status in (401, 403):
                raise AuthError(f"download of {r.repo}/{r.filename} refused (HTTP {exc.status})") from None
            if exc.status in (404, 410):
                raise NotFoundError(f"{r.repo}/{r.filename}: the download location answered {exc.status}") from None
            if exc.have and not exc.discard and partial.exists():
                done = f" after {exc.have:,} of {size:,} bytes" if size else ""
                raise BackendError(f"the download of {r.repo}/{r.filename} stopped{done}: {exc}",
                                   hint="run the same command again to resume where it stopped") from None
            raise BackendError(f"download of {r.repo}/{r.filename} failed: {exc}") from None
        if size is not None and t.size != size:
            partial.unlink(missing_ok=True)
            raise ModelFileError(f"{r.repo}/{r.filename}: got {t.size:,} bytes, expected {size:,}; the download was deleted")
        if expected is not None and t.sha256 != expected:
            partial.unlink(missing_ok=True)
            raise ModelFileError(
                f"{r.repo}/{r.filename}: sha256 mismatch (expected {expected}, got {t.sha256}); "
                "the download was deleted"
            )
        if _is_gguf_name(r.filename):  # a sha256 says the bytes are the server's; the header, that they are whole
            _check_complete(r, partial, t)
        _put_in_place(r, partial, blob, pointer)
        result.size, result.transferred = t.size, t.transferred
        result.sha256 = t.sha256
        return result
    finally:
        lock.release()


def _gguf_shortfall(path: Path) -> int | None:
    """The size the GGUF header of `path` declares (its tensor data included) when the file is
    shorter; None when it is complete, or when its tensor types are unknown here. A file that is
    no readable GGUF raises ModelFileError."""

    try:
        info = read_gguf(path)
    except RecursionError:
        raise ModelFileError(f"{path.name}: corrupt GGUF header (nested too deeply)") from None
    required = info.required_size
    return required if required is not None and info.file_size < required else None


def _is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def _complete(r: RemoteFile, blob: Path) -> bool:
    """Whether a cached blob no sha256 vouches for is whole (see `_check_complete`)."""
    if not _is_gguf_name(r.filename):
        return True
    try:
        return _gguf_shortfall(blob) is None
    except ModelFileError:
        return False


def _check_complete(r: RemoteFile, partial: Path, t: "Transfer") -> None:
    """A downloaded GGUF is installed only when its header's tensors all fit in it: a server
    that ended the body early (no Content-Length, no size or sha256 anywhere) must not leave half
    a model installed. Such a body is kept to resume; a file the server announced at that size
    (its own copy is short, whatever its sha256 says), or one that is no GGUF at all, is deleted."""
    what = f"{r.repo}/{r.filename}"
    try:
        required = _gguf_shortfall(partial)
    except ModelFileError as exc:
        partial.unlink(missing_ok=True)
        detail = str(exc).split(": ", 1)[-1]
        raise ModelFileError(f"{what}: the download is not a usable GGUF file ({detail}); it was deleted") from None
    if required is None:
        return
    if t.announced:
        partial.unlink(missing_ok=True)
        raise ModelFileError(f"{what}: the server's copy is truncated: it has {t.size:,} bytes, its GGUF header "
                             f"declares {required:,}; the download was deleted")
    raise BackendError(
        f"the download of {what} stopped after {t.size:,} bytes: its GGUF header declares {required:,}",
        hint="run the same command again to resume where it stopped",
    )


def _put_in_place(r: RemoteFile, partial: Path, blob: Path, pointer: Path) -> None:
    """Rename the verified download to its blob and link it from the snapshot. Something else
    changing the cache meanwhile (a partial file or folder deleted under this pull) is said in
    one line, not a traceback."""
    try:
        os.replace(partial, blob)
        _link(blob, pointer)
    except OSError as exc:
        raise ModelctlError(
            f"the download of {r.repo}/{r.filename} could not be put in place in the Hugging Face "
            f"cache ({exc.strerror or exc}): was the cache changed while it downloaded?",
            hint="run the same command again",
        ) from None


def _user_agent() -> str:
    return f"modelctl/{__version__}"
