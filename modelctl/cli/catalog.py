"""Catalog commands: `list`, `search`, `show`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from modelctl.chat.terminal import err, out
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output, shell_complete, state
from modelctl.cli.format import human_count, human_tokens, money
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.registry.vocab import TOKEN_PRICES
from modelctl.terminal_text import json_text, safe
from modelctl.units import counted, human_bytes

if TYPE_CHECKING:
    from modelctl.registry import Model
    from modelctl.registry.values import Access, Deployment

_COLUMNS = ["ID", "PROVIDER", "CATEGORY", "TASKS", "CONTEXT", "PARAMS", "LICENSE", "FREE", "LOCAL", "STATUS"]
# Left out of the table on a narrow terminal, in this order (--json and a pipe have them all).
_NARROW_DROPS = ("CATEGORY", "LICENSE", "PARAMS", "LOCAL", "FREE", "STATUS", "TASKS", "CONTEXT", "PROVIDER")


def _row(m: "Model", today: str) -> list[str]:
    return [
        m.id,
        m.provider,
        m.category,
        ",".join(m.tasks),
        human_tokens(m.context_window),
        human_count(m.parameters),
        m.license.name,
        "yes" if m.free else "no",
        "yes" if m.local else "no",
        "retired" if m.retired(today) else m.status,
    ]


def _print_models(models: list["Model"], *, as_json: bool, title: str, scores: list[float] | None = None) -> None:
    from modelctl.registry.vocab import today_iso  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    today = today_iso()
    if as_json:
        texts = [m.summary_json(today) for m in models]
        if scores is not None:  # the score is the object's last key
            texts = [f'{t[:-1]}, "score": {json_text(round(s, 2))}}}' for t, s in zip(texts, scores)]

        def items() -> list[dict[str, Any]]:
            objects = [m.summary(today) for m in models]
            for item, score in zip(objects, scores or ()):
                item["score"] = round(score, 2)
            return objects

        output.print_record_texts(texts, items)
        return
    output.table(_COLUMNS, [_row(m, today) for m in models], title, no_wrap=("ID",), drop=_NARROW_DROPS)
    if sys.stdout.isatty():
        err().print(counted(len(models), "model"), style="dim")


def list_models(
    provider: Optional[str] = typer.Option(None, "--provider", "-p", help="Publisher or provider (substring, case-insensitive).", autocompletion=shell_complete.providers),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="A task: chat, completion, embedding, code, vision, …", autocompletion=shell_complete.tasks),
    category: Optional[str] = typer.Option(None, "--category", "-c", help="foundation, industry or task.", autocompletion=shell_complete.categories),
    free: bool = typer.Option(False, "--free", help="Only models usable without paying."),
    local: bool = typer.Option(False, "--local", help="Only models that can run on this machine."),
    open_: bool = typer.Option(False, "--open", help="Only open-weights models."),
    min_context: Optional[int] = typer.Option(None, "--min-context", min=1, metavar="N", help="Context window of at least N tokens."),
    use_case: Optional[str] = typer.Option(None, "--use-case", "-u", help="A use case (substring)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Has a deployment of this kind (llama.cpp, ollama, openai, …).", autocompletion=shell_complete.kinds),
    sort: Optional[str] = typer.Option(None, "--sort", "-s", help="id, name, provider, context, parameters, cost, release; prefix '-' to reverse.", autocompletion=shell_complete.sort_keys),
    limit: Annotated[Optional[int], opt.reworded(opt.Limit, "Show at most N models.")] = None,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array.")] = False,
    all_: bool = typer.Option(False, "--all", "-a", help="Also models whose retirement date has passed (hidden by default)."),
    installed: bool = typer.Option(False, "--installed", help="Models present on this machine instead (downloads, Hugging Face cache, imports, Ollama); sizes in bytes in --json."),
) -> None:
    """List models in the registry; filters combine with AND. Retired models are left out unless --all."""
    if installed:
        from modelctl.cli.store_cmd import print_installed  # noqa: PLC0415 (modelctl.cli.store_cmd: not on the list --json path)

        return print_installed(as_json)
    from modelctl.registry.query import ModelFilter, filter_models, sort_models  # noqa: PLC0415 (modelctl.registry: not on the --help path)
    from modelctl.registry.vocab import CATEGORIES, DEPLOYMENT_KINDS, TASKS  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    if category and category.lower() not in CATEGORIES:
        raise UsageError(f"--category: '{category}' is not one of: {', '.join(CATEGORIES)}")
    if task and task.lower() not in TASKS:
        raise UsageError(f"--task: '{task}' is not one of: {', '.join(TASKS)}")
    if kind and kind not in DEPLOYMENT_KINDS:
        raise UsageError(f"--kind: '{kind}' is not one of: {', '.join(DEPLOYMENT_KINDS)}")
    flt = ModelFilter(provider, task, category, free, local, open_, min_context, use_case, kind, include_retired=all_)
    models = sort_models(filter_models(state.get_registry(), flt), sort)
    if limit:
        models = models[:limit]
    _print_models(models, as_json=as_json, title="Models")


def search(
    query: list[str] = typer.Argument(..., help="Words to look for in ids, aliases, names, descriptions and use cases."),
    limit: Annotated[Optional[int], opt.reworded(opt.Limit, "Show at most N results.")] = 20,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array (best match first, with a score).")] = False,
) -> None:
    """Search models by free text, best match first."""
    from modelctl.registry.query import search_models  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    hits = search_models(state.get_registry(), " ".join(query), limit=limit)
    if not hits and not as_json:
        output.warn(f"no model matches '{' '.join(query)}'")
    _print_models(
        [h.model for h in hits], as_json=as_json, title=f"Search: {' '.join(query)}", scores=[h.score for h in hits]
    )


def show(
    model: opt.ModelArgument,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the whole entry as JSON.")] = False,
) -> None:
    """Everything about one model, with each deployment's service metadata; for a file the
    registry does not know (or an Ollama model), what its header (or the server) says."""
    from modelctl.resolver import Resolver  # noqa: PLC0415 (modelctl.resolver: not on the list --json path)

    target = Resolver(state.get_registry, check=False, locate=False).resolve(model)
    m = target.entry
    if m is None:
        _show_facts(target.facts(), as_json)
        return
    if as_json:
        data = m.to_dict()
        data["deployments"] = [d.to_dict() | {"service": d.service_metadata()} for d in m.deployments]
        data["source"] = m.source
        if target.path is not None:
            data["path"] = str(target.path)
        output.print_records(data)
        return
    _print_show(m)


def _show_facts(facts: dict[str, Any], as_json: bool) -> None:
    """`show` of a model the registry does not describe: a key and its value a line."""
    if as_json:
        output.print_records(facts)
        return
    shown = {k: v for k, v in facts.items() if v is not None and k != "deployment"}
    if "size_bytes" in shown:
        shown["size_bytes"] = human_bytes(shown["size_bytes"])
    if "context_length" in shown:
        shown["context_length"] = f"{human_tokens(shown['context_length'])} tokens"
    if "chat_template" in shown:
        shown["chat_template"] = "in the file" if shown["chat_template"] else "none in the file"
    if facts.get("deployment"):
        shown["deployment"] = "{id} ({kind}) {model}".format(**facts["deployment"])
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        out().print(safe(f"{key.replace('_', ' '):<{width}}  {value}"), markup=False, highlight=False)


def _print_show(m: "Model") -> None:
    con = out()
    lines: list[tuple[str, str]] = [
        ("id", m.id),
        ("aliases", ", ".join(m.aliases) or "-"),
        ("provider", m.provider),
        ("family", m.family or "-"),
        ("category", m.category),
        ("tasks", ", ".join(m.tasks)),
        ("status", _lifecycle(m)),
        ("released", m.release_date or "-"),
        ("parameters", human_count(m.parameters)
         + (f" ({human_count(m.active_parameters)} active)" if m.active_parameters else "")),
        ("context", f"{human_tokens(m.context_window)} tokens" if m.context_window else "-"),
        ("max output", f"{m.max_output_tokens} tokens" if m.max_output_tokens else "-"),
        ("architecture", m.architecture or "-"),
        ("languages", ", ".join(m.languages) or "-"),
        ("license", m.license.name + (" (open weights)" if m.open_weights else "") + (", gated" if m.license.gated else "")),
        ("license url", m.license.url or "-"),
        ("free", ("yes" if m.free else "no") + (f" - {m.access.free_tier_notes}" if m.access.free_tier_notes else "")),
        ("rate limits", m.access.rate_limits or "-"),
        ("cost", _prices(m.access, m.prices_as_of)),
        ("local", "yes" if m.local else "no"),
        ("template", m.template or "-"),
        ("frameworks", ", ".join(m.frameworks) or "-"),
    ]
    defaults = m.defaults.to_dict()
    if defaults:
        lines.append(("defaults", ", ".join(f"{k}={v}" for k, v in defaults.items())))
    def line(text: str, style: str | None = None) -> None:  # one line of data, made safe
        con.print(safe(text), markup=False, style=style)

    line(m.name, style="bold" if sys.stdout.isatty() else None)
    if m.description:
        line(m.description)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        line(f"  {key:<{width}}  {value}")
    for title, items in (("use cases", m.use_cases), ("limitations", m.limitations)):
        if items:
            line(f"{title}:")
            for item in items:
                line(f"  - {item}")
    if m.links:
        line("links:")
        for kind, url in m.links.items():
            line(f"  {kind}: {url}")
    line("deployments:")
    for d in m.deployments:
        line(f"  {d.id} ({d.kind}{', local' if d.local else ''})")
        for key, value in d.service_metadata().items():
            if key in ("kind", "local"):
                continue
            if isinstance(value, list):
                value = ", ".join(value)
            line(f"    {key}: {value}")
        for f in d.files:
            extra = ", ".join(x for x in (f.quant, f"{f.size_bytes:,} bytes" if f.size_bytes else "", f"sha256 {f.sha256[:12]}…" if f.sha256 else "") if x)
            line(f"    file: {f.filename} ({extra})")
        if any(getattr(d, key) is not None for key in TOKEN_PRICES) or d.price_tiers or d.unit_prices:
            line(f"    cost: {_prices(d, d.prices_as_of or m.prices_as_of)}")
        if d.notes:
            line(f"    notes: {d.notes}")


def _prices(table: "Access | Deployment", as_of: str | None) -> str:
    """Prices as `show` writes them: per 1M tokens in and out, cached and batch, long-prompt
    tiers, other units."""
    cost_input, cost_output, units = table.cost_input, table.cost_output, table.unit_prices
    by_token = any(getattr(table, key) is not None for key in TOKEN_PRICES)
    parts = [f"in {money(cost_input)}, out {money(cost_output)} per 1M tokens"] if by_token or not units else []
    for words, key in (("cached input", "cost_cache_read"), ("cache write", "cost_cache_write"),
                       ("batch in", "cost_batch_input"), ("batch out", "cost_batch_output")):
        if getattr(table, key) is not None:
            parts.append(f"{words} {money(getattr(table, key))}")
    for tier in table.price_tiers:  # a prompt above the threshold is billed whole at the tier's prices
        parts.append(f"prompts over {human_count(tier['above_input_tokens'])} tokens: "
                     f"in {money(tier.get('cost_input', cost_input))}, out {money(tier.get('cost_output', cost_output))}"
                     + (f", cached input {money(tier['cost_cache_read'])}" if "cost_cache_read" in tier else ""))
    for unit, price in (units or {}).items():
        parts.append(f"{money(price)} per {UNIT_WORDS.get(unit, unit)}")
    text = "; ".join(parts)
    return text + (f" (prices as of {as_of})" if as_of and (by_token or units) else "")


UNIT_WORDS = {"request": "request", "image": "image", "audio_minute": "audio minute",
              "million_characters": "1M characters"}


def _lifecycle(m: "Model") -> str:
    """The status with its dates, e.g. "deprecated 2025-04-14, retired 2025-07-14; use gpt-4.1 instead"."""
    from modelctl.registry.vocab import today_iso  # noqa: PLC0415 (modelctl.registry: not on the --help path)

    parts = [m.status + (f" {m.deprecated}" if m.deprecated else "")]
    if m.retires:
        retired = m.retired(today_iso())
        parts.append(f"{'retired' if retired else 'retires'} {m.retires}")
    text = ", ".join(parts)
    return text + (f"; use {m.replacement} instead" if m.replacement else "")


def register(app: typer.Typer) -> None:
    app.command("list", rich_help_panel=panel.FIND, epilog=examples(
        ('Models that run on this machine without paying', 'modelctl list --free --local'),
        ('Open code models, the longest context first', 'modelctl list --task code --open --sort -context'),
        ('Only the ids, for a script', "modelctl list --provider openai --json | jq -r '.[].id'"),
    ))(list_models)
    app.command("search", rich_help_panel=panel.FIND, epilog=examples(
        ('Models for a use case, best match first', 'modelctl search "long context code review"'),
        ('The five best as JSON, with their scores', 'modelctl search multilingual embedding -n 5 --json'),
    ))(search)
    app.command("show", rich_help_panel=panel.FIND, epilog=examples(
        ('Lifecycle, prices and deployments of a model', 'modelctl show gpt-4o'),
        ('By an alias, every field as JSON', 'modelctl show gemma-3-270m --json'),
    ))(show)
