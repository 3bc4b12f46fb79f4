"""`modelctl keys set|list|rm PROVIDER`: API keys in a file only its owner can read.

A key is read from a hidden prompt, or from stdin when it is not a terminal
(`pass show openai | modelctl keys set openai`), so it stays out of shell history; `--value`
exists for scripts that have no other way. No command ever prints a key.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional, cast

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.help import examples
from modelctl.errors import NotFoundError, UsageError
from modelctl.terminal_text import safe

keys_app = typer.Typer(
    help="Store, list and remove API keys (kept in keys.toml in the config directory, mode 0600).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The longest line read as a key from stdin; real keys are a few hundred characters at most.
_MAX_KEY_LINE = 16384

_PROVIDER_HELP = (
    "openai, azure-openai, hf-inference, mistral, gemini, anthropic or openai-compatible "
    "(also: azure, hf, huggingface, google), or a variable name such as TOGETHER_API_KEY."
)


def _env_overrides(name: str) -> list[str]:
    from modelctl import keys  # noqa: PLC0415 (modelctl.keys: not on the --help path)

    return [var for var in keys.variables(name) if os.environ.get(var, "").strip()]


@keys_app.command("set", epilog=examples(
    ('From a hidden prompt', 'modelctl keys set anthropic'),
    ('From stdin: a password manager, a file', 'pass show openai | modelctl keys set openai'),
    ("For an OpenAI-compatible host, under its variable's name", 'modelctl keys set TOGETHER_API_KEY'),
))
def set_key(
    provider: str = typer.Argument(..., help=_PROVIDER_HELP),
    value: Optional[str] = typer.Option(
        None, "--value", metavar="KEY",
        help="The key itself. Prefer the prompt or stdin: a command line can end up in shell history.",
    ),
) -> None:
    """Store the key for PROVIDER, read from a hidden prompt or from stdin."""
    from modelctl import keys  # noqa: PLC0415 (modelctl.keys: not on the --help path)

    name = keys.canonical(provider)
    if value is None and sys.stdin is None:  # started with stdin closed
        value = ""
    if value is None:
        if sys.stdin.isatty():
            import getpass  # noqa: PLC0415 (getpass: not on the --help path)

            try:
                value = getpass.getpass(f"API key for {keys.label(name)} (input hidden): ")
            except EOFError:
                value = ""
        else:
            value = sys.stdin.readline(_MAX_KEY_LINE)  # bounded: `< /dev/zero` has no line end
    if not value or not value.strip():
        raise UsageError("no key given", hint="type it at the prompt, pipe it on stdin, or pass --value")
    path = keys.store_key(name, value)
    sys.stderr.write(safe(f"modelctl: saved the {keys.label(name)} key in {path}") + "\n")
    for var in _env_overrides(name):
        output.warn(f"{var} is set in the environment and is used before the keys file")


@keys_app.command("list", epilog=examples(
    ('Which providers have a key, and where it comes from', 'modelctl keys list'),
    ('As JSON', 'modelctl keys list --json'),
))
def list_keys(as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array.")] = False) -> None:
    """Every provider, whether its key is set and where it comes from (never the key)."""
    from modelctl import keys  # noqa: PLC0415 (modelctl.keys: not on the --help path)

    rows = keys.key_status()
    if as_json:
        output.print_json(rows)
        return
    table = []
    for row in rows:
        if row["set"]:
            where = "keys file" if row["source"] == "keys file" else row["source"]
            state = f"set ({where})"
            if row["also_in_keys_file"]:
                state += "; also in the keys file"
        else:
            variables = cast("list[str]", row["variables"])
            state = f"not set ({' or '.join(variables)})" if variables else "not set"
        table.append([str(row["provider"]), state])
    output.table(["PROVIDER", "KEY"], table, "API keys")


@keys_app.command("rm", epilog=examples(
    ('Forget the stored OpenAI key', 'modelctl keys rm openai'),
    ("A key stored under a variable's name", 'modelctl keys rm TOGETHER_API_KEY'),
))
def remove_key(provider: str = typer.Argument(..., help=_PROVIDER_HELP)) -> None:
    """Remove the stored key for PROVIDER from the keys file."""
    from modelctl import keys  # noqa: PLC0415 (modelctl.keys: not on the --help path)
    from modelctl.keyfile import keys_path  # noqa: PLC0415 (modelctl.keyfile: not on the --help path)

    name = keys.canonical(provider)
    if not keys.delete_key(name):
        raise NotFoundError(f"no stored key for {keys.label(name)} in {keys_path()}")
    sys.stderr.write(safe(f"modelctl: removed the {keys.label(name)} key from {keys_path()}") + "\n")
    for var in _env_overrides(name):
        output.warn(f"{var} is still set in the environment")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys", rich_help_panel=panel.SETUP, epilog=examples(
        ('Store a key, typed at a hidden prompt', 'modelctl keys set openai'),
        ('Which providers have a key, and where it comes from', 'modelctl keys list'),
        ('Forget a stored key', 'modelctl keys rm openai'),
    ))
