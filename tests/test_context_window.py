"""One context window for every judge of "fits": `tokens`, `-m auto` (fits, --min-context,
largest-context) and the chat itself use the window the chat will run with. For a local model that
is 4096 tokens unless --ctx, config.toml's ctx or `-o n_ctx` ask for more, at most what the GGUF was
trained for (Gemma 3 270M: 32,768); for a server or API, the registry's context window."""

from __future__ import annotations

import json

import pytest
from registries import model, write_registry
from test_tokens import GEMMA_DEPLOYMENT

from modelctl.backends.llama_options import DEFAULT_CTX, context_size, option_ctx
from modelctl.chat.selector import Constraints, local_counter, select_services
from modelctl.chat.tokens import ContextWindow, run_window
from modelctl.errors import NotFoundError, UsageError
from modelctl.registry.loader import build_model_list, load_file
from modelctl.registry.registry import Registry

TRAINED = 32768  # Gemma 3 270M's GGUF
LONG = "word " * 4400  # about 4,400 tokens with Gemma's vocabulary: more than 4096, less than 32,768


@pytest.mark.parametrize("wanted, trained, size", [
    (None, 32768, DEFAULT_CTX), (None, 2048, 2048), (None, None, DEFAULT_CTX),
    (8192, 32768, 8192), (65536, 32768, 32768), (0, 32768, 32768), (0, None, DEFAULT_CTX), (100, None, 100),
])
def test_the_size_a_local_model_loads_with(wanted, trained, size):
    assert context_size(wanted, trained) == size


def test_a_negative_size_is_refused():
    with pytest.raises(UsageError, match="positive number of tokens"):
        context_size(-1, 32768)


@pytest.mark.parametrize("options, size", [
    ({}, None), ({"n_ctx": "8192"}, 8192), ({"n_ctx": 8192}, 8192), ({"n_ctx": "0x2000"}, 8192),
    ({"n_ctx": "lots"}, None), ({"n_ctx": True}, None),
])
def test_n_ctx_as_an_option(options, size):
    assert option_ctx(options) == size


@pytest.fixture
def registry(tmp_path):
    path = write_registry(
        tmp_path / "registry.toml",
        model("t/local", GEMMA_DEPLOYMENT, tasks=["chat"], template="gemma", context_window=TRAINED,
              parameters=270_000_000, defaults={"max_tokens": 32}),
        model("t/api", {"kind": "openai", "model": "gpt-4o"}, tasks=["chat"], context_window=128000,
              access={"free_tier": False, "local_capable": False}),
    )
    return Registry(build_model_list(load_file(path), str(path)))


def test_run_window_by_where_the_size_comes_from(registry, modelctl_home):
    local, api = registry.get("t/local"), registry.get("t/api")
    dep = local.deployment("llama.cpp")
    assert run_window(api, api.deployments[0]) == ContextWindow(128000, 128000)
    assert run_window(local, dep, config={}) == ContextWindow(DEFAULT_CTX, TRAINED)
    assert run_window(local, dep, n_ctx=8192, config={}).used == 8192
    assert run_window(local, dep, config={"ctx": 16384}).used == 16384
    assert run_window(local, dep, config={"options": {"n_ctx": 12000}}).used == 12000
    assert run_window(local, dep, options={"n_ctx": "20000"}, config={}).used == 20000
    assert run_window(local, dep, n_ctx=10**6, config={}).used == TRAINED  # at most the trained window
    # --ctx wins over the config, which wins over -o n_ctx (as the chat loads it)
    assert run_window(local, dep, n_ctx=9000, config={"ctx": 16384, "options": {"n_ctx": 12000}}).used == 9000
    assert run_window(local, dep, config={"ctx": 16384, "options": {"n_ctx": 12000}}).used == 16384


def test_the_selector_judges_fits_by_the_window_the_chat_will_have(registry):
    messages = [{"role": "user", "content": LONG}]
    counter = local_counter()
    sel = select_services(messages, Constraints(local=True), registry=registry, counter=counter)
    assert not sel.candidates
    reason = sel.rejected[0].reasons[-1]
    assert "> context window 4096 (the model's is 32768: --ctx raises it)" in reason, reason
    with pytest.raises(NotFoundError, match="--ctx raises it"):
        _ = sel.best
    wide = select_services(messages, Constraints(local=True), registry=registry, counter=counter, n_ctx=8192)
    assert [c.id for c in wide.candidates] == ["t/local@llama.cpp"]
    assert wide.best.to_dict()["context_window"] == 8192 and wide.best.to_dict()["context_window_trained"] == TRAINED
    by_option = select_services(messages, Constraints(local=True), registry=registry, counter=counter,
                                options={"n_ctx": "6000"})
    assert [c.id for c in by_option.candidates] == ["t/local@llama.cpp"]


def test_min_context_asks_for_the_window_the_chat_will_have(registry):
    short = [{"role": "user", "content": "Hi"}]
    sel = select_services(short, Constraints(local=True, min_context=16000), registry=registry)
    assert not sel.candidates and "context window 4096 (the model's is 32768: --ctx raises it) < --min-context 16000" \
        in sel.rejected[0].reasons[-1]
    sel = select_services(short, Constraints(local=True, min_context=16000), registry=registry, n_ctx=16384)
    assert [c.id for c in sel.candidates] == ["t/local@llama.cpp"]


def test_tokens_and_chat_agree_on_what_does_not_fit(cli, run_modelctl, model_path):
    """The user's case: a prompt of about 4,400 tokens to Gemma, which chat runs at 4096."""
    r = cli("tokens", "-m", str(model_path), "--json", LONG)
    data = json.loads(r.stdout)
    assert data["tokens"] > DEFAULT_CTX and data["fits"] is False
    assert data["context_window"] == DEFAULT_CTX and data["context_window_trained"] == TRAINED
    r = cli("tokens", "-m", str(model_path), LONG)
    assert f"context window 4096 (the model's is {TRAINED}: --ctx {TRAINED} uses it all): does NOT fit" in r.stdout
    chat = run_modelctl("chat", "-m", str(model_path), "--no-log", LONG)
    assert chat.returncode == 7 and "more than the context window of 4096" in chat.stderr
    for args in (["--ctx", "8192"], ["--ctx", "100000"]):
        data = json.loads(cli("tokens", "-m", str(model_path), "--json", *args, LONG).stdout)
        assert data["fits"] is True and data["context_window"] == min(int(args[1]), TRAINED)


def test_tokens_takes_the_config_ctx_as_chat_does(cli, model_path, modelctl_home):
    assert cli("config", "set", "chat.ctx", "8192").exit_code == 0
    data = json.loads(cli("tokens", "-m", str(model_path), "--json", LONG).stdout)
    assert data["context_window"] == 8192 and data["fits"] is True


def test_ctx_is_for_local_models(cli):
    r = cli("tokens", "-m", "gpt-4o", "--ctx", "8192", "Hi")
    assert r.exit_code == 2 and "--ctx: only for local (llama.cpp) models" in r.stderr
    data = json.loads(cli("tokens", "-m", "gpt-4o", "--json", "Hi").stdout)
    assert data["context_window"] == data["context_window_trained"] == 128000
