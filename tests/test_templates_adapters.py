"""Model adapters on real-world GGUF file names, and the resolution order."""

from __future__ import annotations

import pytest

from modelctl.errors import NotFoundError
from modelctl.templates import (
    ModelAdapter,
    adapters,
    get_conv_template,
    match_adapter,
    register_model_adapter,
    resolve_template,
)
from modelctl.templates.adapters import name_tokens

# file names as published on the Hub (TheBloke, bartowski, QuantFactory, lmstudio-community, ...)
REAL_WORLD = [
    ("llama-2-7b-chat.Q4_K_M.gguf", "llama-2"),
    ("llama-2-13b-chat.ggmlv3.q4_0.bin", "llama-2"),
    ("codellama-7b-instruct.Q4_K_M.gguf", "codellama"),
    ("phind-codellama-34b-v2.Q4_K_M.gguf", "phind"),
    ("Meta-Llama-3-8B-Instruct-Q4_K_M.gguf", "llama-3"),
    ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama-3.1"),
    ("Llama-3.3-70B-Instruct-Q4_K_M.gguf", "llama-3.1"),
    ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", "llama-3.2"),
    ("llama-3.2-3b-instruct-q8_0.gguf", "llama-3.2"),
    ("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "tinyllama"),
    ("mistral-7b-instruct-v0.2.Q4_K_M.gguf", "mistral"),
    ("Mistral-7B-Instruct-v0.3.Q4_K_M.gguf", "mistral-v3"),
    ("mistralai_Mistral-7B-Instruct-v0.3-Q6_K.gguf", "mistral-v3"),
    ("mixtral-8x7b-instruct-v0.1.Q5_K_M.gguf", "mistral"),
    ("openhermes-2.5-mistral-7b.Q4_K_M.gguf", "chatml"),
    ("dolphin-2.2.1-mistral-7b.Q5_K_M.gguf", "chatml"),
    ("mistral-7b-openorca.Q4_K_M.gguf", "chatml"),
    ("Nous-Hermes-2-Mixtral-8x7B-DPO.Q4_K_M.gguf", "nous-hermes-2"),
    ("Hermes-2-Pro-Mistral-7B.Q4_K_M.gguf", "nous-hermes-2"),
    ("Yi-1.5-9B-Chat-Q4_K_M.gguf", "yi-1.5"),
    ("yi-34b-chat.Q4_K_M.gguf", "chatml"),
    ("zephyr-7b-beta.Q4_K_M.gguf", "zephyr"),
    ("stablelm-zephyr-3b.Q4_K_M.gguf", "zephyr"),
    ("gemma-7b-it.Q4_K_M.gguf", "gemma"),
    ("gemma-2-9b-it-Q4_K_M.gguf", "gemma"),
    ("gemma-3-270m-it-Q4_K_M.gguf", "gemma"),
    ("qwen2.5-7b-instruct-q4_k_m.gguf", "qwen2.5"),
    ("Qwen2-7B-Instruct-Q4_K_M.gguf", "qwen2"),
    ("qwen1_5-7b-chat-q4_k_m.gguf", "qwen1.5"),
    ("Qwen1.5-14B-Chat-Q4_K_M.gguf", "qwen1.5"),
    ("Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf", "qwen2.5"),
    ("qwen2.5-coder-32b-instruct-q4_k_m.gguf", "qwen2.5"),
    ("Phi-3-mini-4k-instruct-q4.gguf", "phi-3"),
    ("Phi-3.5-mini-instruct-Q4_K_M.gguf", "phi-3"),
    ("Phi-3-medium-4k-instruct-Q4_K_M.gguf", "phi-3-medium"),
    ("Phi-3-medium-128k-instruct-Q6_K.gguf", "phi-3-medium"),
    ("phi-2.Q4_K_M.gguf", "phi-2"),
    ("openchat-3.5-0106.Q4_K_M.gguf", "openchat_3.5"),
    ("starling-lm-7b-alpha.Q4_K_M.gguf", "openchat_3.5"),
    ("vicuna-7b-v1.5.Q4_K_M.gguf", "vicuna_v1.1"),
    ("wizardlm-13b-v1.2.Q4_K_M.gguf", "wizardlm"),
    ("xwin-lm-13b-v0.2.Q4_K_M.gguf", "xwin"),
    ("deepseek-coder-6.7b-instruct.Q4_K_M.gguf", "deepseek-coder"),
    ("deepseek-llm-7b-chat.Q4_K_M.gguf", "deepseek-chat"),
    ("c4ai-command-r-v01-Q4_K_M.gguf", "command-r"),
    ("c4ai-command-r7b-12-2024-Q4_K_M.gguf", "command-r7b"),
    ("glm-4-9b-chat-Q4_K_M.gguf", "glm-4"),
    ("THUDM_glm-4-9b-chat-Q8_0.gguf", "glm-4"),
    ("CohereForAI_c4ai-command-r7b-12-2024-Q6_K.gguf", "command-r7b"),
    ("granite-3.0-8b-instruct-Q4_K_M.gguf", "granite"),
    ("falcon-7b-instruct.Q4_K_M.gguf", "falcon"),
    ("Falcon3-7B-Instruct-q4_k_m.gguf", "falcon-3"),
    ("tiiuae_Falcon3-10B-Instruct-Q4_K_M.gguf", "falcon-3"),
    ("orca-2-7b.Q4_K_M.gguf", "orca-2"),
    ("tulu-2-dpo-7b.Q4_K_M.gguf", "tulu"),
    ("mpt-7b-chat.ggmlv0.q4_0.bin", "mpt-7b-chat"),
    ("dolly-v2-12b.q4_0.bin", "dolly_v2"),
    # reasoning models
    ("Qwen3-8B-Q4_K_M.gguf", "qwen3"),
    ("Qwen3-30B-A3B-Q4_K_M.gguf", "qwen3"),
    ("Qwen_Qwen3-0.6B-Q8_0.gguf", "qwen3"),
    ("Qwen/Qwen3-235B-A22B", "qwen3"),
    ("qwq-32b-q4_k_m.gguf", "qwq"),
    ("Qwen_QwQ-32B-Q4_K_M.gguf", "qwq"),
    ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "deepseek-r1"),
    ("DeepSeek-R1-Distill-Llama-8B-Q4_K_M.gguf", "deepseek-r1"),
    ("deepseek-ai_DeepSeek-R1-0528-Qwen3-8B-Q4_K_M.gguf", "deepseek-r1"),
    ("DeepSeek-R1-UD-IQ1_S.gguf", "deepseek-r1"),
    ("DeepSeek-V3-Q4_K_M-00001-of-00010.gguf", "deepseek-v3"),
    ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
    ("gpt-oss-20b-mxfp4.gguf", "gpt-oss"),
    ("openai_gpt-oss-120b-MXFP4.gguf", "gpt-oss"),
    ("phi-4-Q4_K_M.gguf", "phi-4"),
    ("microsoft_phi-4-Q6_K.gguf", "phi-4"),
    ("Phi-4-mini-instruct-Q4_K_M.gguf", "phi-4-mini"),
    ("microsoft/Phi-4-mini-instruct", "phi-4-mini"),
    ("Mistral-Nemo-Instruct-2407-Q4_K_M.gguf", "mistral-nemo"),
    ("mistralai_Mistral-Nemo-Instruct-2407-Q8_0.gguf", "mistral-nemo"),
    ("Mistral-Small-24B-Instruct-2501-Q4_K_M.gguf", "mistral-small-3"),
    ("mistralai_Mistral-Small-3.1-24B-Instruct-2503-Q4_K_M.gguf", "mistral-small-3"),
    ("Llama-4-Scout-17B-16E-Instruct-Q4_K_M.gguf", "llama-4"),
    ("meta-llama_Llama-4-Maverick-17B-128E-Instruct-Q3_K_M.gguf", "llama-4"),
    ("granite-3.3-8b-instruct-Q4_K_M.gguf", "granite-3"),
    ("ibm-granite_granite-3.1-8b-instruct-Q4_K_M.gguf", "granite-3.1"),
    ("granite-3.1-2b-instruct.Q5_K_M.gguf", "granite-3.1"),
    ("granite-3.2-2b-instruct-Q8_0.gguf", "granite-3.2"),
    ("ibm-granite.granite-3.2-8b-instruct.f16.gguf", "granite-3.2"),
    ("granite-3.3-2b-instruct-Q6_K.gguf", "granite-3"),
    ("SmolLM2-1.7B-Instruct-Q4_K_M.gguf", "smollm2"),
    ("smollm2-360m-instruct-q8_0.gguf", "smollm2"),
    ("SmolLM3-3B-Q4_K_M.gguf", "smollm3"),
    ("HuggingFaceTB_SmolLM3-3B-Q4_K_M.gguf", "smollm3"),  # bartowski's quantizations
    ("SmolLM3-Q4_K_M.gguf", "smollm3"),  # ggml-org/SmolLM3-3B-GGUF
    ("SmolLM3-3B-128K-UD-Q4_K_XL.gguf", "smollm3"),  # unsloth's long-context build
    ("HuggingFaceTB/SmolLM3-3B", "smollm3"),
    ("internlm2_5-7b-chat-q4_k_m.gguf", "internlm2.5"),
    ("internlm2-chat-7b.Q4_K_M.gguf", "internlm2.5"),
    ("Llama-3.1-Tulu-3-8B-Q4_K_M.gguf", "tulu-3"),
    ("allenai_Llama-3.1-Tulu-3-70B-Q4_K_M.gguf", "tulu-3"),
    ("OLMo-2-1124-7B-Instruct-Q4_K_M.gguf", "olmo-2"),
    ("allenai_OLMo-2-0425-1B-Instruct-Q8_0.gguf", "olmo-2"),
    ("/home/me/models/TheBloke/Llama-2-7B-Chat-GGUF/llama-2-7b-chat.Q5_K_M.gguf", "llama-2"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3"),
    ("ollama:llama3.2:3b", "llama-3.2"),
]


@pytest.mark.parametrize("name,template", REAL_WORLD, ids=[n for n, _ in REAL_WORLD])
def test_real_world_file_names(name, template):
    match = match_adapter([name])
    assert match is not None, name
    assert match.template == template
    get_conv_template(match.template)  # every adapter points at a registered template


@pytest.mark.parametrize(
    "name",
    [
        "/models/prompt-tuned/model.gguf",  # FastChat matched MPT on the substring "mpt"
        "/data/attempt-3/weights.gguf",
        "prompting-guide.gguf",
        "my-finetune.Q4_K_M.gguf",
        "model.gguf",
        "/srv/llama-3/custom.gguf",  # only the base name counts
    ],
)
def test_no_substring_or_directory_matches(name):
    assert match_adapter([name]) is None


def test_tokens():
    assert name_tokens("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf") == (
        "meta", "llama", "3.1", "8", "b", "instruct", "q", "4", "k", "m",
    )  # fmt: skip
    assert name_tokens("/x/y/Qwen2.5-7B.gguf") == ("qwen", "2.5", "7", "b")


def test_names_are_tried_in_order_then_gguf_names_then_architecture():
    assert match_adapter(["unknown", "zephyr-7b-beta"]).template == "zephyr"
    assert match_adapter(["mistral-7b-instruct", "zephyr-7b-beta"]).template == "mistral"
    md = {"general.name": "Gemma 3 270m", "general.architecture": "gemma3"}
    assert match_adapter(["weights.gguf"], md).matched == "Gemma 3 270m"
    only_arch = match_adapter(["weights.gguf"], {"general.architecture": "phi3"})
    assert only_arch.template == "phi-3" and only_arch.matched == "architecture=phi3"
    assert match_adapter(["weights.gguf"], {"general.architecture": "llama"}) is None
    assert match_adapter(["weights.gguf"], {"general.architecture": "smollm3"}).template == "smollm3"


def test_custom_adapter_first_wins(monkeypatch):
    monkeypatch.setattr(adapters, "_ADAPTERS", list(adapters._ADAPTERS))
    register_model_adapter("chatml", ["my company llama"], first=True)
    assert match_adapter(["my-company-llama-3-8b.gguf"]).template == "chatml"
    assert match_adapter(["llama-3-8b.gguf"]).template == "llama-3"
    assert isinstance(register_model_adapter(ModelAdapter("zephyr", ("zzz",))), ModelAdapter)


# -- resolution order: --template > registry > GGUF > adapter > fallback ----------------------------

GGUF_MD = {
    "tokenizer.chat_template": "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}",
    "tokenizer.ggml.bos_token": "<s>",
    "tokenizer.ggml.eos_token": "</s>",
    "tokenizer.ggml.eos_token_id": 2,
    "tokenizer.ggml.eot_token_id": 32007,
    "general.name": "Phi 3 Mini",
}


def test_explicit_template_beats_everything():
    tpl = resolve_template(template="zephyr", registry_template="llama-2", gguf_metadata=GGUF_MD, names=["gemma.gguf"])
    assert (tpl.name, tpl.source) == ("zephyr", "builtin")


def test_registry_template_beats_gguf_and_adapters():
    tpl = resolve_template(registry_template="llama-2", gguf_metadata=GGUF_MD, names=["gemma.gguf"])
    assert (tpl.name, tpl.source) == ("llama-2", "registry")
    with pytest.raises(NotFoundError, match="did you mean"):
        resolve_template(registry_template="lama-2")


def test_gguf_template_beats_adapters_and_carries_stop_rules():
    tpl = resolve_template(gguf_metadata=GGUF_MD, names=["Phi-3-mini-4k-instruct-q4.gguf"])
    assert (tpl.name, tpl.source) == ("Phi-3-mini-4k-instruct-q4.gguf", "gguf")
    r = tpl.render([{"role": "user", "content": "hi"}])
    assert r.text == "[user]hi" and r.stop_token_ids == (2, 32007)
    assert r.stop[0] == "</s>" and "<|end|>" in r.stop  # the matching builtin's stop strings join


def test_adapter_then_fallback():
    tpl = resolve_template(names=["zephyr-7b-beta.Q4_K_M.gguf"])
    assert (tpl.name, tpl.source) == ("zephyr", "builtin")
    md = {"general.architecture": "gemma3", "tokenizer.ggml.bos_token": "<bos>"}  # the real Gemma 3 270M base
    assert resolve_template(gguf_metadata=md, names=["gemma-3-270m-q4_k_m.gguf"]).name == "gemma"
    fallback = resolve_template(names=["mystery.gguf"])
    assert fallback.source == "fallback" and fallback.name == "chatml"
    assert get_conv_template("chatml").source == "builtin"  # the registered value is unchanged


def test_unknown_template_name_is_not_found_with_suggestions():
    with pytest.raises(NotFoundError, match="did you mean 'gemma'"):
        resolve_template(template="gema")
