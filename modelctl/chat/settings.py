"""What config.toml may hold, and the checks every reader and `modelctl config set` share.

    [chat]                      defaults for every chat: model, system, template, sampling, ctx, cache, …
    [models."gemma-3-270m"]     the same defaults (but `model`) for one registry model
    [api_base]                  an endpoint per deployment kind: ollama = "http://gpu-box:11434"
    [history]                   log = true|false, retention_days = N (0: keep everything)
    [aliases]                   the user's model names (`modelctl alias`)
    [mcp.servers.NAME]          an MCP server whose tools a chat may use (checked in tools/mcp_config.py)

Parameters layer: registry defaults < [chat] < [models."ID"] < an alias's options < flags.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import urlsplit

from modelctl.backends.base import NUMBER_PARAMS
from modelctl.chat.session import check_option
from modelctl.config import get_paths, user_config
from modelctl.errors import UsageError
from modelctl.numbers import number_problem
from modelctl.redaction import refuse_credentials
from modelctl.tools import mcp_config
from modelctl.transport.urls import check_url

# Keys of the [chat] table, and their types.
CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str, "template": str, "system": str,
    **{name: (int, float) if kind is float else kind for name, kind in NUMBER_PARAMS.items()}, "stop": list,
    "ctx": int, "gpu_layers": int, "threads": int, "options": dict, "cache": bool,
}
# The least value of the integers, as the flags of the same names check it.
CONFIG_MINIMUMS = {"ctx": 16, "gpu_layers": -1, "threads": 1, "max_tokens": 1, "top_k": 0, "retention_days": 0}
# Keys whose string names something (an empty one would name nothing; unset the key instead).
NAMED = ("model", "template")
# Keys of a [models."ID"] table: the [chat] defaults but the model itself.
MODEL_KEYS = {k: v for k, v in CONFIG_KEYS.items() if k != "model"}
HISTORY_KEYS: dict[str, type | tuple[type, ...]] = {"log": bool, "retention_days": int}
# What [tools] approve (the built-ins and --functions files) and [tools.NAME] approve take.
APPROVALS = ("allow", "ask", "deny")
# Keys of the [serve] table (`modelctl serve`, and whether the CLI uses a running server).
SERVE_KEYS: dict[str, type | tuple[type, ...]] = {
    "host": str, "port": int, "keep_alive": str, "max_models": int, "max_memory": str, "queue": int,
    "allow_paths": bool, "keys_file": str, "cors": list, "use": bool, "fallback": dict, "kv_cache": str,
}
# Deployment kinds whose endpoint [api_base] may set (llama.cpp runs in-process).
API_BASE_KINDS = ("ollama", "openai", "azure-openai", "openai-compatible", "hf-inference", "mistral", "gemini",
                  "anthropic")
# Keys an alias's options may set as defaults; any other key is a backend option (`-o KEY=VALUE`).
ALIAS_DEFAULT_KEYS = {k: v for k, v in MODEL_KEYS.items() if k != "options"}

_TYPE_WORDS = {str: "a string", bool: "true or false", int: "an integer", list: "a list of strings",
               dict: "a table", (int, float): "a number"}


def known_keys() -> list[str]:
    """Every key `config set` knows, with MODEL, KIND and KEY for the parts that vary."""
    return ([f"chat.{k}" for k in CONFIG_KEYS] + ["chat.options.KEY"]
            + [f"models.MODEL.{k}" for k in MODEL_KEYS] + ["models.MODEL.options.KEY"]
            + [f"api_base.{k}" for k in API_BASE_KINDS] + [f"history.{k}" for k in HISTORY_KEYS]
            + [f"serve.{k}" for k in SERVE_KEYS if k != "fallback"] + ["tools.approve", "tools.TOOL.approve"])


def _unknown(key: str) -> UsageError:
    close = difflib.get_close_matches(key, known_keys(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "known: " + ", ".join(known_keys())
    return UsageError(f"unknown config key '{key}'", hint=hint)


def check_value(key: str, value: Any, expected: type | tuple[type, ...], *, where: str = "") -> None:
    """`value` of `key` has the `expected` type and, for a bounded integer, is in range."""

    prefix = f"{where}: " if where else ""
    if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
        raise UsageError(f"{prefix}{key} must be {_TYPE_WORDS.get(expected, expected)}, "
                         f"not {type(value).__name__} {value!r}")
    name = key.rsplit(".", 1)[-1]
    if name in NAMED and isinstance(value, str) and not value.strip():
        raise UsageError(f"{prefix}{key} must name a {name}, not be empty", hint=f"modelctl config unset {key}")
    if name in CONFIG_MINIMUMS and isinstance(value, int) and value < CONFIG_MINIMUMS[name]:
        raise UsageError(f"{prefix}{key} must be at least {CONFIG_MINIMUMS[name]}, not {value}")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise UsageError(f"{prefix}{key} must be a list of strings")
    if isinstance(value, float) or name in NUMBER_PARAMS:
        check_option(key, value)  # finite: TOML has inf and nan
    problem = number_problem(value)  # a whole number an option can hold (TOML's are 64-bit)
    if problem:
        raise UsageError(f"{prefix}{key} {value}: {problem}")
    if isinstance(value, dict):
        for option, item in value.items():
            check_option(f"{key}.{option}", item)


def check_table(table: Any, prefix: str, keys: dict[str, type | tuple[type, ...]], where: str) -> dict[str, Any]:
    """A table of config.toml whose keys are `keys`, type-checked; UsageError names the file."""
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [{prefix}] must be a table")
    for key, value in table.items():
        expected = keys.get(key)
        if expected is None:
            raise UsageError(f"{where}: unknown key {prefix}.{key}", hint="known: " + ", ".join(keys))
        check_value(f"{prefix}.{key}", value, expected, where=where)
    return table


def _config() -> tuple[dict[str, Any], str]:
    return user_config(), str(get_paths().config_file)


def chat_config() -> dict[str, Any]:
    """The [chat] table, type-checked."""
    data, where = _config()
    return check_table(data.get("chat", {}), "chat", CONFIG_KEYS, where)


def model_config(model_id: str | None) -> dict[str, Any]:
    """The [models."ID"] table of one registry model (the id as the registry spells it), checked."""
    if not model_id:
        return {}
    data, where = _config()
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise UsageError(f"{where}: [models] must hold one table per model id")
    return check_table(models.get(model_id, {}), f'models."{model_id}"', MODEL_KEYS, where)


def history_config() -> dict[str, Any]:
    """The [history] table, type-checked: `log` and `retention_days`."""
    data, where = _config()
    return check_table(data.get("history", {}), "history", HISTORY_KEYS, where)


def split_alias_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An alias's options as (defaults such as temperature or system, backend options)."""
    defaults = {k: v for k, v in options.items() if k in ALIAS_DEFAULT_KEYS}
    return defaults, {k: v for k, v in options.items() if k not in ALIAS_DEFAULT_KEYS}


