"""OpenAI's tokenizers without a download: tiktoken, with the encoding files from a package.

tiktoken fetches its encoding files from OpenAI on first use, which a machine without internet
cannot. The `bpe-openai` package ships the same files (cl100k_base, o200k_base) compressed; they
are unpacked once into modelctl's cache under the name tiktoken's own cache gives them, and
tiktoken then loads them from there, checking each file against the hash it expects (so a file
that is not OpenAI's is refused, not used). Both packages are the optional `tokens` extra.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from modelctl.config import get_paths
from modelctl.errors import ModelctlError
from modelctl.files import atomic_write

if TYPE_CHECKING:
    import tiktoken

# Model id prefixes and their encodings; the first match wins (so "gpt-4o" before "gpt-4").
ENCODINGS = (
    ("gpt-4o", "o200k_base"), ("chatgpt-4o", "o200k_base"), ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"), ("gpt-5", "o200k_base"), ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"), ("o3", "o200k_base"), ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5", "cl100k_base"), ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
SHIPPED = ("cl100k_base", "o200k_base")
# Where tiktoken downloads an encoding from; its cache names the file after this address.
SOURCE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
EXTRA_HINT = "pip install 'modelctl[tokens]'"

_env_lock = threading.Lock()


class EncodingUnavailable(ModelctlError):
    """tiktoken or the encoding files are not installed (counts fall back to an estimate)."""


def encoding_name(model_id: str) -> str | None:
    """The tiktoken encoding of an OpenAI model id ("openai/gpt-4o" too), or None."""
    name = model_id.lower().rsplit("/", 1)[-1]
    return next((enc for prefix, enc in ENCODINGS if name.startswith(prefix)), None)


def _shipped_file(name: str) -> Path:
    """The compressed encoding file in the bpe-openai package (found without importing it: its
    native library is large and not needed here)."""

    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise EncodingUnavailable(f"the {name} encoding is not installed ({EXTRA_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        raise EncodingUnavailable(f"the bpe-openai package has no {name} encoding ({EXTRA_HINT})")
    return path


def _cached_file(name: str, cache_dir: Path) -> None:
    """Unpack the shipped encoding into `cache_dir` under tiktoken's cache name, once."""

    target = cache_dir / hashlib.sha1(SOURCE_URL.format(name=name).encode()).hexdigest()
    if not target.is_file():
        with gzip.open(_shipped_file(name), "rb") as packed:
            atomic_write(target, packed.read())


@lru_cache(maxsize=None)
def encoding(name: str) -> "tiktoken.Encoding":
    """The tiktoken encoding `name` (cl100k_base, o200k_base), loaded offline."""
    try:
        import tiktoken  # noqa: PLC0415 (tiktoken: optional)
    except ImportError:
        raise EncodingUnavailable(f"tiktoken is not installed ({EXTRA_HINT})") from None
    if name not in SHIPPED:
        raise EncodingUnavailable(f"the {name} encoding is not shipped with modelctl")

    cache_dir = get_paths().cache_dir / "tiktoken"
    cache_dir.mkdir(parents=True, exist_ok=True)
    _cached_file(name, cache_dir)
    with _env_lock:  # tiktoken reads its cache directory from the environment
        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # a file that fails tiktoken's hash check, then no network
            raise EncodingUnavailable(f"the {name} encoding could not be loaded: {exc}") from None
        finally:
            if before is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = before
