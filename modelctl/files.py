"""Files a user names (a registry, a keys file, --messages, --template, a saved conversation, a
GGUF to import), and JSON from them: the one safe way in and out.

- `read_user_file` reads only a regular file, up to a size bound: a FIFO would block, /dev/zero
  never ends, a directory or a symlink loop is an error that says what the path is.
- `check_regular_file` answers the same question for a file read in another way (mmap).
- `read_kept_text` reads a file modelctl keeps for itself the same way; anything wrong with it
  is None (the shortcut it holds is lost), never an error. `read_token_file` reads a token file.
- `load_json` turns every way JSON text can fail (syntax, nesting that exhausts the parser's
  recursion, integers longer than Python converts) into one error of the caller's class.
- `write_user_file` replaces a regular file atomically and refuses a FIFO, a device, a
  directory or a symlink in the target's place, so that it never writes through one.
- `atomic_write` is how every file modelctl writes is written: a temporary file and a rename;
  `atomic_create` the same for a name that must not exist yet. Either way a failure (a full
  disk) leaves the old file or none, never a short one.

Standard library only.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Callable

from modelctl.errors import ModelctlError, ModelFileError, NotFoundError, UsageError

MiB = 2**20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def describe_mode(mode: int) -> str:
    """What a stat mode says a path is, for messages: 'a FIFO (named pipe)', 'a directory', …"""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _shown(path: str | os.PathLike[str]) -> str:
    return repr(os.fspath(path))


def _os_error(exc: OSError, path: str | os.PathLike[str], what: str, error: type[ModelctlError], missing: type[ModelctlError]) -> ModelctlError:
    if isinstance(exc, FileNotFoundError):
        return missing(f"{what} {_shown(path)}: no such file")
    return error(f"cannot read {what} {_shown(path)}: {exc.strerror or exc}")


def check_regular_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    limit: int | None = None,
    error: type[ModelctlError] = UsageError,
    missing: type[ModelctlError] = NotFoundError,
) -> os.stat_result:
    """The stat of `path` (symlinks followed) when it is a regular file of at most `limit` bytes;
    else `missing` (absent) or `error` saying what it is."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(exc, path, what, error, missing) from None
    _check_stat(st, path, what, limit, error)
    return st


def _check_stat(st: os.stat_result, path: str | os.PathLike[str], what: str, limit: int | None, error: type[ModelctlError]) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {_shown(path)} is {describe_mode(st.st_mode)}, not a regular file")
    if limit is not None and st.st_size > limit:
        raise error(f"{what} {_shown(path)} is {st.st_size:,} bytes, more than a {what} can be ({_size(limit)})")


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n:,} bytes"


def read_user_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    limit: int,
    error: type[ModelctlError] = UsageError,
    missing: type[ModelctlError] = NotFoundError,
) -> bytes:
    """The bytes of the regular file `path` (at most `limit` of them).

    An absent file is `missing`; anything else wrong (a FIFO, a device, a directory, no
    permission, a symlink loop, a file over the limit) is `error` naming `what` and the path.
    The file is opened without blocking and checked through its descriptor, so a FIFO swapped
    in after the check is refused too.
    """
    check_regular_file(path, what, limit=limit, error=error, missing=missing)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(exc, path, what, error, missing) from None
    with os.fdopen(fd, "rb") as fh:
        _check_stat(os.fstat(fd), path, what, limit, error)
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise _os_error(exc, path, what, error, missing) from None
    if len(data) > limit:  # grew since the check
        raise error(f"{what} {_shown(path)} is larger than {_size(limit)}")
    return data