def check_alias_option(key: str, value: Any) -> Any:
    """One `--option KEY=VALUE` of `alias set` (the value parsed as TOML): a default is
    type-checked as in [chat], anything else as a backend option."""

    expected = ALIAS_DEFAULT_KEYS.get(key)
    if expected is None:
        check_option(key, value)
        return value
    return _coerce(key, value, expected)


def _coerce(key: str, value: Any, expected: type | tuple[type, ...], raw: str | None = None) -> Any:
    """`value` as `expected`: a string key keeps the text as typed (`42` is the string "42"), a
    list key takes one string as a list of it."""
    if expected is str and not isinstance(value, str) and raw is not None:
        value = raw
    if expected is list and isinstance(value, str):
        value = [value]
    check_value(key, value, expected)
    return value


# What a known key takes: a type, or OPTION for a backend option (any value check_option allows).
OPTION = object()


def is_known_table(parts: list[str]) -> bool:
    """Whether `parts` names a table config.toml may hold ([chat], [models."ID"], [history], …)."""
    if parts[0] == "mcp":
        return len(parts) <= 2 and parts[1:] in ([], ["servers"]) or parts[1] == "servers" and mcp_config.is_table(parts[3:])
    return (len(parts) == 1 and parts[0] in ("chat", "models", "history", "api_base", "aliases", "serve")
            or len(parts) == 2 and parts[0] == "models"
            or len(parts) == 2 and parts[0] == "chat" and parts[1] == "options"
            or len(parts) == 3 and parts[0] == "models" and parts[2] == "options"
            or parts[0] == "tools" and len(parts) <= 2)


