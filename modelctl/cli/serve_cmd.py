"""`modelctl serve`: one OpenAI-compatible endpoint for every model here, local models kept warm."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import shell_complete
from modelctl.cli.help import examples

if TYPE_CHECKING:
    from modelctl.serve.engine_session import EngineRequest


def serve(
    model: Optional[str] = typer.Argument(None, metavar="[MODEL]", show_default=False, help="With --engine: the model the engine serves (any name -m takes).", autocompletion=shell_complete.models),
    engine: Optional[str] = typer.Option(None, "--engine", metavar="ENGINE", help="Start this serving engine for MODEL and send MODEL's requests to it: vllm, sglang, llama-server, llama-cpp-python, ray-serve.", autocompletion=shell_complete.engines, rich_help_panel=panel.SERVER),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --engine: print the engine's command line (its key as \"$MODELCTL_ENGINE_API_KEY\") and start nothing.", rich_help_panel=panel.SERVER),
    engine_port: Optional[int] = typer.Option(None, "--engine-port", min=1, max=65535, help="The engine's port on 127.0.0.1 (default: a free one).", rich_help_panel=panel.SERVER),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="REPO", help="The repository of the original weights (vLLM, SGLang), where the registry names none.", rich_help_panel=panel.SERVER),
    engine_ctx: Optional[int] = typer.Option(None, "--ctx", min=16, help="The engine's context window in tokens (default: the model's; 4096 for a GGUF engine), at most the model's.", rich_help_panel=panel.SERVER),
    replicas: int = typer.Option(1, "--replicas", min=1, max=64, help="With --engine ray-serve: copies of the model to serve.", rich_help_panel=panel.SERVER),
    engine_timeout: float = typer.Option(600.0, "--engine-timeout", min=0.1, max=86400, help="Seconds the engine has to become healthy before it is stopped.", rich_help_panel=panel.SERVER),
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1; any other needs API keys).", rich_help_panel=panel.SERVER),
    port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="Port to listen on (default 8741; 0: any free port).", rich_help_panel=panel.SERVER),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Keys clients must send (Authorization: Bearer KEY), separated by commas; also MODELCTL_SERVE_API_KEY.", rich_help_panel=panel.SERVER),
    keys_file: Optional[Path] = typer.Option(None, "--keys-file", help="A TOML file of labelled keys with optional daily and monthly budgets (USD).", rich_help_panel=panel.SERVER),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", help="How long an idle local model stays loaded: 30s, 5m, 1h; 0 unloads after each request, -1 never (default 5m).", rich_help_panel=panel.LOCAL),
    max_models: Optional[int] = typer.Option(None, "--max-models", min=1, max=64, help="Local models loaded at once (default 2); the least recently used idle one is unloaded first.", rich_help_panel=panel.LOCAL),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Cap on the loaded local models' files together: 8GB, 512MiB.", rich_help_panel=panel.LOCAL),
    queue: Optional[int] = typer.Option(None, "--queue", min=0, max=10_000, help="Requests that may wait for a busy local model (default 8); more get 429.", rich_help_panel=panel.LOCAL),
    kv_cache: Optional[str] = typer.Option(None, "--kv-cache", help="Memory for the evaluated prompts of conversations taking turns on a local model, so each one's next turn starts where it left off (default 256MiB per model; 0: none).", rich_help_panel=panel.LOCAL),
    allow_paths: bool = typer.Option(False, "--allow-paths", help="Let clients name a GGUF file by its path.", rich_help_panel=panel.LOCAL),
    cors: Optional[list[str]] = typer.Option(None, "--cors", help="An origin web pages may call the server from (repeatable; none by default).", rich_help_panel=panel.SERVER),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log requests to the history.", rich_help_panel=panel.HISTORY),
    max_body: int = typer.Option(16, "--max-body-mb", min=1, max=1024, help="Largest request body, in MiB.", rich_help_panel=panel.SERVER),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1, max=600, help="Seconds a request's headers may take to arrive.", rich_help_panel=panel.SERVER),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1, max=3600, help="Seconds a request's body may take to arrive.", rich_help_panel=panel.SERVER),
    grace: float = typer.Option(10.0, "--grace", min=0, max=3600, help="Seconds answers in progress get to finish when the server is stopped.", rich_help_panel=panel.SERVER),
) -> None:
    """Serve every model that can run here over one OpenAI-compatible API (/v1/chat/completions,
    /v1/completions, /v1/embeddings, /v1/models), with /health and /metrics. A request's `model`
    takes whatever -m takes: a registry id, an alias, auto, a fallback group of config.toml's serve.fallback.
    Local models load on first use and stay loaded (--keep-alive); the CLI's chats with a local
    model go through a running server. Stop it with Ctrl-C or SIGTERM.

    With --engine ENGINE MODEL, it first starts that engine (vLLM, SGLang, llama.cpp's server,
    llama-cpp-python's server) for MODEL with flags from the registry, waits until it is healthy,
    sends MODEL's requests to it, and stops it when the server stops."""
    from modelctl.serve.answer import ServeSettings  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.app import Limits  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.run import ServeOptions  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.run import serve as run_server  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.settings import parse_duration, parse_size, serve_config  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.transport.serve_state import DEFAULT_PORT  # noqa: PLC0415 (the server: only for `serve`)

    engine_request = _engine_request(model, engine, engine_port, weights, engine_ctx, engine_timeout, api_key, replicas)
    if dry_run:
        _dry_run(engine_request)
        return
    cfg = serve_config()
    alive = keep_alive if keep_alive is not None else cfg.get("keep_alive", "5m")
    memory = max_memory if max_memory is not None else cfg.get("max_memory")
    settings = ServeSettings(
        keep_alive=parse_duration(alive, "--keep-alive"),
        max_models=max_models or cfg.get("max_models", 2),
        max_bytes=parse_size(memory, "--max-memory") if memory else None,
        queue=queue if queue is not None else cfg.get("queue", 8),
        allow_paths=allow_paths or cfg.get("allow_paths", False),
        fallback={name: tuple(services) for name, services in cfg.get("fallback", {}).items()},
        log=not no_log,
        kv_cache=_kv_cache(kv_cache if kv_cache is not None else cfg.get("kv_cache", "256MiB")),
    )
    file = keys_file or (Path(cfg["keys_file"]).expanduser() if cfg.get("keys_file") else None)
    options = ServeOptions(
        host=host or cfg.get("host", "127.0.0.1"),
        port=port if port is not None else cfg.get("port", DEFAULT_PORT),
        settings=settings, api_keys=_keys(api_key or os.environ.get("MODELCTL_SERVE_API_KEY", "")), keys_file=file,
        cors=tuple(cors or cfg.get("cors", ())), limits=Limits(max_body=max_body * 2**20, body_timeout=body_timeout),
        grace=grace, header_timeout=header_timeout, engine=engine_request,
    )
    raise typer.Exit(run_server(options, say=_say))


def _engine_request(model: str | None, engine: str | None, port: int | None, weights: str | None,
                    ctx: int | None, timeout: float, api_key: str | None, replicas: int = 1) -> "EngineRequest | None":
    """`--engine`'s request; None without it. The engine's key is serve's first one, when given."""
    from modelctl.errors import UsageError  # noqa: PLC0415 (errors: only for --engine)

    if engine is None:
        if model is not None or port is not None or weights is not None or ctx is not None or replicas != 1:
            raise UsageError("MODEL, --engine-port, --weights, --ctx and --replicas go with --engine ENGINE",
                             hint="modelctl serve --engine llama-cpp-python MODEL")
        return None
    if model is None or not model.strip():
        raise UsageError(f"--engine {engine} needs the MODEL it is to serve")
    from modelctl.serve.engine_session import EngineRequest  # noqa: PLC0415 (the server: only for `serve`)

    keys = _keys(api_key or os.environ.get("MODELCTL_SERVE_API_KEY", ""))
    return EngineRequest(engine=engine.strip(), model=model, port=port, weights=weights, ctx=ctx,
                         api_key=keys[0] if keys else None, timeout=timeout, replicas=replicas)


def _dry_run(request: "EngineRequest | None") -> None:
    from modelctl.errors import UsageError  # noqa: PLC0415 (errors: only for --dry-run)
    from modelctl.registry import get_registry  # noqa: PLC0415 (the registry: only for --dry-run)
    from modelctl.serve.engine_session import plan  # noqa: PLC0415 (the server: only for `serve`)

    if request is None:
        raise UsageError("--dry-run shows the command --engine would run: give --engine ENGINE MODEL")
    sys.stdout.write(plan(request, get_registry(None), dry_run=True).command.shell_line() + "\n")


def _kv_cache(text: str) -> int:
    from modelctl.serve.settings import parse_size  # noqa: PLC0415 (the server: only for `serve`)

    return 0 if text.strip() in ("0", "0B", "0b") else parse_size(text, "--kv-cache")


def _keys(text: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in text.split(",") if key.strip())


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def register(app: typer.Typer) -> None:
    app.command("serve", rich_help_panel=panel.GENERATE, epilog=examples(
        ("Serve on 127.0.0.1:8741", "modelctl serve"),
        ("On the network, with keys and budgets", "modelctl serve --host 0.0.0.0 --keys-file ~/.config/modelctl/serve-keys.toml"),
        ("Start vLLM for a registry model and route it", "modelctl serve --engine vllm qwen2.5-7b-instruct"),
        ("The command it would run", "modelctl serve --engine llama-server smollm2-135m --dry-run"),
    ))(serve)
