"""`modelctl config`: one key at a time, the rest of config.toml byte for byte as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ORIGINAL = """\
# My modelctl settings.
[chat]   # used by every chat
temperature   = 0.5    # a little warm
system = 'Answer briefly.'

# Models I use often.
[models."google/gemma-3-270m"]
top_k=7

[history]
log = false  # not on this laptop
"""


@pytest.fixture
def config_file(modelctl_home):
    path = modelctl_home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ORIGINAL)
    return path


def one_error_line(result, code: int, *words: str) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_set_changes_only_that_value(cli, config_file):
    r = cli("config", "set", "chat.temperature", "0.9")
    assert r.exit_code == 0, r.stderr
    assert config_file.read_text() == ORIGINAL.replace("temperature   = 0.5 ", "temperature   = 0.9 ")


def test_a_new_key_goes_after_the_last_key_of_its_table(cli, config_file):
    assert cli("config", "set", "chat.max_tokens", "64").exit_code == 0
    assert config_file.read_text() == ORIGINAL.replace(
        "system = 'Answer briefly.'\n", "system = 'Answer briefly.'\nmax_tokens = 64\n")


def test_a_new_table_is_added_at_the_end(cli, config_file):
    assert cli("config", "set", "api_base.ollama", "http://127.0.0.1:11500").exit_code == 0
    assert config_file.read_text() == ORIGINAL + '\n[api_base]\nollama = "http://127.0.0.1:11500"\n'


def test_unset_removes_only_that_line(cli, config_file):
    assert cli("config", "unset", "history.log").exit_code == 0
    assert config_file.read_text() == ORIGINAL.replace("log = false  # not on this laptop\n", "")
    r = cli("config", "unset", "history.log")
    one_error_line(r, 4, "history.log is not set")


def test_get_list_and_path(cli, config_file):
    assert cli("config", "get", "chat.temperature").stdout == "0.5\n"
    assert cli("config", "get", "chat.system").stdout == "Answer briefly.\n"
    assert cli("config", "get", "history.log", "--json").stdout.strip() == "false"
    # A model's table by any of its names, printed as keys.
    assert cli("config", "get", "models.gemma-3-270m").stdout == 'models."google/gemma-3-270m".top_k = 7\n'
    assert cli("config", "list").stdout.splitlines() == [
        'chat.temperature = 0.5', 'chat.system = "Answer briefly."', 'models."google/gemma-3-270m".top_k = 7',
        "history.log = false"]
    import json

    data = json.loads(cli("config", "list", "--json").stdout)
    assert data["models"]["google/gemma-3-270m"] == {"top_k": 7}
    assert cli("config", "path").stdout.strip() == str(config_file)
    one_error_line(cli("config", "get", "chat.top_p"), 4, "chat.top_p is not set")


def test_values_are_toml_with_a_fallback_to_text(cli, config_file):
    from modelctl.config import user_config

    for key, text in [("chat.model", "gemma-3-270m"), ("chat.stop", '["END", "###"]'), ("chat.seed", "42"),
                      ("history.retention_days", "30"), ("chat.options.flash_attn", "true"),
                      ("chat.template", "42"), ("chat.gpu_layers", "-1")]:
        assert cli("config", "set", key, text).exit_code == 0
    data = user_config()
    assert data["chat"]["model"] == "gemma-3-270m" and data["chat"]["stop"] == ["END", "###"]
    assert data["chat"]["seed"] == 42 and data["history"]["retention_days"] == 30
    assert data["chat"]["options"] == {"flash_attn": True}
    assert data["chat"]["template"] == "42"  # a string key keeps the text as typed
    assert data["chat"]["gpu_layers"] == -1  # a negative number is a value, not an option


@pytest.mark.parametrize("args, code, words", [
    (["chat.temperature", "abc"], 2, ["chat.temperature must be a number", "'abc'"]),
    (["chat.max_tokens", "0"], 2, ["chat.max_tokens must be at least 1"]),
    (["chat.temperature", "nan"], 2, ["finite"]),
    (["history.log", "yes"], 2, ["history.log must be true or false"]),
    (["history.retention_days", "-1"], 2, ["at least 0"]),
    (["chat.temprature", "0.2"], 2, ["unknown config key 'chat.temprature'", "did you mean chat.temperature"]),
    (["colour", "red"], 2, ["unknown config key 'colour'"]),
    (["models.gemma-3-270m.temprature", "1"], 2, ["did you mean models.MODEL.temperature"]),
    (["models.no-such-model.temperature", "1"], 4, ["unknown model 'no-such-model'"]),
    (["api_base.ollama", "http://me:hunter2pass@127.0.0.1:1"], 2, ["user name or password"]),
    (["api_base.ollama", "not a url"], 2, ["api_base.ollama"]),
    (["aliases.fast.model", "x"], 2, ["modelctl alias set"]),
    (["chat..x", "1"], 2, ["is not a key"]),
    (["chat.model", ""], 2, ["chat.model must name a model", "config unset chat.model"]),
    (["models.gemma-3-270m.template", " "], 2, ["must name a template"]),
])
def test_bad_keys_and_values_are_refused_before_writing(cli, config_file, args, code, words):
    line = one_error_line(cli("config", "set", *args), code, *words)
    assert "hunter2pass" not in line
    assert config_file.read_text() == ORIGINAL


def test_a_known_key_is_refused(cli, config_file):
    from modelctl import keys

    keys.store_key("openai", "sk-test-abcdefghijklmnop")
    one_error_line(cli("config", "set", "chat.system", "my key is sk-test-abcdefghijklmnop"), 2, "API key")
    assert config_file.read_text() == ORIGINAL


def test_a_broken_file_is_reported_and_kept(cli, config_file):
    config_file.write_text("[chat\ntemperature = 1\n")
    one_error_line(cli("config", "set", "chat.temperature", "0.2"), 1, "invalid TOML")
    assert config_file.read_text() == "[chat\ntemperature = 1\n"


def test_config_set_creates_the_file(cli, modelctl_home):
    assert cli("config", "set", "chat.temperature", "0.25").exit_code == 0
    assert (modelctl_home / "config" / "config.toml").read_text() == "[chat]\ntemperature = 0.25\n"


def test_concurrent_sets_keep_every_key(modelctl_home, config_file):
    """Processes that set different keys at once all keep their key (the lock spans the read and
    the rename)."""
    keys = [("chat.seed", "1"), ("chat.top_k", "5"), ("chat.max_tokens", "9"), ("history.retention_days", "3"),
            ("chat.top_p", "0.5"), ("chat.ctx", "512")]
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home))
    procs = [subprocess.Popen([sys.executable, "-m", "modelctl", "config", "set", k, v], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k, v in keys]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    from modelctl.config import user_config

    data = user_config()
    assert data["chat"] | {} == {"temperature": 0.5, "system": "Answer briefly.", "seed": 1, "top_k": 5,
                                 "max_tokens": 9, "top_p": 0.5, "ctx": 512}
    assert data["history"] == {"log": False, "retention_days": 3}
    assert config_file.read_text().startswith("# My modelctl settings.\n[chat]   # used by every chat\n")


def test_per_model_defaults_layer_between_chat_and_flags(cli, config_file):
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.opening import layered_params
    from modelctl.registry import load_registry

    assert cli("config", "set", "models.gemma-3-270m.temperature", "0.1").exit_code == 0
    entry = load_registry().resolve("gemma-3-270m")
    params = layered_params(entry, GenerationParams())
    assert params.temperature == 0.1 and params.top_k == 7  # [models."ID"] over [chat] 0.5
    assert layered_params(entry, GenerationParams(temperature=0.8)).temperature == 0.8
    other = load_registry().resolve("gpt-4o")
    assert layered_params(other, GenerationParams(), local=False).temperature == 0.5


def test_api_base_is_read_per_kind(cli, config_file):
    from modelctl.config import api_base_for

    assert cli("config", "set", "api_base.ollama", "http://127.0.0.1:11500").exit_code == 0
    assert api_base_for("ollama") == "http://127.0.0.1:11500"
    assert api_base_for("openai") is None


def test_history_settings_are_read_checked(cli, config_file):
    from modelctl.chat.settings import history_config
    from modelctl.config import _load_user_config
    from modelctl.errors import UsageError

    assert cli("config", "set", "history.retention_days", "14").exit_code == 0
    assert history_config() == {"log": False, "retention_days": 14}
    config_file.write_text('[history]\nlog = "yes"\n')
    _load_user_config.cache_clear()
    with pytest.raises(UsageError, match="history.log must be true or false"):
        history_config()


@pytest.mark.parametrize("key, value", [("chat.max_tokens", "99999999999999"), ("chat.seed", "-4294967296"),
                                        ("models.gemma-3-270m.ctx", "9223372036854775807")])
def test_whole_numbers_an_option_cannot_hold_are_refused(cli, modelctl_home, key, value):
    """TOML integers are 64-bit; llama.cpp's and the APIs' are 32: `config set` and a hand-edited
    file both refuse the difference, naming the key."""
    one_error_line(cli("config", "set", key, value), 2, f"{key.rsplit('.', 1)[-1]} {value}", "expected a whole number")
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[chat]\nmax_tokens = 99999999999999\n")
    result = cli("chat", "-m", "gemma-3-270m", "Hi")
    errors = [line for line in result.stderr.splitlines() if line.startswith("modelctl: error:")]
    assert result.exit_code == 2 and len(errors) == 1
    assert f"{config}: chat.max_tokens 99999999999999: expected a whole number" in errors[0]
