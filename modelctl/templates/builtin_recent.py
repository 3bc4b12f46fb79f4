"""The built-in templates of the model families released from late 2024 on: data only, as in
`builtin` (which registers them with its own).

Several are reasoning models. Their official templates drop the `<think>...</think>` part of
earlier assistant turns (`assistant_transform`), and read switches besides the messages
(`variables`: Qwen3's `enable_thinking`, gpt-oss's `reasoning_effort`), each with the official
template's default; SmolLM3's also reads /think and /no_think in the system message
(`system_switches`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelctl.templates.conversation import Conversation, TurnFormats
from modelctl.templates.types import SystemPolicy

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

DEEPSEEK_V3 = replace(
    DEEPSEEK_R1.with_formats(generation="<｜Assistant｜>"),
    name="deepseek-v3",
    assistant_transform="none",  # no reasoning to drop
    description="DeepSeek-V3: <｜User｜>/<｜Assistant｜> turns after the BOS and the system message",
    reference="deepseek-ai/DeepSeek-V3 chat_template",
    models=("DeepSeek-V3",),
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

# --- Microsoft Phi-4 ------------------------------------------------------------------------------

PHI_4 = Conversation(
    name="phi-4",
    formats=TurnFormats(
        system="<|im_start|>system<|im_sep|>{system}<|im_end|>",
        # the official template opens the answer after every user turn, asked for or not
        user="<|im_start|>user<|im_sep|>{content}<|im_end|><|im_start|>assistant<|im_sep|>",
        assistant="{content}<|im_end|>",
        generation="",
    ),
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "<|endoftext|>"),
    stop_token_ids=(100265, 100257),
    description="Phi-4 (14B): <|im_start|>role<|im_sep|> turns ending in <|im_end|>",
    reference="microsoft/phi-4 chat_template",
    models=("phi-4",),
)

PHI_4_MINI = Conversation(
    name="phi-4-mini",
    formats=TurnFormats(
        system="<|system|>{system}<|end|>",
        user="<|user|>{content}<|end|>",
        assistant="<|assistant|>{content}<|end|>",
        generation="<|assistant|>",
        end="{eos}",
    ),
    eos="<|endoftext|>",
    stop_str=("<|end|>", "<|endoftext|>"),
    stop_token_ids=(200020, 199999),
    description="Phi-4-mini: <|system|>, <|user|>, <|assistant|> turns ending in <|end|>, no newlines",
    reference="microsoft/Phi-4-mini-instruct chat_template",
    models=("Phi-4-mini-instruct",),
)

# --- Mistral -------------------------------------------------------------------------------------

MISTRAL_V3 = Conversation(
    name="mistral-v3",
    roles=("[INST]", "[/INST]"),
    formats=TurnFormats(
        prefix="{bos}",
        user="[INST] {content}[/INST]",
        assistant=" {content}{eos}",
        generation="",
        merge="{system}\n\n{content}",
    ),
    system_policy=SystemPolicy.MERGE_LAST_USER,  # the system message goes with the latest request
    assistant_transform="strip",
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Mistral 7B Instruct v0.3 (v3 tokenizer): [INST] turns, system prompt in the last one",
    reference="mistralai/Mistral-7B-Instruct-v0.3 chat_template",
    models=("Mistral-7B-Instruct-v0.3",),
)

MISTRAL_NEMO = Conversation(
    name="mistral-nemo",
    roles=("[INST]", "[/INST]"),
    formats=TurnFormats(
        prefix="{bos}",
        user="[INST]{content}[/INST]",
        assistant="{content}{eos}",
        generation="",
        merge="{system}\n\n{content}",
    ),
    system_policy=SystemPolicy.MERGE_LAST_USER,  # the system message goes with the latest request
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Mistral Nemo (Tekken tokenizer): [INST] turns without spaces, system prompt in the last one",
    reference="mistralai/Mistral-Nemo-Instruct-2407 chat_template",
    models=("Mistral-Nemo-Instruct-2407",),
)

_MISTRAL_SMALL_3_DEFAULT = (
    "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup "
    "headquartered in Paris.\nYour knowledge base was last updated on 2023-10-01. The current date is {date}."
    "\n\nWhen you're not sure about some information, you say that you don't have the information and don't "
    "make up anything.\nIf the user's question is not clear, ambiguous, or does not provide enough context for "
    "you to accurately answer the question, you do not try to answer it right away and you rather ask the user "
    'to clarify their request (e.g. "What are some good restaurants around me?" => "Where are you?" or "When '
    'is the next flight to Tokyo" => "Where do you travel from?")'
)

MISTRAL_SMALL_3 = Conversation(
    name="mistral-small-3",
    roles=("[INST]", "[/INST]"),
    formats=TurnFormats(
        prefix="{bos}",
        system="[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT]",  # its own block, unlike v0.1-v0.3's
        default_system="[SYSTEM_PROMPT]" + _MISTRAL_SMALL_3_DEFAULT + "[/SYSTEM_PROMPT]",
        user="[INST]{content}[/INST]",
        assistant="{content}{eos}",
        generation="",
    ),
    date_format="%Y-%m-%d",  # today's date, as the official template's strftime_now
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Mistral Small 3: a [SYSTEM_PROMPT] block (a dated default one), [INST] turns without spaces",
    reference="mistralai/Mistral-Small-24B-Instruct-2501 chat_template",
    models=("Mistral-Small-24B-Instruct-2501",),
)

# --- Meta Llama 4 --------------------------------------------------------------------------------

_L4 = "<|header_start|>{role}<|header_end|>\n\n"

LLAMA_4 = Conversation(
    name="llama-4",
    formats=TurnFormats(
        prefix="{bos}",
        system=_L4.format(role="system") + "{system}<|eot|>",
        user=_L4.format(role="user") + "{content}<|eot|>",
        assistant=_L4.format(role="assistant") + "{content}<|eot|>",
        generation=_L4.format(role="assistant"),
    ),
    system_transform="strip",  # the official template trims the system message only
    bos="<|begin_of_text|>",
    eos="<|eot|>",
    stop_str=("<|eot|>", "<|eom|>", "<|end_of_text|>"),
    stop_token_ids=(200008, 200007, 200001),
    description="Llama 4 (Scout, Maverick): <|header_start|>role<|header_end|> turns ending in <|eot|>",
    reference="the Llama 4 chat_template transformers ships (models/llama4/processing_llama4.py)",
    models=("Llama-4-Scout-17B-16E-Instruct", "Llama-4-Maverick-17B-128E-Instruct"),
)

# --- IBM Granite 3.1, 3.2, 3.3 ----------------------------------------------------------------------
# One turn format; each revision's official template writes its own default system message: 3.1
# and 3.2 put the date on a line of its own, 3.3 runs it on with spaces. 3.2 and 3.3 take
# `thinking`, which asks for reasoning in the default system message (in different words).

_GRANITE_TURN = "<|start_of_role|>{role}<|end_of_role|>{{content}}<|end_of_text|>\n"
_GRANITE_HELPFUL = "You are Granite, developed by IBM. You are a helpful AI assistant."
_GRANITE_THINKING = (
    "\nRespond to every user query in a comprehensive and detailed way. You can write down your thoughts "
    "and reasoning process before responding. In the thought process, engage in a comprehensive cycle of "
    "analysis, summarization, exploration, reassessment, reflection, backtracing, and iteration to develop "
    "well-considered thinking process. In the response section, based on various attempts, explorations, "
    "and reflections from the thoughts section, systematically present the final solution that you deem "
    "correct. The response should summarize the thought process. Write your thoughts {sections} for each "
    "user query."
)


def _granite(version: str, header: str, sections: str | None, models: tuple[str, ...]) -> Conversation:
    """The Granite `version` template: `header` opens its default system message (with {date});
    `sections` says where its thinking mode writes thoughts and response (None: no thinking)."""
    default = f"<|start_of_role|>system<|end_of_role|>{header}{_GRANITE_HELPFUL}{{thinking}}<|end_of_text|>\n"
    formats = TurnFormats(
        system=_GRANITE_TURN.format(role="system").replace("{content}", "{system}"),
        default_system=default.replace("{thinking}", ""),
        user=_GRANITE_TURN.format(role="user"),
        assistant=_GRANITE_TURN.format(role="assistant"),
        generation="<|start_of_role|>assistant<|end_of_role|>",
    )
    thinking: dict[str, Any] = {}
    if sections is not None:
        thinking_prompt = _GRANITE_THINKING.replace("{sections}", sections)
        thinking = {
            "variables": (("thinking", False),),
            # the default system message asks for the reasoning and the answer apart
            "variable_formats": (("thinking", True, replace(formats, default_system=default.replace(
                "{thinking}", thinking_prompt))),),
        }
    return Conversation(
        name="granite-3" if version == "3.3" else f"granite-{version}",
        formats=formats,
        date_format="%B %d, %Y",  # today's date, as the official template's strftime_now
        eos="<|end_of_text|>",
        stop_str=("<|end_of_text|>",),
        stop_token_ids=(0,),
        description=f"IBM Granite {version} Instruct: role turns, a dated default system message"
                    + ("; thinking=true asks for reasoning" if sections else ""),
        reference=f"ibm-granite/{models[0]} chat_template",
        models=models,
        **thinking,
    )


GRANITE_3_1 = _granite("3.1", "Knowledge Cutoff Date: April 2024.\nToday's Date: {date}.\n", None,
                       ("granite-3.1-8b-instruct", "granite-3.1-2b-instruct"))
GRANITE_3_2 = _granite("3.2", "Knowledge Cutoff Date: April 2024.\nToday's Date: {date}.\n",
                       "after 'Here is my thought process:' and write your response after 'Here is my response:'",
                       ("granite-3.2-8b-instruct", "granite-3.2-2b-instruct"))
GRANITE_3 = _granite("3.3", "Knowledge Cutoff Date: April 2024. Today's Date: {date}. ",
                     "between <think></think> and write your response between <response></response>",
                     ("granite-3.3-2b-instruct", "granite-3.3-8b-instruct"))

# --- Cohere Command R7B ----------------------------------------------------------------------------

_COHERE_TURN = "<|START_OF_TURN_TOKEN|><|{role}_TOKEN|>"

COMMAND_R7B = Conversation(
    name="command-r7b",
    roles=("<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"),
    formats=TurnFormats(
        prefix="{bos}",
        system=_COHERE_TURN.format(role="SYSTEM") + "{system}<|END_OF_TURN_TOKEN|>",
        user=_COHERE_TURN.format(role="USER") + "{content}<|END_OF_TURN_TOKEN|>",
        assistant=_COHERE_TURN.format(role="CHATBOT") + "<|START_RESPONSE|>{content}<|END_RESPONSE|><|END_OF_TURN_TOKEN|>",
        generation=_COHERE_TURN.format(role="CHATBOT") + "<|START_RESPONSE|>",
    ),
    system_always=True,  # an empty system turn when the conversation has no system message
    content_transform="strip",
    bos="<BOS_TOKEN>",
    eos="<|END_OF_TURN_TOKEN|>",
    stop_str=("<|END_RESPONSE|>", "<|END_OF_TURN_TOKEN|>"),
    stop_token_ids=(255001,),
    description="Cohere Command R7B: turn tokens, the answer between <|START_RESPONSE|> and <|END_RESPONSE|>",
    reference="CohereForAI/c4ai-command-r7b-12-2024 chat_template 'default' (without documents or tools)",
    models=("c4ai-command-r7b-12-2024",),
)

# --- Zhipu GLM-4 -----------------------------------------------------------------------------------

GLM_4 = Conversation(
    name="glm-4",
    formats=TurnFormats(
        prefix="[gMASK]<sop>",
        system="<|system|>\n{system}",
        user="<|user|>\n{content}",
        assistant="<|assistant|>\n{content}",
        generation="<|assistant|>",
    ),
    skip_empty_system=True,  # the official template writes no message whose content is empty
    skip_empty_turns=True,
    eos="<|endoftext|>",
    stop_str=("<|user|>", "<|observation|>", "<|endoftext|>"),
    stop_token_ids=(151336, 151338, 151329),
    description="GLM-4 Chat: [gMASK]<sop>, then <|role|> lines; the answer starts right after <|assistant|>",
    reference="THUDM/glm-4-9b-chat chat_template",
    models=("glm-4-9b-chat",),
)

# --- ChatML relatives ------------------------------------------------------------------------------

SMOLLM2 = Conversation(
    name="smollm2",
    formats=_QWEN_FORMATS,
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
    formats=replace(_QWEN_FORMATS, prefix="{bos}"),
    bos="<s>",
    eos="<|im_end|>",
    stop_str=("<|im_end|>", "</s>"),
    stop_token_ids=(92542, 2),
    description="InternLM2 / InternLM2.5 Chat: ChatML after the BOS",
    reference="internlm/internlm2-chat-7b chat_template",
    models=("internlm2-chat-7b", "internlm2_5-7b-chat", "internlm2_5-20b-chat"),
)

# --- AllenAI: Tulu 3 and OLMo 2 --------------------------------------------------------------------

_TULU_3_FORMATS = TurnFormats(
    system="<|system|>\n{system}\n",
    user="<|user|>\n{content}\n",
    assistant="<|assistant|>\n{content}{eos}\n",
    last_assistant="<|assistant|>\n{content}{eos}",  # the last message has no newline after it
    generation="<|assistant|>\n",
)

TULU_3 = Conversation(
    name="tulu-3",
    formats=_TULU_3_FORMATS,
    eos="<|end_of_text|>",
    stop_str=("<|end_of_text|>",),
    stop_token_ids=(128001,),
    description="Tulu 3: <|system|>, <|user|>, <|assistant|> lines, answers ending in the EOS",
    reference="allenai/Llama-3.1-Tulu-3-8B chat_template",
    models=("Llama-3.1-Tulu-3-8B", "Llama-3.1-Tulu-3-70B"),
)

FALCON_3 = replace(
    TULU_3,
    name="falcon-3",
    eos="<|endoftext|>",
    stop_str=("<|endoftext|>",),
    stop_token_ids=(),
    description="Falcon 3 Instruct: the Tulu 3 format (without tools)",
    reference="tiiuae/Falcon3-7B-Instruct chat_template (the branch without tools)",
    models=("Falcon3-1B-Instruct", "Falcon3-3B-Instruct", "Falcon3-7B-Instruct", "Falcon3-10B-Instruct"),
)

OLMO_2 = replace(
    TULU_3,
    name="olmo-2",
    formats=replace(_TULU_3_FORMATS, prefix="{bos}"),
    bos="<|endoftext|>",
    eos="<|endoftext|>",
    stop_str=("<|endoftext|>",),
    stop_token_ids=(100257,),
    description="OLMo 2 Instruct: the Tulu 3 format after the BOS",
    reference="allenai/OLMo-2-1124-7B-Instruct chat_template",
    models=("OLMo-2-1124-7B-Instruct", "OLMo-2-1124-13B-Instruct", "OLMo-2-0425-1B-Instruct"),
)

# --- SmolLM3 (Hugging Face) ----------------------------------------------------------------------

# The system message opens a metadata header and is never closed by <|im_end|> (the official
# template writes that only after its tool lists); "/system_override" writes the message alone.
_SMOLLM3_HEADER = (
    "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: {date}\n"
    "Reasoning Mode: {mode}\n\n## Custom Instructions\n\n"
)
_SMOLLM3_THINK_DEFAULT = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
    "Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion."
)


def _smollm3_formats(mode: str, default_system: str, answer_prefix: str) -> TurnFormats:
    header = _SMOLLM3_HEADER.replace("{mode}", mode)
    return TurnFormats(
        system=header + "{system}\n\n",
        default_system=header + default_system + "\n\n",
        override_system=_IM.format(role="system").replace("{content}", "{system}"),
        user=_IM.format(role="user"),
        assistant="<|im_start|>assistant\n" + answer_prefix + "{content}<|im_end|>\n",
        generation="<|im_start|>assistant\n" + answer_prefix,
    )


SMOLLM3 = Conversation(
    name="smollm3",
    formats=_smollm3_formats("/think", _SMOLLM3_THINK_DEFAULT, ""),
    variables=(("enable_thinking", True),),
    variable_formats=(
        # an empty reasoning opens every answer, earlier ones too
        ("enable_thinking", False, _smollm3_formats(
            "/no_think", "You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
            "<think>\n\n</think>\n")),
    ),
    system_switches=(("/no_think", "enable_thinking", False), ("/think", "enable_thinking", True)),
    system_override="/system_override",
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

RECENT_TEMPLATES: tuple[Conversation, ...] = (
    QWEN_3, QWQ, DEEPSEEK_R1, DEEPSEEK_V3, GPT_OSS, PHI_4, PHI_4_MINI, MISTRAL_V3, MISTRAL_NEMO, MISTRAL_SMALL_3, LLAMA_4, GRANITE_3_1, GRANITE_3_2, GRANITE_3, SMOLLM2, SMOLLM3,
    INTERNLM_2_5, TULU_3, FALCON_3, OLMO_2, COMMAND_R7B, GLM_4,
)  # fmt: skip

RECENT_ALIASES: dict[str, tuple[str, ...]] = {
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
