"""Where keys come from (flag, environment, keys file), the keys file itself (owner-only,
atomic, never echoed), and `modelctl keys set|list|rm`."""

from __future__ import annotations

import json
import os
import stat

import pytest

from modelctl import keys, redaction
from modelctl.errors import AuthError, ModelctlError, UsageError
from modelctl.keyfile import keys_path

SECRET = "sk-test-keys-0123456789"


@pytest.mark.parametrize("name, canonical", [
    ("openai", "openai"), ("OpenAI", "openai"), ("azure", "azure-openai"), ("hf", "hf-inference"),
    ("huggingface", "hf-inference"), ("google", "gemini"), ("GEMINI_API_KEY", "gemini"),
    ("HF_TOKEN", "hf-inference"), ("TOGETHER_API_KEY", "TOGETHER_API_KEY"),
])
def test_provider_names(name, canonical):
    assert keys.canonical(name) == canonical


def test_an_unknown_provider_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown provider 'openia'"):
        keys.canonical("openia")


def test_the_keys_file_is_owner_only_and_valid_toml(provider_env):
    path = keys.store_key("openai", f"  {SECRET}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from modelctl.config import load_toml

    assert load_toml(path) == {"keys": {"openai": SECRET}}
    assert [p.name for p in path.parent.iterdir()] == ["keys.toml"]  # no temporary file left behind
    keys.store_key("anthropic", "sk-ant-other")
    assert keys.read_keys() == {"openai": SECRET, "anthropic": "sk-ant-other"}
    assert keys.delete_key("openai") is True and keys.delete_key("openai") is False
    assert keys.read_keys() == {"anthropic": "sk-ant-other"}


def test_a_readable_keys_file_is_warned_about(provider_env, capsys, monkeypatch):
    from modelctl import keyfile

    monkeypatch.setattr(keyfile, "_warned_mode", False)
    path = keys.store_key("openai", SECRET)
    os.chmod(path, 0o644)
    assert keys.read_keys()["openai"] == SECRET
    assert f"chmod 600 {path}" in capsys.readouterr().err


def test_a_broken_keys_file_is_not_echoed(provider_env):
    path = keys_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[keys]\nopenai = "{SECRET}\n')
    with pytest.raises(ModelctlError) as info:
        keys.read_keys()
    assert SECRET not in str(info.value) and "not a valid keys file" in str(info.value)


@pytest.mark.parametrize("value", ["", "   ", "sk abc", "sk-\u00e9t\u00e9", "sk-\x07bell"])
def test_odd_key_text_is_refused(value, provider_env):
    with pytest.raises(UsageError):
        keys.store_key("openai", value)


@pytest.mark.parametrize("value", ["abc", "sk-1234", "  12345 "])
def test_a_key_too_short_to_be_redacted_is_refused(value, provider_env, cli):
    # redact() hides only strings of 6 characters or more: a shorter key echoed by a server
    # would be printed in clear, so `keys set` takes no key shorter than 8.
    with pytest.raises(UsageError, match="too short to be an API key"):
        keys.store_key("openai", value)
    result = cli("keys", "set", "openai", "--value", value)
    assert result.exit_code == 2 and "too short to be an API key" in result.output
    assert not keys_path().exists()
    keys.store_key("openai", "sk-12345")  # 8 characters: long enough
    assert keys.read_keys() == {"openai": "sk-12345"}


def test_lookup_order_and_sources(provider_env):
    assert keys.find_key("openai") == keys.KeyInfo(None, None)
    keys.store_key("openai", "sk-file-value-1")
    assert keys.find_key("openai").source == "keys file"
    provider_env.setenv("OPENAI_API_KEY", "sk-env-value-1")
    info = keys.find_key("openai")
    assert info.value == "sk-env-value-1" and info.source == "env OPENAI_API_KEY"
    assert keys.find_key("openai", explicit="sk-flag-value-1").source == "--api-key"
    assert "sk-env-value-1" not in repr(info)


def test_second_variable_of_a_provider(provider_env):
    provider_env.setenv("GOOGLE_API_KEY", "AIza-google-value")
    assert keys.find_key("gemini").source == "env GOOGLE_API_KEY"
    provider_env.setenv("GEMINI_API_KEY", "AIza-gemini-value")
    assert keys.find_key("gemini").source == "env GEMINI_API_KEY"


def test_a_custom_key_env_and_its_stored_key(provider_env):
    keys.store_key("TOGETHER_API_KEY", "tg-stored-value")
    info = keys.find_key("openai-compatible", key_env="TOGETHER_API_KEY")
    assert info.value == "tg-stored-value" and info.source == "keys file"
    provider_env.setenv("TOGETHER_API_KEY", "tg-env-value")
    assert keys.find_key("openai-compatible", key_env="TOGETHER_API_KEY").source == "env TOGETHER_API_KEY"


def test_a_missing_key_names_what_to_set(provider_env):
    with pytest.raises(AuthError) as info:
        keys.require_key("mistral")
    assert str(info.value) == ("no API key for Mistral (set MISTRAL_API_KEY, run `modelctl keys set mistral`, "
                               "or pass --api-key)")
    with pytest.raises(AuthError) as info:
        keys.require_key("openai", key_env="TEAM_KEY")
    assert "set TEAM_KEY" in info.value.hint and "modelctl keys set TEAM_KEY" in info.value.hint


def test_redact_hides_remembered_and_environment_keys(provider_env):
    redaction.remember_secret("sk-remembered-abcdef")
    provider_env.setenv("ANTHROPIC_API_KEY", "sk-ant-environment-1")
    text = "a sk-remembered-abcdef b sk-ant-environment-1 c"
    assert redaction.redact(text) == "a *** b *** c"
    redaction.remember_secret("abc")  # too short to hide without mangling ordinary text
    assert redaction.redact("abc") == "abc"


# --- the commands ---------------------------------------------------------------------------------


def test_keys_set_reads_stdin_and_list_shows_where_keys_come_from(cli, provider_env):
    result = cli("keys", "set", "openai", input=f"{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    provider_env.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-1")
    listing = cli("keys", "list")
    assert listing.exit_code == 0
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "set (keys file)" in lines["openai"]
    assert "set (env ANTHROPIC_API_KEY)" in lines["anthropic"]
    assert "not set (GEMINI_API_KEY or GOOGLE_API_KEY)" in lines["gemini"]
    assert SECRET not in listing.output and "sk-ant-from-env-1" not in listing.output
    rows = json.loads(cli("keys", "list", "--json").stdout)
    openai = next(r for r in rows if r["provider"] == "openai")
    assert openai == {"provider": "openai", "label": "OpenAI", "set": True, "source": "keys file",
                      "also_in_keys_file": False, "variables": ["OPENAI_API_KEY"]}


def test_keys_set_with_value_warns_when_the_environment_wins(cli, provider_env):
    provider_env.setenv("MISTRAL_API_KEY", "env-mistral-value")
    result = cli("keys", "set", "mistral", "--value", "file-mistral-value")
    assert result.exit_code == 0
    assert "MISTRAL_API_KEY is set in the environment" in result.output
    assert keys.read_keys() == {"mistral": "file-mistral-value"}
    assert "file-mistral-value" not in result.output and "env-mistral-value" not in result.output


def test_keys_rm_and_errors(cli, provider_env):
    cli("keys", "set", "hf", "--value", "hf_stored_value_123")
    assert cli("keys", "rm", "huggingface").exit_code == 0
    assert keys.read_keys() == {}
    missing = cli("keys", "rm", "openai")
    assert missing.exit_code == 4 and "no stored key for OpenAI" in missing.output
    assert cli("keys", "set", "nonsense", "--value", "x12345").exit_code == 2
    assert cli("keys", "set", "openai", input="\n").exit_code == 2
