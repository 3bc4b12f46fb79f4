"""Model store commands: `pull`, `import`, `rm`, `du` (and the `list --installed` table)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelctl.chat.terminal import err
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, state
from modelctl.cli.help import examples
from modelctl.errors import NotFoundError
from modelctl.terminal_text import safe
from modelctl.units import counted, human_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from modelctl.registry import Model
    from modelctl.resolver import Target
    from modelctl.store.installed import InstalledModel
    from modelctl.store.progress import PullProgress
    from modelctl.store.pull import Note


def _notifier(quiet: bool, progress: PullProgress | None = None) -> Note:
    def note(message: str) -> None:
        if quiet:
            return
        if progress is not None and progress.enabled:
            progress.note(safe(message))
        else:
            sys.stderr.write(f"modelctl: {safe(message)}\n")
            sys.stderr.flush()

    return note


def pull(
    model: Annotated[str, opt.reworded(opt.ModelArgument, "A registry model (id, alias, or your alias for one), or hf:OWNER/REPO[:QUANT] for any GGUF repository on the Hub.")],
    quant: Annotated[Optional[str], opt.reworded(opt.Quant, "Quantization to download (Q4_K_M, Q8_0, ...); default: the best that fits this machine.")] = None,
    deployment: Annotated[Optional[str], opt.reworded(opt.Deployment, "Deployment id or kind (llama.cpp, ollama); default: the model's llama.cpp deployment, else its Ollama one.", rich_help_panel=None)] = None,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars and no notes on stderr."),
    as_json: opt.Json = False,
) -> None:
    """Download a model: a GGUF from the Hugging Face Hub, or a tag through Ollama.

    Downloads go to the Hugging Face cache (shared with other tools), resume where an interrupted
    one stopped, and are verified against their sha256. Prints the local path on stdout.
    """
    from modelctl.refs import HubRef, parse_ref  # noqa: PLC0415 (modelctl.refs: not on the --help path)
    from modelctl.resolver import Resolver  # noqa: PLC0415 (modelctl.resolver: not on the --help path)
    from modelctl.store.progress import PullProgress  # noqa: PLC0415 (modelctl.store: not on the --help path)
    from modelctl.store.pull import pull as do_pull  # noqa: PLC0415 (modelctl.store: not on the --help path)

    ref = parse_ref(model)
    what: "Model | str" = ref.text
    if not isinstance(ref, HubRef):
        target = Resolver(state.get_registry, check=False, locate=False).resolve(ref, deployment)
        if target.entry is None or target.source != "registry":
            _nothing_to_pull(target, quiet)
            return
        what = target.entry
    try:
        with PullProgress(quiet=quiet, console=err()) as progress:
            report = do_pull(what, quant=quant, deployment=deployment, progress=progress,
                             note=_notifier(quiet, progress))
    except KeyboardInterrupt:
        sys.stderr.write("modelctl: the partial download is kept; run the same command again to resume\n")
        raise
    if as_json:
        output.print_records(report.to_dict())
        return
    if not quiet:
        size = report.size if report.size is not None else sum(f.size for f in report.files)
        what = f"{report.model_id}" + (f" ({report.quant})" if report.quant else "")
        if report.kind == "ollama":
            detail = f"Ollama model {report.ollama_tag}" + (f", {human_bytes(size)}" if size else "")
        elif report.files and all(f.reused for f in report.files):
            detail = f"already here, {human_bytes(size)}"
        elif report.files:
            detail = f"{human_bytes(size)}, {report.transferred:,} bytes downloaded"
        else:
            detail = human_bytes(size)
        sys.stderr.write(f"modelctl: pulled {safe(what)}: {detail}\n")
        if report.registry_file:
            sys.stderr.write(f"modelctl: added {safe(report.model_id)} to {safe(report.registry_file)}\n")
    sys.stdout.write(f"{safe(report.path if report.path else report.ollama_tag)}\n")


def import_(
    path: str = typer.Argument(..., metavar="PATH.gguf", help="A GGUF file on this machine (it stays where it is)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name to use it by; a registry model id or alias links the file to that model."),
    as_json: opt.Json = False,
) -> None:
    """Register a GGUF file already on disk, reading its metadata."""
    from modelctl.store.manage import import_file  # noqa: PLC0415 (modelctl.store: not on the --help path)

    report = import_file(path, name, registry=state.get_registry)
    if as_json:
        output.print_records(report.to_dict())
        return
    facts = ", ".join(x for x in (
        report.architecture, report.quant, human_bytes(report.size),
        f"context {report.context_length:,}" if report.context_length else None,
        f"model {report.model_id}" if report.model_id and report.model_id != report.name else None,
    ) if x)
    verb = "re-imported" if report.replaced else "imported"
    sys.stdout.write(safe(f"{verb} {report.name}: {report.path} ({facts})") + "\n")


def rm(
    model: opt.ModelArgument,
    quant: Annotated[Optional[str], opt.reworded(opt.Quant, "Remove only this quantization.")] = None,
    yes: opt.Yes = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print what was removed as JSON.")] = False,
) -> None:
    """Remove a model's local files (asks first). A file of your own outside modelctl's store
    (named by path, or by an alias) is deleted only when you confirm it at a terminal, --yes or not."""
    from modelctl.resolver import Resolver  # noqa: PLC0415 (modelctl.resolver: not on the --help path)
    from modelctl.store.manage import removal_plan, remove  # noqa: PLC0415 (modelctl.store: not on the --help path)

    target = Resolver(state.get_registry, check=False, locate=False).resolve(model)
    # The name the store knows it by: a cached file's as `list --installed` shows it, else the id.
    name = target.names[0] if target.source in ("hf-cache", "models-dir") else target.model_id
    plan = removal_plan(target.source, name, quant, model=target.entry, path=target.path,
                        registry=state.get_registry)
    if not plan.items:
        what = f"{plan.model_id or model}" + (f" ({quant})" if quant else "")
        raise NotFoundError(f"nothing of {what} is on this machine")
    console = err()
    for item in plan.items:
        size = f"  {human_bytes(item.size)}" if item.size and item.kind != "import" else ""
        console.print(safe(f"  {item.description}{size}"), markup=False, highlight=False)
    if plan.own_files:
        _confirm_own_files(plan.own_files, target.alias.name if target.alias else None)
    elif not yes:
        question = f"Remove {counted(len(plan.items), 'item')}" + (
            f" ({human_bytes(plan.size)})" if plan.size else "") + "?"
        output.confirm_removal(question)
    remove(plan)
    for n in plan.notes:
        output.warn(n)
    if as_json:
        output.print_records(plan.to_dict())
        return
    what = safe(f"{plan.model_id or plan.name}" + (f" ({quant})" if quant else ""))
    sys.stdout.write(f"removed {what}: {human_bytes(plan.freed)} freed\n")


def _nothing_to_pull(target: "Target", quiet: bool) -> None:
    """`pull` of a model that is a file here already (or an Ollama server's): said, and its path
    (or tag) printed as a pull prints it."""
    if not quiet:
        sys.stderr.write(f"modelctl: {safe(target.shown)} is {safe(target.how)} here: nothing to pull\n")
    where = target.path if target.path is not None else target.model_id
    sys.stdout.write(f"{safe(str(where))}\n")


def _confirm_own_files(paths: "list[Path]", alias: Optional[str]) -> None:
    """A file of the user's own is deleted only on a yes typed at a terminal: --yes is not enough,
    and with no terminal to ask at, nothing is removed (exit 1)."""
    shown = ", ".join(str(p) for p in paths)
    forget = f"; `modelctl alias rm {alias}` forgets the alias and keeps the file" if alias else ""
    if sys.stdin is None or not sys.stdin.isatty():
        output.error_line(f"{shown} is your own file, outside modelctl's store: it is deleted only when you "
                          f"confirm at a terminal (nothing removed){forget}")
        raise typer.Exit(1)
    output.confirm_removal(f"Delete your own file {shown}? It is not in modelctl's store{forget}.")


_INSTALLED_COLUMNS = ["NAME", "SOURCE", "QUANT", "SIZE", "PATH"]


def _installed_row(m: "InstalledModel") -> list[str]:
    name = m.name + (" (mmproj)" if m.role == "mmproj" else "")
    path = m.path or (f"{m.host} {m.name}" if m.host else "-")
    if m.missing:
        path += " (missing)"
    return [name, m.source, m.quant or "-", human_bytes(m.size_bytes) if m.size_bytes or not m.missing else "-", path]


def print_installed(as_json: bool) -> None:
    """`modelctl list --installed`."""
    from modelctl.store.installed import installed_models  # noqa: PLC0415 (modelctl.store: not on the --help path)

    models = installed_models(registry=state.get_registry)
    if as_json:
        output.print_records([m.to_dict() for m in models])
        return
    output.table(_INSTALLED_COLUMNS, [_installed_row(m) for m in models], "Installed models", right=("SIZE",), no_wrap=("NAME",),
                 drop=("QUANT", "SOURCE"))
    if sys.stdout.isatty():
        err().print(f"{len(models)} installed", style="dim")


def du(
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON object (sizes in bytes).")] = False,
) -> None:
    """Disk used by local models: per model and source, unfinished downloads, free space."""
    from modelctl.store.installed import disk_usage  # noqa: PLC0415 (modelctl.store: not on the --help path)

    usage = disk_usage(registry=state.get_registry)
    if as_json:
        output.print_records(usage)
        return
    rows = [[m["id"] + (" (mmproj)" if m["role"] == "mmproj" else ""), m["source"], m["quant"] or "-",
             human_bytes(m["size_bytes"])] for m in usage["models"]]
    rows += [[f"{p['repo']} (unfinished)", "partial", "-", human_bytes(p["size_bytes"])] for p in usage["partial"]]
    output.table(["NAME", "SOURCE", "QUANT", "SIZE"], rows, "Disk usage", right=("SIZE",), no_wrap=("NAME",),
                 drop=("QUANT", "SOURCE"))
    totals = usage["totals"]
    parts = [f"{src} {human_bytes(n)}" for src, n in totals.items() if n]
    out = sys.stdout
    out.write(f"\nmanaged by modelctl: {human_bytes(usage['managed_bytes'])}"
              + (f" ({', '.join(parts)})" if parts else "") + "\n")
    out.write(f"Hugging Face cache: {safe(usage['hf_cache'])}\n")
    if usage["free_bytes"] is not None:
        out.write(f"free on that disk: {human_bytes(usage['free_bytes'])}\n")


def register(app: typer.Typer) -> None:
    app.command("pull", rich_help_panel=panel.STORE, epilog=examples(
        ('The quantization of a registry model that fits this machine best', 'modelctl pull gemma-3-270m'),
        ('A chosen quantization of any GGUF repository on the Hub', 'modelctl pull hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M'),
        ('Through Ollama instead, quietly', 'modelctl pull llama-3.2-1b-instruct --deployment ollama --quiet'),
    ))(pull)
    app.command("import", rich_help_panel=panel.STORE, epilog=examples(
        ('A GGUF file already on disk, by a name of your choice', 'modelctl import ~/models/mistral-7b.Q4_K_M.gguf --name mistral-local'),
        ('Then chat with it', 'modelctl chat -m mistral-local "Hello"'),
    ))(import_)
    app.command("rm", rich_help_panel=panel.STORE, epilog=examples(
        ("A model's local files (asks first)", 'modelctl rm gemma-3-270m'),
        ('Only one quantization, without asking', 'modelctl rm gemma-3-270m --quant Q8_0 --yes'),
    ))(rm)
    app.command("du", rich_help_panel=panel.STORE, epilog=examples(
        ('Disk used per model and source, and free space', 'modelctl du'),
        ('The totals in bytes, for a script', 'modelctl du --json | jq .totals'),
    ))(du)
