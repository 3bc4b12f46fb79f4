"""modelctl's small local index: what it downloaded, what was imported, which blobs it verified.

One JSON file, `<data_dir>/store.json`:

    {"version": 1,
     "downloads": [{"repo", "filename", "revision", "commit", "quant", "model_id", "sha256",
                    "size", "blob", "pulled_at", "role"}],          # role: model | shard | mmproj
     "imports":   [{"name", "path", "size", "quant", "model_id", "architecture", "imported_at"}],
     "verified":  {"<blob path>": {"size", "mtime_ns", "sha256"}}}

Every change is a read-modify-write under a file lock, written atomically
(`modelctl.files.atomic_write`), so concurrent pulls never lose each other's records. A missing
or unreadable index reads as empty: it is a record, and the files themselves stay the truth.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from modelctl.config import locked_update
from modelctl.errors import ModelctlError
from modelctl.files import atomic_write, load_json, read_user_file
from modelctl.store.paths import store_index_path

VERSION = 1
MAX_INDEX_BYTES = 256 * 2**20


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "downloads": [], "imports": [], "verified": {}}


def read_index(path: Path | None = None) -> dict[str, Any]:
    path = path or store_index_path()
    try:
        data = load_json(read_user_file(path, "store index", limit=MAX_INDEX_BYTES), str(path))
    except ModelctlError:  # absent, not a regular file, not JSON, nested too deeply
        return _empty()
    if not isinstance(data, dict):
        return _empty()
    base = _empty()
    for key in ("downloads", "imports"):
        if isinstance(data.get(key), list):
            records = (_typed(item, _FIELDS[key]) for item in data[key] if isinstance(item, dict))
            base[key] = [r for r in records if all(field in r for field in _REQUIRED[key])]
    if isinstance(data.get("verified"), dict):
        base["verified"] = {k: _typed(v, _FIELDS["verified"]) for k, v in data["verified"].items() if isinstance(v, dict)}
    return base


_FIELDS: dict[str, dict[str, type]] = {
    "downloads": {"repo": str, "filename": str, "revision": str, "commit": str, "quant": str, "model_id": str,
                  "sha256": str, "size": int, "blob": str, "pulled_at": str, "role": str},
    "imports": {"name": str, "path": str, "size": int, "quant": str, "model_id": str, "architecture": str,
                "imported_at": str},
    "verified": {"size": int, "mtime_ns": int, "sha256": str},
}


# A record without these (of the right type) points nowhere: it is left out.
_REQUIRED = {"downloads": ("repo", "filename"), "imports": ("path",)}


def _typed(record: dict[str, Any], fields: dict[str, type]) -> dict[str, Any]:
    """`record` without the known fields whose value has the wrong type (a hand-edited or damaged
    index): readers then see them as absent, as the files themselves stay the truth."""
    return {k: v for k, v in record.items()
            if k not in fields or (isinstance(v, fields[k]) and not isinstance(v, bool))}


@contextmanager
def update_index() -> Iterator[dict[str, Any]]:
    """Yield the index for changing in place; it is written back when the block ends normally."""

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
