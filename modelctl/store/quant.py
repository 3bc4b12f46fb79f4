"""Quantizations: their names, their quality order, and choosing the one that fits this machine.

`choose_quant(candidates, budget)` picks the highest-quality file whose size, plus room for the
context and buffers, fits the memory budget, and returns the choice with a sentence saying why.
Full-precision files (F32, F16, BF16) are only chosen when nothing quantized is offered: Q8_0 is
practically lossless at half the size (and F32 only when there is no F16 or BF16 either). When
nothing fits, the smallest file is chosen and the reason says it may not load.

`gguf_groups(listing)` sorts a repository's GGUF files into models by quantization (a sharded
file is one model) and vision projectors.

`memory_budget()` is the memory a model can use here: free VRAM when llama-cpp-python was built
with GPU offload and an NVIDIA GPU answers `nvidia-smi`, unified memory on Apple silicon, else
the RAM available now (the figure the pre-load check in `modelctl.gguf` uses).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelctl.gguf import available_memory
from modelctl.units import human_bytes

if TYPE_CHECKING:
    from modelctl.store.hub import RepoListing

# Best first (llama.cpp's perplexity tables; the _L/_XL variants keep some tensors at Q8_0).
QUALITY_ORDER = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K_L", "Q6_K", "Q5_K_L", "Q5_K_XL", "Q5_K_M", "Q5_K_S", "Q5_1",
    "Q5_0", "Q4_K_L", "Q4_K_XL", "Q4_K_M", "Q4_K_S", "IQ4_NL", "IQ4_XS", "MXFP4", "MXFP4_MOE", "Q4_1", "Q4_0",
    "Q3_K_XL", "Q3_K_L", "Q3_K_M", "IQ3_M", "IQ3_S", "Q3_K_S", "IQ3_XS", "IQ3_XXS", "Q2_K_L", "Q2_K_XL",
    "Q2_K", "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "TQ2_0", "TQ1_0", "Q1_0",
)
FULL_PRECISION = frozenset({"F32", "F16", "BF16"})
_RANK = {q: i for i, q in enumerate(QUALITY_ORDER)}

# general.file_type -> name (llama.cpp's llama_ftype).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

# A quantization inside a file name: `model.Q4_K_M.gguf`, `model-q4_k_m-00001-of-00002.gguf`,
# `model-UD-Q4_K_XL.gguf`, `model-f16.gguf`, `model-IQ4_XS.gguf`.
_QUANT_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9])(?:UD-)?((?:I?Q\d(?:_[01]|_K(?:_[SMLX]{1,3})?|_[SMLX]{1,3})?)|"
    r"TQ\d_0|MXFP4(?:_MOE)?|BF16|F16|F32|FP16)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

# Room beyond the file size: the context (KV cache) and compute buffers of a default session.
OVERHEAD_FRACTION = 0.10
OVERHEAD_BYTES = 256 * 1024 * 1024


def normalize(quant: str) -> str:
    q = quant.strip().upper().replace("-", "_")
    if q.startswith("UD_"):
        q = q[3:]
    return {"FP16": "F16", "FP32": "F32"}.get(q, q)


def quant_from_filename(name: str) -> str | None:
    """The quantization a GGUF file name states, upper-case (`Q4_K_M`), or None."""
    base = os.path.basename(name)
    base = SHARD.sub(".gguf", base)
    base = re.sub(r"\.gguf$", "", base, flags=re.IGNORECASE)
    found = _QUANT_IN_NAME.findall(base)
    return normalize(found[-1]) if found else None


def shard_names(name: str) -> list[str]:
    """Every shard of the sharded GGUF that `name` is one shard of, in order
    (`x-00002-of-00003.gguf` -> `x-00001-of-00003.gguf`, ...); `[name]` when it is not a shard."""
    m = SHARD.search(name)
    total = int(m.group(2)) if m else 0
    if not m or total < 1:
        return [name]
    stem, of, ext = name[:m.start()], m.group(2), name[-len(".gguf"):]
    return [f"{stem}-{i:05d}-of-{of}{ext}" for i in range(1, total + 1)]


def file_type_name(file_type: object) -> str | None:
    """`general.file_type` as a quantization name."""
    return FILE_TYPES.get(file_type) if isinstance(file_type, int) else None


def rank(quant: str) -> int:
    """Position in QUALITY_ORDER (0 is best); unknown names sort after every known one."""
    return _RANK.get(normalize(quant), len(QUALITY_ORDER))


def needed_memory(size: int) -> int:
    return int(size * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES


@dataclass(frozen=True)
class Budget:
    bytes: int | None
    kind: str  # "RAM", "VRAM", "unified memory"
    detail: str = ""

    def describe(self) -> str:
        if self.bytes is None:
            return f"{self.kind} (amount unknown)"
        return f"{human_bytes(self.bytes)} of {self.kind}" + (f" {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Candidate:
    quant: str
    size: int | None


@dataclass(frozen=True)
class QuantChoice:
    quant: str
    size: int | None
    reason: str
    fits: bool


def _nvidia_free_vram() -> int | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
        values = [int(v) for v in out.split() if v.strip().isdigit()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return sum(values) * 1024 * 1024 if values else None


def gpu_build() -> bool:
    """Whether llama-cpp-python here was built with GPU offload (CUDA, Metal, Vulkan, ...)."""
    try:
        import llama_cpp  # noqa: PLC0415 (llama_cpp: optional)

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # not installed, or its library fails to load: plan for the CPU
        return False


def memory_budget() -> Budget:
    """The memory the model can use on this machine (see the module docstring)."""

    if gpu_build():
        if sys.platform == "darwin":
            return Budget(available_memory(), "unified memory", "available now (Metal build)")
        vram = _nvidia_free_vram()
        if vram is not None:
            return Budget(vram, "VRAM", "free on the GPU (llama.cpp built with GPU offload)")
        return Budget(available_memory(), "RAM", "available now (a GPU build, but the GPU's memory could not be read)")
    return Budget(available_memory(), "RAM", "available now")


def choose_quant(
    candidates: list[Candidate], budget: Budget, *, default: str | None = None
) -> QuantChoice:
    """The best candidate that fits `budget`, and why (see the module docstring)."""

    if not candidates:
        raise ValueError("no candidates")
    by_quality = sorted(candidates, key=lambda c: (rank(c.quant), -(c.size or 0)))
    sized = [c for c in by_quality if c.size]
    if not sized or budget.bytes is None:
        pick = next((c for c in candidates if default and c.quant.lower() == default.lower()), candidates[0])
        why = "file sizes are unknown" if not sized else "this machine's memory is unknown"
        return QuantChoice(pick.quant, pick.size, f"{why}, so the default quantization {pick.quant} was chosen", True)
    quantized = [c for c in sized if normalize(c.quant) not in FULL_PRECISION]
    half = [c for c in sized if normalize(c.quant) in ("F16", "BF16")]
    pool = quantized or half or sized
    fitting = [c for c in pool if needed_memory(c.size or 0) <= budget.bytes]
    if not fitting:
        pick = min(pool, key=lambda c: c.size or 0)
        return QuantChoice(
            pick.quant, pick.size,
            f"no file fits the {budget.describe()}; {pick.quant} is the smallest "
            f"(it needs about {human_bytes(needed_memory(pick.size or 0))}) and may not load",
            False,
        )
    pick = fitting[0]
    better = [c for c in pool if rank(c.quant) < rank(pick.quant) and c not in fitting]
    reason = (
        f"{pick.quant} is the highest-quality file that fits the {budget.describe()} "
        f"(it needs about {human_bytes(needed_memory(pick.size or 0))} with room for the context)"
    )
    if better:
        nxt = better[-1]
        reason += f"; {nxt.quant} would need about {human_bytes(needed_memory(nxt.size or 0))}"
    if quantized and len(quantized) < len(sized):
        reason += "; full-precision files were passed over"
    return QuantChoice(pick.quant, pick.size, reason, True)


# --- a repository's files by quantization ------------------------------------------------


@dataclass
class GGUFGroup:
    """One model file in a repository: its quantization and its file(s) (shards in order)."""

    quant: str
    files: list[str]
    size: int | None
    sha256: str | None


def gguf_groups(listing: "RepoListing") -> tuple[list[GGUFGroup], list[GGUFGroup]]:
    """The repository's GGUF models by quantization, and its vision projectors (mmproj)."""
    entries = {e.filename: e for e in listing.files if e.filename.lower().endswith(".gguf")}
    groups: dict[str, list[str]] = {}
    for name in sorted(entries):
        groups.setdefault(SHARD.sub("", name), []).append(name)
    models: list[GGUFGroup] = []
    projectors: list[GGUFGroup] = []
    seen: set[str] = set()
    for names in groups.values():
        first = entries[names[0]]
        sizes = [entries[n].size for n in names]
        base = names[0].rsplit("/", 1)[-1]
        quant = quant_from_filename(base) or re.sub(r"\.gguf$", "", SHARD.sub("", base), flags=re.I)
        if not quant.strip():  # a file named only ".gguf": nothing to call it by
            continue
        group = GGUFGroup(quant, names, sum(sizes) if all(sizes) else None, first.sha256)  # type: ignore[arg-type]
        if base.lower().startswith("mmproj"):
            projectors.append(group)
        elif quant.lower() not in seen:
            seen.add(quant.lower())
            models.append(group)
    models.sort(key=lambda g: (rank(g.quant), g.files[0]))
    projectors.sort(key=lambda g: (0 if g.quant in ("F16", "BF16") else 1, g.files[0]))
    return models, projectors
