"""The options more than one command takes, each declared once as an `Annotated` type, so that a
flag is spelled, checked, completed and grouped the same wherever it appears:

    def complete(model: opt.TextModel = None, deployment: opt.Deployment = None, ...)

Where a command's use of an option is narrower than the text here, it says so in its own words
with `reworded`; the flags, checks and completion stay as declared here:

    deployment: Annotated[Optional[str], opt.reworded(opt.Deployment, "Count with ...")] = None

Options that only share a spelling are declared by their commands: `add --model` is the name a
server knows, `--force` and `--all` mean something else in each command that takes them.
"""

from __future__ import annotations

from copy import copy
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import shell_complete

# What a rewording may change besides the help text.
_REWORDABLE = ("metavar", "rich_help_panel")


def reworded(alias: Any, help: str, **changes: Any) -> Any:
    """The option of `alias` (one of the types below) with one command's own help text, and where
    given its metavar and help panel (`rich_help_panel=None`: the plain Options section)."""
    unknown = set(changes) - set(_REWORDABLE)
    if unknown:
        raise TypeError(f"reworded() cannot change {', '.join(sorted(unknown))}")
    (declared,) = alias.__metadata__
    option = copy(declared)
    option.help = help
    for name, value in changes.items():
        setattr(option, name, value)
    return option


def _model(help: str) -> Any:
    return typer.Option("--model", "-m", metavar="MODEL", help=help, autocompletion=shell_complete.models,
                        rich_help_panel=panel.MODEL)


# -- the model and where it runs ------------------------------------------------------------------

_MODEL_HELP = ("Any model name: a registry id or alias, your alias, a .gguf path, an imported or installed name, "
               "hf:OWNER/REPO[:QUANT] once pulled, NAME:TAG on an Ollama server. "
               "Default: chat.model in config.toml, else {default}.")
# chat's default is an instruction-tuned model; complete's and embed's the base model.
ChatModel = Annotated[Optional[str], _model(_MODEL_HELP.format(
    default="SmolLM2-135M-Instruct (Gemma 3 270M where only that is installed)"))]
TextModel = Annotated[Optional[str], _model(_MODEL_HELP.format(
    default="Gemma 3 270M (SmolLM2-135M-Instruct where only that is installed)"))]
TaskModel = Annotated[Optional[str], _model(
    "Registry id or alias of a model whose tasks include this command's (`modelctl list --task TASK` "
    "lists them), or with --api-base the name a server knows.")]
ModelArgument = Annotated[str, typer.Argument(
    help="Any MODEL chat takes: a registry id or alias, your alias, a GGUF file, an imported or installed name.",
    autocompletion=shell_complete.models)]
Deployment = Annotated[Optional[str], typer.Option(
    "--deployment", "-d", metavar="ID|KIND", autocompletion=shell_complete.kinds, rich_help_panel=panel.MODEL,
    help="Which of the model's deployments to use, by id or kind (llama.cpp, ollama, openai, …).")]
AllowRetired = Annotated[bool, typer.Option(
    "--allow-retired", rich_help_panel=panel.MODEL,
    help="Use a model even though the registry says its provider retired it (else refused, naming its replacement).")]
System = Annotated[Optional[str], typer.Option("--system", "-s", help="System message.", rich_help_panel=panel.MODEL)]
Template = Annotated[Optional[str], typer.Option(
    "--template", "-t", metavar="NAME|FILE", autocompletion=shell_complete.templates, rich_help_panel=panel.MODEL,
    help="Conversation template (a name from `modelctl templates`, or a Jinja file).")]
Messages = Annotated[Optional[str], typer.Option(
    "--messages", metavar="FILE", help="A JSON messages file ('-': stdin).")]

# -- generation -----------------------------------------------------------------------------------

MaxTokens = Annotated[Optional[int], typer.Option(
    "--max-tokens", "-n", min=1, help="Most tokens to generate.", rich_help_panel=panel.GENERATION)]
Temperature = Annotated[Optional[float], typer.Option(
    "--temperature", min=0.0, help="Sampling temperature (0: greedy).", rich_help_panel=panel.GENERATION)]
TopP = Annotated[Optional[float], typer.Option(
    "--top-p", min=0.0, max=1.0, help="Nucleus sampling threshold.", rich_help_panel=panel.GENERATION)]
