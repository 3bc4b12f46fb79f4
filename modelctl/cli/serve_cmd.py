"""`modelctl serve`: one OpenAI-compatible endpoint for every model here, local models kept warm."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli.help import examples


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1; any other needs API keys)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="Port to listen on (default 8741; 0: any free port)."),
    api_key: Optional[list[str]] = typer.Option(None, "--api-key", help="A key clients must send (Authorization: Bearer KEY); repeatable."),
    keys_file: Optional[Path] = typer.Option(None, "--keys-file", help="A TOML file of labelled keys with optional daily and monthly budgets (USD)."),
    keep_alive: Optional[str] = typer.Option(None, "--keep-alive", help="How long an idle local model stays loaded: 30s, 5m, 1h; 0 unloads after each request, -1 never (default 5m)."),
    max_models: Optional[int] = typer.Option(None, "--max-models", min=1, max=64, help="Local models loaded at once (default 2); the least recently used idle one is unloaded first."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Cap on the loaded local models' files together: 8GB, 512MiB."),
    queue: Optional[int] = typer.Option(None, "--queue", min=0, max=10_000, help="Requests that may wait for a busy local model (default 8); more get 429."),
    allow_paths: bool = typer.Option(False, "--allow-paths", help="Let clients name a GGUF file by its path."),
    cors: Optional[list[str]] = typer.Option(None, "--cors", help="An origin web pages may call the server from (repeatable; none by default)."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log requests to the history."),
    max_body: int = typer.Option(16, "--max-body-mb", min=1, max=1024, help="Largest request body, in MiB."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1, max=600, help="Seconds a request's headers may take to arrive."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1, max=3600, help="Seconds a request's body may take to arrive."),
    grace: float = typer.Option(10.0, "--grace", min=0, max=3600, help="Seconds answers in progress get to finish when the server is stopped."),
) -> None:
    """Serve every model that can run here over one OpenAI-compatible API (/v1/chat/completions,
    /v1/completions, /v1/embeddings, /v1/models), with /health and /metrics. A request's `model`
    takes whatever -m takes: a registry id, an alias, auto, a fallback group of [serve.fallback].
    Local models load on first use and stay loaded (--keep-alive); the CLI's chats with a local
    model go through a running server. Stop it with Ctrl-C or SIGTERM."""
    from modelctl.serve.answer import ServeSettings  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.app import Limits  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.run import ServeOptions  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.run import serve as run_server  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.serve.settings import parse_duration, parse_size, serve_config  # noqa: PLC0415 (the server: only for `serve`)
    from modelctl.transport.serve_state import DEFAULT_PORT  # noqa: PLC0415 (the server: only for `serve`)

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
    )
    file = keys_file or (Path(cfg["keys_file"]).expanduser() if cfg.get("keys_file") else None)
    options = ServeOptions(
        host=host or cfg.get("host", "127.0.0.1"),
        port=port if port is not None else cfg.get("port", DEFAULT_PORT),
        settings=settings, api_keys=tuple(api_key or ()), keys_file=file,
        cors=tuple(cors or cfg.get("cors", ())), limits=Limits(max_body=max_body * 2**20, body_timeout=body_timeout),
        grace=grace, header_timeout=header_timeout,
    )
    raise typer.Exit(run_server(options, say=_say))


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def register(app: typer.Typer) -> None:
    app.command("serve", rich_help_panel=panel.GENERATE, epilog=examples(
        ("Serve on 127.0.0.1:8741", "modelctl serve"),
        ("Then, from any OpenAI client", "curl http://127.0.0.1:8741/v1/chat/completions -d '{\"model\": \"gemma-3-270m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}'"),
        ("On the network, with keys and budgets", "modelctl serve --host 0.0.0.0 --keys-file ~/.config/modelctl/serve-keys.toml"),
        ("Keep models loaded for an hour", "modelctl serve --keep-alive 1h --max-models 3"),
    ))(serve)
