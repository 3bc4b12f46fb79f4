"""The built-in templates of the model families released from late 2024 on: data only, as in
`builtin` (which registers them with its own).

Several are reasoning models. Their official templates drop the `<think>...</think>` part of
earlier assistant turns (`assistant_transform`), and read switches besides the messages
(`variables`: Qwen3's `enable_thinking`, gpt-oss's `reasoning_effort`), each with the official
template's default.
"""

from __future__ import annotations

from dataclasses import replace

from modelctl.templates.conversation import Conversation, TurnFormats

# --- Qwen -----------------------------------------------------------------------------------------

_IM = "<|im_start|>{role}\n{{content}}<|im_end|>\n"
_QWEN_FORMATS = TurnFormats(
    system=_IM.format(role="system").replace("{content}", "{system}"),
    user=_IM.format(role="user"),
    assistant=_IM.format(role="assistant"),
    generation="<|im_start|>assistant\n",
)

# an assistant message after the last user message keeps its reasoning, written anew
_QWEN_3_FORMATS = replace(
    _QWEN_FORMATS,
    last_assistant="<|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}<|im_end|>\n",
)

QWEN_3 = Conversation(
    name="qwen3",
    formats=_QWEN_3_FORMATS,
    assistant_transform="drop_reasoning_if_closed",
    last_assistant_transform="split_reasoning",
    variables=(("enable_thinking", True),),
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
        _QWEN_FORMATS,
        last_assistant=_QWEN_FORMATS.assistant,  # the last message keeps its reasoning
        generation="<|im_start|>assistant\n<think>\n",  # the model always reasons
    ),
    assistant_transform="drop_reasoning_lstrip",
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(151645, 151643),
    description="QwQ (reasoning): ChatML, the answer opened with <think>, earlier reasoning dropped",
    reference="Qwen/QwQ-32B chat_template",
    models=("QwQ-32B",),
)

# --- DeepSeek --------------------------------------------------------------------------------------

DEEPSEEK_R1 = Conversation(
    name="deepseek-r1",
    formats=TurnFormats(
        prefix="{bos}",
        system="{system}",
        user="<｜User｜>{content}",
        assistant="<｜Assistant｜>{content}<｜end▁of▁sentence｜>",
        generation="<｜Assistant｜><think>\n",
    ),
    assistant_transform="drop_reasoning",  # every assistant message, the last one too
    bos="<｜begin▁of▁sentence｜>",
    eos="<｜end▁of▁sentence｜>",
    stop_str=("<｜end▁of▁sentence｜>",),  # its id differs between the distills' vocabularies
    description="DeepSeek-R1 and its Qwen/Llama distills: <｜User｜>/<｜Assistant｜>, the answer opened with <think>",
    reference="deepseek-ai/DeepSeek-R1-Distill-Llama-8B chat_template",
    models=("DeepSeek-R1", "DeepSeek-R1-Distill-Qwen-7B", "DeepSeek-R1-Distill-Llama-8B", "DeepSeek-R1-0528"),
)

# --- OpenAI gpt-oss (the harmony format) -----------------------------------------------------------

_HARMONY_SYSTEM = (
    "<|start|>system<|message|>{model_identity}\nKnowledge cutoff: 2024-06\nCurrent date: {date}\n\n"
    "Reasoning: {reasoning_effort}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
)
_HARMONY_FINAL = "<|start|>assistant<|channel|>final<|message|>{content}"

GPT_OSS = Conversation(
    name="gpt-oss",
    formats=TurnFormats(
        prefix=_HARMONY_SYSTEM,  # always; a system message becomes the developer message
        system="<|start|>developer<|message|># Instructions\n\n{system}\n\n<|end|>",
        user="<|start|>user<|message|>{content}<|end|>",
        assistant=_HARMONY_FINAL + "<|end|>",
        last_assistant=_HARMONY_FINAL + "<|return|>",  # a finished conversation (training data)
        generation="<|start|>assistant",
    ),
    last_assistant_when="finished",
    skip_empty_system=True,
    date_format="%Y-%m-%d",  # today's date, as the official template's strftime_now
    variables=(
        ("reasoning_effort", "medium"),
        ("model_identity", "You are ChatGPT, a large language model trained by OpenAI."),
    ),
    eos="<|return|>",
    stop_str=("<|return|>", "<|call|>"),
    stop_token_ids=(200002, 200012),
    description="gpt-oss (harmony): system and developer messages, channels; reasoning_effort low/medium/high",
    reference="openai/gpt-oss-120b chat_template (the same for gpt-oss-20b)",
    models=("gpt-oss-20b", "gpt-oss-120b"),
)

RECENT_TEMPLATES: tuple[Conversation, ...] = (QWEN_3, QWQ, DEEPSEEK_R1, GPT_OSS)

RECENT_ALIASES: dict[str, tuple[str, ...]] = {
    "qwen3": ("qwen-3",),
    "qwq": ("qwq-32b",),
    "deepseek-r1": ("deepseek-r1-distill", "r1"),
    "gpt-oss": ("harmony", "gpt-oss-20b", "gpt-oss-120b"),
}
