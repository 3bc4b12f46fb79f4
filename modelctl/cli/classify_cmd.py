"""`modelctl classify`: text classification and moderation, image classification, and
zero-shot image classification with `--labels`."""

from __future__ import annotations

from typing import Annotated, Any, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output as out
from modelctl.cli.help import examples
from modelctl.errors import UsageError


def classify(
    text: Optional[List[str]] = typer.Argument(None, help="The text to classify (with stdin: both, argument first)."),
    image: Optional[str] = typer.Option(None, "--image", metavar="FILE", help="Classify this image (PNG, JPEG, WebP, GIF) instead."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="A,B,C", help="With --image: the candidate labels (zero-shot, e.g. CLIP)."),
    model: opt.TaskModel = None,
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show only the N best labels."),
    option: opt.TaskOption = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the labels and scores as JSON.")] = False,
    debug: opt.TaskDebug = False,
) -> None:
    """Label a text (moderation: the categories, flagged ones marked) or, with --image, an image;
    best label first."""
    from modelctl.cli.task_run import given_text, open_client, print_labels, request_options  # noqa: PLC0415 (modelctl.cli.task_run: not on the --help path)
    from modelctl.tasks.media import read_image  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

    candidates = [s.strip() for s in labels.split(",") if s.strip()] if labels is not None else None
    if candidates is not None and not image:
        raise UsageError("--labels goes with --image (zero-shot image classification)")
    if candidates is not None and not candidates:
        raise UsageError("--labels needs at least one label: --labels cat,dog")
    if image and text:
        raise UsageError("give a text or --image FILE, not both")
    picture = read_image(image) if image else None
    said = None if picture else given_text(text, "text")
    options = request_options(option)
    task = "moderation" if picture is None else "zero-shot-image-classification" if candidates else "image-classification"
    client = open_client(task, model, deployment, api_base, api_key, debug, allow_retired)
    try:
        if picture is None:
            found = client.classify_text(said or "", options=options)
        elif candidates:
            found = client.zero_shot_image(*picture, candidates, options=options)
        else:
            found = client.classify_image(*picture, options=options)
    finally:
        client.close()
    if as_json:
        shown = found[:top] if top else found
        record: dict[str, Any] = {"id": client.backend.model_id, "task": task, "labels": [lab.to_dict() for lab in shown]}
        if task == "moderation" and any(lab.flagged is not None for lab in found):
            record["flagged"] = any(lab.flagged for lab in found)
        out.print_json(record)
        return
    print_labels(found, top)


def register(app: typer.Typer) -> None:
    app.command("classify", rich_help_panel=panel.TASKS, epilog=examples(
        ('Check a text with a moderation model', 'modelctl classify -m omni-moderation "some text to check"'),
        ('Zero-shot labels for an image', 'modelctl classify -m clip-base --image photo.jpg --labels cat,dog,bird'),
        ('The best label of an image classifier, as JSON', 'modelctl classify -m vit-base --image photo.jpg --top 1 --json'),
    ))(classify)
