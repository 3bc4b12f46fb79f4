"""`modelctl alias`: the user's names for models, followed wherever a model name is."""

from __future__ import annotations

import json

import pytest
from test_config_cmd import one_error_line


def test_set_list_and_remove(cli, modelctl_home):
    r = cli("alias", "set", "fast", "gemma-3-270m", "-o", "temperature=0.2", "-o", "n_batch=64",
            "-o", 'system="Be brief."')
    assert r.exit_code == 0, r.stderr
    assert "fast -> google/gemma-3-270m" in r.stderr
    text = (modelctl_home / "config" / "config.toml").read_text()
    assert text == ('[aliases]\nfast = {model = "google/gemma-3-270m", '
                    'options = {temperature = 0.2, n_batch = 64, system = "Be brief."}}\n')
    listed = json.loads(cli("alias", "list", "--json").stdout)
    assert listed == [{"name": "fast", "model": "google/gemma-3-270m",
                       "options": {"temperature": 0.2, "n_batch": 64, "system": "Be brief."}}]
    assert cli("alias", "list").stdout.splitlines()[1].split()[:2] == ["fast", "google/gemma-3-270m"]
    assert cli("alias", "rm", "FAST").exit_code == 0  # names match in any case, as registry ids do
    assert cli("alias", "list", "--json").stdout.strip() == "[]"
    one_error_line(cli("alias", "rm", "fast"), 4, "no alias 'fast'")


def test_an_alias_keeps_the_rest_of_config_toml(cli, modelctl_home):
    path = modelctl_home / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    original = "# mine\n[chat]\ntemperature = 0.5  # warm\n\n[aliases]  # my names\nold = \"gpt-4o\"\n"
    path.write_text(original)
    assert cli("alias", "set", "tiny", "gemma-3-270m").exit_code == 0
    assert path.read_text() == original + 'tiny = {model = "google/gemma-3-270m"}\n'
    assert cli("alias", "rm", "tiny").exit_code == 0
    assert path.read_text() == original


def test_lookups_follow_an_alias(cli):
    assert cli("alias", "set", "tiny", "gemma-3-270m").exit_code == 0
    shown = json.loads(cli("show", "tiny", "--json").stdout)
    assert shown["id"] == "google/gemma-3-270m"
    from modelctl.chat.opening import resolve_model

    assert resolve_model("tiny", check=False).model_id == "google/gemma-3-270m"


def test_an_alias_shadows_a_registry_name_only_with_force(cli):
    one_error_line(cli("alias", "set", "gpt-4o", "gemma-3-270m"), 2, "already a name of the registry model 'gpt-4o'",
                   "--force")
    one_error_line(cli("alias", "set", "4o", "gemma-3-270m"), 2, "registry model 'gpt-4o'")  # a registry alias
    assert cli("alias", "set", "gpt-4o", "gemma-3-270m", "--force").exit_code == 0
    assert json.loads(cli("show", "gpt-4o", "--json").stdout)["id"] == "google/gemma-3-270m"


@pytest.mark.parametrize("args, code, words", [
    (["fast", "no-such-model"], 4, ["unknown model 'no-such-model'"]),
    (["bad name", "gemma-3-270m"], 2, ["'bad name' is not an alias name"]),
    (["fast", "gemma-3-270m", "-o", "temperature"], 2, ["expected KEY=VALUE"]),
    (["fast", "gemma-3-270m", "-o", "temperature=warm"], 2, ["temperature must be a number"]),
    (["fast", "gemma-3-270m", "-o", "max_tokens=0"], 2, ["at least 1"]),
    (["fast", "gemma-3-270m", "-o", "min_p=inf"], 2, ["finite"]),
    (["fast", "./missing.gguf"], 4, ["does not exist"]),
])
def test_bad_aliases_are_refused(cli, modelctl_home, args, code, words):
    one_error_line(cli("alias", "set", *args), code, *words)
    assert not (modelctl_home / "config" / "config.toml").exists()


