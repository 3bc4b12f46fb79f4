"""`modelctl add`: a model on a server, added to the user registry in one line."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.help import examples
from modelctl.terminal_text import safe


def add(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="The id to use it by (`chat -m ID`): no white space.")],
    api_base: Annotated[str, opt.reworded(opt.ApiBase, "The server's address (http://localhost:8000/v1); no password or key in it.",
                                          rich_help_panel=panel.MODEL)],
    kind: str = typer.Option("openai-compatible", "--kind", metavar="KIND", rich_help_panel=panel.MODEL,
                             help="Deployment kind: openai-compatible, ollama, openai, mistral, …"),
    served_name: Optional[str] = typer.Option(None, "--model", metavar="NAME", rich_help_panel=panel.MODEL,
                                              help="The model's name on the server (default: the last part of ID)."),
    name: Optional[str] = typer.Option(None, "--name", metavar="TEXT", rich_help_panel=panel.MODEL,
                                       help="Display name (default: ID)."),
    alias: Optional[List[str]] = typer.Option(None, "--alias", metavar="NAME", rich_help_panel=panel.MODEL,
                                              help="Another name for it (repeatable)."),
    task: Optional[List[str]] = typer.Option(None, "--task", metavar="TASK", rich_help_panel=panel.MODEL,
                                             help="What it does (repeatable; default: chat): chat, completion, embedding, …"),
    context: Optional[int] = typer.Option(None, "--context", metavar="N", rich_help_panel=panel.SELECTION,
                                          help="Context window, in tokens."),
    max_output: Optional[int] = typer.Option(None, "--max-output", metavar="N", rich_help_panel=panel.SELECTION,
                                             help="Most tokens it writes in one answer."),
    price_in: Optional[float] = typer.Option(None, "--price-in", metavar="USD", rich_help_panel=panel.SELECTION,
                                             help="USD per 1M input tokens (dated today)."),
    price_out: Optional[float] = typer.Option(None, "--price-out", metavar="USD", rich_help_panel=panel.SELECTION,
                                              help="USD per 1M output tokens (dated today)."),
    force: bool = typer.Option(False, "--force", help="Replace your entry of that id, or shadow a built-in model's."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the entry as written, as JSON.", rich_help_panel=panel.OUTPUT)] = False,
) -> None:
    """Add a model served somewhere to your registry: the entry is checked by the registry's
    validator, then written to your registry.toml (its other entries and comments kept)."""
    from modelctl.store.add_model import NewModel, add_model  # noqa: PLC0415 (modelctl.store: not on the --help path)

    spec = NewModel(
        model_id, api_base, kind=kind, model=served_name, context_window=context, max_output_tokens=max_output,
        cost_input=price_in, cost_output=price_out, name=name, aliases=tuple(alias or ()),
        tasks=tuple(task) if task else ("chat",),
    )
    added = add_model(spec, force=force, registry=state.get_registry)
    if added.shadows:
        output.warn(f"'{model_id}' now shadows the model of that id in {added.shadows}")
    verb = "replaced" if added.replaced else "added"
    sys.stderr.write(safe(f"modelctl: {verb} {model_id} in {added.path}") + "\n")
    if as_json:
        output.print_records(added.entry)


def register(app: typer.Typer) -> None:
    app.command("add", rich_help_panel=panel.FIND, epilog=examples(
        ('A model on a local OpenAI-compatible server (vLLM, llama.cpp, LM Studio)',
         'modelctl add qwen2.5-7b --api-base http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --context 32768'),
        ('A hosted model with its prices (USD per 1M tokens)',
         'modelctl add groq/llama-3.3-70b-versatile --api-base https://api.groq.com/openai/v1 --price-in 0.59 --price-out 0.79'),
        ('Then chat with it', 'modelctl chat -m qwen2.5-7b "Hi"'),
    ))(add)
