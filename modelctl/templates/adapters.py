"""Model adapters: which template a model uses, from its names and GGUF metadata.

Matching is token-aware and looks at base names only. A name is reduced to its base name (no
directories, no `org/`, no extension) and split into lower-case tokens: runs of letters, and
numbers with their dots (`Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf` -> meta llama 3.1 8 b instruct q
4 k m). A pattern is a sequence of tokens that must appear side by side, each with `|` between
alternatives (`llama 3.1|3.3`). So `llama-3.2-3b-instruct` is not Llama 3's pattern `llama 3`, and
`/models/prompt-tuned/model.gguf` does not match MPT's `mpt`.

Precedence is explicit: adapters are tried in registration order, the more specific first
(`phind codellama` before `codellama`, `openhermes-2.5-mistral` before `mistral`); the first
match wins. Names are tried in the order given (model id, aliases, file name), then the GGUF's
`general.name` and `general.basename`, then its `general.architecture`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_EXTENSIONS = (".gguf", ".ggml", ".bin", ".safetensors", ".pt", ".pth", ".llamafile")
_TOKEN = re.compile(r"\d+(?:\.\d+)*|[^\W\d_]+")


def base_name(name: str) -> str:
    """`/models/TheBloke/Llama-2-7B-Chat.Q4_K_M.gguf` -> `llama-2-7b-chat.q4_k_m`."""
    base = re.split(r"[\\/]", name.strip().rstrip("/\\"))[-1].lower()
    for ext in _EXTENSIONS:
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base


def name_tokens(name: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(base_name(name)))


@dataclass(frozen=True)
class ModelAdapter:
    """Maps models to a template: by token patterns on their names, or by GGUF architecture."""

    template: str
    patterns: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(_compile(p) for p in self.patterns))

    def matches_name(self, name: str) -> str | None:
        """The pattern that matches `name`, or None."""
        tokens = name_tokens(name)
        for pattern, compiled in zip(self.patterns, self._compiled):  # type: ignore[attr-defined]
            if _contains(tokens, compiled):
                return pattern
        return None


def _compile(pattern: str) -> tuple[frozenset[str], ...]:
    parts = pattern.lower().split()
    if not parts:
        raise ValueError("an adapter pattern needs at least one token")
    return tuple(frozenset(p.split("|")) for p in parts)


def _contains(tokens: Sequence[str], pattern: Sequence[frozenset[str]]) -> bool:
    n = len(pattern)
    return any(
        all(tokens[i + j] in pattern[j] for j in range(n)) for i in range(len(tokens) - n + 1)
    )


@dataclass(frozen=True)
class AdapterMatch:
    template: str
    adapter: ModelAdapter
    matched: str  # the name (or "architecture=...") that matched
    pattern: str  # the pattern (or architecture) that matched it


_ADAPTERS: list[ModelAdapter] = []


def register_model_adapter(
    adapter: ModelAdapter | str,
    patterns: Iterable[str] = (),
    *,
    architectures: Iterable[str] = (),
    first: bool = False,
) -> ModelAdapter:
    """Register an adapter (or build one: `register_model_adapter("chatml", ["my model"])`).

    Adapters registered earlier win; `first=True` puts this one before all others.
    """
    if isinstance(adapter, str):
        adapter = ModelAdapter(adapter, tuple(patterns), tuple(architectures))
    if first:
        _ADAPTERS.insert(0, adapter)
    else:
        _ADAPTERS.append(adapter)
    return adapter


def model_adapters() -> list[ModelAdapter]:
    return list(_ADAPTERS)


def match_adapter(names: Sequence[str] = (), metadata: Mapping[str, Any] | None = None) -> AdapterMatch | None:
    """The first adapter that matches one of `names` (in order), then the GGUF's own names, then its
    architecture; None when nothing matches."""
    metadata = metadata or {}
    candidates = [n for n in names if isinstance(n, str) and n.strip()]
    candidates += [metadata[k] for k in ("general.name", "general.basename") if isinstance(metadata.get(k), str)]
    for name in candidates:
        for adapter in _ADAPTERS:
            pattern = adapter.matches_name(name)
            if pattern is not None:
                return AdapterMatch(adapter.template, adapter, name, pattern)
    arch = metadata.get("general.architecture")
    if isinstance(arch, str):
        for adapter in _ADAPTERS:
            if arch.lower() in adapter.architectures:
                return AdapterMatch(adapter.template, adapter, f"architecture={arch}", arch)
    return None


# The built-in adapters, most specific first. (template, name patterns, GGUF architectures)
BUILTIN_ADAPTERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # DeepSeek-R1's distills carry their base model's name (Qwen, Llama) after "R1"
    ("deepseek-r1", ("deepseek r 1",), ()),
    ("deepseek-v3", ("deepseek v 3",), ()),
    ("gpt-oss", ("gpt oss",), ("gpt-oss",)),
    ("qwq", ("qwq",), ()),
    ("qwen3", ("qwen 3",), ("qwen3", "qwen3moe")),
    ("phi-4-mini", ("phi 4 mini",), ()),
    ("phi-4", ("phi 4",), ()),
    ("mistral-nemo", ("mistral nemo", "nemo instruct"), ()),
    ("mistral-v3", ("mistral 7 b instruct v 0.3",), ()),
    ("mistral-small-3", ("mistral small 24 b instruct 2501", "mistral small 3|3.1"), ()),
    ("llama-4", ("llama 4",), ("llama4",)),
    ("granite-3.1", ("granite 3.1",), ()),
    ("granite-3.2", ("granite 3.2",), ()),
    ("granite-3", ("granite 3.3",), ()),
    ("tulu-3", ("tulu 3",), ()),  # Llama-3.1-Tulu-3: before Llama 3.1
    ("olmo-2", ("olmo 2",), ("olmo2",)),
    ("falcon-3", ("falcon 3",), ()),
    ("smollm3", ("smollm 3",), ("smollm3",)),
    ("smollm2", ("smollm 2",), ()),
    ("phind", ("phind",), ()),
    ("codellama", ("codellama", "code llama"), ()),
    ("tinyllama", ("tinyllama", "tiny llama"), ()),
    ("orca-2", ("orca 2",), ()),
    ("nous-hermes-2", ("nous hermes 2", "hermes 2 pro"), ()),
    ("yi-1.5", ("yi 1.5",), ()),
    ("chatml", ("openhermes", "hermes", "dolphin", "openorca", "yi 6|9|34 b chat"), ()),
    ("zephyr", ("zephyr",), ()),
    ("openchat_3.5", ("openchat", "starling"), ()),
    ("llama-3.2", ("llama 3.2",), ()),
    ("llama-3.1", ("llama 3.1|3.3",), ()),
    ("llama-3", ("llama 3",), ()),
    ("mistral", ("mixtral", "mistral"), ()),
    ("qwen2.5", ("qwen 2.5",), ()),
    ("qwen1.5", ("qwen 1.5", "qwen 1 5"), ()),  # qwen1_5-7b-chat
    ("qwen2", ("qwen 2", "qwen"), ()),
    ("gemma", ("gemma",), ("gemma", "gemma2", "gemma3")),
    ("phi-3-medium", ("phi 3 medium",), ()),
    ("phi-3", ("phi 3|3.5",), ("phi3",)),
    ("phi-2", ("phi 2",), ("phi2",)),
    ("deepseek-coder", ("deepseek coder",), ()),
    ("deepseek-chat", ("deepseek llm", "deepseek"), ()),
    ("command-r7b", ("command r 7 b",), ("cohere2",)),
    ("command-r", ("command r", "c4ai"), ("command-r",)),
    ("granite", ("granite",), ("granite",)),
    ("vicuna_v1.1", ("vicuna",), ()),
    ("wizardlm", ("wizardlm",), ()),
    ("xwin", ("xwin",), ()),
    ("koala_v1", ("koala",), ()),
    ("alpaca", ("alpaca",), ()),
    ("tulu", ("tulu",), ()),
    ("falcon", ("falcon",), ("falcon",)),
    ("dolly_v2", ("dolly",), ()),
    ("starchat", ("starchat",), ()),
    ("redpajama-incite", ("redpajama",), ()),
    ("stablelm", ("stablelm",), ()),
    ("mpt-7b-chat", ("mpt",), ("mpt",)),
    ("chatglm2", ("chatglm 2",), ()),
    ("glm-4", ("glm 4 9 b chat", "glm 4 9 b"), ()),  # GGUF architecture "chatglm" is ChatGLM3's too
    ("internlm2.5", ("internlm 2|2.5",), ("internlm2",)),
    ("internlm-chat", ("internlm",), ()),
    ("llama-2", ("llama 2",), ()),
)


def register_builtin_adapters() -> None:
    for template, patterns, architectures in BUILTIN_ADAPTERS:
        register_model_adapter(template, patterns, architectures=architectures)
