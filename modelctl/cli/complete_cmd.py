"""`modelctl complete`: raw text continuation, with no conversation template — what base models
(Llama 2 base, Code Llama, Phi-1.5/2, Gemma 3 270M) are made for."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.chat_cmd import parse_options, prompt_text, stop_flags
from modelctl.cli.help import examples
from modelctl.errors import UsageError


def complete(
    text: Optional[List[str]] = typer.Argument(None, help="The text to continue (with stdin: both, argument first)."),
    model: opt.TextModel = None,
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = None,
    top_p: opt.TopP = None,
    top_k: opt.TopK = None,
    seed: opt.Seed = None,
    stop: opt.Stop = None,
    option: opt.LlamaOption = None,
    ctx: opt.Ctx = None,
    gpu_layers: opt.GpuLayers = None,
    threads: opt.Threads = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    no_stream: opt.NoStream = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print one JSON object: text, id, finish_reason, usage, timings, cost, cache_saved, conversation, turn.", rich_help_panel=panel.OUTPUT)] = False,
    debug: opt.Debug = False,
    no_log: opt.NoLog = False,
) -> None:
    """Continue a text as it stands, with no chat template: locally through llama.cpp, or through
    a server's text-completion endpoint (OpenAI-compatible `/completions`, Ollama raw generate).
    The continuation streams to stdout (without the text given); the history logs it as a turn."""
    from modelctl.backends.base import GenerationParams  # noqa: PLC0415 (modelctl.backends: not on the --help path)
    from modelctl.chat.oneshot import run_completion  # noqa: PLC0415 (modelctl.chat.oneshot: not on the --help path)
    from modelctl.chat.opening import ChatOptions, LoadOptions, ServiceOptions, open_chat  # noqa: PLC0415 (modelctl.chat.opening: not on the --help path)

    given = prompt_text(text)
    if given is None or not given.strip():
        raise UsageError("nothing to complete: give the text as an argument or on stdin")
    flags = GenerationParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                             stop=stop_flags(stop))
    options = ChatOptions(flags=flags, load=LoadOptions(ctx, gpu_layers, threads),
                          service=ServiceOptions(deployment, api_base, api_key, allow_retired),
                          options=parse_options(option or []), debug=debug, task="completion")
    setup = open_chat(model, options, registry=state.get_registry, notify=output.warn)
    try:
        from modelctl.chat.history_log import open_log  # noqa: PLC0415 (modelctl.chat.history_log: not on the --help path)

        session, turn_log = open_log(setup, log=not no_log, notify=output.warn)
        try:
            run_completion(setup, given, stream=not no_stream, as_json=as_json, debug=debug, session=session)
        finally:
            if turn_log.history is not None:
                turn_log.history.close()
    finally:
        setup.backend.close()


def register(app: typer.Typer) -> None:
    app.command("complete", rich_help_panel=panel.GENERATE, epilog=examples(
        ('Continue a text with the default base model', 'modelctl complete "Once upon a time"'),
        ("A longer continuation through a server's /completions", 'modelctl complete -m gpt-3.5-turbo-instruct -n 64 "def fibonacci(n):"'),
        ('The continuation and its usage as JSON, not logged', 'modelctl complete --json --no-log "The sky is"'),
    ))(complete)
