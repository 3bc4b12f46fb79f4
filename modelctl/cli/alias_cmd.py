"""`modelctl alias set|list|rm`: your own names for models, with default options.

An alias is kept in config.toml's [aliases] and works wherever a model name does (chat, embed,
prompt, show, pull, rm); its options are defaults that flags override.
"""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, shell_complete, state
from modelctl.cli.flags import command_group
from modelctl.cli.help import examples
from modelctl.errors import NotFoundError
from modelctl.terminal_text import safe

alias_app = command_group("Name models your way: `modelctl alias set fast gemma-3-270m -o temperature=0.2`.")


@alias_app.command("set", epilog=examples(
    ('A short name with a default temperature', 'modelctl alias set fast gemma-3-270m -o temperature=0.2'),
    ('A GGUF file by a short name', 'modelctl alias set mine ~/models/model.Q4_K_M.gguf'),
    ('Several defaults', 'modelctl alias set terse gpt-4o-mini -o max_tokens=64 -o temperature=0'),
))
def set_alias(
    name: Annotated[str, typer.Argument(help="The alias: letters, digits, '.', '_', ':' and '-'.")],
    model: Annotated[str, opt.reworded(
        opt.ModelArgument, "A registry id or alias, a name given to `modelctl import`, or a GGUF path.")],
    option: Annotated[Optional[List[str]], opt.reworded(
        opt.LlamaOption, "A default for chats with the alias (repeatable): temperature, max_tokens, system, template, "
        "ctx, … or any backend option (-o of chat); values are TOML (0.2, true, \"text\").", rich_help_panel=None)] = None,
    force: bool = typer.Option(False, "--force", help="Shadow a registry model or imported file of the same name."),
) -> None:
    """Save NAME as an alias of MODEL (replacing an alias of that name)."""
    from modelctl.chat.naming import define_alias  # noqa: PLC0415 (modelctl.chat.naming: not on the --help path)

    alias = define_alias(name, model, option or [], force=force, registry=state.get_registry)
    extra = ", ".join(f"{k}={v!r}" for k, v in alias.shown_options().items())
    sys.stderr.write(safe(f"modelctl: {alias.name} -> {alias.model}" + (f" ({extra})" if extra else "")) + "\n")


@alias_app.command("list", epilog=examples(
    ('Every alias, its model and its options', 'modelctl alias list'),
    ('As JSON', 'modelctl alias list --json'),
))
def list_aliases(as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array.")] = False) -> None:
    """Every alias, its model and its options."""
    from modelctl.registry.aliases import user_aliases  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    aliases = sorted(user_aliases().values(), key=lambda a: a.name.lower())
    if as_json:
        output.print_records([{**a.to_dict(), "options": a.shown_options()} for a in aliases])
        return
    rows = [[a.name, a.model, " ".join(f"{k}={v}" for k, v in a.shown_options().items()) or "-"] for a in aliases]
    output.table(["ALIAS", "MODEL", "OPTIONS"], rows, "Aliases", no_wrap=("ALIAS", "MODEL"))


@alias_app.command("rm", epilog=examples(
    ('Remove an alias', 'modelctl alias rm fast'),
    ('Then see what is left', 'modelctl alias list'),
))
def remove_alias(name: str = typer.Argument(..., help="The alias to remove.", autocompletion=shell_complete.aliases)) -> None:
    """Remove an alias from config.toml."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.registry.aliases import delete_alias  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    removed = delete_alias(name)
    if removed is None:
        raise NotFoundError(f"no alias '{name}' in {get_paths().config_file}", hint="see `modelctl alias list`")
    sys.stderr.write(safe(f"modelctl: removed the alias {removed.name} (of {removed.model})") + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(alias_app, name="alias", rich_help_panel=panel.SETUP, epilog=examples(
        ('A short name with a default', 'modelctl alias set fast gemma-3-270m -o temperature=0.2'),
        ('Chat with it', 'modelctl chat -m fast "Hi"'),
        ('Every alias', 'modelctl alias list'),
    ))
