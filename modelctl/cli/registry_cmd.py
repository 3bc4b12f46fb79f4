"""`modelctl registry validate|export|path|update|add-endpoint`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterable, Optional

import typer

from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, shell_complete, state
from modelctl.cli.help import examples
from modelctl.terminal_text import safe
from modelctl.units import counted

if TYPE_CHECKING:
    from modelctl.registry import Model
    from modelctl.registry.schema import Problem
    from modelctl.registry.update import Plan
    from modelctl.store.add_endpoint import Outcome

registry_app = typer.Typer(
    help="Validate, export, locate and update the registry files; add a server's models to yours.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@registry_app.command("validate", epilog=examples(
    ('Check every registry file in use', 'modelctl registry validate'),
    ('A file of your own, the problems as JSON', 'modelctl registry validate my-models.toml --json'),
))
def validate(
    path: Optional[Path] = typer.Argument(None, help="A registry file; without it, every layer in use."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the problems as a JSON array.")] = False,
) -> None:
    """Report every problem: file, line, model id, key and what is wrong. Exit 3 if any."""
    from modelctl.registry import registry_layers, validate_files  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    files = [path] if path else registry_layers(state.registry_path())
    models, problems = validate_files(files)
    if not problems:
        problems.extend(_unknown_templates(models))
    if as_json:
        output.print_records([p.to_dict() for p in problems])
    else:
        for p in problems:
            sys.stdout.write(f"{safe(p)}\n")
        count = len(models)
        status = counted(len(problems), "problem") if problems else "ok"
        names = safe(", ".join(str(f) for f in files))
        sys.stderr.write(f"{names}: {counted(count, 'model')}, {status}\n")
    if problems:
        raise typer.Exit(3)


def _unknown_templates(models: Iterable[Model]) -> list[Problem]:
    """Template names the template layer does not know (skipped if it is unavailable)."""
    from modelctl.registry.schema import Problem  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    try:
        from modelctl.templates import list_templates  # noqa: PLC0415 (modelctl.templates: not on the --help path)
    except ImportError:
        return []
    known = {getattr(t, "name", t) for t in list_templates()}
    return [
        Problem(m.source, f"unknown conversation template '{m.template}' (see `modelctl templates`)", m.id, "template")
        for m in models
        if m.template and m.template not in known
    ]


@registry_app.command("export", epilog=examples(
    ('The merged registry, to a file', 'modelctl registry export > registry.json'),
    ('The ids of the models that run locally', "modelctl registry export | jq -r '.models[] | select(.local) | .id'"),
))
def export() -> None:
    """Print the merged registry as JSON (credentials written into URLs hidden)."""
    output.print_records(state.get_registry().export())


@registry_app.command("path", epilog=examples(
    ('The registry files, lowest layer first', 'modelctl registry path'),
    ('As JSON', 'modelctl registry path --json'),
))
def path(as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON object.")] = False) -> None:
    """Show the registry files, lowest layer first, and whether each exists."""
    from modelctl.config import get_paths  # noqa: PLC0415 (modelctl.config: not on the --help path)
    from modelctl.registry import BUILTIN_REGISTRY  # noqa: PLC0415 (modelctl.registry: not on the --help path)
    from modelctl.registry.loader import generated_registry  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    layers = [("builtin", BUILTIN_REGISTRY), ("generated", generated_registry()), ("user", get_paths().user_registry)]
    extra = state.registry_path()
    if extra:
        layers.append(("extra", Path(extra).expanduser()))
    if as_json:
        output.print_json([{"layer": name, "path": str(p), "exists": p.exists()} for name, p in layers])
        return
    for name, p in layers:
        sys.stdout.write(f"{name:<9} {safe(p)}{'' if p.exists() else '  (not present)'}\n")


@registry_app.command("update", epilog=examples(
    ('What an update would change, without writing', 'modelctl registry update --dry-run'),
    ('Add only the models of providers you have keys for', 'modelctl registry update --providers-with-keys'),
    ('Where each fact came from', 'modelctl registry update --dry-run --source'),
    ('From models.dev and LiteLLM over the network', 'modelctl registry update --live --dry-run'),
))
def update(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes; write nothing.")] = False,
    only_keyed: Annotated[bool, typer.Option("--providers-with-keys", help="Add models only of providers whose API key is set.")] = False,
    sources: Annotated[bool, typer.Option("--source", help="Name the source of each fact the layer holds.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Fetch models.dev's catalogue and LiteLLM's prices (conditional requests, cached) instead of reading the installed packages.")] = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the changes as a JSON object.")] = False,
) -> None:
    """Refresh prices, limits, capabilities and lifecycle from genai-prices and models.dev (the
    installed packages), and add the provider models the registry lacks, into the generated layer
    (`registry path`); your own registry still wins."""
    from modelctl.registry.update import update_registry  # noqa: PLC0415 (modelctl.registry.update: not on the --help path)

    plan, wrote = update_registry(dry_run=dry_run, only_keyed=only_keyed, live=live)
    if as_json:
        data = plan.to_dict()
        data["written"] = wrote
        if sources:
            data["provenance"] = plan.provenance
        output.print_json(data)
        return
    _print_plan(plan, sources)
    done = "would write" if dry_run else "wrote" if wrote else "unchanged:"
    sys.stderr.write(f"{done} {safe(plan.path)}\n" if plan.changed or dry_run or wrote else f"no change: {safe(plan.path)}\n")


def _shown(value: object) -> str:
    return "-" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _print_plan(plan: Plan, sources: bool) -> None:
    """The diff: added models, changed facts (old → new, with their source), newly deprecated."""
    out = sys.stdout.write
    out(f"sources: {', '.join(plan.sources)}\n")
    for model in plan.added_ids:
        out(f"+ {safe(model)}\n")
    for model in plan.removed_ids:
        out(f"- {safe(model)}\n")
    for c in plan.changes:
        out(f"~ {safe(c.model)}  {c.key}: {safe(_shown(c.old))} → {safe(_shown(c.new))}  ({safe(c.source)})\n")
    for model in plan.deprecated:
        out(f"! {safe(model)} is now deprecated\n")
    if sources:
        for model, facts in sorted(plan.provenance.items()):
            for key, source in facts.items():
                out(f"{safe(model)}  {key}  {safe(source)}\n")
    counts = (f"{counted(len(plan.added_ids), 'model')} added, {counted(len(plan.changes), 'fact')} changed, "
              f"{len(plan.deprecated)} newly deprecated")
    sys.stderr.write(counts + "\n")


@registry_app.command("add-endpoint", epilog=examples(
    ('Every model a local vLLM or llama.cpp server lists', 'modelctl registry add-endpoint http://localhost:8000/v1 --yes'),
    ('What an Ollama server would add, under a prefix', 'modelctl registry add-endpoint http://gpu:11434 --kind ollama --prefix gpu/ --dry-run'),
    ('A vLLM server\'s models, joining the registry models they are', 'modelctl registry add-endpoint http://gpu1:8000/v1 --engine vllm'),
))
def add_endpoint(
    url: Annotated[str, typer.Argument(metavar="URL", help="The server's address (http://localhost:8000/v1; Ollama's http://host:11434); no password or key in it.")],
    kind: str = typer.Option("openai-compatible", "--kind", metavar="KIND",
                             help="How the server lists its models: openai-compatible (GET URL/models) or ollama (GET URL/api/tags)."),
    engine: Optional[str] = typer.Option(None, "--engine", metavar="E", autocompletion=shell_complete.engines,
                                         help="The serving engine there (vllm, sglang, llama-server, llama-cpp-python, llm-d, kserve, ray-serve): "
                                              "written into each deployment; a served name that is a registry model's joins that model."),
    prefix: Optional[str] = typer.Option(None, "--prefix", metavar="P", help="Put before each name to make its registry id (gpu/)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be added; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before adding."),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print each model and what became of it as JSON.")] = False,
) -> None:
    """Add every model a server lists to your registry, as `modelctl add` adds one; names the
    registry already knows, and names `add` would refuse, are skipped with the reason."""
    from modelctl.store.add_endpoint import add_endpoint as add_all  # noqa: PLC0415 (modelctl.store: not on the --help path)

    def ask(plan: "list[Outcome]") -> None:
        if not yes:
            new = [o for o in plan if o.status == "new"]
            _report(plan)
            output.confirm(f"Add {counted(len(new), 'model')} to your registry?", "nothing added")

    outcomes = add_all(url, kind=kind, prefix=prefix or "", dry_run=dry_run, registry=state.get_registry, confirm=ask,
                       engine=engine)
    if as_json:
        output.print_records([o.record() for o in outcomes])
    elif not outcomes:
        sys.stderr.write("modelctl: the server lists no models\n")
    elif dry_run or yes:
        _report(outcomes)
    else:
        _report([o for o in outcomes if o.status == "added"])


def _report(outcomes: "list[Outcome]") -> None:
    verbs = {"new": "would add", "added": "added", "skipped": "skipped"}
    for o in outcomes:
        why = f": {o.why}" if o.why else ""
        what = f"{o.served} as a deployment of {o.id}" if o.joins else o.id
        sys.stderr.write(safe(f"{verbs[o.status]} {what}{why}") + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry", rich_help_panel=panel.FIND, epilog=examples(
        ('Check the registry files in use', 'modelctl registry validate'),
        ('Which files are layered, lowest first', 'modelctl registry path'),
        ('A registry of your own over the built-in one, for one run', 'modelctl --registry my-models.toml list'),
    ))
