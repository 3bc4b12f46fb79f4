"""Built-in templates, data only: the families that write turns in markup of their own, each
family's generations together (Llama 2 to 4, Mistral to Mistral Small 3, Phi 2 to 4, DeepSeek
Coder to R1, Granite 3.0 to 3.3, ...). `builtin` registers them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelctl.templates.conversation import Conversation, TurnFormats
from modelctl.templates.tool_render import (
    COMMAND_R7B_TOOLS,
    GPT_OSS_TOOLS,
    GRANITE_3_3_TOOLS,
    LLAMA_3_TOOLS,
    LLAMA_4_TOOLS,
    MISTRAL_NEMO_TOOLS,
    MISTRAL_V3_TOOLS,
    PHI_4_MINI_TOOLS,
)
from modelctl.templates.tool_texts import GRANITE_THINKING
from modelctl.templates.types import SystemPolicy

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
    tool_style=LLAMA_3_TOOLS,
    variables=(("tools_in_user_message", True),),  # false: the tools go in the system turn
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
    tool_style=LLAMA_4_TOOLS,
    variables=(("tools_in_user_message", True),),  # false: the tools go in the system turn
    stop_str=("<|eot|>", "<|eom|>", "<|end_of_text|>"),
    stop_token_ids=(200008, 200007, 200001),
    description="Llama 4 (Scout, Maverick): <|header_start|>role<|header_end|> turns ending in <|eot|>",
    reference="the Llama 4 chat_template transformers ships (models/llama4/processing_llama4.py)",
    models=("Llama-4-Scout-17B-16E-Instruct", "Llama-4-Maverick-17B-128E-Instruct"),
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
    tool_style=MISTRAL_V3_TOOLS,
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
    tool_style=MISTRAL_NEMO_TOOLS,
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
    tool_style=PHI_4_MINI_TOOLS,
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

# --- OpenChat ---------------------------------------------------------------------------------

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

# --- DeepSeek ---------------------------------------------------------------------------------

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

# --- Cohere Command R -------------------------------------------------------------------------

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
    tool_style=COMMAND_R7B_TOOLS,  # its tool_use template
    bos="<BOS_TOKEN>",
    eos="<|END_OF_TURN_TOKEN|>",
    stop_str=("<|END_RESPONSE|>", "<|END_OF_TURN_TOKEN|>"),
    stop_token_ids=(255001,),
    description="Cohere Command R7B: turn tokens, the answer between <|START_RESPONSE|> and <|END_RESPONSE|>",
    reference="CohereForAI/c4ai-command-r7b-12-2024 chat_template 'default' (without documents or tools)",
    models=("c4ai-command-r7b-12-2024",),
)

# --- IBM Granite 3.0 --------------------------------------------------------------------------

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

# --- IBM Granite 3.1, 3.2, 3.3 ----------------------------------------------------------------------
# One turn format; each revision's official template writes its own default system message: 3.1
# and 3.2 put the date on a line of its own, 3.3 runs it on with spaces. 3.2 and 3.3 take
# `thinking`, which asks for reasoning in the default system message (in different words).

_GRANITE_TURN = "<|start_of_role|>{role}<|end_of_role|>{{content}}<|end_of_text|>\n"
_GRANITE_HELPFUL = "You are Granite, developed by IBM. You are a helpful AI assistant."


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
        thinking_prompt = GRANITE_THINKING.replace("{sections}", sections)
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
GRANITE_3 = replace(
    _granite("3.3", "Knowledge Cutoff Date: April 2024. Today's Date: {date}. ",
             "between <think></think> and write your response between <response></response>",
             ("granite-3.3-2b-instruct", "granite-3.3-8b-instruct")),
    tool_style=GRANITE_3_3_TOOLS,
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
    tool_style=GPT_OSS_TOOLS,
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
