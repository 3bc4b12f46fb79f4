"""The built-in conversation templates: data only.

Each reproduces its model's official chat template (the Jinja `chat_template` of the model's
`tokenizer_config.json`) byte for byte; where a model never published one, FastChat's template of
the same name (`fastchat/conversation.py`) is the reference, with the BOS text the tokenizer would
add written out. `reference` says which; tests/data/templates/SOURCES.md says where each reference
text was copied from, and tests/test_templates_golden.py renders both and compares.
"""

from __future__ import annotations

from dataclasses import replace

from modelctl.templates.builtin_recent import RECENT_ALIASES, RECENT_TEMPLATES
from modelctl.templates.conversation import (
    Conversation,
    SeparatorStyle,
    TurnFormats,
    register_conv_template,
)
from modelctl.templates.types import SystemPolicy

S = SeparatorStyle
MERGE = SystemPolicy.MERGE_FIRST_USER

# --- Meta Llama ---------------------------------------------------------------------------------

LLAMA_2 = Conversation(
    name="llama-2",
    roles=("[INST]", "[/INST]"),
    formats=TurnFormats(
        user="{bos}[INST] {content} [/INST]",
        assistant=" {content} {eos}",
        generation="",
        merge="<<SYS>>\n{system}\n<</SYS>>\n\n{content}",
    ),
    system_policy=MERGE,  # inside the first [INST], between <<SYS>> tags
    content_transform="strip",
    transform_after_merge=True,  # the official template strips the merged text as a whole
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Llama 2 Chat: [INST] turns, system prompt in <<SYS>> inside the first one",
    reference="meta-llama/Llama-2-7b-chat-hf chat_template",
    models=("Llama-2-7b-chat", "Llama-2-13b-chat", "Llama-2-70b-chat"),
)

CODELLAMA = replace(
    LLAMA_2,
    name="codellama",
    description="Code Llama Instruct: the Llama 2 format",
    reference="codellama/CodeLlama-7b-Instruct-hf chat_template",
    models=("CodeLlama-7b-Instruct", "CodeLlama-13b-Instruct", "CodeLlama-34b-Instruct"),
)

_L3 = "<|start_header_id|>{role}<|end_header_id|>\n\n"

LLAMA_3 = Conversation(
    name="llama-3",
    roles=("user", "assistant"),
    formats=TurnFormats(
        prefix="{bos}",
        system=_L3.format(role="system") + "{system}<|eot_id|>",
        user=_L3.format(role="user") + "{content}<|eot_id|>",
        assistant=_L3.format(role="assistant") + "{content}<|eot_id|>",
        generation=_L3.format(role="assistant"),
    ),
    content_transform="strip",
    system_transform="strip",
    bos="<|begin_of_text|>",
    eos="<|eot_id|>",
    stop_str=("<|eot_id|>", "<|end_of_text|>"),
    stop_token_ids=(128009, 128001),
    description="Llama 3 Instruct: header-delimited turns ending in <|eot_id|>",
    reference="meta-llama/Meta-Llama-3-8B-Instruct chat_template",
    models=("Meta-Llama-3-8B-Instruct", "Meta-Llama-3-70B-Instruct"),
)

LLAMA_3_1 = replace(
    LLAMA_3.with_formats(
        system=_L3.format(role="system")
        + "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n{system}<|eot_id|>",
    ),
    name="llama-3.1",
    system_always=True,
    date_string="26 Jul 2024",
    stop_str=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    stop_token_ids=(128009, 128008, 128001),
    description="Llama 3.1 / 3.3 Instruct: Llama 3 turns, a system block with the knowledge cut-off always",
    reference="meta-llama/Llama-3.1-8B-Instruct chat_template (identical for Llama-3.3-70B-Instruct)",
    models=("Llama-3.1-8B-Instruct", "Llama-3.1-70B-Instruct", "Llama-3.3-70B-Instruct"),
)

LLAMA_3_2 = replace(
    LLAMA_3_1,
    name="llama-3.2",
    date_string=None,
    date_format="%d %b %Y",  # today's date, as the official template's strftime_now
    description="Llama 3.2 Instruct: the Llama 3.1 format dated today",
    reference="meta-llama/Llama-3.2-3B-Instruct chat_template",
    models=("Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"),
)

# --- ChatML and its relatives ----------------------------------------------------------------------


