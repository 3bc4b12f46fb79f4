"""Template commands: `prompt` (render a conversation without a model), `templates`, `templates show`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from modelctl.chat.terminal import err
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, shell_complete, state
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.terminal_text import for_terminal, safe

if TYPE_CHECKING:
    from modelctl.templates import RenderedPrompt

EXAMPLE_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
]


def _usage(message: str, hint: str | None = None) -> Exception:
    return UsageError(message, hint=hint)


def read_messages(text: str, where: str) -> list[dict[str, str]]:
    """The messages in JSON text (an array, or an object with "messages")."""
    from modelctl.chat.messages import parse_messages  # noqa: PLC0415 (modelctl.chat.messages: not on the --help path)
    from modelctl.files import load_json  # noqa: PLC0415 (modelctl.files: not on the --help path)

    return parse_messages(load_json(text, where), where)


def load_messages(messages_file: Optional[str]) -> list[dict[str, Any]]:
    from modelctl.chat.session import MAX_FILE_BYTES  # noqa: PLC0415 (modelctl.chat.session: not on the --help path)
    from modelctl.files import read_user_file  # noqa: PLC0415 (modelctl.files: not on the --help path)

    if messages_file and messages_file != "-":
        data = read_user_file(messages_file, "messages file", limit=MAX_FILE_BYTES)
        return read_messages(data.decode("utf-8", "surrogateescape"), repr(messages_file))
    if sys.stdin is None or sys.stdin.isatty():
        raise _usage("no messages given", hint='pipe a JSON array on stdin, or pass --messages FILE')
    data = read_stdin(MAX_FILE_BYTES)
    return read_messages(data.decode("utf-8", "surrogateescape"), "stdin")


def read_stdin(limit: int) -> bytes:
    """What is piped on stdin, up to `limit` bytes (`< /dev/zero` never ends)."""
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise _usage(f"more than {limit // 2**20} MiB on stdin")
    return data


def _shown(text: str) -> str:
    """A prompt as printed: exactly, to a pipe; at a terminal, with its control characters
    written out, since a template or a message may hold escape sequences."""

    return for_terminal(text) if sys.stdout.isatty() else text


def _write_prompt(rendered: "RenderedPrompt") -> None:
    text = _shown(rendered.text)
    sys.stdout.write(text)
    if sys.stdout.isatty() and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    if sys.stderr.isatty():
        stops = ", ".join(json.dumps(s, ensure_ascii=False) for s in rendered.stop) or "none"
        ids = ", ".join(str(i) for i in rendered.stop_token_ids) or "none"
        err().print(
            safe(f"template {rendered.template} ({rendered.source}) · stop {stops} · stop ids {ids}"),
            style="dim",
            markup=False,
            highlight=False,
        )


def prompt(
    model: Annotated[Optional[str], opt.reworded(
        opt.ChatModel, "A registry model, or a GGUF file (uses its own chat template).", metavar="MODEL|FILE.gguf",
        rich_help_panel=None)] = None,
    template: Annotated[Optional[str], opt.reworded(
        opt.Template, "A template name, a .jinja file or a tokenizer_config.json.", rich_help_panel=None)] = None,
    messages: Annotated[Optional[str], opt.reworded(opt.Messages, "JSON messages file (default: stdin).")] = None,
    no_generation_prompt: bool = typer.Option(
        False, "--no-generation-prompt", help="Render a finished conversation: no assistant header at the end."
    ),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print template, source, prompt, stop rules and segments as JSON.")] = False,
    var: Optional[List[str]] = typer.Option(
        None, "--var", metavar="NAME=VALUE",
        help="A template variable, e.g. enable_thinking=false or reasoning_effort=high (repeatable; true/false are booleans).",
    ),
) -> None:
    """Render a conversation into the exact prompt a local model receives, without loading a model.

    Reads an OpenAI-style messages array, e.g. [{"role": "user", "content": "Hello"}], from stdin
    or --messages. The prompt is printed exactly, with the BOS token written out where the model
    uses one.
    """

    variables = _template_variables(var or [])
    msgs = load_messages(messages)
    from modelctl.chat.prompt import render_prompt  # noqa: PLC0415 (modelctl.chat.prompt: not on the chat --api-base path)

    rendered = render_prompt(msgs, model=model, template=template, add_generation_prompt=not no_generation_prompt,
                             registry=state.get_registry, variables=variables)
    if rendered.source == "fallback":
        output.warn(f"no chat template known for {model}; using '{rendered.template}' (choose one with --template)")
    if as_json:
        data = rendered.to_dict()
        data["add_generation_prompt"] = not no_generation_prompt
        output.print_json(data)
        return
    _write_prompt(rendered)


def _template_variables(pairs: List[str]) -> dict[str, Any]:
    """--var NAME=VALUE pairs, values typed as config values are (`1024` a number, `[1, 2]` a
    list, anything else text), with `true`/`false` in any case booleans."""
    from modelctl.config_edit import parse_value  # noqa: PLC0415 (modelctl.config_edit: not on the chat --api-base path)

    variables: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise _usage(f"--var {pair!r}: expected NAME=VALUE with a template variable name")
        low = value.strip().lower()
        variables[name.strip()] = low == "true" if low in ("true", "false") else parse_value(value)
    return variables


templates_app = typer.Typer(
    name="templates",
    help="List the conversation templates, or show one.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@templates_app.callback(invoke_without_command=True)
def templates_list(
    ctx: typer.Context,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the templates as JSON.")] = False,
    model: Annotated[Optional[str], opt.reworded(
        opt.ChatModel, "List the chat templates this model's GGUF file holds instead (for --template gguf:NAME).",
        metavar="MODEL|FILE.gguf", rich_help_panel=None)] = None,
) -> None:
    """List the built-in conversation templates, or those in a model's GGUF file."""
    if ctx.invoked_subcommand is not None:
        return
    if model is not None:
        _gguf_templates_list(model, as_json)
        return
    from modelctl.templates import list_templates  # noqa: PLC0415 (modelctl.templates: not on the chat --api-base path)

    templates = list_templates()
    if as_json:
        output.print_json([t.to_dict() for t in templates])
        return
    headers = ["NAME", "SYSTEM", "STOP", "REFERENCE"]
    rows = [[t.name, t.system_policy.value, " ".join(json.dumps(s, ensure_ascii=False) for s in t.stop_str), t.reference]
            for t in templates]
    output.table(headers, rows, "Conversation templates", no_wrap=("NAME",), drop=("REFERENCE", "SYSTEM"))