def setting_type(parts: list[str]) -> Any:
    """The type of the known key `parts` (OPTION for a backend option); an unknown key is a
    UsageError naming the closest known ones."""
    from modelctl.config_edit import join_key  # noqa: PLC0415 (modelctl.config_edit: not on the chat --api-base path)

    head, rest = parts[0], parts[1:]
    if head == "chat" and len(rest) == 2 and rest[0] == "options" \
            or head == "models" and len(rest) == 3 and rest[1] == "options":
        return OPTION
    tables: dict[str, dict[str, Any]] = {"chat": CONFIG_KEYS, "history": HISTORY_KEYS, "serve": SERVE_KEYS,
                                         "api_base": {k: str for k in API_BASE_KINDS}}
    if head in tables and len(rest) == 1 and rest[0] in tables[head]:
        return tables[head][rest[0]]
    if head == "models" and len(rest) == 2 and rest[1] in MODEL_KEYS:
        return MODEL_KEYS[rest[1]]
    if head == "aliases" and rest:
        return dict
    if head == "tools" and rest[-1:] == ["approve"] and len(rest) <= 2:  # [tools] approve, [tools.NAME] approve
        return str
    key = join_key(parts)
    if head == "mcp":
        return _mcp_setting_type(rest, key)
    if head == "models" and len(rest) > 2 and rest[-1] in MODEL_KEYS:
        raise UsageError(f"unknown config key '{key}'",
                         hint=f"quote a model id with dots: models.\"{'.'.join(rest[:-1])}\".{rest[-1]}")
    # A model id is no known key: the suggestions are for the key's shape.
    raise _unknown(join_key(["models", "MODEL", *rest[1:]]) if head == "models" and rest else key)


def check_setting(parts: list[str], raw: str, value: Any) -> Any:
    """The value `config set` stores at `parts` for the text `raw` (parsed as `value`), or a
    UsageError: an unknown key (with the closest known ones), or a value of the wrong type."""
    from modelctl.config_edit import join_key  # noqa: PLC0415 (modelctl.config_edit: not on the chat --api-base path)

    key = join_key(parts)
    expected = setting_type(parts)
    refuse_credentials(key, value)
    if parts[0] == "aliases":
        raise UsageError(f"{key}: aliases are set with `modelctl alias set NAME MODEL`")
    if expected is OPTION:
        check_option(key, value)
        return value
    value = _coerce(key, value, expected, raw)
    if parts[0] == "mcp":
        mcp_config.check_name(parts[2])
        mcp_config.check_key(parts[3:], value, join_key(parts[:3]))
    if parts[0] == "tools" and value not in APPROVALS:
        raise UsageError(f"{key} must be allow, ask or deny, not {value!r}")
    return _check_api_base(key, value) if parts[0] == "api_base" else value


def _mcp_setting_type(rest: list[str], key: str) -> Any:
    """The type of a key under [mcp]: mcp.servers.NAME.KEY, .env.VAR, .headers.NAME, .tools.TOOL.approve."""
    found = mcp_config.setting_type(rest[2:]) if len(rest) >= 3 and rest[0] == "servers" else None
    if found is None:
        raise UsageError(f"unknown config key '{key}'", hint="known: " + ", ".join(
            [f"mcp.servers.NAME.{k}" for k in mcp_config.SERVER_KEYS if k != "tools"]
            + ["mcp.servers.NAME.env.VAR", "mcp.servers.NAME.headers.HEADER", "mcp.servers.NAME.tools.TOOL.approve"]))
    return found


def _check_api_base(key: str, url: str) -> str:
    check_url(url, key)  # first: urlsplit raises on what it cannot take apart (`http://[::1`)
    parts = urlsplit(url)
    if parts.password or parts.username:
        raise UsageError(f"{key}: a URL with a user name or password is not stored in config.toml",
                         hint="set the key with `modelctl keys set` and give the URL without it")
    return url

