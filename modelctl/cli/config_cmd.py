"""`modelctl config get|set|unset|list|path`: config.toml, one key at a time.

Keys are dotted (`chat.temperature`, `models.gemma-3-270m.max_tokens`, `history.log`); values are
TOML (`0.7`, `true`, `"text"`, `["a", "b"]`), and anything else is taken as a string. A change
rewrites only its own key: comments and formatting of the rest of the file stay as they were.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, shell_complete, state
from modelctl.cli.flags import command_group
from modelctl.cli.help import examples
from modelctl.errors import NotFoundError
from modelctl.terminal_text import safe

config_app = command_group("Read and change config.toml: default model, per-model defaults, API endpoints, history.")

_KEY_HELP = ("A dotted key: chat.model, chat.temperature, models.MODEL.temperature, api_base.ollama, "
             "history.log, history.retention_days, … (quote a model id with dots: models.\"llama-3.1-8b\".top_p).")


def _toml(value: Any) -> str:
    """A value as TOML writes it (a string in quotes): what `config list` shows."""
    import tomlkit  # noqa: PLC0415 (tomlkit: imported only where used)

    text: str = tomlkit.item(value).as_string()
    return text


def _shown(value: Any) -> str:
    """A value as `config get` prints it: a string as it is, anything else as TOML."""
    return value if isinstance(value, str) else _toml(value)


def _parts(key: str) -> list[str]:
    from modelctl.chat.naming import canonical_model_key  # noqa: PLC0415 (modelctl.chat.naming: not on the --help path)
    from modelctl.config_edit import split_key  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)

    return canonical_model_key(split_key(key), state.get_registry)


@config_app.command("get", epilog=examples(
    ('The default chat model', 'modelctl config get chat.model'),
    ("A model's default, as JSON", 'modelctl config get models.gpt-4o.temperature --json'),
))
def get(
    key: str = typer.Argument(..., help=_KEY_HELP, autocompletion=shell_complete.config_keys),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the value as JSON.")] = False,
) -> None:
    """Print the value of KEY (exit code 4 when it is not set)."""
    from modelctl.chat.settings import is_known_table, setting_type  # noqa: PLC0415 (modelctl.chat.settings: not on the --help path)
    from modelctl.config import get_paths, user_config  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.config_edit import join_key, lookup, split_key  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)

    parts = split_key(key)
    try:
        value = lookup(user_config(), parts)
    except KeyError:
        parts = _parts(key)
        try:
            value = lookup(user_config(), parts)
        except KeyError:
            if not is_known_table(parts):
                setting_type(parts)  # an unknown key: say which known ones are close
            raise NotFoundError(f"{join_key(parts)} is not set in {get_paths().config_file}") from None
    from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    value = redact_data(value, name=parts[-1])  # a credential written by hand is shown as ***
    if as_json:
        output.print_records(value)
    elif isinstance(value, dict):  # a table: its keys, as `config list` shows them
        _print_keys(value, parts)
    else:
        sys.stdout.write(safe(_shown(value)) + "\n")


def _print_keys(table: dict[str, Any], prefix: list[str]) -> None:
    from modelctl.config_edit import flatten, join_key  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)
    from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    for parts, value in flatten(redact_data(table), prefix):
        sys.stdout.write(safe(f"{join_key(parts)} = {_toml(value)}") + "\n")


@config_app.command("set", context_settings={"ignore_unknown_options": True}, epilog=examples(
    ('The default chat model', 'modelctl config set chat.model gpt-4o-mini'),
    ('A default for one model', 'modelctl config set models.gpt-4o.temperature 0.2'),
    ('Ollama on another machine', 'modelctl config set api_base.ollama http://gpu-box:11434'),
))  # `gpu_layers -1`
def set_(
    key: str = typer.Argument(..., help=_KEY_HELP, autocompletion=shell_complete.config_keys),
    value: str = typer.Argument(..., help="A TOML value (0.7, true, \"text\", [\"a\", \"b\"]); other text is a string."),
) -> None:
    """Set KEY to VALUE in config.toml, keeping the rest of the file as it is."""
    from modelctl.chat.settings import check_setting  # noqa: PLC0415 (modelctl.chat.settings: not on the --help path)
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.config_edit import edit_config, join_key, parse_value, set_in  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)

    parts = _parts(key)
    stored = check_setting(parts, value, parse_value(value))
    edit_config(lambda doc: set_in(doc, parts, stored))
    sys.stderr.write(safe(f"modelctl: {join_key(parts)} = {_toml(stored)} in {get_paths().config_file}") + "\n")


@config_app.command("unset", epilog=examples(
    ('Back to the built-in default model', 'modelctl config unset chat.model'),
    ("Drop a model's default", 'modelctl config unset models.gpt-4o.temperature'),
))
def unset(key: str = typer.Argument(..., help=_KEY_HELP, autocompletion=shell_complete.config_keys)) -> None:
    """Remove KEY from config.toml (its default applies again)."""
    from modelctl.chat.settings import is_known_table, setting_type  # noqa: PLC0415 (modelctl.chat.settings: not on the --help path)
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.config_edit import edit_config, join_key, split_key, unset_in  # noqa: PLC0415 (modelctl.config_edit: not on the --help path)

    parts = split_key(key)
    if not edit_config(lambda doc: unset_in(doc, parts)):
        parts = _parts(key)
        if not edit_config(lambda doc: unset_in(doc, parts)):
            if not is_known_table(parts):
                setting_type(parts)  # an unknown key: say which known ones are close
            raise NotFoundError(f"{join_key(parts)} is not set in {get_paths().config_file}")
    sys.stderr.write(safe(f"modelctl: removed {join_key(parts)} from {get_paths().config_file}") + "\n")


@config_app.command("list", epilog=examples(
    ('Every key set, one a line', 'modelctl config list'),
    ('As one JSON object', 'modelctl config list --json'),
))
def list_(as_json: Annotated[bool, opt.reworded(opt.Json, "Print config.toml as one JSON object.")] = False) -> None:
    """Every key set in config.toml, one `key = value` per line."""
    from modelctl.config import user_config  # noqa: PLC0415 (modelctl.config: not on the --help path)

    data = user_config()
    if as_json:
        from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

        output.print_records(redact_data(data))  # a credential written by hand is shown as ***
        return
    _print_keys(data, [])


@config_app.command("path", epilog=examples(
    ('Where config.toml is', 'modelctl config path'),
    ('Edit it', '"$EDITOR" "$(modelctl config path)"'),
))
def path() -> None:
    """Print where config.toml is (it need not exist yet)."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)

    sys.stdout.write(safe(str(get_paths().config_file)) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config", rich_help_panel=panel.SETUP, epilog=examples(
        ('Set the default chat model', 'modelctl config set chat.model gpt-4o-mini'),
        ('Every key set', 'modelctl config list'),
        ('Where the file is', 'modelctl config path'),
    ))
