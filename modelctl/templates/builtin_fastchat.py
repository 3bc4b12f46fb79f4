"""Built-in templates, data only: FastChat's templates (`fastchat/conversation.py`) for the
models that never published a chat template of their own. `builtin` registers them."""

from __future__ import annotations

from dataclasses import replace

from modelctl.templates.conversation import Conversation, SeparatorStyle
from modelctl.templates.types import SystemPolicy

S = SeparatorStyle
MERGE = SystemPolicy.MERGE_FIRST_USER

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
