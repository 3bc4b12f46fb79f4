"""`modelctl ps` and `modelctl stop`: the local models a running `modelctl serve` keeps loaded,
and unloading them (the library side: `modelctl.transport.serve_client`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.terminal_text import safe

if TYPE_CHECKING:
    from modelctl.transport.serve_client import LoadedModel, RunningEngine

_COLUMNS = ["MODEL", "SIZE", "LOADED", "IDLE", "UNTIL", "QUEUE", "BUSY"]


def ps(
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the server and its loaded models as JSON.")] = False,
) -> None:
    """The models the running `modelctl serve` keeps loaded: file size, how long ago each was
    loaded, how long it has been idle, how long until it is unloaded if no request comes (its
    keep-alive), the requests waiting for it and whether it is answering one now; and the
    serving engines it started (`serve --engine`)."""
    from modelctl.transport.serve_client import running_server, server_status  # noqa: PLC0415 (modelctl.transport: not on the --help path)

    server = running_server()
    models, engines = server_status(server)
    if as_json:
        output.print_records({"server": {"url": server.url, "pid": server.pid, "version": server.version,
                                         "started": server.started},
                              "models": [m.to_dict() for m in models], "engines": [e.to_dict() for e in engines]})
        return
    where = f"the modelctl server at {server.url} (pid {server.pid})"
    if engines:
        output.table(_ENGINE_COLUMNS, [_engine_row(e) for e in engines], f"Engines started by {where}",
                     right=("UP",), no_wrap=("MODEL", "URL"))
    if not models and engines:
        return
    if not models:
        sys.stderr.write(safe(f"modelctl: no model is loaded in {where}") + "\n")
        return
    output.table(_COLUMNS, [_row(m) for m in models], f"Loaded in {where}",
                 right=("SIZE", "LOADED", "IDLE", "UNTIL", "QUEUE"), no_wrap=("MODEL",), drop=("LOADED", "QUEUE"))


def _row(m: "LoadedModel") -> list[str]:
    from modelctl.units import human_bytes  # noqa: PLC0415 (modelctl.units: not on the --help path)

    until = "never" if m.expires_in_s is None else _duration(m.expires_in_s)
    return [m.model, human_bytes(m.size_bytes), _duration(m.loaded_s, " ago"), _duration(m.idle_s), until,
            str(m.queue), "yes" if m.busy else "no"]


_ENGINE_COLUMNS = ["ENGINE", "MODEL", "URL", "PID", "UP"]


def _engine_row(e: "RunningEngine") -> list[str]:
    return [e.engine, e.model, e.url, "-" if e.pid is None else str(e.pid),
            _duration(e.running_s) if e.alive else "exited"]


def _duration(seconds: float | None, suffix: str = "") -> str:
    """45 -> '45s', 312 -> '5m 12s', 7500 -> '2h 5m', 97200 -> '1d 3h'; None -> '-'."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            rest = (s % size) // sub_size
            return f"{s // size}{unit}" + (f" {rest}{sub}" if rest else "") + suffix
    return f"{s}s{suffix}"


def stop(
    model: Annotated[Optional[str], typer.Argument(metavar="MODEL", help="The model to unload: any name -m takes.", show_default=False)] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Unload every loaded model.")] = False,
) -> None:
    """Unload a model from the running `modelctl serve` (it is loaded again by its next request);
    with --all, every model. Prints the id of each model unloaded."""
    from modelctl.refs import FileRef, parse_ref  # noqa: PLC0415 (modelctl.refs: not on the --help path)
    from modelctl.transport.serve_client import ALL, running_server, stop_models  # noqa: PLC0415 (modelctl.transport: not on the --help path)

    if (model is None) == (not all_models):
        raise UsageError("give one MODEL to unload, or --all (not both)")
    name = ALL
    if model is not None:
        ref = parse_ref(model)
        # the server runs in another directory: a relative path is made whole here
        name = str(ref.path.absolute()) if isinstance(ref, FileRef) else model.strip()
    server = running_server()
    stopped = stop_models(server, name)
    if not stopped:
        sys.stderr.write(safe(f"modelctl: no model was loaded in the modelctl server at {server.url}") + "\n")
    sys.stdout.write("".join(safe(f"unloaded {m}") + "\n" for m in stopped))


def register(app: typer.Typer) -> None:
    app.command("ps", rich_help_panel=panel.STORE, epilog=examples(
        ('The models the running server keeps loaded', 'modelctl ps'),
        ('The same as JSON, for a script', 'modelctl ps --json | jq ".models[].model"'),
    ))(ps)
    app.command("stop", rich_help_panel=panel.STORE, epilog=examples(
        ('Unload one model from the running server', 'modelctl stop gemma-3-270m'),
        ('Unload every model it holds', 'modelctl stop --all'),
    ))(stop)