def _chatml(role: str) -> str:
    return f"<|im_start|>{role}\n{{content}}<|im_end|>\n"


CHATML = Conversation(
    name="chatml",
    roles=("user", "assistant"),
    formats=TurnFormats(
        system=_chatml("system").replace("{content}", "{system}"),
        user=_chatml("user"),
        assistant=_chatml("assistant"),
        generation="<|im_start|>assistant\n",
    ),
    stop_str=("<|im_end|>",),
    description="ChatML: <|im_start|>role ... <|im_end|> (OpenHermes, Dolphin, Nous Hermes 2, Yi, ...)",
    reference="teknium/OpenHermes-2.5-Mistral-7B chat_template",
    models=("OpenHermes-2.5-Mistral-7B", "dolphin-2.2.1-mistral-7b", "Yi-34B-Chat"),
)

NOUS_HERMES_2 = replace(
    CHATML.with_formats(prefix="{bos}"),
    name="nous-hermes-2",
    bos="<s>",
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
    description="Qwen2.5 Instruct: ChatML with Qwen's default system message",
    reference="Qwen/Qwen2.5-7B-Instruct chat_template",
    models=("Qwen2.5-7B-Instruct", "Qwen2.5-Coder-7B-Instruct"),
)

# --- Mistral -----------------------------------------------------------------------------------

MISTRAL = Conversation(
    name="mistral",
    roles=("[INST]", "[/INST]"),
    formats=TurnFormats(
        prefix="{bos}",
        user=" [INST] {content} [/INST]",
        assistant=" {content}{eos}",
        generation="",
        merge="{system}\n\n{content}",
    ),
    system_policy=MERGE,
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Mistral / Mixtral Instruct v0.1-v0.2: [INST] turns, system prompt merged into the first",
    reference="mistralai/Mistral-7B-Instruct-v0.2 chat_template (the 'v1' template with a system prompt)",
    models=("Mistral-7B-Instruct-v0.1", "Mistral-7B-Instruct-v0.2", "Mixtral-8x7B-Instruct-v0.1"),
)

# --- Hugging Face H4 style (<|user|>) ---------------------------------------------------------------

ZEPHYR = Conversation(
    name="zephyr",
    roles=("<|user|>", "<|assistant|>"),
    formats=TurnFormats(
        system="<|system|>\n{system}{eos}\n",
        user="<|user|>\n{content}{eos}\n",
        assistant="<|assistant|>\n{content}{eos}\n",
        generation="<|assistant|>\n",
    ),
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Zephyr: <|system|>, <|user|>, <|assistant|> turns ending in </s>",
    reference="HuggingFaceH4/zephyr-7b-beta chat_template",
    models=("zephyr-7b-beta", "zephyr-7b-alpha", "stablelm-zephyr-3b"),
)

TINYLLAMA = replace(
    ZEPHYR,
    name="tinyllama",
    description="TinyLlama Chat: the Zephyr format",
    reference="TinyLlama/TinyLlama-1.1B-Chat-v1.0 chat_template (the Zephyr template)",
    models=("TinyLlama-1.1B-Chat-v1.0",),
)

TULU = Conversation(
    name="tulu",
    roles=("<|user|>", "<|assistant|>"),
    formats=TurnFormats(
        user="<|user|>\n{content}\n",
        assistant="<|assistant|>\n{content}{eos}\n",
        generation="<|assistant|>\n",
    ),
    system_policy=MERGE,  # the official template ignores system messages
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Tulu 2: <|user|> / <|assistant|> turns; a system message joins the first user turn",
    reference="allenai/tulu-2-dpo-7b chat_template",
    models=("tulu-2-dpo-7b", "tulu-2-7b"),
)

# --- Google Gemma ----------------------------------------------------------------------------------

GEMMA = Conversation(
    name="gemma",
    roles=("user", "model"),
    formats=TurnFormats(
        prefix="{bos}",
        user="<start_of_turn>user\n{content}<end_of_turn>\n",
        assistant="<start_of_turn>model\n{content}<end_of_turn>\n",
        generation="<start_of_turn>model\n",
        merge="{system}\n\n{content}",
    ),
    system_policy=MERGE,  # as Gemma 3's template does; Gemma 1 and 2's raise instead
    content_transform="strip",
    bos="<bos>",
    eos="<eos>",
    stop_str=("<end_of_turn>", "<eos>"),
    stop_token_ids=(1, 106),  # <eos>; <end_of_turn> in Gemma 3 (<start_of_turn> in Gemma 1 and 2)
    description="Gemma, Gemma 2, Gemma 3 instruction-tuned: <start_of_turn>user/model turns",
    reference="google/gemma-7b-it, google/gemma-2-2b-it and google/gemma-3 *-it chat_templates",
    models=("gemma-7b-it", "gemma-2-9b-it", "gemma-3-270m-it", "gemma-3-4b-it"),
)

