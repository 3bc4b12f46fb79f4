"""`modelctl tokens`: a prompt's size with the model's own tokenizer, its cost on each of the
model's deployments, and whether it fits the context window."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.chat_cmd import stdin_text
from modelctl.cli.help import examples
from modelctl.cli.prompt_cmd import load_messages
from modelctl.errors import UsageError
from modelctl.terminal_text import safe
from modelctl.units import counted

if TYPE_CHECKING:
    from modelctl.backends.base import ToolSpec
    from modelctl.chat.tokens import TokenReport


def _messages(text: Optional[List[str]], messages_file: Optional[str], system: Optional[str]) -> list[dict[str, str]]:
    """The conversation to count: --messages FILE, else TEXT and/or stdin as one user message."""
    from modelctl.chat.messages import clean_text  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)

    if messages_file is not None:
        if text:
            raise UsageError("give TEXT or --messages FILE, not both")

        msgs = load_messages(messages_file)
    else:
        joined = clean_text(" ".join(text)) if text else None
        piped = stdin_text()
        if piped is not None and piped.strip():
            joined = f"{joined}\n\n{piped}" if joined else piped
        if joined is None:
            raise UsageError("nothing to count", hint="give TEXT, pipe it on stdin, or pass --messages FILE")
        msgs = [{"role": "user", "content": joined}]
    if system is not None:
        msgs.insert(0, {"role": "system", "content": clean_text(system)})
    return msgs


def _tool_specs(tool: Optional[List[str]], functions: Optional[List[Path]]) -> "tuple[ToolSpec, ...]":
    """The definitions of the tools -T and --functions name, as chat would offer them (MCP
    servers are started to list theirs, then stopped)."""
    if not (tool or functions):
        return ()
    from modelctl.tools.toolbox import Toolbox  # noqa: PLC0415 (modelctl.tools: only with tools)

    toolbox = Toolbox.open(tool or [], [f.expanduser() for f in functions or []])
    try:
        return toolbox.specs()
    finally:
        toolbox.close()


def _trained(report: TokenReport) -> str:
    """Where a local model runs with less than its own window: how much it has, and how to get it."""
    trained = report.trained_window
    if trained is None or report.context_window is None or trained <= report.context_window:
        return ""
    return f" (the model's is {trained}: --ctx {trained} uses it all)"


def _usd(value: float | None) -> str:
    return "?" if value is None else f"{value:.6f}"


def tokens(
    text: Optional[List[str]] = typer.Argument(None, help="The text (a user message). Without it: stdin."),
    model: Annotated[Optional[str], opt.reworded(opt.ChatModel, "Any model chat takes. Default: chat's (complete's with --text).")] = None,
    messages: Annotated[Optional[str], opt.reworded(opt.Messages, "A JSON messages file ('-': stdin): count the whole conversation.")] = None,
    system: Annotated[Optional[str], opt.reworded(opt.System, "A system message before the text.")] = None,
    deployment: Annotated[Optional[str], opt.reworded(opt.Deployment, "Count with this deployment's tokenizer.")] = None,
    template: Annotated[Optional[str], opt.reworded(opt.Template, "Conversation template (local models).")] = None,
    max_tokens: Annotated[Optional[int], opt.reworded(opt.MaxTokens, "Tokens to keep for the answer (default: the registry's, else 512).")] = None,
    ctx: Annotated[Optional[int], opt.reworded(opt.Ctx, "A local model's context window, as chat's --ctx (default: config.toml's, else 4096, at most the model's).")] = None,
    api_key: Annotated[Optional[str], opt.reworded(opt.ApiKey, "Key for a provider's count endpoint (Anthropic, Gemini). Never printed.")] = None,
    text_only: Optional[bool] = typer.Option(
        None, "--text/--conversation",
        help="Count TEXT as it stands, with no chat format, as `complete` and `embed` send it "
             "(default for embedding models), or as a chat's user message (default otherwise)."),
    tool: Annotated[Optional[List[str]], opt.reworded(opt.Tools, "Count the definitions of a tool the chat would offer (repeatable): its name, an MCP server's name (all its tools), or builtin.")] = None,
    functions: opt.Functions = None,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print one JSON object.")] = False,
) -> None:
    """Count a prompt's tokens with the model's tokenizer (the rendered prompt, template
    included), estimate its cost on each deployment, and check it fits the context window a
    chat would use (a local model's is 4096 tokens unless --ctx or config.toml says more)."""
    from modelctl.chat.tokens import token_report  # noqa: PLC0415 (modelctl.chat.tokens: not on the --help path)

    report = token_report(model, _messages(text, messages, system), deployment=deployment, template=template,
                          max_tokens=max_tokens, api_key=api_key, registry=state.get_registry, text_only=text_only,
                          notify=output.warn, n_ctx=ctx, tools=_tool_specs(tool, functions))
    if as_json:
        output.print_records(report.to_dict())
        return
    count = report.count
    how = count.method if count.exact else f"{count.method}: {count.note}" if count.note else count.method
    what = ", the text alone" if report.counted == "text" else ""
    if report.tools:
        what = f", {counted(report.tools, 'tool definition')} included"
    print(safe(f"{report.model_id}: {counted(count.tokens, 'token')}{what} "
                      f"({'exact' if count.exact else 'estimated'}, {how})"))  # an id, a file name: data
    room = f" with {counted(report.max_tokens, 'token')} for the answer" if report.max_tokens else ""
    if report.context_window is None:
        print("context window: unknown" + (f"; {counted(report.max_tokens, 'token')} kept for the answer" if room else ""))
    else:
        verdict = "fits" if report.fits else "does NOT fit"
        print(f"context window {report.context_window}{_trained(report)}: {verdict}{room}")
    if report.costs:
        rows = [[c.deployment, c.kind, _usd(c.input_per_mtok), _usd(c.output_per_mtok), _usd(c.input_usd),
                 _usd(c.total_usd)] for c in report.costs]
        output.table(["DEPLOYMENT", "KIND", "$/1M IN", "$/1M OUT", "PROMPT $", f"+{report.max_tokens} OUT $"], rows,
                     "Estimated cost", right=("$/1M IN", "$/1M OUT", "PROMPT $", f"+{report.max_tokens} OUT $"))
        for c in report.costs:
            if c.cached_tokens:
                print(safe(f"{c.deployment}: {counted(c.cached_tokens, 'prompt token')} priced as cached "
                           "(this conversation's start was sent there recently)"))


def register(app: typer.Typer) -> None:
    app.command("tokens", rich_help_panel=panel.GENERATE, epilog=examples(
        ('Count a prompt and price it on each deployment', 'modelctl tokens -m gpt-4o "Explain GGUF in one paragraph."'),
        ('A whole conversation from a file', 'modelctl tokens -m gemma-3-270m --messages chat.json'),
        ('Does a long file fit a local model at an 8K window?', 'modelctl tokens -m gemma-3-270m --ctx 8192 < report.txt'),
    ))(tokens)
