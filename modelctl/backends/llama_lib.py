"""The llama.cpp library itself: imported once and on demand, its log kept in memory (never
written to the terminal), and what it says about its build.

`llama_cpp` is imported only when a local model is loaded, so that commands which never load
one do not pay for it.
"""

from __future__ import annotations

import ctypes
from collections import deque
from types import ModuleType

from modelctl.backends.hardware import llama_build
from modelctl.errors import BackendError

_log: deque[str] = deque(maxlen=200)
_log_callback: object = None  # keeps the ctypes callback alive


def import_llama_cpp() -> ModuleType:
    """Import llama_cpp once, routing llama.cpp's log lines into memory (not stderr)."""
    global _log_callback
    try:
        import llama_cpp  # noqa: PLC0415 (llama_cpp: optional)
    except ImportError as exc:
        raise BackendError(
            "llama-cpp-python is not installed", hint="pip install llama-cpp-python"
        ) from exc
    if _log_callback is None:
        def keep(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            line = text.decode("utf-8", errors="replace")
            if line.strip():
                _log.append(line.rstrip("\n"))

        _log_callback = llama_cpp.llama_log_callback(keep)
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp


def clear_log() -> None:
    """Forget what llama.cpp logged so far: what it logs next explains the next failure."""
    _log.clear()


def llama_log_tail(n: int = 20) -> list[str]:
    """The last lines llama.cpp logged (shown by --debug and in load errors)."""
    return list(_log)[-n:]


def load_failure(fallback: str) -> str:
    """Why llama.cpp could not load a model: its last error line, else `fallback` and the last
    line it logged (such as "quantized V cache requires flash_attn to be enabled")."""
    lines = [line.strip() for line in llama_log_tail(40)]
    for word in ("error", "failed"):
        found = [line for line in lines if word in line.lower()]
        if found:
            return found[-1]
    return f"{fallback}: {lines[-1]}" if lines else fallback


def gpu_offload_supported() -> bool:
    """True when this llama.cpp build can offload layers to a GPU (Metal, CUDA, Vulkan, ...)."""
    return bool(import_llama_cpp().llama_supports_gpu_offload())


def gpu_name(llama_cpp: ModuleType) -> str:
    """The GPU backend this build offloads to ("CUDA", "Metal", ...), or "GPU"."""

    found = llama_build(llama_cpp).gpu_backends
    return found[0] if found else "GPU"