def _gguf_templates_list(model: str, as_json: bool) -> None:
    from modelctl.chat.prompt import gguf_templates  # noqa: PLC0415 (modelctl.chat.prompt: not on the chat --api-base path)

    found = gguf_templates(model, registry=state.get_registry)
    if as_json:
        output.print_json([{"name": name, "key": key} for name, key in found])
        return
    if not found:
        output.warn(f"{model}: no chat template in a GGUF file here")
        return
    output.table(["NAME", "GGUF KEY"], [list(row) for row in found], f"Chat templates in {model}", no_wrap=("NAME",))


@templates_app.command("show", epilog=examples(
    ('A template and an example rendering', 'modelctl templates show chatml'),
    ('A Jinja file of your own, as JSON', 'modelctl templates show my-template.jinja --json'),
))
def templates_show(
    name: str = typer.Argument(..., help="A template name (or alias), or a template file.",
                              autocompletion=shell_complete.templates),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the template and its example rendering as JSON.")] = False,
) -> None:
    """Show one template and an example rendering."""
    from modelctl.templates import Conversation, SystemPolicy, resolve_template  # noqa: PLC0415 (modelctl.templates: not on the chat --api-base path)

    tpl = resolve_template(template=name)
    example = EXAMPLE_CONVERSATION
    if isinstance(tpl, Conversation) and tpl.system_policy is SystemPolicy.REJECT:
        example = EXAMPLE_CONVERSATION[1:]
    rendered = tpl.render(example)
    if as_json:
        data = tpl.to_dict() if isinstance(tpl, Conversation) else \
            {"name": tpl.name, "source": tpl.source, "template": getattr(tpl, "template", None)}
        data["example"] = {"messages": example, **rendered.to_dict()}
        output.print_json(data)
        return
    lines: list[tuple[str, str]] = [("name", tpl.name), ("source", tpl.source)]
    if isinstance(tpl, Conversation):
        lines += [
            ("description", tpl.description),
            ("reference", tpl.reference),
            ("system message", tpl.system_policy.value
             + (f" (default: {json.dumps(tpl.system_message, ensure_ascii=False)})" if tpl.system_message else "")),
            ("separator style", tpl.sep_style.value),
            ("BOS", json.dumps(tpl.bos, ensure_ascii=False)),
            ("stop", " ".join(json.dumps(s, ensure_ascii=False) for s in tpl.stop_str) or "-"),
            ("stop token ids", " ".join(str(i) for i in tpl.stop_token_ids) or "-"),
            ("models", ", ".join(tpl.models) or "-"),
        ]
    width = max(len(k) for k, _ in lines)
    out = sys.stdout
    for key, value in lines:
        out.write(f"{key.ljust(width)}  {safe(value)}\n")
    out.write("\nexample:\n")
    out.write(_shown(rendered.text))
    out.write("\n" if not rendered.text.endswith("\n") else "")


def register(app: typer.Typer) -> None:
    app.command("prompt", rich_help_panel=panel.GENERATE, epilog=examples(
        ('The exact prompt a local model receives', 'echo \'[{"role":"user","content":"Hi"}]\' | modelctl prompt -m gemma-3-270m'),
        ('A template by name, with one of its variables', 'modelctl prompt -t qwen3 --messages chat.json --var enable_thinking=false'),
        ('Template, stop rules and segments as JSON', 'modelctl prompt -m gemma-3-270m --messages chat.json --json'),
    ))(prompt)
    app.add_typer(templates_app, name="templates", rich_help_panel=panel.GENERATE, epilog=examples(
        ('Every conversation template', 'modelctl templates'),
        ('The chat templates a GGUF file holds', 'modelctl templates -m model.gguf'),
        ('One template and an example rendering', 'modelctl templates show llama-3'),
    ))