# --- Microsoft Phi ---------------------------------------------------------------------------------

PHI_3 = Conversation(
    name="phi-3",
    roles=("<|user|>", "<|assistant|>"),
    formats=TurnFormats(
        system="<|system|>\n{system}<|end|>\n",
        user="<|user|>\n{content}<|end|>\n",
        assistant="<|assistant|>\n{content}<|end|>\n",
        generation="<|assistant|>\n",
        end="{eos}",
    ),
    skip_empty_system=True,  # the official template: `message['role'] == 'system' and message['content']`
    eos="<|endoftext|>",
    stop_str=("<|end|>", "<|endoftext|>"),
    stop_token_ids=(32007, 32000),
    description="Phi-3 / Phi-3.5 Instruct: <|system|>, <|user|>, <|assistant|> turns ending in <|end|>",
    reference="microsoft/Phi-3.5-mini-instruct chat_template (as updated for Phi-3-mini-4k-instruct)",
    models=("Phi-3-mini-4k-instruct", "Phi-3-mini-128k-instruct", "Phi-3.5-mini-instruct"),
)

PHI_3_MEDIUM = Conversation(
    name="phi-3-medium",
    roles=("<|user|>", "<|assistant|>"),
    formats=TurnFormats(
        # the official template opens the answer after every user turn, asked for or not
        user="<|user|>\n{content}<|end|>\n<|assistant|>\n",
        assistant="{content}<|end|>\n",
        generation="",
    ),
    system_policy=MERGE,  # the official template leaves system messages out
    eos="<|endoftext|>",
    stop_str=("<|end|>", "<|endoftext|>"),
    stop_token_ids=(32007, 32000),
    description="Phi-3-medium Instruct: <|user|> / <|assistant|> turns; a system message joins the first user turn",
    reference="microsoft/Phi-3-medium-4k-instruct chat_template",
    models=("Phi-3-medium-4k-instruct", "Phi-3-medium-128k-instruct"),
)

PHI_2 = Conversation(
    name="phi-2",
    roles=("Instruct", "Output"),
    formats=TurnFormats(
        user="Instruct: {content}\n",
        assistant="Output: {content}\n",
        generation="Output:",
    ),
    system_policy=SystemPolicy.REJECT,  # the model was not trained with one
    eos="<|endoftext|>",
    stop_str=("<|endoftext|>", "\nInstruct:"),
    stop_token_ids=(50256,),
    description="Phi-2 (a base model): the model card's 'Instruct: ... Output:' QA format",
    reference="microsoft/phi-2 model card, QA format (no chat template was published)",
    models=("phi-2",),
)

# --- others with an official chat template -------------------------------------------------------

OPENCHAT_3_5 = Conversation(
    name="openchat_3.5",
    roles=("GPT4 Correct User", "GPT4 Correct Assistant"),
    formats=TurnFormats(
        prefix="{bos}",
        system="GPT4 Correct System: {system}<|end_of_turn|>",
        user="GPT4 Correct User: {content}<|end_of_turn|>",
        assistant="GPT4 Correct Assistant: {content}<|end_of_turn|>",
        generation="GPT4 Correct Assistant:",
    ),
    bos="<s>",
    eos="<|end_of_turn|>",
    stop_str=("<|end_of_turn|>",),
    stop_token_ids=(32000, 2),
    description="OpenChat 3.5 / Starling: 'GPT4 Correct User:' turns ending in <|end_of_turn|>",
    reference="openchat/openchat-3.5-0106 chat_template",
    models=("openchat-3.5-0106", "openchat_3.5", "Starling-LM-7B-alpha"),
)

