"""`modelctl doctor`: what this install runs on and whether each part works."""

from __future__ import annotations

from typing import Annotated

import typer

from modelctl.chat.terminal import out
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.help import examples

_MARKS = {"ok": ("OK", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "red"), "info": ("INFO", "cyan")}


def doctor(
    as_json: Annotated[bool, opt.reworded(opt.Json, "One JSON object: every check, its status and fix.")] = False,
    quick: bool = typer.Option(False, "--quick", help="Skip generating with the default model."),
) -> None:
    """Check Python, llama.cpp and its CPU/GPU path, memory, paths, registry, keys and servers.

    Each line says OK or what to do. Exits 1 when a check fails."""
    from modelctl.doctor import Check, run_checks  # noqa: PLC0415 (modelctl.doctor: not on the --help path)
    from modelctl.redaction import redact, redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    def show(check: Check) -> None:
        word, colour = _MARKS.get(check.status, ("?", "white"))
        console = out()
        line = redact(f"{check.name:<17} {check.summary}")
        console.print(f"[{colour}]{word:<5}[/{colour}] ", end="", markup=True)
        console.print(line, markup=False, highlight=False)
        if check.fix:
            console.print(redact(f"{'':<6}{'':<17} fix: {check.fix}"), markup=False, highlight=False)

    checks = run_checks(generate=not quick, registry=state.registry_path(),
                        on_check=None if as_json else show)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        data = {"ok": not failed, "checks": [c.to_dict() for c in checks]}
        output.print_json(redact_data(data))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor", rich_help_panel=panel.SETUP, epilog=examples(
        ('Check everything, generating a few tokens with the default model', 'modelctl doctor'),
        ('Quick checks only, as JSON', 'modelctl doctor --quick --json'),
    ))(doctor)
