"""`modelctl speak`: text to speech (tts-1, gpt-4o-mini-tts, Hugging Face TTS models), written to a file."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output as out
from modelctl.cli.help import examples
from modelctl.terminal_text import safe


def speak(
    text: Optional[List[str]] = typer.Argument(None, help="What to say (with stdin: both, argument first)."),
    model: opt.TaskModel = None,
    voice: Optional[str] = typer.Option(None, "--voice", help="The voice (OpenAI: alloy, echo, nova, …; default alloy)."),
    audio_format: Optional[str] = typer.Option(None, "--format", help="OpenAI: mp3 (default), wav, flac, opus, aac, pcm."),
    output: opt.Output = None,
    force: opt.Force = False,
    option: opt.TaskOption = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the path and metadata as JSON.")] = False,
    debug: opt.TaskDebug = False,
) -> None:
    """Say a text: write the audio to a file and print its path."""
    from modelctl.cli.task_run import check_output, given_text, open_client, request_options, save  # noqa: PLC0415 (modelctl.cli.task_run: not on the --help path)

    said = given_text(text, "text")
    options = request_options(option)
    check_output(output, 1, force=force)
    client = open_client("text-to-speech", model, deployment, api_base, api_key, debug, allow_retired)
    try:
        audio = client.text_to_speech(said, voice=voice, audio_format=audio_format, options=options)
    finally:
        client.close()
    [path] = save([(audio.data, audio.media_type)], output, "speech", force=force)
    if as_json:
        from modelctl.tasks.select import unit_cost  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

        out.print_json({"id": client.backend.model_id, "path": str(path), "media_type": audio.media_type,
                        "bytes": len(audio.data), "cost_usd": unit_cost(client, "million_characters", len(said) / 1e6)})
        return
    print(safe(str(path)))


def register(app: typer.Typer) -> None:
    app.command("speak", rich_help_panel=panel.TASKS, epilog=examples(
        ("Say a text with OpenAI's TTS", 'modelctl speak -m tts-1 "Hello there" -o hello.mp3'),
        ('Another voice and format', 'modelctl speak -m tts-1 --voice nova --format wav "Good morning"'),
    ))(speak)
