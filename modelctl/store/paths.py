"""Where local model files live, and the one check every untrusted file name goes through.

A file name that comes from a registry or a server (`files[].filename`, `shards`, `mmproj`, a Hub
sibling, an Ollama model name) is joined to a directory only through `safe_join`, which refuses
anything that would land outside it: absolute paths, `..`, backslashes, control characters, and
symbolic links in the existing part of the path that point elsewhere.

The Hugging Face cache is located the way `huggingface_hub` locates it, but from the environment
at call time (so a test or a long-lived process can change it): `HF_HUB_CACHE`, else
`$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelctl.config import get_paths, hf_home
from modelctl.errors import ModelFileError
from modelctl.refs import check_repo_id
from modelctl.registry.schema import safe_relative_path


def safe_join(root: Path, name: str, *, what: str = "file name") -> Path:
    """`root / name`, refusing a `name` that would leave `root` (ModelFileError)."""

    problem = safe_relative_path(name)
    if problem:
        raise ModelFileError(f"refusing the {what} {name!r}: {problem}")
    target = root / name
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    if real_parent != real_root and not real_parent.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ModelFileError(f"refusing the {what} {name!r}: it would land outside {root}")
    return target


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache (shared with every tool that uses `huggingface_hub`)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(os.path.expandvars(cache)).expanduser()
    return hf_home() / "hub"


def repo_folder(repo: str, cache: Path | None = None) -> Path:
    """`models--OWNER--NAME` in the cache, as `huggingface_hub` names it."""
    check_repo_id(repo)
    return (cache or hf_cache_dir()) / ("models--" + repo.replace("/", "--"))


def locks_dir(repo: str, cache: Path | None = None) -> Path:
    """Where `huggingface_hub` keeps the lock files of a repository's blobs."""
    cache = cache or hf_cache_dir()
    return cache / ".locks" / repo_folder(repo, cache).name


def lock_path(repo: str, key: str, cache: Path | None = None) -> Path:
    """The lock file `huggingface_hub` takes for a blob, so its downloads and ours exclude each other."""
    return locks_dir(repo, cache) / f"{key}.lock"


def store_index_path() -> Path:
    """modelctl's own record of its downloads and imported files."""

    return get_paths().data_dir / "store.json"