DEEPSEEK_CODER = Conversation(
    name="deepseek-coder",
    roles=("### Instruction:", "### Response:"),
    formats=TurnFormats(
        prefix="{bos}",
        system="{system}",
        user="### Instruction:\n{content}\n",
        assistant="### Response:\n{content}\n<|EOT|>\n",
        generation="### Response:\n",
    ),
    system_message=(
        "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by "
        "Deepseek Company, and you only answer questions related to computer science. For "
        "politically sensitive questions, security and privacy issues, and other non-computer "
        "science questions, you will refuse to answer\n"
    ),
    bos="<｜begin▁of▁sentence｜>",
    eos="<|EOT|>",
    stop_str=("<|EOT|>",),
    stop_token_ids=(32021,),
    description="DeepSeek Coder Instruct: '### Instruction:' / '### Response:' blocks",
    reference="deepseek-ai/deepseek-coder-33b-instruct chat_template",
    models=("deepseek-coder-6.7b-instruct", "deepseek-coder-33b-instruct"),
)

DEEPSEEK_CHAT = Conversation(
    name="deepseek-chat",
    roles=("User", "Assistant"),
    formats=TurnFormats(
        prefix="{bos}",
        system="{system}\n\n",
        user="User: {content}\n\n",
        assistant="Assistant: {content}{eos}",
        generation="Assistant:",
    ),
    bos="<｜begin▁of▁sentence｜>",
    eos="<｜end▁of▁sentence｜>",
    stop_str=("<｜end▁of▁sentence｜>",),
    stop_token_ids=(100001,),
    description="DeepSeek LLM Chat (and DeepSeek-V2 Chat): 'User:' / 'Assistant:' turns",
    reference="deepseek-ai/deepseek-llm-7b-chat chat_template (also DeepSeek-V2-Chat's)",
    models=("deepseek-llm-7b-chat", "deepseek-llm-67b-chat"),
)

_TURN = "<|START_OF_TURN_TOKEN|>"

COMMAND_R = Conversation(
    name="command-r",
    roles=("<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"),
    formats=TurnFormats(
        prefix="{bos}",
        system=_TURN + "<|SYSTEM_TOKEN|>{system}<|END_OF_TURN_TOKEN|>",
        user=_TURN + "<|USER_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
        assistant=_TURN + "<|CHATBOT_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
        generation=_TURN + "<|CHATBOT_TOKEN|>",
    ),
    content_transform="strip",
    bos="<BOS_TOKEN>",
    eos="<|END_OF_TURN_TOKEN|>",
    stop_str=("<|END_OF_TURN_TOKEN|>", "<EOS_TOKEN>"),
    stop_token_ids=(255001, 6),
    description="Cohere Command R / R+: turn tokens for system, user and chatbot",
    reference="CohereForAI/c4ai-command-r-v01 chat_template (the default one; also command-r-plus)",
    models=("c4ai-command-r-v01", "c4ai-command-r-plus"),
)

GRANITE = Conversation(
    name="granite",
    roles=("user", "assistant"),
    formats=TurnFormats(
        system="<|start_of_role|>system<|end_of_role|>{system}<|end_of_text|>\n",
        user="<|start_of_role|>user<|end_of_role|>{content}<|end_of_text|>\n",
        assistant="<|start_of_role|>assistant<|end_of_role|>{content}<|end_of_text|>\n",
        generation="<|start_of_role|>assistant<|end_of_role|>",
    ),
    eos="<|end_of_text|>",
    stop_str=("<|end_of_text|>",),
    stop_token_ids=(0,),
    description="IBM Granite 3.0 Instruct: <|start_of_role|>role<|end_of_role|> turns",
    reference="ibm-granite/granite-3.0-8b-instruct chat_template",
    models=("granite-3.0-2b-instruct", "granite-3.0-8b-instruct"),
)

# --- models without a published chat template: FastChat's templates ------------------------------

VICUNA = Conversation(
    name="vicuna_v1.1",
    roles=("USER", "ASSISTANT"),
    sep_style=S.ADD_COLON_TWO,
    sep=" ",
    sep2="</s>",
    system_message=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Vicuna v1.1+: 'USER: ... ASSISTANT: ...</s>'",
    reference="FastChat vicuna_v1.1",
    models=("vicuna-7b-v1.5", "vicuna-13b-v1.5"),
)

WIZARDLM = replace(
    VICUNA,
    name="wizardlm",
    description="WizardLM 13B/30B/70B: the Vicuna v1.1 format",
    reference="FastChat vicuna_v1.1 (FastChat's WizardLM adapter)",
    models=("WizardLM-13B-V1.2", "WizardLM-70B-V1.0"),
)