def read_user_text(
    path: str | os.PathLike[str], what: str, *, limit: int, error: type[ModelctlError] = UsageError
) -> str:
    """`read_user_file` decoded as UTF-8; text that is not UTF-8 is `error`."""
    data = read_user_file(path, what, limit=limit, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {_shown(path)} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_token_file(path: str | os.PathLike[str], what: str = "Hugging Face token file") -> str | None:
    """The token in a token file (its text, stripped), or None when the file is absent or
    empty. It must be a regular file of at most 64 KiB: anything else is a UsageError naming it,
    never read (a FIFO would block, /dev/zero never ends)."""
    try:
        return read_user_text(path, what, limit=1 << 16).strip() or None
    except NotFoundError:
        return None


def read_kept_text(path: str | os.PathLike[str], *, limit: int = MiB) -> str | None:
    """The text of a small file modelctl keeps for itself (a cache, a marker, a remembered
    verdict, a ref in the Hugging Face cache), or None when it is absent or anything but a
    regular UTF-8 file of at most `limit` bytes: such a file is a shortcut lost, never a reason
    to stop, and never read from a FIFO or a device."""
    try:
        return read_user_text(path, "file", limit=limit, error=ModelctlError)
    except ModelctlError:
        return None


def load_json(text: str | bytes, where: str, *, error: type[ModelctlError] = UsageError) -> Any:
    """Parse JSON text; any failure is one `error` naming `where` (a file name, 'stdin', …)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON in {where}: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise error(f"the JSON in {where} is nested too deeply") from None
    except ValueError as exc:  # an integer beyond Python's conversion limit, bytes not UTF-8
        raise error(f"invalid JSON in {where}: {str(exc).splitlines()[0]}") from None


def _write_temp(path: Path, data: bytes, mode: int | None) -> str:
    """A temporary file beside `path` holding `data`, on disk; nothing is left if that fails."""
    import tempfile  # noqa: PLC0415 (tempfile: not on the list --json path)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def atomic_create(path: Path, data: bytes) -> None:
    """Write `data` to `path`, a name nothing holds yet (FileExistsError otherwise, a dangling
    symlink included): the whole file appears at once, or none of it (a full disk leaves no
    empty or short file). Its mode is a new file's (0o666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    tmp = _write_temp(path, data, 0o666 & ~umask)
    try:
        os.link(tmp, path)  # fails if the name was taken meanwhile, without following a link there
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: claim the name, then move the file onto it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        try:
            os.replace(tmp, path)
        except BaseException:
            _discard(str(path))
            raise
    finally:
        _discard(tmp)


def unlink_if_link(path: str | os.PathLike[str]) -> None:
    """Remove a symbolic link at `path`, a name modelctl is about to create, write or lock as a
    file of its own (a download, a lock file): a link there is never modelctl's, and opening the
    name would write to (or truncate) whatever it points to."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def write_user_file(path: str | os.PathLike[str], data: bytes, what: str, *, mode: int | None = None) -> Path:
    """Write `data` to `path` atomically, where `path` is absent or a regular file.

    A directory, a FIFO, a device node, a socket or a symlink at `path` is refused (UsageError):
    writing would replace it, or write through it onto something else.
    """
    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ModelctlError(f"cannot write {what} {_shown(target)}: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {_shown(target)} is {describe_mode(st.st_mode)}; only a regular file is written")
    if not target.parent.is_dir():
        raise UsageError(f"{_shown(target.parent)}: no such directory")
    try:
        atomic_write(target, data, mode=mode)
    except OSError as exc:
        raise ModelctlError(f"cannot write {what} {_shown(target)}: {exc.strerror or exc}") from None
    return target


def sha256_file(path: str | os.PathLike[str], on_block: "Callable[[int], None] | None" = None) -> str:
    """The sha256 of a regular file, read in 8 MiB blocks; `on_block(n)` hears each block's size.
    Anything else in its place (a FIFO would block, a device never end) is a ModelFileError."""
    import hashlib  # noqa: PLC0415 (hashlib: not on the list --json path)

    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ModelFileError(f"{_shown(path)} is {describe_mode(mode)}, not a regular file")
        while block := fh.read(8 << 20):
            h.update(block)
            if on_block is not None:
                on_block(len(block))
    return h.hexdigest()
