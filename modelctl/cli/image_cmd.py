"""`modelctl image`: text to image (DALL·E 3, gpt-image-1, SDXL, FLUX), written to files."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output as out
from modelctl.cli.help import examples
from modelctl.terminal_text import safe


def image(
    prompt: Optional[List[str]] = typer.Argument(None, help="What to draw (with stdin: both, argument first)."),
    model: opt.TaskModel = None,
    count: int = typer.Option(1, "--count", "-n", min=1, max=10, help="How many images."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Image size, e.g. 1024x1024."),
    output: opt.Output = None,
    force: opt.Force = False,
    option: opt.TaskOption = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print paths and metadata as JSON.")] = False,
    debug: opt.TaskDebug = False,
) -> None:
    """Make images from a text prompt; write them to files and print their paths (with several
    and -o PATH: PATH-1, PATH-2, …)."""
    from modelctl.cli.task_run import check_output, given_text, open_client, request_options, save  # noqa: PLC0415 (modelctl.cli.task_run: not on the --help path)
    from modelctl.tasks.media import image_size  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

    text = given_text(prompt, "prompt")
    options = request_options(option)
    check_output(output, count, force=force)
    if size:
        image_size(size)  # a malformed size is refused before the request is paid for
    client = open_client("text-to-image", model, deployment, api_base, api_key, debug, allow_retired)
    try:
        images = client.text_to_image(text, n=count, size=size, options=options)
    finally:
        client.close()
    paths = save(((img.data, img.media_type) for img in images), output, "image", force=force)
    if as_json:
        from modelctl.tasks.select import unit_cost  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

        out.print_json({"id": client.backend.model_id, "images": [
            {"path": str(p), "media_type": img.media_type, "bytes": len(img.data),
             "revised_prompt": img.revised_prompt} for p, img in zip(paths, images)],
            "cost_usd": unit_cost(client, "image", len(images))})
        return
    for path in paths:
        print(safe(str(path)))


def register(app: typer.Typer) -> None:
    app.command("image", rich_help_panel=panel.TASKS, epilog=examples(
        ('An image from DALL-E 3, to a file of your choice', 'modelctl image -m dall-e-3 "a lighthouse at dawn" -o lighthouse.png'),
        ('Two images from FLUX.1 schnell, their paths as JSON', 'modelctl image -m flux-schnell -n 2 "a paper boat" --json'),
    ))(image)
