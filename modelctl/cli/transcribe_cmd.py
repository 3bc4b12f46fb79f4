"""`modelctl transcribe`: speech recognition (Whisper, gpt-4o-transcribe): an audio file in, text out."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output as out
from modelctl.cli.help import examples
from modelctl.terminal_text import for_terminal


def transcribe(
    audio: str = typer.Argument(..., metavar="FILE", help="The audio: WAV, MP3, FLAC, Ogg, WebM, M4A or AAC (25 MB at most)."),
    model: opt.TaskModel = None,
    language: Optional[str] = typer.Option(None, "--language", metavar="CODE", help="The spoken language (ISO 639-1, e.g. en), if known."),
    option: opt.TaskOption = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print text, language, duration and timestamped segments as JSON.")] = False,
    debug: opt.TaskDebug = False,
) -> None:
    """Transcribe an audio file and print the text."""
    from modelctl.cli.task_run import open_client, request_options  # noqa: PLC0415 (modelctl.cli.task_run: not on the --help path)
    from modelctl.redaction import redact  # noqa: PLC0415 (modelctl.redaction: not on the --help path)
    from modelctl.tasks.media import read_audio  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

    data, kind = read_audio(audio)
    options = request_options(option)
    client = open_client("speech-to-text", model, deployment, api_base, api_key, debug, allow_retired)
    try:
        transcript = client.speech_to_text(data, kind, language=language, timestamps=as_json, options=options)
    finally:
        client.close()
    if as_json:
        from modelctl.tasks.select import unit_cost  # noqa: PLC0415 (modelctl.tasks: not on the --help path)

        minutes = transcript.duration / 60 if transcript.duration is not None else None
        out.print_json({"id": client.backend.model_id, **transcript.to_dict(),
                        "cost_usd": unit_cost(client, "audio_minute", minutes)})
        return
    print(for_terminal(redact(transcript.text)))


def register(app: typer.Typer) -> None:
    app.command("transcribe", rich_help_panel=panel.TASKS, epilog=examples(
        ('The text of a recording', 'modelctl transcribe -m whisper-1 meeting.mp3'),
        ('In a known language, with timestamps, as JSON', 'modelctl transcribe -m whisper-1 --language en meeting.mp3 --json'),
    ))(transcribe)
