"""Which GGUF metadata a local model may have overridden (`-o kv_overrides=KEY=TYPE:VALUE,...`),
checked against the file's own metadata before llama.cpp reads it.

llama.cpp builds the model from its metadata: the number of layers, the widths, the head
counts, the number of experts, the tokenizer's kind. Overriding one of those makes it look for
tensors the file does not have, or of other shapes, and some of those mistakes abort the
process (`block_count` of 0 or 10^6, `expert_count` on a dense model, `tokenizer.ggml.model`)
instead of failing the load. So only values that tune a model the file already describes may
be overridden (TUNABLE: the context length, RoPE and norm constants, the experts used per
token, the tokenizer's flags and special token ids, the name), each in a range that holds; any
other key is refused unless its value is the file's own.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from modelctl.errors import UsageError

_INT_MAX = 2**31 - 1


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _INT_MAX


def _token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT_MAX


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


# key (ARCH stands for the file's architecture) -> (what it takes, in words; the check)
TUNABLE: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "ARCH.context_length": ("int from 1", _count),
    "ARCH.rope.freq_base": ("float above 0", _positive),
    "ARCH.rope.freq_scale": ("float above 0", _positive),
    "ARCH.rope.scaling.factor": ("float above 0", _positive),
    "ARCH.rope.scaling.type": ("str", _text),
    "ARCH.rope.scaling.original_context_length": ("int from 1", _count),
    "ARCH.attention.layer_norm_epsilon": ("float above 0", _positive),
    "ARCH.attention.layer_norm_rms_epsilon": ("float above 0", _positive),
    "ARCH.logit_scale": ("finite float", _finite),
    "ARCH.attn_logit_softcapping": ("float above 0", _positive),
    "ARCH.final_logit_softcapping": ("float above 0", _positive),
    "ARCH.expert_used_count": ("int from 1 to the file's expert_count", _count),
    "general.name": ("str", _text),
    "tokenizer.ggml.pre": ("str", _text),
    **{f"tokenizer.ggml.{flag}": ("bool", _flag) for flag in
       ("add_bos_token", "add_eos_token", "add_sep_token", "add_space_prefix")},
    **{f"tokenizer.ggml.{token}_token_id": ("int from 0", _token_id) for token in
       ("bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask", "cls")},
}


def check_overrides(overrides: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """UsageError for the first override llama.cpp must not be given (see the module docstring);
    `metadata` is the GGUF file's."""
    arch = str(metadata.get("general.architecture") or "")
    for key, value in overrides.items():
        generic = f"ARCH.{key[len(arch) + 1:]}" if arch and key.startswith(f"{arch}.") else key
        if generic not in TUNABLE:
            if metadata.get(key, _ABSENT) == value and type(metadata.get(key)) is type(value):
                continue  # the file's own value: nothing changes
            raise UsageError(
                f"option kv_overrides: {key} is not a value modelctl lets you override: it may change "
                "the model's structure, which llama.cpp cannot survive",
                hint="these can be overridden: " + ", ".join(k.replace("ARCH", arch or "ARCH") for k in TUNABLE),
            )
        takes, fits = TUNABLE[generic]
        if not fits(value) or (generic == "ARCH.expert_used_count" and not _within_experts(value, metadata, arch)):
            raise UsageError(f"option kv_overrides: {key} takes {takes}, not {value!r}")


_ABSENT = object()


def _within_experts(value: int, metadata: Mapping[str, Any], arch: str) -> bool:
    experts = metadata.get(f"{arch}.expert_count")
    return isinstance(experts, int) and value <= experts
