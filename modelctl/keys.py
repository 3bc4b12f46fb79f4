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

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from modelctl.errors import AuthError, ModelctlError, NotFoundError, UsageError

# Redaction lives in modelctl.redaction; many modules import these names from here.
from modelctl.redaction import MIN_KEY, REDACTED, known_secrets, looks_like_secret, redact, remember_secret  # noqa: F401


@dataclass(frozen=True)
class Provider:
    """A key-holding provider: its name in the keys file, its label, and the environment
    variables that hold its key, preferred first."""

    name: str
    label: str
    env: tuple[str, ...]


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "OpenAI", ("OPENAI_API_KEY",)),
        Provider("azure-openai", "Azure OpenAI", ("AZURE_OPENAI_API_KEY",)),
        Provider("azure-ai", "Azure AI model catalog", ("AZURE_AI_API_KEY", "AZURE_INFERENCE_CREDENTIAL")),
        Provider("hf-inference", "Hugging Face", ("HF_TOKEN", "HUGGINGFACE_API_KEY")),
        Provider("mistral", "Mistral", ("MISTRAL_API_KEY",)),
        Provider("gemini", "Google Gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
        Provider("anthropic", "Anthropic", ("ANTHROPIC_API_KEY",)),
        Provider("openai-compatible", "OpenAI-compatible server", ()),
    )
}

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

_warned_mode = False


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


# --- the keys file -------------------------------------------------------------------------------


def keys_path() -> Path:
    from modelctl.config import get_paths

    return get_paths().keys_file


def read_keys(*, quiet: bool = False) -> dict[str, str]:
    """The stored keys ({} when there is no keys file); `quiet`: without the warning about a
    file others can read (for redaction, which reads it on behalf of any command)."""
    global _warned_mode
    path = keys_path()
    from modelctl.files import check_regular_file

    try:
        mode = check_regular_file(path, "keys file", error=ModelctlError).st_mode
    except NotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not _warned_mode and not quiet:
        _warned_mode = True
        sys.stderr.write(
            f"modelctl: warning: {path} can be read by other users; run: chmod 600 {path}\n"
        )
    from modelctl.config import MAX_TOML_BYTES
    from modelctl.files import read_user_text

    text = read_user_text(path, "keys file", limit=MAX_TOML_BYTES, error=ModelctlError)
    table = _as_written(text)
    if table is None:
        from modelctl.config import parse_toml

        try:
            table = parse_toml(text, str(path)).get("keys", {})
        except ModelctlError:
            # Never echo the file's content: the parser's message may quote a key.
            raise ModelctlError(f"{path}: not a valid keys file", hint="remove it and set the keys again") from None
    if not isinstance(table, dict):
        raise ModelctlError(f"{path}: [keys] must be a table")
    keys = {str(k): v for k, v in table.items() if isinstance(v, str) and v}
    for value in keys.values():
        remember_secret(value)
    return keys


# A line of the keys file as `_write_keys` writes it: two JSON strings, which TOML reads alike.
_KEY_LINE = re.compile(r'("(?:[^"\\]|\\.)*") = ("(?:[^"\\]|\\.)*")')


def _as_written(text: str) -> dict[str, object] | None:
    """The [keys] table of a keys file as modelctl writes it, read without a TOML parser (every
    command that redacts reads it); None for any other file (edited by hand: TOML reads it)."""
    import json

    table: dict[str, object] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line == "[keys]":
            continue
        m = _KEY_LINE.fullmatch(line)
        try:
            name, value = (json.loads(m[1]), json.loads(m[2])) if m else (None, None)
        except ValueError:  # an escape JSON has not (TOML's \U0001F600)
            return None
        if name is None or name in table:
            return None
        table[name] = value
    return table


def _write_keys(keys: Mapping[str, str]) -> Path:
    """Replace the keys file; the caller holds `locked_update(keys_path())` since it read it."""
    import json

    from modelctl.files import write_user_file

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
    from modelctl.config import locked_update

    name = canonical(name)
    value = check_key_text(value)
    remember_secret(value)
    with locked_update(keys_path()):  # another `keys set` at once must not lose this key or its own
        keys = read_keys()
        keys[name] = value
        return _write_keys(keys)


def delete_key(name: str) -> bool:
    """Remove the stored key for `name`; False when there was none."""
    from modelctl.config import locked_update

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
