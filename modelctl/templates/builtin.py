"""The built-in conversation templates, registered in one order with the other names they go by.
The templates are data, in three modules by how they write a turn: `builtin_chatml` (ChatML and
the families that use it), `builtin_families` (the families with markup of their own),
`builtin_fastchat` (FastChat's, for models that never published a template).

Each reproduces its model's official chat template (the Jinja `chat_template` of the model's
`tokenizer_config.json`) byte for byte; where a model never published one, FastChat's template of
the same name (`fastchat/conversation.py`) is the reference, with the BOS text the tokenizer would
add written out. `reference` says which; tests/data/templates/SOURCES.md says where each reference
text was copied from, and tests/test_templates_golden.py renders both and compares.

Several are reasoning models. Their official templates drop the `<think>...</think>` part of
earlier assistant turns (`assistant_transform`), and read switches besides the messages
(`variables`: Qwen3's `enable_thinking`, gpt-oss's `reasoning_effort`), each with the official
template's default; SmolLM3's also reads /think and /no_think in the system message
(`system_switches`).
"""

from __future__ import annotations

from modelctl.templates.builtin_chatml import (
    CHATML,
    INTERNLM_2_5,
    NOUS_HERMES_2,
    QWEN_1_5,
    QWEN_2,
    QWEN_2_5,
    QWEN_3,
    QWQ,
    SMOLLM2,
    SMOLLM3,
    YI_1_5,
)
from modelctl.templates.builtin_families import (
    CODELLAMA,
    COMMAND_R,
    COMMAND_R7B,
    DEEPSEEK_CHAT,
    DEEPSEEK_CODER,
    DEEPSEEK_R1,
    DEEPSEEK_V3,
    FALCON_3,
    GEMMA,
    GLM_4,
    GPT_OSS,
    GRANITE,
    GRANITE_3,
    GRANITE_3_1,
    GRANITE_3_2,
    LLAMA_2,
    LLAMA_3,
    LLAMA_3_1,
    LLAMA_3_2,
    LLAMA_4,
    MISTRAL,
    MISTRAL_NEMO,
    MISTRAL_SMALL_3,
    MISTRAL_V3,
    OLMO_2,
    OPENCHAT_3_5,
    PHI_2,
    PHI_3,
    PHI_3_MEDIUM,
    PHI_4,
    PHI_4_MINI,
    TINYLLAMA,
    TULU,
    TULU_3,
    ZEPHYR,
)
from modelctl.templates.builtin_fastchat import (
    ALPACA,
    CHATGLM2,
    DOLLY_V2,
    FALCON,
    INTERNLM_CHAT,
    KOALA,
    MPT_7B_CHAT,
    ORCA_2,
    PHIND,
    REDPAJAMA,
    STABLELM,
    STARCHAT,
    VICUNA,
    WIZARDLM,
    XWIN,
)
from modelctl.templates.conversation import Conversation, register_conv_template

BUILTIN_TEMPLATES: tuple[Conversation, ...] = (
    LLAMA_2, CODELLAMA, LLAMA_3, LLAMA_3_1, LLAMA_3_2, CHATML, NOUS_HERMES_2, YI_1_5, QWEN_1_5, QWEN_2,
    QWEN_2_5, MISTRAL, ZEPHYR, TINYLLAMA, TULU, GEMMA, PHI_3, PHI_3_MEDIUM, PHI_2, OPENCHAT_3_5, DEEPSEEK_CODER, DEEPSEEK_CHAT,
    COMMAND_R, GRANITE, VICUNA, WIZARDLM, XWIN, ALPACA, KOALA, PHIND, REDPAJAMA, STABLELM,
    MPT_7B_CHAT, ORCA_2, STARCHAT, DOLLY_V2, FALCON, CHATGLM2, INTERNLM_CHAT,
    QWEN_3, QWQ, DEEPSEEK_R1, DEEPSEEK_V3, GPT_OSS, PHI_4, PHI_4_MINI, MISTRAL_V3, MISTRAL_NEMO, MISTRAL_SMALL_3, LLAMA_4, GRANITE_3_1, GRANITE_3_2, GRANITE_3, SMOLLM2, SMOLLM3,
    INTERNLM_2_5, TULU_3, FALCON_3, OLMO_2, COMMAND_R7B, GLM_4,
)  # fmt: skip

