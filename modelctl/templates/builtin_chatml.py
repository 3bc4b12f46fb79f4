"""Built-in templates, data only: ChatML (`<|im_start|>role ... <|im_end|>` turns) and the
families that write their turns in it: Nous Hermes, Yi, Qwen 1.5 to 3 and QwQ, SmolLM2 and
SmolLM3, InternLM 2.5. `builtin` registers them."""

from __future__ import annotations

from dataclasses import replace

from modelctl.templates.conversation import Conversation, TurnFormats
from modelctl.templates.tool_render import HERMES_2_PRO_TOOLS, QWEN_2_5_TOOLS, QWEN_3_TOOLS, QWQ_TOOLS, SMOLLM3_TOOLS
from modelctl.templates.tool_texts import SMOLLM3_THINK_DEFAULT

# --- ChatML, Nous Hermes 2, Yi 1.5, Qwen 1.5 to 2.5 -----------------------------------------------


def _chatml(role: str) -> str:
    return f"<|im_start|>{role}\n{{content}}<|im_end|>\n"


_CHATML_FORMATS = TurnFormats(
    system=_chatml("system").replace("{content}", "{system}"),
    user=_chatml("user"),
    assistant=_chatml("assistant"),
    generation="<|im_start|>assistant\n",
)

CHATML = Conversation(
    name="chatml",
    roles=("user", "assistant"),
    formats=_CHATML_FORMATS,
    stop_str=("<|im_end|>",),
    description="ChatML: <|im_start|>role ... <|im_end|> (OpenHermes, Dolphin, Nous Hermes 2, Yi, ...)",
    reference="teknium/OpenHermes-2.5-Mistral-7B chat_template",
    models=("OpenHermes-2.5-Mistral-7B", "dolphin-2.2.1-mistral-7b", "Yi-34B-Chat"),
)

NOUS_HERMES_2 = replace(
    CHATML.with_formats(prefix="{bos}"),
    name="nous-hermes-2",
    bos="<s>",
    tool_style=HERMES_2_PRO_TOOLS,  # Hermes 2 Pro's tool_use template
    description="Nous Hermes 2 / Hermes 2 Pro: ChatML after the BOS",
    reference="NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO chat_template (also Hermes-2-Pro-Mistral-7B's)",
    models=("Nous-Hermes-2-Mixtral-8x7B-DPO", "Nous-Hermes-2-Mistral-7B-DPO", "Hermes-2-Pro-Mistral-7B"),
)

YI_1_5 = Conversation(
    name="yi-1.5",
    formats=TurnFormats(
        system="{system}",  # the system message as it is, before the first turn
        # the official template opens the answer after every user turn, asked for or not
        user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
        assistant="{content}<|im_end|>\n",
        generation="",
    ),
    eos="<|im_end|>",
    stop_str=("<|im_end|>",),
    stop_token_ids=(7,),
    description="Yi-1.5 Chat: ChatML turns, the system message written raw before them",
    reference="01-ai/Yi-1.5-9B-Chat chat_template",
    models=("Yi-1.5-6B-Chat", "Yi-1.5-9B-Chat", "Yi-1.5-34B-Chat"),
)

QWEN_2 = replace(
    CHATML,
    name="qwen2",
    system_message="You are a helpful assistant.",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(151645, 151643),
    description="Qwen2 Instruct: ChatML with a default system message",
    reference="Qwen/Qwen2-7B-Instruct chat_template",
    models=("Qwen2-7B-Instruct", "Qwen2-1.5B-Instruct"),
)

QWEN_1_5 = replace(
    QWEN_2,
    name="qwen1.5",
    system_message="You are a helpful assistant",  # no full stop, unlike Qwen2's
    description="Qwen1.5 Chat: ChatML with Qwen1.5's default system message",
    reference="Qwen/Qwen1.5-7B-Chat chat_template",
    models=("Qwen1.5-7B-Chat", "Qwen1.5-14B-Chat", "Qwen1.5-72B-Chat"),
)

QWEN_2_5 = replace(
    QWEN_2,
    name="qwen2.5",
    system_message="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    tool_style=QWEN_2_5_TOOLS,
    description="Qwen2.5 Instruct: ChatML with Qwen's default system message",
    reference="Qwen/Qwen2.5-7B-Instruct chat_template",
    models=("Qwen2.5-7B-Instruct", "Qwen2.5-Coder-7B-Instruct"),
)

# --- Qwen3 and QwQ (reasoning) --------------------------------------------------------------------

# an assistant message after the last user message keeps its reasoning, written anew
_QWEN_3_FORMATS = replace(
    _CHATML_FORMATS,
    last_assistant="<|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}<|im_end|>\n",
)