TopK = Annotated[Optional[int], typer.Option(
    "--top-k", min=0, help="Sample from the K most likely tokens (0: all).", rich_help_panel=panel.GENERATION)]
Seed = Annotated[Optional[int], typer.Option(
    "--seed", help="Random seed, for repeatable answers.", rich_help_panel=panel.GENERATION)]
Stop = Annotated[Optional[List[str]], typer.Option(
    "--stop", rich_help_panel=panel.GENERATION,
    help="Extra stop string (repeatable); \\n, \\t and \\uXXXX name characters: --stop '\\n\\n' stops at a blank line.")]

# -- a local model (llama.cpp) --------------------------------------------------------------------

LlamaOption = Annotated[Optional[List[str]], typer.Option(
    "--option", "-o", metavar="KEY=VALUE", rich_help_panel=panel.LOCAL,
    help="Any other llama.cpp parameter: load-time (flash_attn, n_batch, …) or sampling (min_p, mirostat_mode, …).")]
Ctx = Annotated[Optional[int], typer.Option(
    "--ctx", min=16, help="Context window in tokens (default 4096, at most the model's).", rich_help_panel=panel.LOCAL)]
GpuLayers = Annotated[Optional[int], typer.Option(
    "--gpu-layers", min=-1, rich_help_panel=panel.LOCAL,
    help="Layers to offload to the GPU (-1: all; default: all when the build supports Metal/CUDA, else 0).")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", min=1, help="CPU threads to run the model on.", rich_help_panel=panel.LOCAL)]

# -- a server or an API ---------------------------------------------------------------------------

ApiBase = Annotated[Optional[str], typer.Option(
    "--api-base", metavar="URL", rich_help_panel=panel.SERVER,
    help="An OpenAI-compatible server's base URL (with --model NAME as the server knows it); "
         "with --deployment, that deployment's endpoint.")]
ApiKey = Annotated[Optional[str], typer.Option(
    "--api-key", metavar="KEY", rich_help_panel=panel.SERVER,
    help="The API key (else the deployment's key variable, else the keys file). Never printed.")]
# The task commands (`image`, `speak`, `transcribe`, `classify`, `fill-mask`): -o is their output file.
TaskOption = Annotated[Optional[List[str]], typer.Option(
    "--option", metavar="KEY=VALUE", help="Another field of the request, passed on as it is (repeatable).",
    rich_help_panel=panel.SERVER)]

# -- tools ----------------------------------------------------------------------------------------

Tools = Annotated[Optional[List[str]], typer.Option(
    "--tool", "-T", metavar="NAME",
    help="A tool (repeatable): its name, an MCP server's name (all its tools), or builtin (`modelctl tools list`).")]
Functions = Annotated[Optional[List[Path]], typer.Option(
    "--functions", metavar="FILE.py",
    help="A Python file whose public functions are tools (repeatable); their type hints and docstrings are the schemas.")]

# -- output, history, debugging -------------------------------------------------------------------

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
NoStream = Annotated[bool, typer.Option(
    "--no-stream", help="Print the answer when it is complete.", rich_help_panel=panel.OUTPUT)]
Output = Annotated[Optional[str], typer.Option(
    "--output", "-o", metavar="PATH", help="The file to write (default: a new name in the current directory).",
    rich_help_panel=panel.OUTPUT)]
Force = Annotated[bool, typer.Option(
    "--force", help="Overwrite the output file if it exists.", rich_help_panel=panel.OUTPUT)]
NoLog = Annotated[bool, typer.Option(
    "--no-log", help="Do not log this run to the history.", rich_help_panel=panel.HISTORY)]
Session = Annotated[Optional[str], typer.Option(
    "--session", metavar="NAME", autocompletion=shell_complete.sessions, rich_help_panel=panel.HISTORY,
    help="Continue the session NAME from the history, or start it.")]
Limit = Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Show at most N.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before removing.")]
Quant = Annotated[Optional[str], typer.Option(
    "--quant", metavar="QUANT", help="A quantization (Q4_K_M, Q8_0, …).", autocompletion=shell_complete.quants)]
Debug = Annotated[bool, typer.Option(
    "--debug", help="Show the exact prompt, tokens, stop rules, backend, timings and cost on stderr.",
    rich_help_panel=panel.DEBUG)]
TaskDebug = Annotated[bool, typer.Option(
    "--debug", help="Show each request (credentials hidden) and answer on stderr.", rich_help_panel=panel.DEBUG)]
