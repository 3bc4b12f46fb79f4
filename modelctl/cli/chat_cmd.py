"""`modelctl chat` (one-shot or interactive) and `modelctl embed`.

Thin shells over modelctl.chat: parse the flags, resolve the model, run. llama_cpp, rich.live and
jinja2 are imported only on the way to a model.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.help import examples
from modelctl.cli.prompt_cmd import read_stdin
from modelctl.errors import ModelctlError, UsageError
from modelctl.terminal_text import for_terminal, safe

if TYPE_CHECKING:
    from modelctl.backends.images import ImagePart
    from modelctl.chat.opening import Chat
    from modelctl.chat.selector import Constraints
    from modelctl.chat.tool_chain import ToolRunner
    from modelctl.history import Conversation
    from modelctl.tools.toolbox import Toolbox


def stop_flags(values: Optional[List[str]]) -> tuple[str, ...]:
    """--stop values as stop strings: valid text, with \\n, \\t, \\r, \\\\ and \\uXXXX read."""
    from modelctl.backends.stops import unescape_stop  # noqa: PLC0415 (modelctl.backends: not on the --help path)
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)

    return tuple(unescape_stop(clean_text(s), "--stop") for s in values or ())


def parse_options(pairs: List[str]) -> dict[str, str]:
    from modelctl.chat.session import check_option  # noqa: PLC0415 (modelctl.chat.session: not on the --help path)

    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-o {pair!r}: expected KEY=VALUE")
        check_option(key.strip(), value)
        options[key.strip()] = value
    return options


def _reasoning_flags(think: str, no_think: bool, effort: str | None) -> tuple[str, str | None]:
    """(--think as show or hide, --reasoning-effort as low, medium or high), or a UsageError."""
    think = think.strip().lower()
    if think not in ("show", "hide"):
        raise UsageError(f"--think {think!r}: expected show or hide")
    if effort is None:
        return think, None
    if effort.strip().lower() not in ("low", "medium", "high"):
        raise UsageError(f"--reasoning-effort {effort!r}: expected low, medium or high")
    if no_think:
        raise UsageError("--no-think and --reasoning-effort contradict each other: give one")
    return think, effort.strip().lower()


def _tolerant_stdin() -> None:
    """Let stdin (piped, or typed in the REPL) pass bytes that are not UTF-8 on as surrogate
    escapes, for clean_text to replace, rather than fail to decode them."""
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")


# The most text a prompt or a list of texts to embed may be on stdin.
MAX_STDIN_BYTES = 64 * 2**20


def stdin_text() -> str | None:
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)

    if sys.stdin is None or sys.stdin.isatty():
        return None
    return clean_text(read_stdin(MAX_STDIN_BYTES).decode("utf-8", "surrogateescape"))


def prompt_text(words: Optional[List[str]]) -> str | None:
    """The words given, then what is piped on stdin after a blank line; None when neither."""
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)

    _tolerant_stdin()
    text = clean_text(" ".join(words)) if words else None
    piped = stdin_text()
    if piped is not None:
        if not piped.strip() and not text:
            raise UsageError("nothing on stdin and no prompt given")
        text = f"{text}\n\n{piped}" if text and piped.strip() else (text or piped)
    return text


def chat(
    prompt: Optional[List[str]] = typer.Argument(None, help="The question. Without one (and with nothing on stdin), an interactive chat starts."),
    model: opt.ChatModel = None,
    system: opt.System = None,
    template: opt.Template = None,
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
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print one JSON object: text, reasoning, id, template, finish_reason, usage, timings, cost, cache_saved, conversation, turn.", rich_help_panel=panel.OUTPUT)] = False,
    schema: Optional[str] = typer.Option(None, "--schema", metavar="FILE|JSON", help="Answer with JSON that validates against this JSON Schema (a file, or inline JSON); checked before it is printed.", rich_help_panel=panel.STRUCTURED),
    json_mode: bool = typer.Option(False, "--json-mode", help="Answer with a JSON object (of any shape); checked before it is printed.", rich_help_panel=panel.STRUCTURED),
    debug: opt.Debug = False,
    think: str = typer.Option("hide", "--think", metavar="show|hide", help="A reasoning model's thinking at the terminal: shown dimmed, or hidden behind one line (never in piped stdout; --json has it under reasoning).", rich_help_panel=panel.REASONING),
    no_think: bool = typer.Option(False, "--no-think", help="Ask a reasoning model not to think (Qwen3 enable_thinking, Anthropic, Gemini, Ollama think).", rich_help_panel=panel.REASONING),
    reasoning_effort: Optional[str] = typer.Option(None, "--reasoning-effort", metavar="low|medium|high", help="How much a reasoning model thinks (gpt-oss, OpenAI reasoning_effort, Anthropic and Gemini thinking budgets).", rich_help_panel=panel.REASONING),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Cache the prompt's prefix (system prompt, conversation so far) where the provider must be asked to (Anthropic cache_control), so the next turns read it at the cached price; other providers cache by themselves (config: chat.cache).", rich_help_panel=panel.SERVER),
    no_log: opt.NoLog = False,
    resume: bool = typer.Option(False, "--continue", help="Continue the last conversation in the history (with this or another model).", rich_help_panel=panel.HISTORY),
    session: opt.Session = None,
    max_cost: Optional[float] = typer.Option(None, "--max-cost", metavar="USD", min=0.0, help="Refuse to send a request whose estimated cost (prompt + --max-tokens of answer) is more.", rich_help_panel=panel.SELECTION),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the chosen service, the rendered prompt or request, its tokens and estimated cost; send nothing.", rich_help_panel=panel.DEBUG),
    fallback: bool = typer.Option(False, "--fallback", help="On a rate limit, server error, timeout or refused connection before the answer begins, try the model's next usable deployment (with -m auto: the next candidate).", rich_help_panel=panel.SELECTION),
    prefer: Optional[str] = typer.Option(None, "--prefer", metavar="cheapest|fastest|largest-context|local", help="With -m auto: how to rank the candidates (default cheapest).", rich_help_panel=panel.SELECTION),
    local_only: bool = typer.Option(False, "--local", help="With -m auto: only models that run on this machine.", rich_help_panel=panel.SELECTION),
    free: bool = typer.Option(False, "--free", help="With -m auto: only local models or models with a free tier.", rich_help_panel=panel.SELECTION),
    task: Optional[str] = typer.Option(None, "--task", metavar="TASK", help="With -m auto: the task the model must list (default chat).", rich_help_panel=panel.SELECTION),
    min_context: Optional[int] = typer.Option(None, "--min-context", metavar="N", min=1, help="With -m auto: the least context window, in tokens.", rich_help_panel=panel.SELECTION),
    image: Optional[List[str]] = typer.Option(None, "--image", metavar="FILE|URL", help="An image for the question (repeatable; PNG, JPEG, WebP, GIF up to 20 MB; models with vision).", rich_help_panel=panel.IMAGES),
    mmproj: Optional[str] = typer.Option(None, "--mmproj", metavar="FILE", help="A local model's vision projector (mmproj GGUF), for --image and /image.", rich_help_panel=panel.IMAGES),
    tool: Annotated[Optional[List[str]], opt.reworded(opt.Tools, "A tool the model may call (repeatable): its name, an MCP server's name (all its tools), or builtin (`modelctl tools list`).", rich_help_panel=panel.TOOLS)] = None,
    functions: Annotated[Optional[List[Path]], opt.reworded(opt.Functions, "A Python file whose public functions the model may call (repeatable); their type hints and docstrings are the schemas.", rich_help_panel=panel.TOOLS)] = None,
    tool_choice: Optional[str] = typer.Option(None, "--tool-choice", metavar="auto|none|required|NAME", help="Whether the model must call a tool (required), a given one (NAME), may (auto, the default) or must not (none).", rich_help_panel=panel.TOOLS),
    chain_limit: int = typer.Option(5, "--chain-limit", min=0, max=1000, help="Round trips with tool results in one answer (0: no limit).", rich_help_panel=panel.TOOLS),
    max_tool_calls: int = typer.Option(16, "--max-tool-calls", min=1, max=1000, help="Tools one answer may call; more calls get an error result.", rich_help_panel=panel.TOOLS),
    yes: bool = typer.Option(False, "--yes", "-y", help="Allow every tool call of this run that config.toml does not deny (without it, calls that need approval are asked about at the terminal, and refused without one).", rich_help_panel=panel.TOOLS),
) -> None:
    """Chat with a model: local (llama.cpp), on a server, or through an API. With a prompt
    (argument and/or stdin): one answer, streamed to stdout. Without: an interactive chat.
    `-m auto` picks the best usable service for the prompt and says which and why on stderr.
    Every turn is logged to the history (`modelctl history`) unless --no-log."""
    from modelctl.backends.base import GenerationParams  # noqa: PLC0415 (modelctl.backends: not on the --help path)
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)
    from modelctl.chat.opening import ChatOptions, LoadOptions, ServiceOptions  # noqa: PLC0415 (modelctl.chat.opening: not on the --help path)
    from modelctl.chat.routing import open_routed  # noqa: PLC0415 (modelctl.chat.routing: not on the --help path)

    text = prompt_text(prompt)
    system = None if system is None else clean_text(system)
    if text is None and (as_json or no_stream or schema is not None or json_mode):
        raise UsageError("--json, --no-stream, --schema and --json-mode need a prompt (argument or stdin)")
    from modelctl.chat.structured import load_format  # noqa: PLC0415 (modelctl.chat.structured: not on the --help path)

    response_format = load_format(schema, json_mode)  # a bad schema is refused before a model loads
    think, effort = _reasoning_flags(think, no_think, reasoning_effort)
    flags = GenerationParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
        stop=stop_flags(stop), think=False if no_think else None, reasoning_effort=effort, cache=cache,
    )
    from modelctl.chat.history_log import find_resumed  # noqa: PLC0415 (modelctl.chat.history_log: not on the --help path)

    resumed = find_resumed(resume, session)  # its turns count for -m auto, --max-cost and --dry-run
    conversation = _conversation(system, resumed, text)
    options = ChatOptions(
        flags=flags, load=LoadOptions(ctx, gpu_layers, threads, template, images=bool(image or mmproj)),
        service=ServiceOptions(deployment, api_base, api_key, allow_retired),
        options=parse_options(option or []), system=system, debug=debug,
    )
    toolbox = _toolbox(tool, functions, tool_choice, schema is not None or json_mode, dry_run)
    if toolbox is not None:
        options = replace(options, flags=replace(flags, tools=toolbox.specs(), tool_choice=tool_choice))
    setup = open_routed(
        model, conversation, options,
        constraints=_constraints(model, max_tokens, prefer, local_only, free, task, min_context),
        fallback=fallback, max_cost=max_cost, registry=state.get_registry, notify=output.warn, say=_say,
    )
    try:
        if dry_run:
            _show_dry_run(setup, conversation, as_json)
            return
        from modelctl.chat.history_log import open_log  # noqa: PLC0415 (modelctl.chat.history_log: not on the --help path)

        images, refused = _images(setup, image or [], mmproj, interactive=text is None)
        runner = _runner(toolbox, yes, chain_limit, max_tool_calls) if toolbox is not None else None
        chat_session, turn_log = open_log(setup, log=not no_log, resumed=resumed, session_name=session,
                                          system_flag=system, notify=output.warn)
        try:
            if text is None:
                from modelctl.chat.repl import run_repl  # noqa: PLC0415 (modelctl.chat.repl: not on the chat --api-base path)

                raise typer.Exit(run_repl(setup, debug=debug, think=think, session=chat_session,
                                          images_refused=refused, images=images, tools=runner))
            from modelctl.chat.oneshot import run_once  # noqa: PLC0415 (modelctl.chat.oneshot: not on the chat --api-base path)

            run_once(setup, text, stream=not no_stream, as_json=as_json, debug=debug, think=think,
                     session=chat_session, response_format=response_format, images=images, tools=runner)
        finally:
            if turn_log.history is not None:
                turn_log.history.close()
    finally:
        setup.backend.close()
        if toolbox is not None:
            toolbox.close()


def _conversation(system: Optional[str], resumed: "Conversation | None", text: Optional[str]) -> list[dict[str, str]]:
    """What the chat will send first: the system message (--system, else the resumed one's), the
    resumed conversation's turns, and the prompt."""
    if system is None and resumed is not None:
        system = resumed.system
    return (([{"role": "system", "content": system}] if system else []) + (list(resumed.messages) if resumed else [])
            + ([{"role": "user", "content": text}] if text is not None else []))


def _images(setup: "Chat", image: List[str], mmproj: Optional[str],
            *, interactive: bool) -> "tuple[tuple[ImagePart, ...], ModelctlError | None]":
    """(the images of --image, read and checked; why /image cannot be used, None when it can).
    A local model gets its vision projector (--mmproj, else its registry deployment's)."""
    from modelctl.chat.images import find_mmproj, load_images, vision_refusal  # noqa: PLC0415 (modelctl.chat.images: not on the chat --api-base path)

    if setup.local is not None:
        from modelctl.backends.base import serving  # noqa: PLC0415 (modelctl.backends: not on the --help path)

        serving(setup.backend).mmproj = find_mmproj(setup, mmproj)  # type: ignore[attr-defined]
    elif mmproj is not None:
        raise UsageError("--mmproj is for local GGUF models; this one runs on a server or API")
    refused = vision_refusal(setup, state.get_registry) if image or interactive else None
    if image and refused is not None:
        raise refused
    return load_images(image), refused


def _toolbox(tool: Optional[List[str]], functions: Optional[List[Path]], choice: Optional[str], structured: bool,
             dry_run: bool) -> "Toolbox | None":
    """The tools of -T and --functions, opened (MCP servers started); None without any."""
    from modelctl.backends.base import TOOL_CHOICES  # noqa: PLC0415 (modelctl.backends: not on the --help path)

    if not (tool or functions):
        if choice is not None:
            raise UsageError("--tool-choice needs tools: give -T NAME or --functions FILE.py")
        return None
    if structured:
        raise UsageError("--schema and --json-mode cannot be combined with tools (-T, --functions)")
    from modelctl.tools.toolbox import Toolbox  # noqa: PLC0415 (modelctl.tools: only with tools)

    toolbox = Toolbox.open(tool or [], [f.expanduser() for f in functions or []])
    if choice is not None and choice not in TOOL_CHOICES and toolbox.get(choice) is None:
        toolbox.close()
        raise UsageError(f"--tool-choice {choice!r}: give auto, none, required or one of the tools: "
                         + ", ".join(t.spec.name for t in toolbox.tools))
    return toolbox


def _runner(toolbox: "Toolbox", yes: bool, chain_limit: int, max_calls: int) -> "ToolRunner":
    from modelctl.chat.approval import Approver, terminal_ask  # noqa: PLC0415 (modelctl.chat.approval: only with tools)
    from modelctl.chat.tool_chain import ToolRunner  # noqa: PLC0415 (modelctl.chat.tool_chain: only with tools)

    return ToolRunner(toolbox, Approver(yes=yes, ask=terminal_ask()), chain_limit=chain_limit, max_calls=max_calls,
                      show=_tool_line, notify=output.warn)


def _tool_line(line: str) -> None:
    """A tool call or result, one line on stderr (dimmed at a terminal)."""
    shown = f"\x1b[2m{line}\x1b[22m" if sys.stderr.isatty() and not os.environ.get("NO_COLOR") else line
    sys.stderr.write(shown + "\n")
    sys.stderr.flush()


def _say(message: str) -> None:
    """What the routing tells the user (the choice under -m auto, a fallback): one line on stderr."""

    sys.stderr.write(f"modelctl: {safe(message)}\n")
    sys.stderr.flush()


def _constraints(model: Optional[str], max_tokens: Optional[int], prefer: Optional[str], local_only: bool,
                 free: bool, task: Optional[str], min_context: Optional[int]) -> Constraints | None:
    """The -m auto constraints; None when MODEL is not auto and no constraint flag was given
    (given with another MODEL, they are refused by the routing)."""
    from modelctl.refs import is_auto  # noqa: PLC0415 (modelctl.refs: not on the --help path)

    if not is_auto(model) and not (prefer or local_only or free or task or min_context):
        return None
    from modelctl.chat.selector import Constraints  # noqa: PLC0415 (modelctl.chat.selector: not on the chat --api-base path)

    if task is not None:
        _check_chat_task(task)
    return Constraints(task=task or "chat", local=local_only, free=free, min_context=min_context,
                       max_tokens=max_tokens, prefer=prefer or "cheapest")


def _check_chat_task(task: str) -> None:
    """--task names a task of the registry's vocabulary whose models chat."""
    from modelctl.registry.vocab import TASK_COMMANDS  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    if task not in TASK_COMMANDS:
        raise UsageError(f"--task '{task}': not a task", hint="one of " + ", ".join(TASK_COMMANDS))
    command = TASK_COMMANDS[task]
    if command != "chat":
        where = f"`modelctl {command}` does that task" if command else "no modelctl command does it yet"
        raise UsageError(f"--task '{task}': chat picks among models that chat ({where})")


def _show_dry_run(setup: Chat, conversation: list[dict[str, str]], as_json: bool) -> None:
    from modelctl.chat.routing import dry_run  # noqa: PLC0415 (modelctl.chat.routing: not on the --help path)

    data = output.redact_data(dry_run(setup, conversation))
    if as_json:
        output.print_records(data)
        return
    tokens = data.get("tokens") or {}
    cost = data.get("cost_usd")
    lines = [f"service: {data.get('service') or data['id']}" + (f" ({data['deployment']})" if data.get("deployment") else "")]
    if data.get("selected"):
        lines.append("why: " + "; ".join(data["selected"]["reasons"]))
    if tokens:
        lines.append(f"prompt tokens: {tokens['tokens']} ({'exact' if tokens.get('exact') else 'estimated'}, "
                     f"{tokens.get('method')}); answer up to {data.get('max_tokens')}")
    lines.append("estimated cost: " + ("unknown (no price in the registry)" if cost is None else f"${cost:.6f}"))
    for switch in data.get("fallbacks") or ():
        lines.append(f"fallback: {switch}")
    if "prompt" in data:
        body = data["prompt"]
        lines.append("prompt:")
    else:
        body = json.dumps(data.get("request") or data.get("messages"), indent=2, ensure_ascii=False)
        lines.append("request:")

    # For a person (--json is for scripts): data in the lines escaped, the prompt's lines kept.
    sys.stdout.write("".join(safe(line) + "\n" for line in lines) + for_terminal(body) + "\n")


def embed(
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to embed. Without any, one text per line of stdin."),
    model: opt.TextModel = None,
    ctx: opt.Ctx = None,
    gpu_layers: opt.GpuLayers = None,
    threads: opt.Threads = None,
    deployment: opt.Deployment = None,
    api_base: opt.ApiBase = None,
    api_key: opt.ApiKey = None,
    allow_retired: opt.AllowRetired = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print one JSON object: id, dimensions, embeddings.", rich_help_panel=panel.OUTPUT)] = False,
) -> None:
    """Embed texts: one vector per text, in order, one line each (numbers separated by spaces),
    or with --json one object. A local GGUF model's vectors are L2-normalized."""
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)
    from modelctl.chat.opening import ChatOptions, LoadOptions, ServiceOptions, open_chat  # noqa: PLC0415 (modelctl.chat.opening: not on the --help path)

    _tolerant_stdin()
    items = [clean_text(t) for t in texts or []]
    if not items:
        piped = stdin_text()
        items = [line for line in (piped or "").splitlines() if line.strip()]
    if not items:
        raise UsageError("nothing to embed: give texts as arguments or lines on stdin")
    options = ChatOptions(load=LoadOptions(ctx, gpu_layers, threads),
                          service=ServiceOptions(deployment, api_base, api_key, allow_retired), task="completion")
    setup = open_chat(model, options, registry=state.get_registry, notify=output.warn)
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
    app.command("chat", rich_help_panel=panel.GENERATE, epilog=examples(
        ('One answer from the default local model', 'modelctl chat "Write one sentence about the sea."'),
        ('An interactive chat with a hosted model', 'modelctl chat -m gpt-4o'),
        ('A file piped in, the answer as JSON that follows a schema', 'cat notes.txt | modelctl chat -m gpt-4o-mini "Summarize." --schema summary.schema.json'),
        ('Let modelctl choose the cheapest usable model, and show why', 'modelctl chat -m auto --dry-run "Explain GGUF"'),
    ))(chat)
    app.command("embed", rich_help_panel=panel.GENERATE, epilog=examples(
        ('One vector a line, from a hosted model', 'modelctl embed -m text-embedding-3-small "a cat" "a dog"'),
        ('One text per line of a file, as JSON', 'modelctl embed -m text-embedding-3-small --json < sentences.txt'),
    ))(embed)
