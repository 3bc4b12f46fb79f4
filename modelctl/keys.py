"""API keys: where each provider's key comes from, the keys file, and redaction.

A key is looked up in this order: an explicit value (`--api-key`), then the environment (the
deployment's `key_env`, or the provider's usual variables), then the keys file
(`keys.toml` in the config directory, readable only by its owner). A missing key is an
`AuthError` that names the variable to set.

Every key this module hands out is remembered for `redact()` (modelctl.redaction, which also
reads the keys file and the providers' variables itself), the one redaction everything written
or printed passes through, so a key never reaches the terminal, a log or a history.
Standard library only: importing this costs nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from modelctl.config import locked_update
from modelctl.errors import AuthError, UsageError
from modelctl.files import write_user_file
from modelctl.keyfile import PROVIDERS, keys_path
from modelctl.keyfile import read_keys as _read_stored
from modelctl.redaction import MIN_KEY, remember_secret

# Other names people type for a provider.
ALIASES = {
    "azure": "azure-openai",
    "foundry": "azure-ai",
    "azure-foundry": "azure-ai",
    "hf": "hf-inference",
    "huggingface": "hf-inference",
    "hugging-face": "hf-inference",
    "google": "gemini",
    "claude": "anthropic",
    "compatible": "openai-compatible",
}

# A custom `key_env` may also be stored under its own name (`modelctl keys set TOGETHER_API_KEY`).
_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Shortest key `keys set` stores: no shorter than what redact() hides, so every stored key is.
_MIN_KEY = MIN_KEY

# --- names ---------------------------------------------------------------------------------------


def canonical(name: str) -> str:
    """The keys-file name for a provider name, alias or environment-variable name."""
    key = name.strip()
    low = key.lower()
    low = ALIASES.get(low, low)
    if low in PROVIDERS:
        return low
    if _VARIABLE.match(key):
        for p in PROVIDERS.values():
            if key in p.env:
                return p.name
        return key
    known = ", ".join(PROVIDERS)
    raise UsageError(
        f"unknown provider '{name}'",
        hint=f"one of: {known}; or the name of an environment variable such as MY_API_KEY",
    )


def label(name: str) -> str:
    p = PROVIDERS.get(name)
    return p.label if p else name


def variables(name: str) -> tuple[str, ...]:
    """Environment variables holding the key stored under `name`."""
    p = PROVIDERS.get(name)
    if p is not None:
        return p.env
    return (name,) if _VARIABLE.match(name) else ()


def read_keys(*, quiet: bool = False) -> dict[str, str]:
    """The stored keys ({} when there is no keys file), each remembered for `redact()`; `quiet`:
    without the warning about a file others can read."""
    keys = _read_stored(quiet=quiet)
    for value in keys.values():
        remember_secret(value)
    return keys


def _write_keys(keys: Mapping[str, str]) -> Path:
    """Replace the keys file; the caller holds `locked_update(keys_path())` since it read it."""

    lines = [
        "# modelctl API keys. Readable only by you; change with `modelctl keys set|rm PROVIDER`.",
        "[keys]",
    ]
    for name in sorted(keys):
        # A JSON string of printable ASCII is a valid TOML basic string.
        lines.append(f"{json.dumps(name)} = {json.dumps(keys[name])}")
    path = keys_path()
    write_user_file(path, ("\n".join(lines) + "\n").encode("ascii"), "keys file", mode=0o600)
    return path


def check_key_text(value: str) -> str:
    """A key as typed or pasted, stripped; printable ASCII without spaces, at least _MIN_KEY
    characters, or it is refused."""
    value = value.strip()
    if not value:
        raise UsageError("the key is empty")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise UsageError("a key is printable ASCII without spaces; the value given is not")
    if len(value) < _MIN_KEY:
        raise UsageError(f"that is too short to be an API key ({len(value)} characters)",
                         hint=f"API keys are at least {_MIN_KEY} characters; paste the whole key")
    return value


def store_key(name: str, value: str) -> Path:
    """Save a key for `name` (a provider or variable name) in the keys file."""

    name = canonical(name)
    value = check_key_text(value)
    remember_secret(value)
    with locked_update(keys_path()):  # another `keys set` at once must not lose this key or its own
        keys = read_keys()
        keys[name] = value
        return _write_keys(keys)


def delete_key(name: str) -> bool:
    """Remove the stored key for `name`; False when there was none."""

    name = canonical(name)
    with locked_update(keys_path()):
        keys = read_keys()
        if name not in keys:
            return False
        del keys[name]
        _write_keys(keys)
    return True


# --- lookup --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """Where a key was found. `value` is never printed; `source` is safe to show."""

    value: str | None
    source: str | None  # "--api-key", "env OPENAI_API_KEY", "keys file"; None when not set

    def __repr__(self) -> str:  # keep the value out of tracebacks and debug dumps
        return f"KeyInfo(source={self.source!r})"


def find_key(
    name: str,
    *,
    key_env: str | None = None,
    explicit: str | None = None,
    env: Mapping[str, str] | None = None,
) -> KeyInfo:
    """Look the key for provider `name` up: explicit value, environment, keys file.

    A `key_env` other than the provider's own variables replaces them: a deployment that names
    its variable reads that one, and the keys file under that name or the provider's.
    """
    env = os.environ if env is None else env
    if explicit:
        remember_secret(explicit)
        return KeyInfo(explicit, "--api-key")
    name = canonical(name)
    own = variables(name)
    wanted = (key_env,) if key_env and key_env not in own else own
    for var in wanted:
        value = env.get(var, "").strip()
        if value:
            remember_secret(value)
            return KeyInfo(value, f"env {var}")
    stored = read_keys()
    for entry in ((key_env,) if key_env and key_env not in own else ()) + (name,):
        if stored.get(entry):
            return KeyInfo(stored[entry], "keys file")
    return KeyInfo(None, None)


def require_key(name: str, *, key_env: str | None = None, explicit: str | None = None) -> KeyInfo:
    """`find_key`, or an AuthError saying which variable to set."""
    info = find_key(name, key_env=key_env, explicit=explicit)
    if info.value:
        return info
    name = canonical(name)
    own = variables(name)
    var = key_env if key_env and key_env not in own else (own[0] if own else key_env)
    keyname = key_env if key_env and key_env not in own else name
    setting = f"set {var}, " if var else ""
    raise AuthError(
        f"no API key for {label(name)}",
        hint=f"{setting}run `modelctl keys set {keyname}`, or pass --api-key",
    )


def key_status() -> list[dict[str, object]]:
    """For `keys list`: every provider (and stored custom name), whether its key is set and
    where it comes from. Never the key."""
    stored = read_keys()
    names = [n for n in PROVIDERS if n != "openai-compatible"] + sorted(
        n for n in stored if n not in PROVIDERS
    )
    if "openai-compatible" in stored:
        names.append("openai-compatible")
    rows = []
    for name in names:
        info = find_key(name)
        also = info.source is not None and info.source != "keys file" and name in stored
        rows.append(
            {
                "provider": name,
                "label": label(name),
                "set": info.value is not None,
                "source": info.source,
                "also_in_keys_file": also,
                "variables": list(variables(name)),
            }
        )
    return rows
