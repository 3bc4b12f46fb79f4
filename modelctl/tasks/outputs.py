"""Where the files a task makes are written: `-o PATH`, or a fresh name in the current
directory. Nothing is overwritten without `force`, and nothing a server says becomes a file name."""

from __future__ import annotations

import glob
import time
from pathlib import Path

from modelctl.errors import ModelctlError, UsageError
from modelctl.files import atomic_create, write_user_file


def output_paths(output: str | None, count: int, stem: str, ext: str, *, force: bool = False) -> list[Path]:
    """`count` paths: `output` itself (PATH-1.ext, PATH-2.ext… for several; inside it when it is
    a directory), else `{stem}-{time}.{ext}` in the current directory with a number added while
    one exists. An existing file named by `output` is an error unless `force`."""
    if output is None or Path(output).is_dir():
        folder = Path(output) if output is not None else Path.cwd()
        base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while True:
            names = [folder / f"{base}{_suffix(n, i, count)}.{ext}" for i in range(count)]
            if not any(p.exists() for p in names):
                return names
            n += 1
    path = Path(output)
    paths = [path] if count == 1 else [path.with_name(f"{path.stem}-{i + 1}{path.suffix or '.' + ext}")
                                      for i in range(count)]
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write '{path}': '{folder}' is not a directory")
    if count > 1 and not path.suffix:  # the extension follows what the service sends: any one clashes
        taken = [q for p in paths for q in sorted(folder.glob(glob.escape(p.stem) + ".*"))]
    else:
        taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken and not force:
        raise UsageError(f"'{taken[0]}' exists", hint="pass --force to overwrite it, or -o another path")
    return paths


def _suffix(n: int, i: int, count: int) -> str:
    again = f"-{n}" if n > 1 else ""
    return again + (f"-{i + 1}" if count > 1 else "")


def write_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write `data` to `path` atomically (all of it, or no file); without `force` only a file
    that does not exist yet (checked as it is created, so one made meanwhile is not overwritten)."""
    if force:
        write_user_file(path, data, "output file")
        return
    try:
        atomic_create(path, data)
    except FileExistsError:
        raise UsageError(f"'{path}' exists", hint="pass --force to overwrite it, or -o another path") from None
    except OSError as exc:
        raise ModelctlError(f"cannot write '{path}': {exc.strerror or exc}") from None