XWIN = replace(
    VICUNA,
    name="xwin",
    description="Xwin-LM: the Vicuna v1.1 format",
    reference="FastChat vicuna_v1.1 (FastChat's Xwin-LM adapter)",
    models=("Xwin-LM-7B-V0.2", "Xwin-LM-13B-V0.2"),
)

ALPACA = Conversation(
    name="alpaca",
    roles=("### Instruction", "### Response"),
    sep_style=S.ADD_COLON_TWO,
    sep="\n\n",
    sep2="</s>",
    system_message=(
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
    ),
    bos="<s>",
    eos="</s>",
    stop_str=("</s>", "### Instruction:"),
    stop_token_ids=(2,),
    description="Alpaca: '### Instruction: ...' / '### Response: ...'",
    reference="FastChat alpaca",
    models=("alpaca-7b",),
)

KOALA = Conversation(
    name="koala_v1",
    roles=("USER", "GPT"),
    sep_style=S.ADD_COLON_TWO,
    sep=" ",
    sep2="</s>",
    system_message="BEGINNING OF CONVERSATION:",
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Koala: 'BEGINNING OF CONVERSATION: USER: ... GPT: ...</s>'",
    reference="FastChat koala_v1",
    models=("koala-7b", "koala-13b"),
)

PHIND = Conversation(
    name="phind",
    roles=("### User Message", "### Assistant"),
    sep_style=S.ADD_COLON_SINGLE,
    sep="\n\n",
    system_message="### System Prompt\nYou are an intelligent programming assistant.",
    bos="<s>",
    eos="</s>",
    stop_str=("</s>",),
    stop_token_ids=(2,),
    description="Phind CodeLlama: '### System Prompt', '### User Message', '### Assistant' sections",
    reference="FastChat phind",
    models=("Phind-CodeLlama-34B-v2",),
)

REDPAJAMA = Conversation(
    name="redpajama-incite",
    roles=("<human>", "<bot>"),
    sep_style=S.ADD_COLON_SINGLE,
    sep="\n",
    stop_str=("<human>",),
    stop_token_ids=(0,),
    description="RedPajama-INCITE Chat: '<human>: ...' / '<bot>: ...'",
    reference="FastChat redpajama-incite",
    models=("RedPajama-INCITE-7B-Chat", "RedPajama-INCITE-Chat-3B-v1"),
)

STABLELM = Conversation(
    name="stablelm",
    roles=("<|USER|>", "<|ASSISTANT|>"),
    sep_style=S.NO_COLON_SINGLE,
    sep="",
    system_template="<|SYSTEM|>{system_message}",
    system_message=(
        "# StableLM Tuned (Alpha version)\n"
        "- StableLM is a helpful and harmless open-source AI language model developed by StabilityAI.\n"
        "- StableLM is excited to be able to help the user, but will refuse to do anything that could "
        "be considered harmful to the user.\n"
        "- StableLM is more than just an information source, StableLM is also able to write poetry, "
        "short stories, and make jokes.\n"
        "- StableLM will refuse to participate in anything that could harm a human.\n"
    ),
    stop_token_ids=(50278, 50279, 50277, 1, 0),
    description="StableLM Tuned Alpha: <|SYSTEM|>, <|USER|>, <|ASSISTANT|> markers",
    reference="FastChat stablelm",
    models=("stablelm-tuned-alpha-7b",),
)

MPT_7B_CHAT = Conversation(
    name="mpt-7b-chat",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    sep_style=S.CHATML,
    sep="<|im_end|>",
    system_template="<|im_start|>system\n{system_message}",
    system_message=(
        "- You are a helpful assistant chatbot trained by MosaicML.\n"
        "- You answer questions.\n"
        "- You are excited to be able to help the user, but will refuse to do anything that could "
        "be considered harmful to the user.\n"
        "- You are more than just an information source, you are also able to write poetry, short "
        "stories, and make jokes."
    ),
    stop_str=("<|im_end|>",),
    stop_token_ids=(50278, 0),
    description="MPT-7B-Chat: ChatML with MosaicML's default system message",
    reference="FastChat mpt-7b-chat",
    models=("mpt-7b-chat",),
)

