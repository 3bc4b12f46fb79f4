"""What this machine is and what the llama.cpp build was compiled for.

Two sources, both plain text so that decisions on them can be tested with recorded values:

- the CPU, from `/proc/cpuinfo` (Linux) or `platform` elsewhere;
- the llama.cpp build, from `llama_print_system_info()`, which reads like
  ``CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 | CUDA : ARCHS = 890 | ...``:
  one group per backend compiled in, each with its features.

Nothing here imports `llama_cpp`; the caller passes the module or the system-info text.

Both facts can be replaced for one run, to see what modelctl decides on another machine (a
support report, or the tests, which exercise the AMX branches on every host):
`MODELCTL_CPUINFO=FILE` reads a recorded /proc/cpuinfo instead of this machine's, and
`MODELCTL_LLAMA_SYSTEM_INFO=TEXT` stands for the build's system-info line. Only decisions read
them; llama.cpp itself still runs the build that is installed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType

from modelctl.files import read_user_file

# GPU backends as llama.cpp names their groups in the system info, and as we name them to users.
GPU_BACKENDS = {"CUDA": "CUDA", "METAL": "Metal", "MTL": "Metal", "VULKAN": "Vulkan", "HIP": "HIP", "ROCM": "HIP",
                "SYCL": "SYCL", "CANN": "CANN", "MUSA": "MUSA", "OPENCL": "OpenCL", "RPC": "RPC"}
BLAS_BACKENDS = ("BLAS", "ACCELERATE")
AMX_CPU_FLAGS = frozenset({"amx_int8", "amx_tile"})
CPUINFO_ENV = "MODELCTL_CPUINFO"
SYSTEM_INFO_ENV = "MODELCTL_LLAMA_SYSTEM_INFO"

# ggml's CPU feature names (as the system info prints them) and how the kernel spells the
# instruction set each needs in /proc/cpuinfo; any one spelling present is enough. Linux calls
# SSE3 `pni`, AVX-512 F `avx512f` and VBMI `avx512vbmi` (no underscore), but VNNI and BF16
# `avx512_vnni`, `avx512_bf16`. On 64-bit ARM, FMA is part of Advanced SIMD (`asimd`); 32-bit ARM
# says `neon` and `vfpv4`. Names not listed here (REPACK, LLAMAFILE, OPENMP, KLEIDIAI, SVE_CNT,
# ACCELERATE, ...) are build options, not instructions, and are not checked.
FEATURE_FLAGS: dict[str, tuple[str, ...]] = {
    "SSE3": ("pni", "sse3"), "SSSE3": ("ssse3",), "AVX": ("avx",), "AVX2": ("avx2",), "FMA": ("fma",),
    "F16C": ("f16c",), "BMI2": ("bmi2",), "AVX_VNNI": ("avx_vnni",), "AVX512": ("avx512f",),
    "AVX512_VBMI": ("avx512vbmi", "avx512_vbmi"), "AVX512_VNNI": ("avx512_vnni", "avx512vnni"),
    "AVX512_BF16": ("avx512_bf16", "avx512bf16"), "AMX_INT8": ("amx_int8",),
    "NEON": ("asimd", "neon"), "ARM_FMA": ("asimd", "vfpv4"), "FP16_VA": ("asimdhp",),
    "DOTPROD": ("asimddp",), "MATMUL_INT8": ("i8mm",), "SVE": ("sve",), "SME": ("sme",),
}
# CPU flags worth showing: the kernel's spellings of the instruction sets llama.cpp's CPU kernels
# are built for, and a few more of the same families.
NOTABLE_CPU_FLAGS = tuple(dict.fromkeys([*(flag for flags in FEATURE_FLAGS.values() for flag in flags),
                                         "amx_tile", "amx_bf16", "sve2"]))
# macOS has no /proc/cpuinfo: `sysctl hw.optional` names the same features its own way.
_DARWIN_FLAGS = {"hw.optional.AdvSIMD": "asimd", "hw.optional.neon": "asimd", "hw.optional.arm.FEAT_FP16": "asimdhp",
                 "hw.optional.neon_fp16": "asimdhp", "hw.optional.arm.FEAT_DotProd": "asimddp",
                 "hw.optional.arm.FEAT_I8MM": "i8mm", "hw.optional.arm.FEAT_SME": "sme",
                 "hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.avx2_0": "avx2", "hw.optional.avx1_0": "avx",
                 "hw.optional.fma": "fma", "hw.optional.f16c": "f16c", "hw.optional.sse3": "pni",
                 "hw.optional.supplementalsse3": "ssse3", "hw.optional.avx512f": "avx512f",
                 "hw.optional.avx512vnni": "avx512_vnni"}


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

    def lacks(self, feature: str) -> bool:
        """Whether this CPU surely lacks ggml's `feature`: False where the flags are unknown, or the
        feature is not an instruction set this module knows the kernel's spelling of."""
        spellings = FEATURE_FLAGS.get(feature)
        return bool(spellings and self.flags is not None and not any(flag in self.flags for flag in spellings))


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


def parse_sysctl(text: str, *, arch: str = "", cores: int = 0) -> CpuInfo:
    """A CpuInfo from `sysctl machdep.cpu.brand_string hw.optional` (macOS): the features whose
    value is 1, in the kernel spellings of /proc/cpuinfo."""
    model = None
    flags = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "machdep.cpu.brand_string":
            model = value or None
        elif value == "1" and key in _DARWIN_FLAGS:
            flags.add(_DARWIN_FLAGS[key])
    return CpuInfo(arch=arch, model=model, cores=cores, flags=frozenset(flags))


def _darwin_cpu(arch: str, cores: int) -> CpuInfo | None:
    try:
        done = subprocess.run(["sysctl", "machdep.cpu.brand_string", "hw.optional"], capture_output=True,
                              text=True, errors="replace", timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_sysctl(done.stdout, arch=arch, cores=cores) if done.stdout.strip() else None


@lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """This machine's CPU (or the recorded one `MODELCTL_CPUINFO` names)."""
    arch = platform.machine() or "unknown"
    cores = os.cpu_count() or 1
    recorded = os.environ.get(CPUINFO_ENV)
    if recorded:
        text = read_user_file(recorded, f"the {CPUINFO_ENV} file", limit=1 << 20).decode("utf-8", "replace")
        return parse_cpuinfo(text, arch=arch, cores=cores)
    if sys.platform == "darwin":
        found = _darwin_cpu(arch, cores)
        if found is not None:
            return found
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

    def missing_on(self, cpu: CpuInfo) -> list[str]:
        """The instruction sets this build was compiled for that `cpu` surely lacks."""
        return [name for name in self.cpu_features() if cpu.lacks(name)]

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


def llama_build(llama_cpp: ModuleType) -> BuildInfo:
    """The installed build's BuildInfo (or the one `MODELCTL_LLAMA_SYSTEM_INFO` stands for)."""
    text = os.environ.get(SYSTEM_INFO_ENV) or llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return parse_system_info(text)
