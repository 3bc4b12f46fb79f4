"""`modelctl services`: the deployments usable right now, with their service metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.help import examples

if TYPE_CHECKING:
    from modelctl.chat.availability import Service


def services(
    show_all: bool = typer.Option(False, "--all", "-a", help="Every deployment, with why it is not usable."),
    model: Annotated[Optional[str], opt.reworded(opt.ChatModel, "Only this model's deployments.", rich_help_panel=None)] = None,
    timeout: float = typer.Option(1.5, "--timeout", min=0.1, max=30.0, help="Seconds each server has to answer its probe."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array.")] = False,
) -> None:
    """The deployments usable right now (key present, local file present, server reachable;
    servers are probed in parallel), with their service metadata: model id, endpoint, api
    version, deployment name; for a serving engine, its state and load."""
    from modelctl.chat.availability import services as check_services  # noqa: PLC0415 (modelctl.chat.availability: not on the --help path)
    from modelctl.resolver import Resolver  # noqa: PLC0415 (modelctl.resolver: not on the --help path)

    registry = state.get_registry()
    models = [Resolver(registry, check=False, locate=False).resolve(model).registry_model("services")] if model else list(registry)
    found = [s for s in check_services(models, timeout=timeout) if show_all or s.usable]
    if as_json:
        output.print_records([s.metadata() for s in found])
        return
    rows = []
    for s in found:
        meta = s.metadata()
        rows.append([s.id, meta["kind"], _engine_cell(s), meta.get("model_id") or "", meta.get("endpoint") or "",
                     meta.get("api_version") or "", meta.get("deployment_name") or "",
                     ("" if s.usable else "no: ") + s.reason])
    output.table(["SERVICE", "KIND", "ENGINE", "MODEL ID", "ENDPOINT", "API VERSION", "DEPLOYMENT", "USABLE"], rows,
                 f"{sum(s.usable for s in found)} usable services", no_wrap=("SERVICE",), wrap=("USABLE",),
                 drop=("API VERSION", "DEPLOYMENT", "MODEL ID", "KIND", "ENDPOINT", "ENGINE"))


def _engine_cell(s: "Service") -> str:
    """A serving engine's name, state and load: "vllm ready, 2 waiting, 8 running, KV cache 41%"."""
    if s.engine is None:
        return ""
    load = s.load
    return f"{s.engine.engine} {s.engine.state}" + (f", {load.text()}" if load else "")


def register(app: typer.Typer) -> None:
    app.command("services", rich_help_panel=panel.FIND, epilog=examples(
        ('What can be used right now', 'modelctl services'),
        ('Every deployment of one model, with why it cannot be used', 'modelctl services -m gpt-4o --all'),
        ('As JSON, giving slow servers more time', 'modelctl services --json --timeout 5'),
    ))(services)