ORCA_2 = Conversation(
    name="orca-2",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    sep_style=S.CHATML,
    sep="<|im_end|>",
    system_template="<|im_start|>system\n{system_message}",
    system_message=(
        "You are Orca, an AI language model created by Microsoft. You are a cautious assistant. "
        "You carefully follow instructions. You are helpful and harmless and you follow ethical "
        "guidelines and promote positive behavior."
    ),
    bos="<s>",
    eos="</s>",
    stop_str=("<|im_end|>",),
    stop_token_ids=(2,),
    description="Orca 2: ChatML with Orca's default system message",
    reference="FastChat orca-2",
    models=("Orca-2-7b", "Orca-2-13b"),
)

STARCHAT = Conversation(
    name="starchat",
    roles=("<|user|>", "<|assistant|>"),
    sep_style=S.CHATML,
    sep="<|end|>",
    system_template="<system>\n{system_message}",
    stop_str=("<|end|>",),
    stop_token_ids=(0, 49155),
    description="StarChat alpha/beta: <|user|> / <|assistant|> turns ending in <|end|>",
    reference="FastChat starchat",
    models=("starchat-alpha", "starchat-beta"),
)

DOLLY_V2 = Conversation(
    name="dolly_v2",
    roles=("### Instruction", "### Response"),
    sep_style=S.DOLLY,
    sep="\n\n",
    sep2="### End",
    system_message=(
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
    ),
    stop_str=("### End",),
    description="Dolly v2: '### Instruction:' / '### Response:' ending in '### End'",
    reference="FastChat dolly_v2",
    models=("dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b"),
)

_FALCON = Conversation(
    name="falcon",
    roles=("User", "Assistant"),
    sep_style=S.RWKV,
    sep="\n",
    sep2="<|endoftext|>",
    system_policy=MERGE,  # FastChat would glue it to 'User:' without a separator
    content_transform="collapse_newlines",
    stop_str=("\nUser",),
    stop_token_ids=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    description="Falcon Instruct: 'User: ...' / 'Assistant: ...', blank lines collapsed",
    reference="FastChat falcon",
    models=("falcon-7b-instruct", "falcon-40b-instruct"),
)
# blank lines are collapsed in this format, so a merged system message ends with one newline
FALCON = _FALCON.with_formats(merge="{system}\n{content}")

CHATGLM2 = Conversation(
    name="chatglm2",
    roles=("问", "答"),
    sep_style=S.CHATGLM,
    sep="\n\n",
    stop_token_ids=(2,),
    description="ChatGLM2: '[Round n]' then 问：... 答：...",
    reference="FastChat chatglm2",
    models=("chatglm2-6b",),
)

INTERNLM_CHAT = Conversation(
    name="internlm-chat",
    roles=("<|User|>", "<|Bot|>"),
    sep_style=S.CHATINTERN,
    sep="<eoh>",
    sep2="<eoa>",
    system_message=(
        "A chat between a curious <|User|> and an <|Bot|>. The <|Bot|> gives helpful, detailed, "
        "and polite answers to the <|User|>'s questions.\n\n"
    ),
    bos="<s>",
    eos="<eoa>",
    stop_str=("<|User|>", "<eoa>"),
    stop_token_ids=(1, 103028),
    description="InternLM Chat (v1): '<s><|User|>:...<eoh>' / '<|Bot|>:...<eoa>' rounds",
    reference="FastChat internlm-chat",
    models=("internlm-chat-7b", "internlm-chat-20b"),
)

BUILTIN_TEMPLATES: tuple[Conversation, ...] = (
    LLAMA_2, CODELLAMA, LLAMA_3, LLAMA_3_1, LLAMA_3_2, CHATML, NOUS_HERMES_2, YI_1_5, QWEN_1_5, QWEN_2,
    QWEN_2_5, MISTRAL, ZEPHYR, TINYLLAMA, TULU, GEMMA, PHI_3, PHI_3_MEDIUM, PHI_2, OPENCHAT_3_5, DEEPSEEK_CODER, DEEPSEEK_CHAT,
    COMMAND_R, GRANITE, VICUNA, WIZARDLM, XWIN, ALPACA, KOALA, PHIND, REDPAJAMA, STABLELM,
    MPT_7B_CHAT, ORCA_2, STARCHAT, DOLLY_V2, FALCON, CHATGLM2, INTERNLM_CHAT, *RECENT_TEMPLATES,
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
    **RECENT_ALIASES,
}


def register_builtin_templates() -> None:
    for template in BUILTIN_TEMPLATES:
        register_conv_template(template, override=True, aliases=ALIASES.get(template.name, ()))
