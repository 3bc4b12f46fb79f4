"""Recorded hosts (tests/data/hosts/): each CPU and the llama.cpp system-info line a native build
on it prints. Used by the CPU tests, and by conftest to run the whole suite as one of them
(MODELCTL_TEST_HOST=NAME)."""

from __future__ import annotations

from pathlib import Path

HOSTS = Path(__file__).parent / "data" / "hosts"

_X86 = "SSE3 SSSE3 AVX AVX2 F16C FMA BMI2"
_SKX = _X86 + " AVX512"
_ICX = _SKX + " AVX512_VBMI AVX512_VNNI"
_SPR = "SSE3 SSSE3 AVX AVX_VNNI AVX2 F16C FMA BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_INT8"
_ZEN4 = _SKX + " AVX512_VBMI AVX512_VNNI AVX512_BF16"
_N1 = "NEON ARM_FMA FP16_VA DOTPROD"
_V1 = "NEON ARM_FMA FP16_VA MATMUL_INT8 SVE DOTPROD"

# host file -> the CPU features a native llama.cpp build on that host compiles in.
NATIVE_BUILDS = {
    "skylake-sp.cpuinfo": _SKX,
    "cascade-lake.cpuinfo": _SKX + " AVX512_VNNI",
    "ice-lake-sp.cpuinfo": _ICX,
    "sapphire-rapids.cpuinfo": _SPR,
    "emerald-rapids.cpuinfo": _SPR,
    "granite-rapids.cpuinfo": _SPR,
    "zen2-epyc-7r32.cpuinfo": _X86,
    "zen3-epyc-7r13.cpuinfo": _X86,
    "zen4-epyc-9r14.cpuinfo": _ZEN4,
    "zen5-epyc-9r45.cpuinfo": _ZEN4.replace("AVX ", "AVX AVX_VNNI "),
    "graviton2.cpuinfo": _N1,
    "ampere-altra.cpuinfo": _N1,
    "graviton3.cpuinfo": _V1,
    "graviton4.cpuinfo": _V1,
    "apple-m1.sysctl": _N1,
    "apple-m2.sysctl": _N1 + " MATMUL_INT8",
    "apple-m4.sysctl": _N1 + " MATMUL_INT8 SME",
}


def system_info(features: str, *, extra: str = "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1") -> str:
    """A system-info line as llama.cpp prints it for a CPU build with `features`."""
    return "CPU : " + " | ".join(f"{name} = 1" for name in features.split()) + f" | {extra} | "


def amx_host(verdict: str) -> dict[str, str]:
    """The environment in which modelctl, on any host, decides as on a Sapphire Rapids with a native
    (AMX) llama.cpp build whose AMX probe gave `verdict` ("ok" or "crash")."""
    return {"MODELCTL_CPUINFO": str(HOSTS / "sapphire-rapids.cpuinfo"),
            "MODELCTL_LLAMA_SYSTEM_INFO": system_info(NATIVE_BUILDS["sapphire-rapids.cpuinfo"]),
            "MODELCTL_CPU_VERDICT": verdict}
