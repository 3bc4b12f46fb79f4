"""`modelctl fill-mask`: the likeliest tokens for the mask in a text (BERT's [MASK], RoBERTa's <mask>)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output as out
from modelctl.cli.help import examples
from modelctl.errors import UsageError


def fill_mask(
    text: Optional[List[str]] = typer.Argument(None, help="The text, with the model's mask token ([MASK] or <mask>)."),
    model: opt.TaskModel = None,
    top: Optional[int] = typer.Option(None, "--top", min=1, help="How many candidates (default: the service's, 5)."),
    option: opt.TaskOption = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the candidates as JSON.")] = False,
    debug: opt.TaskDebug = False,
) -> None:
    """Fill in the masked token: each candidate with its score and the whole text."""
    from modelctl.cli.task_run import given_text, open_client, request_options  # noqa: PLC0415 (modelctl.cli.task_run: not on the --help path)

    said = given_text(text, "text")
    if "[MASK]" not in said and "<mask>" not in said:
        raise UsageError("the text has no mask token: write [MASK] (BERT) or <mask> (RoBERTa) where the word goes")
    options = request_options(option)
    client = open_client("fill-mask", model, deployment, api_base, api_key, debug, allow_retired)
    try:
        fills = client.fill_mask(said, top_k=top, options=options)
    finally:
        client.close()
    if as_json:
        out.print_json({"id": client.backend.model_id, "candidates": [f.to_dict() for f in fills]})
        return
    width = max(len(out.cell(f.token)) for f in fills)
    for f in fills:
        print(f"{out.cell(f.token):<{width}}  {f.score:.4f}  {out.cell(f.sequence)}")


def register(app: typer.Typer) -> None:
    app.command("fill-mask", rich_help_panel=panel.TASKS, epilog=examples(
        ('The likeliest words for the mask', 'modelctl fill-mask -m bert-base-uncased "Paris is the [MASK] of France."'),
        ('The three best, as JSON', 'modelctl fill-mask -m bert-base-uncased --top 3 --json "I drink [MASK] every morning."'),
    ))(fill_mask)
