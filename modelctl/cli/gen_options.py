"""Options shared by the commands that generate text (`chat`, `complete`) and that open a model
(`embed` too): declared once, so each means the same everywhere."""

from __future__ import annotations

import typer

from modelctl.cli import help as panel

MODEL = typer.Option(None, "--model", "-m", metavar="MODEL",
                     help="Registry id or alias (a local GGUF, a server or an API), or a path to a .gguf file. "
                     "Default: chat.model in config.toml, else Gemma 3 270M (SmolLM2-135M-Instruct where only that is installed).", rich_help_panel=panel.MODEL)
MAX_TOKENS = typer.Option(None, "--max-tokens", "-n", min=1, help="Most tokens to generate.", rich_help_panel=panel.GENERATION)
TEMPERATURE = typer.Option(None, "--temperature", min=0.0, help="Sampling temperature (0: greedy).", rich_help_panel=panel.GENERATION)
TOP_P = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling threshold.", rich_help_panel=panel.GENERATION)
TOP_K = typer.Option(None, "--top-k", min=0, help="Sample from the K most likely tokens (0: all).", rich_help_panel=panel.GENERATION)
SEED = typer.Option(None, "--seed", help="Random seed, for repeatable answers.", rich_help_panel=panel.GENERATION)
STOP = typer.Option(None, "--stop", help="Extra stop string (repeatable); \\n, \\t and \\uXXXX name characters: --stop '\\n\\n' stops at a blank line.", rich_help_panel=panel.GENERATION)
OPTION = typer.Option(None, "--option", "-o", metavar="KEY=VALUE",
                      help="Any other llama.cpp parameter: load-time (flash_attn, n_batch, …) or sampling "
                      "(min_p, mirostat_mode, …).", rich_help_panel=panel.LOCAL)
CTX = typer.Option(None, "--ctx", min=16, help="Context window in tokens (default 4096, at most the model's).", rich_help_panel=panel.LOCAL)
GPU_LAYERS = typer.Option(None, "--gpu-layers", min=-1,
                          help="Layers to offload to the GPU (-1: all; default: all when the build supports "
                          "Metal/CUDA, else 0).", rich_help_panel=panel.LOCAL)
THREADS = typer.Option(None, "--threads", min=1, help="CPU threads for generation.", rich_help_panel=panel.LOCAL)
DEPLOYMENT = typer.Option(None, "--deployment", "-d", metavar="ID|KIND",
                          help="Which of the model's deployments to use, by id or kind (llama.cpp, ollama, openai, …).", rich_help_panel=panel.MODEL)
API_BASE = typer.Option(None, "--api-base", metavar="URL",
                        help="An OpenAI-compatible server's base URL (with --model NAME as the server knows it); "
                        "with --deployment, that deployment's endpoint.", rich_help_panel=panel.SERVER)
API_KEY = typer.Option(None, "--api-key", metavar="KEY",
                       help="The API key (else the deployment's key variable, else the keys file). Never printed.", rich_help_panel=panel.SERVER)
NO_STREAM = typer.Option(False, "--no-stream", help="Print the answer when it is complete.", rich_help_panel=panel.OUTPUT)
DEBUG = typer.Option(False, "--debug", help="Show the exact prompt, tokens, stop rules, backend and timings on stderr.", rich_help_panel=panel.DEBUG)

# The task commands (`image`, `speak`, `transcribe`, `classify`, `fill-mask`): -o is their output file.
TASK_MODEL = typer.Option(None, "--model", "-m", metavar="MODEL",
                          help="Registry id or alias of a model whose tasks include this command's "
                          "(`modelctl list --task TASK` lists them), or with --api-base the name a server knows.", rich_help_panel=panel.MODEL)
TASK_API_BASE = typer.Option(None, "--api-base", metavar="URL",
                             help="An OpenAI-compatible server's base URL; with --deployment, that deployment's endpoint.", rich_help_panel=panel.SERVER)
TASK_OPTION = typer.Option(None, "--option", metavar="KEY=VALUE",
                           help="Another field of the request, passed on as it is (repeatable).", rich_help_panel=panel.SERVER)
TASK_DEBUG = typer.Option(False, "--debug", help="Show each request (credentials hidden) and answer on stderr.", rich_help_panel=panel.DEBUG)
OUTPUT = typer.Option(None, "--output", "-o", metavar="PATH",
                      help="The file to write (default: a new name in the current directory).", rich_help_panel=panel.OUTPUT)
FORCE = typer.Option(False, "--force", help="Overwrite the output file if it exists.", rich_help_panel=panel.OUTPUT)
ALLOW_RETIRED = typer.Option(False, "--allow-retired",
                             help="Use a model even though the registry says its provider retired it (else refused, "
                             "naming its replacement).", rich_help_panel=panel.MODEL)