def test_an_alias_of_an_alias_is_refused(cli):
    assert cli("alias", "set", "tiny", "gemma-3-270m").exit_code == 0
    one_error_line(cli("alias", "set", "smaller", "tiny"), 2, "'tiny' is itself an alias")


def test_a_malformed_aliases_table_is_one_error(cli, modelctl_home):
    (modelctl_home / "config").mkdir()
    (modelctl_home / "config" / "config.toml").write_text("[aliases]\nfast = 3\n")
    one_error_line(cli("show", "fast"), 2, "aliases.fast must be a table with a model")


@pytest.mark.parametrize("args", [["show", "mine"], ["chat", "-m", "mine", "hi"], ["embed", "-m", "mine", "hi"],
                                  ["tokens", "-m", "mine", "hi"], ["rm", "mine"], ["pull", "mine"]])
def test_a_hand_written_alias_of_an_unknown_model_says_which_alias(cli, modelctl_home, args):
    (modelctl_home / "config").mkdir()
    (modelctl_home / "config" / "config.toml").write_text('[aliases]\nmine = "gemma-3-270m-typo"\n')
    one_error_line(cli(*args), 4, "alias 'mine' names unknown model 'gemma-3-270m-typo'", "did you mean")


def test_chat_through_an_alias_with_the_real_model(model_path, run_modelctl):
    """The alias's options are defaults (greedy, 3 tokens); a flag overrides one of them."""
    assert run_modelctl("alias", "set", "tiny", str(model_path), "-o", "temperature=0", "-o", "max_tokens=3").returncode == 0
    first = run_modelctl("chat", "-m", "tiny", "--json", "The capital of France is")
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["usage"]["completion_tokens"] == 3 and answer["finish_reason"] == "length"
    longer = run_modelctl("chat", "-m", "tiny", "-n", "5", "--json", "The capital of France is")
    again = json.loads(longer.stdout)
    assert again["usage"]["completion_tokens"] == 5
    assert again["text"].startswith(answer["text"])  # greedy: the same first three tokens


def test_a_served_model_takes_its_endpoint_defaults_and_alias_from_the_config(server, cli, tmp_path):
    """[api_base] replaces the registry's endpoint, [models."ID"] and the alias's options reach
    the request, and flags still win."""
    from providers import openai_wire
    from registries import model, write_registry

    registry = write_registry(tmp_path / "served.toml", model(
        "t/served", {"id": "srv", "kind": "openai-compatible", "model": "served-name",
                     "api_base": "https://served.example.com/v1"}, tasks=["chat"]))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hi"]))

    def run(*args: str):
        r = cli("--registry", str(registry), *args)
        assert r.exit_code == 0, r.output
        return r

    run("config", "set", "api_base.openai-compatible", f"{server.url}/v1")
    run("config", "set", "models.t/served.top_p", "0.4")
    run("alias", "set", "srv-warm", "t/served", "-o", "temperature=0.3", "-o", "presence_penalty=0.5")
    run("chat", "-m", "srv-warm", "Hello", "--api-key", "sk-test-served-0123456789abcdef")
    run("chat", "-m", "srv-warm", "Hello", "--api-key", "sk-test-served-0123456789abcdef", "--temperature", "0.9")
    first, second = (call.body for call in server.calls("/v1/chat/completions"))
    assert first["model"] == "served-name"
    assert (first["temperature"], first["top_p"], first["presence_penalty"]) == (0.3, 0.4, 0.5)
    assert (second["temperature"], second["top_p"]) == (0.9, 0.4)


def test_prompt_renders_with_the_template_an_alias_names(cli):
    assert cli("alias", "set", "tiny-zephyr", "gemma-3-270m", "-o", "template=zephyr").exit_code == 0
    r = cli("prompt", "-m", "tiny-zephyr", "--json", input='[{"role": "user", "content": "Hi"}]')
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["template"] == "zephyr"