# Other spellings people (and registries) use for the same templates.
ALIASES: dict[str, tuple[str, ...]] = {
    "llama-2": ("llama2", "llama-2-chat", "llama2-chat"),
    "codellama": ("code-llama", "codellama-instruct"),
    "llama-3": ("llama3", "llama-3-instruct", "llama3-instruct"),
    "llama-3.1": ("llama3.1", "llama-3.3", "llama3.3"),
    "llama-3.2": ("llama3.2",),
    "chatml": ("openhermes", "hermes", "dolphin", "yi"),
    "nous-hermes-2": ("hermes-2", "hermes-2-pro", "nous-hermes"),
    "yi-1.5": ("yi1.5",),
    "qwen1.5": ("qwen-1.5",),
    "qwen2": ("qwen", "qwen-2"),
    # Qwen2.5-Coder Instruct publishes Qwen2.5 Instruct's template
    "qwen2.5": ("qwen-2.5", "qwen2.5-instruct", "qwen2.5-coder"),
    "mistral": ("mistral-instruct", "mixtral", "mixtral-instruct"),
    "gemma": ("gemma2", "gemma-2", "gemma3", "gemma-3", "gemma-it"),
    "phi-3": ("phi3", "phi-3.5", "phi3.5"),
    "phi-3-medium": ("phi3-medium",),
    "phi-2": ("phi2",),
    "openchat_3.5": ("openchat", "openchat-3.5", "starling"),
    "vicuna_v1.1": ("vicuna", "vicuna-v1.1", "vicuna_v1.5"),
    "koala_v1": ("koala",),
    "dolly_v2": ("dolly", "dolly-v2"),
    "redpajama-incite": ("redpajama",),
    "command-r": ("command-r-plus", "cohere"),
    "deepseek-coder": ("deepseek-coder-instruct",),
    "deepseek-chat": ("deepseek", "deepseek-llm"),
    "internlm-chat": ("internlm",),
    "tinyllama": ("tiny-llama",),
    "wizardlm": ("wizard-lm",),
    "xwin": ("xwin-lm",),
    "qwen3": ("qwen-3",),
    "qwq": ("qwq-32b",),
    "deepseek-r1": ("deepseek-r1-distill", "r1"),
    "deepseek-v3": ("deepseekv3",),
    "gpt-oss": ("harmony", "gpt-oss-20b", "gpt-oss-120b"),
    "phi-4": ("phi4",),
    "phi-4-mini": ("phi4-mini",),
    "mistral-v3": ("mistral-v0.3", "mistral-7b-instruct-v0.3"),
    "mistral-nemo": ("nemo", "mistral-tekken"),
    "mistral-small-3": ("mistral-small", "mistral-small-2501", "mistral-v7-tekken"),
    "llama-4": ("llama4", "llama-4-scout", "llama-4-maverick"),
    "granite-3.1": ("granite3.1",),
    "granite-3.2": ("granite3.2",),
    "granite-3": ("granite-3.3", "granite3.3", "granite3"),
    "smollm2": ("smollm-2", "smollm"),
    "smollm3": ("smollm-3", "smollm3-3b"),
    "internlm2.5": ("internlm2", "internlm2_5", "internlm-2.5"),
    "tulu-3": ("tulu3",),
    "falcon-3": ("falcon3",),
    "olmo-2": ("olmo2", "olmo"),
    "command-r7b": ("command-r7b-12-2024", "cohere2"),
    "glm-4": ("glm4", "chatglm4"),
}


def register_builtin_templates() -> None:
    for template in BUILTIN_TEMPLATES:
        register_conv_template(template, override=True, aliases=ALIASES.get(template.name, ()))