QWEN_3 = Conversation(
    name="qwen3",
    formats=_QWEN_3_FORMATS,
    assistant_transform="drop_reasoning_if_closed",
    last_assistant_transform="split_reasoning",
    variables=(("enable_thinking", True),),
    tool_style=QWEN_3_TOOLS,
    variable_formats=(
        # an empty reasoning opens the answer
        ("enable_thinking", False, replace(_QWEN_3_FORMATS, generation="<|im_start|>assistant\n<think>\n\n</think>\n\n")),
    ),
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(151645, 151643),
    description="Qwen3 (hybrid reasoning): ChatML; enable_thinking=false writes an empty <think> block",
    reference="Qwen/Qwen3-0.6B chat_template (the same for the Qwen3 family)",
    models=("Qwen3-0.6B", "Qwen3-8B", "Qwen3-30B-A3B", "Qwen3-235B-A22B"),
)

QWQ = Conversation(
    name="qwq",
    formats=replace(
        _CHATML_FORMATS,
        last_assistant=_CHATML_FORMATS.assistant,  # the last message keeps its reasoning
        generation="<|im_start|>assistant\n<think>\n",  # the model always reasons
    ),
    assistant_transform="drop_reasoning_lstrip",
    tool_style=QWQ_TOOLS,
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(151645, 151643),
    description="QwQ (reasoning): ChatML, the answer opened with <think>, earlier reasoning dropped",
    reference="Qwen/QwQ-32B chat_template",
    models=("QwQ-32B",),
)

# --- SmolLM2 and InternLM 2.5 ---------------------------------------------------------------------

SMOLLM2 = Conversation(
    name="smollm2",
    formats=_CHATML_FORMATS,
    system_message="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(2, 0),
    description="SmolLM2 Instruct: ChatML with SmolLM's default system message",
    reference="HuggingFaceTB/SmolLM2-135M-Instruct chat_template (the same for 360M and 1.7B)",
    models=("SmolLM2-135M-Instruct", "SmolLM2-360M-Instruct", "SmolLM2-1.7B-Instruct"),
)

INTERNLM_2_5 = Conversation(
    name="internlm2.5",
    formats=replace(_CHATML_FORMATS, prefix="{bos}"),
    bos="<s>",
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "</s>"),
    stop_token_ids=(92542, 2),
    description="InternLM2 / InternLM2.5 Chat: ChatML after the BOS",
    reference="internlm/internlm2-chat-7b chat_template",
    models=("internlm2-chat-7b", "internlm2_5-7b-chat", "internlm2_5-20b-chat"),
)

# --- SmolLM3 (Hugging Face) ----------------------------------------------------------------------

# The system message opens a metadata header and is never closed by <|im_end|> (the official
# template writes that only after its tool lists); "/system_override" writes the message alone.
_SMOLLM3_HEADER = (
    "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: {date}\n"
    "Reasoning Mode: {mode}\n\n## Custom Instructions\n\n"
)


def _smollm3_formats(mode: str, default_system: str, answer_prefix: str) -> TurnFormats:
    header = _SMOLLM3_HEADER.replace("{mode}", mode)
    return TurnFormats(
        system=header + "{system}\n\n",
        default_system=header + default_system + "\n\n",
        override_system=_CHATML_FORMATS.system,
        user=_CHATML_FORMATS.user,
        assistant="<|im_start|>assistant\n" + answer_prefix + "{content}<|im_end|>\n",
        generation="<|im_start|>assistant\n" + answer_prefix,
    )


SMOLLM3 = Conversation(
    name="smollm3",
    formats=_smollm3_formats("/think", SMOLLM3_THINK_DEFAULT, ""),
    variables=(("enable_thinking", True),),
    variable_formats=(
        # an empty reasoning opens every answer, earlier ones too
        ("enable_thinking", False, _smollm3_formats(
            "/no_think", "You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
            "<think>\n\n</think>\n")),
    ),
    system_switches=(("/no_think", "enable_thinking", False), ("/think", "enable_thinking", True)),
    system_override="/system_override",
    tool_style=SMOLLM3_TOOLS,
    system_transform="rstrip",
    default_when_empty=True,
    assistant_transform="lstrip_newlines",  # earlier reasoning is kept, as the official template does
    date_format="%d %B %Y",  # today's date, as the official template's strftime_now
    eos="<|im_end|>",
    stop_str=("<|im_end|>",),
    description="SmolLM3 (hybrid reasoning): a metadata header; /think, /no_think or enable_thinking",
    reference="HuggingFaceTB/SmolLM3-3B chat_template (without tools)",
    models=("SmolLM3-3B",),
)
