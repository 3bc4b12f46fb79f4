"""`modelctl add`: one line writes a minimal, valid entry into the user registry, which chat,
show, list and tokens then use; every refusal is one usage-error line (exit 2) and leaves the
file's bytes as they were. Real CLI runs; the server is a loopback one speaking OpenAI's wire
format."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from providers import openai_wire
from providers.server import FakeServer

from modelctl.config import load_toml

LOOPBACK = "http://127.0.0.1:9/v1"


@pytest.fixture
def served():
    server = FakeServer().start()
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hello ", "there."], usage=(12, 3)))
    yield server
    server.stop()


@pytest.fixture
def user_registry(modelctl_home) -> Path:
    return modelctl_home / "config" / "registry.toml"


def ok(run_modelctl, *args: str):
    r = run_modelctl(*args)
    assert r.returncode == 0, (args, r.stderr)
    return r


def refused(run_modelctl, *args: str, code: int = 2) -> str:
    r = run_modelctl(*args)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    return lines[0]


def models_in(path: Path) -> dict[str, dict]:
    return {m["id"]: m for m in load_toml(path)["models"]}


# --- the round trip -------------------------------------------------------------------------------


def test_an_added_model_is_chatted_with_shown_listed_and_priced(run_modelctl, served, user_registry):
    ok(run_modelctl, "add", "my-org/served-7b", "--api-base", f"{served.url}/v1", "--model", "served-name",
       "--context", "32768", "--price-in", "2", "--price-out", "8")
    chat = ok(run_modelctl, "chat", "-m", "my-org/served-7b", "Hi", "--json")
    answer = json.loads(chat.stdout)
    assert answer["id"] == "my-org/served-7b" and "Hello there." in json.dumps(answer)
    [request] = served.calls("/v1/chat/completions")
    assert request.body["model"] == "served-name"
    assert answer["cost"] == pytest.approx((12 * 2 + 3 * 8) / 1e6)

    shown = json.loads(ok(run_modelctl, "show", "my-org/served-7b", "--json").stdout)
    assert shown["provider"] == "Local server" and shown["context_window"] == 32768 and shown["local"] is True
    listed = json.loads(ok(run_modelctl, "list", "--json", "--provider", "Local server").stdout)
    assert "my-org/served-7b" in [m["id"] for m in listed]
    priced = json.loads(ok(run_modelctl, "tokens", "-m", "my-org/served-7b", "Hi", "--json").stdout)
    [cost] = priced["costs"]
    assert (cost["input_per_mtok"], cost["output_per_mtok"]) == (2.0, 8.0)
    assert priced["context_window"] == 32768
    ok(run_modelctl, "registry", "validate")


def test_json_prints_the_entry_as_written_with_the_defaults(run_modelctl, user_registry):
    r = ok(run_modelctl, "add", "acme/big-model", "--api-base", "https://api.acme.example/v1", "--price-in", "0.25",
           "--price-out", "1.5", "--json")
    printed = json.loads(r.stdout)
    assert printed == models_in(user_registry)["acme/big-model"]
    assert printed["provider"] == "acme.example" and printed["tasks"] == ["chat"]
    assert printed["deployments"] == [{"kind": "openai-compatible", "model": "big-model",
                                       "api_base": "https://api.acme.example/v1"}]
    assert printed["access"] == {"free_tier": False, "local_capable": False, "cost_input": 0.25, "cost_output": 1.5,
                                 "prices_as_of": datetime.date.today().isoformat()}
    assert "added acme/big-model" in r.stderr


def test_a_loopback_server_without_prices_is_free_and_local(run_modelctl, user_registry):
    r = ok(run_modelctl, "add", "here", "--api-base", "http://localhost:8080/v1", "--json")
    entry = json.loads(r.stdout)
    assert entry["access"] == {"free_tier": True, "local_capable": True}
    assert "prices_as_of" not in json.dumps(entry)
    assert entry["provider"] == "Local server" and entry["name"] == "here"


def test_other_kinds_get_their_own_fields(run_modelctl, user_registry):
    ollama = json.loads(ok(run_modelctl, "add", "my-llama", "--kind", "ollama", "--model", "llama3.2:1b",
                           "--api-base", "http://127.0.0.1:11434", "--json").stdout)
    assert ollama["deployments"] == [{"kind": "ollama", "tag": "llama3.2:1b", "host": "http://127.0.0.1:11434"}]
    assert ollama["license"]["open_weights"] is True
    mistral = json.loads(ok(run_modelctl, "add", "my-mistral", "--kind", "mistral", "--api-base",
                            "https://eu.mistral.example/v1", "--task", "chat", "--task", "code",
                            "--alias", "mm", "--max-output", "4096", "--json").stdout)
    assert mistral["tasks"] == ["chat", "code"] and mistral["aliases"] == ["mm"]
    assert mistral["max_output_tokens"] == 4096
    assert json.loads(ok(run_modelctl, "show", "mm", "--json").stdout)["id"] == "my-mistral"


# --- refusals leave the file as it was ----------------------------------------------------------------


REFUSALS = [
    (["--api-base", "http://user:pw@127.0.0.1:9/v1"], "--api-base"),
    (["--api-base", "https://api.example.com/v1?key=abc123"], "--api-base"),
    (["--api-base", "https://api.example.com/v1?api_key=abc123"], "--api-base"),
    (["--api-base", "ftp://example.com/v1"], "--api-base"),
    (["--api-base", "http://exa mple.com/v1"], "--api-base"),
    (["--api-base", "http://[::1/v1"], "--api-base"),
    (["--api-base", LOOPBACK, "--price-in", "-1"], "--price-in"),
    (["--api-base", LOOPBACK, "--price-out", "nan"], "--price-out"),
    (["--api-base", LOOPBACK, "--price-in", "inf"], "--price-in"),
    (["--api-base", LOOPBACK, "--price-in", "1e400"], "--price-in"),
    (["--api-base", LOOPBACK, "--context", "0"], "--context"),
    (["--api-base", LOOPBACK, "--context", "-5"], "--context"),
    (["--api-base", LOOPBACK, "--context", "9" * 30], "--context"),
    (["--api-base", LOOPBACK, "--max-output", "0"], "--max-output"),
    (["--api-base", LOOPBACK, "--kind", "azure-openai"], "api_version"),
    (["--api-base", LOOPBACK, "--kind", "llama.cpp"], "--kind"),
    (["--api-base", LOOPBACK, "--kind", "opnai"], "did you mean 'openai'"),
    (["--api-base", LOOPBACK, "--task", "chta"], "--task"),
    (["--api-base", LOOPBACK, "--name", "evil\x1b[31mred"], "--name"),
    (["--api-base", LOOPBACK, "--name", "one\nline"], "--name"),
    (["--api-base", LOOPBACK, "--name", "bidi\u202egnp.exe"], "--name"),
    (["--api-base", LOOPBACK, "--name", "sk-" + "a1B2c3D4e5F6g7H8i9J0k"], "--name"),
    (["--api-base", LOOPBACK, "--name", "x" * 500], "--name"),
    (["--api-base", LOOPBACK, "--alias", "two words"], "--alias"),
    (["--api-base", LOOPBACK, "--alias", "gpt-4o-mini"], "gpt-4o-mini"),
    (["--api-base", LOOPBACK, "--alias", "GPT4O"], "gpt-4o"),
    (["--api-base", LOOPBACK, "--alias", "new-model"], "own id"),
    (["--api-base", LOOPBACK, "--model", "a\x7fb"], "--model"),
]


@pytest.mark.parametrize("with_file", [True, False], ids=["existing-file", "no-file"])
def test_refusals_leave_the_registry_file_untouched(run_modelctl, user_registry, with_file):
    if with_file:
        user_registry.parent.mkdir(parents=True, exist_ok=True)
        user_registry.write_text("# my models\nschema_version = 1\n", encoding="utf-8")
        ok(run_modelctl, "add", "kept", "--api-base", LOOPBACK)
        before = user_registry.read_bytes()
    for args, named in REFUSALS:
        line = refused(run_modelctl, "add", "new-model", *args)
        assert named in line, (args, line)
        assert "abc123" not in line and "pw@" not in line and "a1B2c3D4e5F6g7H8i9J0k" not in line
        assert "\x1b" not in line and "\u202e" not in line
        if with_file:
            assert user_registry.read_bytes() == before, args
        else:
            assert not user_registry.exists(), args


@pytest.mark.parametrize("model_id", ["two words", " lead", "tab\there", "nl\nhere", "ctl\x07", "a/", "/abs/path",
                                      "./rel", "~home", "model.gguf", "hf:owner/repo", "auto", "x" * 300, "4o-mini"])
def test_unusable_ids_are_refused(run_modelctl, user_registry, model_id):
    line = refused(run_modelctl, "add", model_id, "--api-base", LOOPBACK, "--force")
    assert "\n" not in line and "\x07" not in line
    assert not user_registry.exists()


def test_unicode_is_kept_as_written(run_modelctl, user_registry):
    r = ok(run_modelctl, "add", "modèle-日本", "--api-base", LOOPBACK, "--name", "Modèle 日本語 🚀", "--json")
    assert json.loads(r.stdout)["name"] == "Modèle 日本語 🚀"
    assert models_in(user_registry)["modèle-日本"]["deployments"][0]["model"] == "modèle-日本"
    assert json.loads(ok(run_modelctl, "show", "modèle-日本", "--json").stdout)["name"] == "Modèle 日本語 🚀"


def test_large_numbers_within_the_limits_are_kept(run_modelctl, user_registry):
    entry = json.loads(ok(run_modelctl, "add", "huge", "--api-base", LOOPBACK, "--context", str(2**31 - 1),
                          "--price-in", "1e300", "--price-out", "0", "--json").stdout)
    assert entry["context_window"] == 2**31 - 1 and entry["access"]["cost_input"] == 1e300
    assert models_in(user_registry)["huge"] == entry


# --- ids already taken -----------------------------------------------------------------------------------


def test_an_id_of_the_user_registry_needs_force_which_replaces_only_it(run_modelctl, user_registry):
    user_registry.parent.mkdir(parents=True, exist_ok=True)
    user_registry.write_text("# my models, by hand\nschema_version = 1\n", encoding="utf-8")
    ok(run_modelctl, "add", "first", "--api-base", LOOPBACK, "--context", "100")
    ok(run_modelctl, "add", "second", "--api-base", LOOPBACK)
    with user_registry.open("a", encoding="utf-8") as fh:
        fh.write("# a note at the end\n")
    before = user_registry.read_bytes()
    line = refused(run_modelctl, "add", "FIRST", "--api-base", LOOPBACK)
    assert "--force" in line and user_registry.read_bytes() == before

    r = ok(run_modelctl, "add", "first", "--api-base", "http://127.0.0.1:8/v1", "--context", "200", "--force")
    assert "replaced first" in r.stderr
    text = user_registry.read_text(encoding="utf-8")
    assert text.startswith("# my models, by hand\n") and text.endswith("# a note at the end\n")
    models = models_in(user_registry)
    assert list(models) == ["first", "second"]
    assert models["first"]["context_window"] == 200
    assert models["first"]["deployments"][0]["api_base"] == "http://127.0.0.1:8/v1"
    second_block = before.decode().split('id = "second"', 1)[1]
    assert second_block in text  # the other entry, byte for byte
    ok(run_modelctl, "registry", "validate")


def test_shadowing_a_built_in_model_needs_force_and_says_so(run_modelctl, user_registry, served):
    line = refused(run_modelctl, "add", "gpt-4o-mini", "--api-base", f"{served.url}/v1")
    assert "--force" in line and not user_registry.exists()
    r = ok(run_modelctl, "add", "gpt-4o-mini", "--api-base", f"{served.url}/v1", "--force")
    assert "warning: 'gpt-4o-mini' now shadows" in r.stderr and "registry.toml" in r.stderr
    ok(run_modelctl, "chat", "-m", "gpt-4o-mini", "Hi")
    assert [c.body["model"] for c in served.calls("/v1/chat/completions")] == ["gpt-4o-mini"]


def test_an_id_from_a_layer_above_the_user_registry_is_refused(run_modelctl, user_registry, tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text("schema_version = 1\n", encoding="utf-8")
    ok(run_modelctl, "--registry", str(extra), "add", "mine", "--api-base", LOOPBACK)
    extra.write_bytes(user_registry.read_bytes())
    user_registry.unlink()
    line = refused(run_modelctl, "--registry", str(extra), "add", "mine", "--api-base", LOOPBACK, "--force")
    assert str(extra) in line and not user_registry.exists()


def test_a_user_alias_of_that_name_is_refused(run_modelctl, user_registry):
    ok(run_modelctl, "alias", "set", "fast", "gpt-4o-mini")
    line = refused(run_modelctl, "add", "fast", "--api-base", LOOPBACK, "--force")
    assert "alias rm fast" in line and not user_registry.exists()
