"""modelctl's small local index: what it downloaded, what was imported, which blobs it verified.

One JSON file, `<data_dir>/store.json`:

    {"version": 1,
     "downloads": [{"repo", "filename", "revision", "commit", "quant", "model_id", "sha256",
                    "size", "blob", "pulled_at", "role"}],          # role: model | shard | mmproj
     "imports":   [{"name", "path", "size", "quant", "model_id", "architecture", "imported_at"}],
     "verified":  {"<blob path>": {"size", "mtime_ns", "sha256"}}}

Every change is a read-modify-write under a file lock, written atomically
(`modelctl.config.atomic_write`), so concurrent pulls never lose each other's records. A missing
or unreadable index reads as empty: it is a record, and the files themselves stay the truth.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

VERSION = 1


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "downloads": [], "imports": [], "verified": {}}


def read_index(path: Path | None = None) -> dict[str, Any]:
    from modelctl.store.paths import store_index_path

    path = path or store_index_path()
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return _empty()
    if not isinstance(data, dict):
        return _empty()
    base = _empty()
    for key in ("downloads", "imports"):
        if isinstance(data.get(key), list):
            base[key] = [item for item in data[key] if isinstance(item, dict)]
    if isinstance(data.get("verified"), dict):
        base["verified"] = data["verified"]
    return base


@contextmanager
def update_index() -> Iterator[dict[str, Any]]:
    """Yield the index for changing in place; it is written back when the block ends normally."""
    from modelctl.config import atomic_write, locked_update
    from modelctl.store.paths import store_index_path

    path = store_index_path()
    with locked_update(path):
        data = read_index(path)
        yield data
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def stamp(path: Path) -> dict[str, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(data: dict[str, Any], blob: Path, sha256: str) -> bool:
    rec = data["verified"].get(str(blob))
    st = stamp(blob)
    return bool(rec and st and rec.get("sha256") == sha256 and rec.get("size") == st["size"]
                and rec.get("mtime_ns") == st["mtime_ns"])


def record_download(entry: dict[str, Any], *, verified_sha256: str | None) -> None:
    """Add or replace the record for (repo, filename, commit), and remember a verified blob."""
    key = (entry["repo"], entry["filename"], entry["commit"])
    with update_index() as data:
        data["downloads"] = [d for d in data["downloads"]
                             if (d.get("repo"), d.get("filename"), d.get("commit")) != key]
        data["downloads"].append(entry)
        blob = Path(entry["blob"])
        st = stamp(blob)
        if verified_sha256 and st:
            data["verified"][str(blob)] = {**st, "sha256": verified_sha256}
