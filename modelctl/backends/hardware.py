"""What this machine is and what the llama.cpp build was compiled for.

Two sources, both plain text so that decisions on them can be tested with recorded values:

- the CPU, from `/proc/cpuinfo` (Linux) or `platform` elsewhere;
- the llama.cpp build, from `llama_print_system_info()`, which reads like
  ``CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 | CUDA : ARCHS = 890 | ...``:
  one group per backend compiled in, each with its features.

Nothing here imports `llama_cpp`; the caller passes the system-info text.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache

# GPU backends as llama.cpp names their groups in the system info, and as we name them to users.
GPU_BACKENDS = {"CUDA": "CUDA", "METAL": "Metal", "MTL": "Metal", "VULKAN": "Vulkan", "HIP": "HIP", "ROCM": "HIP",
                "SYCL": "SYCL", "CANN": "CANN", "MUSA": "MUSA", "OPENCL": "OpenCL", "RPC": "RPC"}
BLAS_BACKENDS = ("BLAS", "ACCELERATE")
# CPU flags worth showing: the instruction sets llama.cpp's CPU kernels are built for.
NOTABLE_CPU_FLAGS = ("sse3", "ssse3", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni",
                     "avx512_bf16", "avx512_vbmi", "amx_tile", "amx_int8", "amx_bf16",
                     "asimd", "sve", "sve2", "i8mm", "asimddp")
AMX_CPU_FLAGS = frozenset({"amx_int8", "amx_tile"})


@dataclass(frozen=True)
class CpuInfo:
    """The host CPU. `flags` is None where the platform does not say (not Linux)."""

    arch: str
    model: str | None
    cores: int
    flags: frozenset[str] | None

    @property
    def has_amx(self) -> bool | None:
        """True/False where the flags are known, None where they are not."""
        if self.flags is None:
            return None
        return bool(self.flags & AMX_CPU_FLAGS)

    def notable_flags(self) -> list[str]:
        return [flag for flag in NOTABLE_CPU_FLAGS if self.flags and flag in self.flags]


def parse_cpuinfo(text: str, *, arch: str = "", cores: int = 0) -> CpuInfo:
    """A CpuInfo from the text of /proc/cpuinfo (the first processor's block)."""
    model = None
    flags: frozenset[str] | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and flags is None:  # x86 / ARM
            flags = frozenset(value.split())
    return CpuInfo(arch=arch, model=model, cores=cores, flags=flags)


@lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """This machine's CPU."""
    arch = platform.machine() or "unknown"
    cores = os.cpu_count() or 1
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return parse_cpuinfo(fh.read(1 << 20), arch=arch, cores=cores)
    except OSError:
        return CpuInfo(arch=arch, model=platform.processor() or None, cores=cores, flags=None)


@dataclass(frozen=True)
class BuildInfo:
    """A llama.cpp build, from its system-info text: each backend group and its features."""

    text: str
    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    def cpu_features(self) -> list[str]:
        """The CPU instruction sets and options compiled in (`AVX2`, `AMX_INT8`, `REPACK`, ...)."""
        return [name for name, value in self.groups.get("CPU", {}).items() if value not in ("0", "")]

    def has_cpu_feature(self, name: str) -> bool:
        return self.groups.get("CPU", {}).get(name, "0") not in ("0", "")

    @property
    def amx(self) -> bool:
        """ggml compiles its AMX buffer type only with both AMX_INT8 and AVX512_VNNI."""
        return self.has_cpu_feature("AMX_INT8") and self.has_cpu_feature("AVX512_VNNI")

    @property
    def gpu_backends(self) -> list[str]:
        found = []
        for group in self.groups:
            name = GPU_BACKENDS.get(group.upper())
            if name and name not in found:
                found.append(name)
        return found

    @property
    def blas(self) -> bool:
        return any(group.upper() in BLAS_BACKENDS for group in self.groups) or self.has_cpu_feature("ACCELERATE")


def parse_system_info(text: str) -> BuildInfo:
    """Parse `llama_print_system_info()`: ``GROUP : NAME = VALUE | NAME = VALUE | GROUP : ...``.

    A field that starts a new group reads ``GROUP : NAME = VALUE``; fields without `=` are kept
    with the value "1" (older builds wrote bare flags)."""
    groups: dict[str, dict[str, str]] = {}
    current = groups.setdefault("", {})
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        while " : " in part or part.endswith(" :"):  # a group begins (a group with no features
            head, _, part = part.partition(":")       # runs straight into the next one)
            current = groups.setdefault(head.strip(), {})
            part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        current[name.strip()] = value.strip() if sep else "1"
    if not groups[""]:
        del groups[""]
    return BuildInfo(text=text, groups=groups)
