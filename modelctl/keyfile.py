"""The providers that hold keys, and the keys file (`keys.toml` in the config directory) as it
is read. Below both `keys` (which looks keys up, stores them and remembers them for redaction)
and `redaction` (which hides every stored key, whichever command runs). Standard library only.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from modelctl.config import MAX_TOML_BYTES, get_paths, parse_toml
from modelctl.errors import ModelctlError, NotFoundError
from modelctl.files import check_regular_file, read_user_text


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

_warned_mode = False


def keys_path() -> Path:
    return get_paths().keys_file


def read_keys(*, quiet: bool = False) -> dict[str, str]:
    """The stored keys ({} when there is no keys file); `quiet`: without the warning about a
    file others can read (for redaction, which reads it on behalf of any command)."""
    global _warned_mode
    path = keys_path()

    try:
        mode = check_regular_file(path, "keys file", error=ModelctlError).st_mode
    except NotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not _warned_mode and not quiet:
        _warned_mode = True
        sys.stderr.write(
            f"modelctl: warning: {path} can be read by other users; run: chmod 600 {path}\n"
        )

    text = read_user_text(path, "keys file", limit=MAX_TOML_BYTES, error=ModelctlError)
    table = _as_written(text)
    if table is None:
        try:
            table = parse_toml(text, str(path)).get("keys", {})
        except ModelctlError:
            # Never echo the file's content: the parser's message may quote a key.
            raise ModelctlError(f"{path}: not a valid keys file", hint="remove it and set the keys again") from None
    if not isinstance(table, dict):
        raise ModelctlError(f"{path}: [keys] must be a table")
    return {str(k): v for k, v in table.items() if isinstance(v, str) and v}


# A line of the keys file as `_write_keys` writes it: two JSON strings, which TOML reads alike.
_KEY_LINE = re.compile(r'("(?:[^"\\]|\\.)*") = ("(?:[^"\\]|\\.)*")')


def _as_written(text: str) -> dict[str, object] | None:
    """The [keys] table of a keys file as modelctl writes it, read without a TOML parser (every
    command that redacts reads it); None for any other file (edited by hand: TOML reads it)."""

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
