"""`modelctl chat` (one-shot or interactive) and `modelctl embed`.

Thin shells over modelctl.chat: parse the flags, resolve the model, run. llama_cpp, rich.live and
jinja2 are imported only on the way to a model.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from modelctl.cli.flags import require_values
from modelctl.errors import UsageError

_MODEL_HELP = "Registry id or alias (a local GGUF, a server or an API), or a path to a .gguf file. Default: [chat] model in config.toml, else the embedded Gemma 3 270M."
_DEPLOYMENT_HELP = "Which of the model's deployments to use, by id or kind (llama.cpp, ollama, openai, …)."
_API_BASE_HELP = "An OpenAI-compatible server's base URL (with --model NAME as the server knows it); with --deployment, that deployment's endpoint."
_API_KEY_HELP = "The API key (else the deployment's key variable, else the keys file). Never printed."


def _parse_options(pairs: List[str]) -> dict[str, str]:
    from modelctl.chat.session import check_option

    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-o {pair!r}: expected KEY=VALUE")
        check_option(key.strip(), value)
        options[key.strip()] = value
    return options


def _tolerant_stdin() -> None:
    """Let stdin (piped, or typed in the REPL) pass bytes that are not UTF-8 on as surrogate
    escapes, for clean_text to replace, rather than fail to decode them."""
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")


# The most text a prompt or a list of texts to embed may be on stdin.
MAX_STDIN_BYTES = 64 * 2**20


def _stdin_text() -> str | None:
    from modelctl.chat.messages import clean_text
    from modelctl.cli.prompt_cmd import read_stdin

    if sys.stdin is None or sys.stdin.isatty():
        return None
    return clean_text(read_stdin(MAX_STDIN_BYTES).decode("utf-8", "surrogateescape"))


def chat(
    prompt: Optional[List[str]] = typer.Argument(None, help="The question. Without one (and with nothing on stdin), an interactive chat starts."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="MODEL", help=_MODEL_HELP),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System message."),
    template: Optional[str] = typer.Option(None, "--template", "-t", metavar="NAME|FILE", help="Conversation template (a name from `modelctl templates`, or a Jinja file)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", "-n", min=1, help="Most tokens to generate."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="Sampling temperature (0: greedy)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling threshold."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=0, help="Sample from the K most likely tokens (0: all)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed, for repeatable answers."),
    stop: Optional[List[str]] = typer.Option(None, "--stop", help="Extra stop string (repeatable)."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", metavar="KEY=VALUE", help="Any other llama.cpp parameter: load-time (flash_attn, n_batch, …) or sampling (min_p, mirostat_mode, …)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=16, help="Context window in tokens (default 4096, at most the model's)."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", min=-1, help="Layers to offload to the GPU (-1: all; default: all when the build supports Metal/CUDA, else 0)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for generation."),
    deployment: Optional[str] = typer.Option(None, "--deployment", "-d", metavar="ID|KIND", help=_DEPLOYMENT_HELP),
    api_base: Optional[str] = typer.Option(None, "--api-base", metavar="URL", help=_API_BASE_HELP),
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", help=_API_KEY_HELP),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the answer when it is complete."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: text, id, template, finish_reason, usage, timings."),
    debug: bool = typer.Option(False, "--debug", help="Show the exact prompt, tokens, stop rules, backend and timings on stderr."),
) -> None:
    """Chat with a model: local (llama.cpp), on a server, or through an API. With a prompt
    (argument and/or stdin): one answer, streamed to stdout. Without: an interactive chat."""
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.messages import clean_text
    from modelctl.chat.resolve import open_chat
    from modelctl.cli import output, state

    require_values(model=model, template=template, deployment=deployment, api_base=api_base, api_key=api_key)
    _tolerant_stdin()
    text = clean_text(" ".join(prompt)) if prompt else None
    system = None if system is None else clean_text(system)
    piped = _stdin_text()
    if piped is not None:
        if not piped.strip() and not text:
            raise UsageError("nothing on stdin and no prompt given")
        text = f"{text}\n\n{piped}" if text and piped.strip() else (text or piped)
    if text is None and (as_json or no_stream):
        raise UsageError("--json and --no-stream need a prompt (argument or stdin)")
    flags = GenerationParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
        stop=tuple(clean_text(s) for s in stop or ()),
    )
    setup = open_chat(
        model, template=template, system=system, flags=flags, options=_parse_options(option or []),
        n_ctx=ctx, n_gpu_layers=gpu_layers, n_threads=threads,
        deployment=deployment, api_base=api_base, api_key=api_key, debug=debug,
        registry=state.get_registry, notify=output.warn,
    )
    try:
        if text is None:
            from modelctl.chat.repl import run_repl

            raise typer.Exit(run_repl(setup, debug=debug))
        from modelctl.chat.oneshot import run_once

        run_once(setup, text, stream=not no_stream, as_json=as_json, debug=debug)
    finally:
        setup.backend.close()


def embed(
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to embed. Without any, one text per line of stdin."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="MODEL", help=_MODEL_HELP),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=16, help="Context window in tokens."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", min=-1, help="Layers to offload to the GPU."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads."),
    deployment: Optional[str] = typer.Option(None, "--deployment", "-d", metavar="ID|KIND", help=_DEPLOYMENT_HELP),
    api_base: Optional[str] = typer.Option(None, "--api-base", metavar="URL", help=_API_BASE_HELP),
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", help=_API_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: id, dimensions, embeddings."),
) -> None:
    """Embed texts: one vector per text, in order, one line each (numbers separated by spaces),
    or with --json one object. A local GGUF model's vectors are L2-normalized."""
    from modelctl.chat.messages import clean_text
    from modelctl.chat.resolve import open_chat
    from modelctl.cli import output, state

    require_values(model=model, deployment=deployment, api_base=api_base, api_key=api_key)
    _tolerant_stdin()
    items = [clean_text(t) for t in texts or []]
    if not items:
        piped = _stdin_text()
        items = [line for line in (piped or "").splitlines() if line.strip()]
    if not items:
        raise UsageError("nothing to embed: give texts as arguments or lines on stdin")
    setup = open_chat(model, n_ctx=ctx, n_gpu_layers=gpu_layers, n_threads=threads, need_template=False,
                      deployment=deployment, api_base=api_base, api_key=api_key,
                      registry=state.get_registry, notify=output.warn)
    try:
        vectors = setup.backend.embed(items)
    finally:
        setup.backend.close()
    if as_json:
        output.print_json({
            "id": setup.model_id,
            "dimensions": len(vectors[0]) if vectors else 0,
            "embeddings": vectors,
        })
        return
    sys.stdout.write("".join(" ".join(map(repr, vector)) + "\n" for vector in vectors))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
    app.command("embed")(embed)
