"""`-o KEY=VALUE` for local models: any parameter of llama-cpp-python's `Llama(...)` (load time)
or `Llama.generate` (sampling), read from text and checked before anything is loaded.

The parameters are found by inspecting llama-cpp-python itself, so a new release's parameters
work without a change here; values are converted to what each parameter's default says it
takes, or by a parser where the default (None) does not say.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from modelctl.backends.llama_lib import import_llama_cpp
from modelctl.backends.llama_overrides import check_overrides
from modelctl.errors import ModelFileError, UsageError
from modelctl.gguf import read_gguf

DEFAULT_CTX = 4096  # the context window a local model loads with, unless told otherwise


def context_size(wanted: int | None, trained: int | None) -> int:
    """The context window a local model loads with: `wanted` (--ctx, config.toml's ctx or `-o
    n_ctx`; 0: the trained window, as llama.cpp reads 0), else DEFAULT_CTX; at most the window the
    model was trained for (`trained`, from its GGUF header; None: unknown, no cap)."""
    if wanted is not None and wanted < 0:
        raise UsageError(f"the context window must be a positive number of tokens, not {wanted}")
    if wanted is None:
        return min(DEFAULT_CTX, trained or DEFAULT_CTX)
    if trained and wanted > trained:
        return trained
    return wanted or trained or DEFAULT_CTX


def option_ctx(options: Mapping[str, Any]) -> int | None:
    """`-o n_ctx=N` (or config.toml's options.n_ctx) as a number of tokens; None when not given
    or not a whole number (opening the model says why)."""
    value = options.get("n_ctx")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return _parse_int(str(value)) if value is not None else None
    except ValueError:
        return None


def parse_bool(text: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case), as llama.cpp's flags take them."""
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_tensor_split(text: str) -> list[float]:
    """`3,1`: the share of the model on each GPU."""
    try:
        shares = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"expected numbers separated by commas (3,1), got {text!r}") from None
    if any(share < 0 for share in shares) or len(shares) > import_llama_cpp().LLAMA_MAX_DEVICES:
        raise ValueError(f"expected at most {import_llama_cpp().LLAMA_MAX_DEVICES} shares, none negative")
    return shares


_OVERRIDE_TYPES: dict[str, Any] = {"int": _parse_int, "float": float, "bool": parse_bool, "str": str}


def _parse_kv_overrides(text: str) -> dict[str, Any]:
    """`KEY=TYPE:VALUE[,KEY=TYPE:VALUE...]` (llama.cpp's --override-kv), TYPE int, float, bool or str."""
    overrides: dict[str, Any] = {}
    for item in text.split(","):
        key, _, typed = item.partition("=")
        kind, sep, value = typed.partition(":")
        if not key.strip() or not sep or kind not in _OVERRIDE_TYPES:
            raise ValueError(f"expected KEY=TYPE:VALUE with TYPE int, float, bool or str, got {item!r}")
        overrides[key.strip()] = _OVERRIDE_TYPES[kind](value)
        if kind == "str" and len(value.encode("utf-8")) > 127:
            raise ValueError(f"{key}: a string override holds at most 127 bytes")
    return overrides


# The KV cache types llama.cpp accepts (its --cache-type-k/-v), by name and ggml type id.
KV_CACHE_TYPES = {"f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3, "iq4_nl": 20, "q5_0": 6, "q5_1": 7}


def _parse_cache_type(text: str) -> int:
    low = text.strip().lower()
    if low in KV_CACHE_TYPES:
        return KV_CACHE_TYPES[low]
    if low.isdigit() and int(low) in KV_CACHE_TYPES.values():
        return int(low)
    raise ValueError(f"expected one of {', '.join(KV_CACHE_TYPES)}, got {text!r}")


def _gguf_metadata(path: str) -> dict[str, Any]:
    try:
        return read_gguf(path).metadata
    except ModelFileError as exc:  # no such file, not GGUF, ...
        raise ValueError(str(exc)) from None


def _parse_adapter(text: str) -> str:
    """The path of a LoRA adapter in GGUF format."""
    md = _gguf_metadata(text)
    if md.get("general.type") != "adapter" or md.get("adapter.type") != "lora":
        raise ValueError(f"{text}: not a LoRA adapter (a GGUF file with general.type 'adapter')")
    return text


def _parse_gguf_path(text: str) -> str:
    _gguf_metadata(text)
    return text


# Load-time parameters whose default (None) does not say what they take.
_OPTION_PARSERS: dict[str, Any] = {
    "n_threads": _parse_int, "n_threads_batch": _parse_int, "op_offload": parse_bool, "swa_full": parse_bool,
    "tensor_split": _parse_tensor_split, "kv_overrides": _parse_kv_overrides,
    "type_k": _parse_cache_type, "type_v": _parse_cache_type,
    "lora_path": _parse_adapter, "lora_base": _parse_gguf_path,
}
# Parameters modelctl owns (the prompt, the model file, a flag of its own) or that break a chat.
_OWNED_OPTIONS = {"self", "tokens", "reset", "stopping_criteria", "logits_processor", "grammar",
                  "model_path", "chat_format", "chat_handler", "tokenizer", "draft_model", "kwargs",
                  "verbose", "temp", "vocab_only"}


def _parse_option(key: str, value: Any, default: Any) -> Any:
    """A `-o KEY=VALUE` value as the parameter takes it. Typed values from config.toml are read
    as their text, so that they are checked the same way."""
    text = value if isinstance(value, str) else str(value)
    if key in _OPTION_PARSERS:
        return _OPTION_PARSERS[key](text)
    if isinstance(default, bool):
        return parse_bool(text)
    if isinstance(default, int):
        return _parse_int(text)
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    raise ValueError("modelctl does not know what this option takes")


# Sizes below which llama.cpp does not fail but crashes (n_batch=-1 is a SIGSEGV).
_AT_LEAST = {"n_batch": 1, "n_ubatch": 1}


def split_options(options: Mapping[str, Any],
                  metadata: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sort `-o KEY=VALUE` options into (load-time `Llama(...)` kwargs, sampling kwargs of
    `Llama.generate`), converting values to what the parameters take. Unknown keys, and values
    that do not fit, are a UsageError; so are kv_overrides that the model file (its GGUF
    `metadata`) cannot take (`llama_overrides`)."""
    llama_cpp = import_llama_cpp()
    sample_sig = inspect.signature(llama_cpp.Llama.generate).parameters
    load_sig = inspect.signature(llama_cpp.Llama.__init__).parameters
    load: dict[str, Any] = {}
    sample: dict[str, Any] = {}
    for key, value in options.items():
        target, sig = (sample, sample_sig) if key in sample_sig else (load, load_sig)
        if key in _OWNED_OPTIONS or key not in sig:
            known = sorted((set(sample_sig) | set(load_sig)) - _OWNED_OPTIONS)
            raise UsageError(
                f"unknown llama.cpp option {key!r}",
                hint="known: " + ", ".join(known),
            )
        default = sig[key].default
        try:
            target[key] = _parse_option(key, value, None if default is inspect.Parameter.empty else default)
        except ValueError as exc:
            raise UsageError(f"option {key}: {exc}") from None
        if key in _AT_LEAST and target[key] < _AT_LEAST[key]:
            raise UsageError(f"option {key}: at least {_AT_LEAST[key]}, not {target[key]}")
    if metadata is not None and "kv_overrides" in load:
        check_overrides(load["kv_overrides"], metadata)
    return load, sample
