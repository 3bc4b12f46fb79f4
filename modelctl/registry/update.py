"""`modelctl registry update`: the generated layer, from the maintained sources.

The sources are the installed packages' data, or with `live` models.dev's catalogue and LiteLLM's
price table fetched over HTTP (`live.py`: conditional requests, a cached copy, offline-safe).
The layer (`loader.generated_registry()`) sits between the built-in registry and the user's: its
`[[updates]]` refresh the prices (each with its date), limits, capabilities and lifecycle of the
built-in models a source knows, keeping everything else of the entry (templates, GGUF files,
local deployments); its `[[models]]` add the chat models of mapped providers the registry lacks.
The user's registry is never read for this and never written; its entries win as always.

Prices come from genai-prices where it has the model (dated by its start date, else by the day
models.dev last changed the model, else by the day of the update), else from models.dev; limits,
capabilities, release dates and the deprecated status from models.dev. A price older than the
registry's own is left alone. The whole layer is validated before it is written, atomically; a
run that changes nothing writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import tomli_w

from modelctl.config import parse_toml
from modelctl.errors import RegistryError
from modelctl.files import atomic_write
from modelctl.keys import find_key
from modelctl.registry import live as live_sources
from modelctl.registry.loader import (
    BUILTIN_REGISTRY,
    _summary,
    apply_update,
    check_layer,
    generated_registry,
    load_file,
)
from modelctl.registry.schema import ACCESS_FIELDS, SCHEMA_VERSION, validate_model
from modelctl.registry.sources import (
    CATALOGUE,
    INSTALLED,
    Mapping_,
    Prices,
    ProviderMap,
    SourceModel,
    load_mapping,
    parse,
)
from modelctl.registry.vocab import today_iso

HEADER = (
    "# Written by `modelctl registry update`: do not edit (your own registry.toml in the config dir\n"
    "# wins over it; delete this file to go back to the built-in registry alone).\n"
)


@dataclass(frozen=True)
class Change:
    """One fact that changes: `old` is None for a fact the entry did not have."""

    model: str
    key: str
    old: Any
    new: Any
    source: str


@dataclass
class Plan:
    """What an update would write, and how it differs from the layer in use."""

    path: Path
    sources: list[str]
    updates: list[dict[str, Any]]
    added: list[dict[str, Any]]
    provenance: dict[str, dict[str, str]]
    changes: list[Change] = field(default_factory=list)
    added_ids: list[str] = field(default_factory=list)
    removed_ids: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.added_ids or self.removed_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sources": self.sources,
            "added": self.added_ids,
            "removed": self.removed_ids,
            "newly_deprecated": self.deprecated,
            "changes": [c.__dict__ for c in self.changes],
            "skipped": self.skipped,
        }


def read_sources(loaders: Mapping[str, Callable[[], "tuple[Any, str]"]], mapping: Mapping_,
                 today: str) -> tuple[list[SourceModel], list[SourceModel], list[str]]:
    """(models.dev facts, price-table facts, labels) from the sources `loaders` name."""
    catalogue: list[SourceModel] = []
    prices: list[SourceModel] = []
    labels: list[str] = []
    for name, loader in loaders.items():
        data, label = loader()
        labels.append(label)
        (catalogue if name == CATALOGUE else prices).extend(parse(name, data, label, mapping, today))
    return catalogue, prices, labels


def plan_update(catalogue: list[SourceModel], prices: list[SourceModel], labels: list[str], *,
                mapping: Mapping_ | None = None, providers: Iterable[str] | None = None,
                today: str | None = None, path: Path | None = None) -> Plan:
    """The generated layer the facts make, compared with the one at `path` (the data dir's by
    default). `providers` limits the models added to those providers' (mapping keys)."""
    mapping = mapping or load_mapping()
    today = today or today_iso()
    path = path or generated_registry()
    builtin = load_file(BUILTIN_REGISTRY)
    previous = _read_previous(path)
    allowed = set(providers) if providers is not None else None
    plan = Plan(path, labels, [], [], {})
    known = _index(builtin, mapping)
    taken = {n.lower() for raw in builtin for n in (raw["id"], *raw.get("aliases", ()))}
    price_of = _price_lookup(prices)
    for fact in catalogue:
        pmap = next(p for p in mapping.providers if p.key == fact.provider)
        price = price_of(fact)
        entry = known.get((fact.provider, fact.id.lower()))
        if entry is not None:
            _refresh(plan, entry, fact, price, previous, today, pmap)
        elif fact.chat and not fact.deprecated and not pmap.skips(fact.id) and (allowed is None or fact.provider in allowed):
            if fact.id.lower() in taken:
                plan.skipped.append(f"{fact.provider}/{fact.id}: the id is another model's name in the registry")
                continue
            taken.add(fact.id.lower())
            _add(plan, pmap, fact, price, previous, today)
    _check(plan, builtin)
    _compare(plan, builtin, previous)
    return plan


def _index(builtin: list[dict[str, Any]], mapping: Mapping_) -> dict[tuple[str, str], dict[str, Any]]:
    """Built-in entries by (provider key, API id): a deployment of the provider's kind (and
    address, for an OpenAI-compatible one) serving that id."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in builtin:
        for dep in raw["deployments"]:
            for p in mapping.providers:
                if _serves(p, dep) and dep.get("model"):
                    for name in (dep["model"], raw["id"], *raw.get("aliases", ())):  # `claude-sonnet-4-5` too
                        index.setdefault((p.key, name.lower()), raw)
    return index


def _serves(pmap: ProviderMap, dep: Mapping[str, Any]) -> bool:
    """Whether a deployment is the provider's API: its kind (and address, for an
    OpenAI-compatible one)."""
    same_server = pmap.api_base is None or str(dep.get("api_base", "")).rstrip("/") == pmap.api_base.rstrip("/")
    return dep["kind"] == pmap.kind and same_server


def _price_lookup(prices: list[SourceModel]) -> Callable[[SourceModel], SourceModel | None]:
    """genai-prices' entry for a catalogue model: same provider, by id, else by its match clause."""
    by_id = {(p.provider, p.id.lower()): p for p in prices}

    def find(fact: SourceModel) -> SourceModel | None:
        hit = by_id.get((fact.provider, fact.id.lower()))
        if hit is None:
            hit = next((p for p in prices if p.provider == fact.provider and p.matches(fact.id)), None)
        return hit

    return find


def _price_facts(fact: SourceModel, priced: SourceModel | None, today: str) -> tuple[Prices | None, str, str]:
    """(prices, their date, their source): genai-prices' first, else models.dev's."""
    if priced is not None and priced.prices is not None and priced.prices.input is not None:
        day = priced.prices.since or _full_day(fact.updated) or today
        return priced.prices, day, priced.source
    day = _full_day(fact.updated) or today
    return fact.prices, day, fact.source


def _full_day(value: str | None) -> str | None:
    return value if value and len(value) == 10 else None


def _access_prices(prices: Prices, day: str) -> dict[str, Any]:
    access: dict[str, Any] = {"cost_input": prices.input, "cost_output": prices.output,
                              # the cache's prices where this modelctl's schema has them
                              "cost_cache_read": prices.cache_read, "cost_cache_write": prices.cache_write}
    access = {k: v for k, v in access.items() if v is not None and k in ACCESS_FIELDS}
    if prices.tiers:
        access["price_tiers"] = [{"above_input_tokens": above, **({"cost_input": i} if i is not None else {}),
                                  **({"cost_output": o} if o is not None else {})} for above, i, o in prices.tiers]
    access["prices_as_of"] = day
    return access


def _same_prices(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "prices_as_of"} == {k: v for k, v in b.items() if k != "prices_as_of"}


def _refresh(plan: Plan, raw: dict[str, Any], fact: SourceModel, priced: SourceModel | None,
             previous: dict[str, dict[str, Any]], today: str, pmap: ProviderMap) -> None:
    """An update of a built-in entry with the facts that differ from it."""
    update: dict[str, Any] = {}
    origin: dict[str, str] = {}
    # The entry's limits, capabilities and prices are every deployment's: they are the provider
    # API's facts only where that API serves them all. An open-weight model keeps its own limits
    # and capabilities: the weights fix them, and the API may serve a newer model under the old id.
    served_only_here = all(_serves(pmap, d) for d in raw["deployments"])
    open_weights = bool(raw.get("license", {}).get("open_weights"))
    chat = ("chat" in raw["tasks"] or "completion" in raw["tasks"]) and served_only_here and not open_weights
    for key, value in (("context_window", fact.context_window), ("max_output_tokens", fact.max_output_tokens)):
        if chat and value is not None and value != raw.get(key):
            update[key], origin[key] = value, fact.source
    if fact.release_date and not raw.get("release_date"):
        update["release_date"], origin["release_date"] = fact.release_date, fact.source
    if chat and fact.capabilities and list(fact.capabilities) != raw.get("capabilities"):
        update["capabilities"], origin["capabilities"] = list(fact.capabilities), fact.source
    if fact.deprecated and raw.get("status", "active") in ("active", "preview") and not (raw.get("deprecated") or raw.get("retires")):
        update["status"], origin["status"] = "deprecated", fact.source
    prices, day, source = _price_facts(fact, priced, today)
    if prices is not None and prices.input is not None and served_only_here:
        access = _access_prices(prices, day)
        shipped = {k: raw["access"][k] for k in access if k in raw["access"]}
        newer = day >= raw["access"].get("prices_as_of", "")
        if newer and not _same_prices(access, shipped):
            before = previous.get(raw["id"].lower(), {}).get("access", {})
            if _same_prices(access, before) and "prices_as_of" in before:
                access["prices_as_of"] = before["prices_as_of"]  # the same prices keep the date they had
            update["access"] = access
            origin.update({f"access.{k}": f"{source} ({access['prices_as_of']})" for k in access})
    if update:
        plan.updates.append({"id": raw["id"], **update})
        plan.provenance[raw["id"]] = origin


def _add(plan: Plan, pmap: ProviderMap, fact: SourceModel, priced: SourceModel | None,
         previous: dict[str, dict[str, Any]], today: str) -> None:
    """A new entry for a catalogue model the registry lacks."""
    prices, day, source = _price_facts(fact, priced, today)
    open_weights = bool(fact.open_weights)
    access: dict[str, Any] = {"free_tier": False, "local_capable": False}
    if prices is not None and prices.input is not None:
        priced_access = _access_prices(prices, day)
        before = previous.get(fact.id.lower(), {}).get("access", {})
        if _same_prices(priced_access, before) and "prices_as_of" in before:
            priced_access["prices_as_of"] = before["prices_as_of"]
        access.update(priced_access)
    deployment: dict[str, Any] = {"kind": pmap.kind, "model": fact.id}
    deployment.update({k: v for k, v in (("api_base", pmap.api_base), ("key_env", pmap.key_env)) if v})
    entry: dict[str, Any] = {
        "id": fact.id,
        "name": fact.name or fact.id,
        "provider": pmap.name,
        "category": "industry",
        "tasks": ["chat", "vision"] if fact.vision else ["chat"],
        "context_window": fact.context_window,
        "max_output_tokens": fact.max_output_tokens,
        "release_date": fact.release_date,
        "capabilities": list(fact.capabilities) or None,
        "license": {"name": "Open weights (see the provider)" if open_weights else "Proprietary",
                    "open_weights": open_weights},
        "access": access,
        "deployments": [deployment],
    }
    plan.added.append({k: v for k, v in entry.items() if v is not None})
    origin = {k: fact.source for k in ("name", "context_window", "max_output_tokens", "release_date", "capabilities")
              if entry.get(k) is not None}
    origin.update({f"access.{k}": f"{source} ({access['prices_as_of']})" for k in access
                   if k.startswith(("cost_", "price"))})
    plan.provenance[fact.id] = origin


def _check(plan: Plan, builtin: list[dict[str, Any]]) -> None:
    """Every entry the layer makes, validated whole: problems raise and nothing is written."""
    by_id = {raw["id"]: raw for raw in builtin}
    file = str(plan.path)
    problems = []
    for i, update in enumerate(plan.updates):
        problems += validate_model(apply_update(by_id[update["id"]], update), file=file, index=i,
                                   find_line=lambda _i, _k: None)
    for i, entry in enumerate(plan.added):
        problems += validate_model(entry, file=file, index=i, find_line=lambda _i, _k: None)
    if problems:
        raise RegistryError(_summary(problems), problems=problems)


def _read_previous(path: Path) -> dict[str, dict[str, Any]]:
    """The generated layer in use, by lower-cased id ({} when there is none)."""
    if not path.exists():
        return {}
    models, updates, problems = check_layer(path, generated=True)
    if problems:
        return {}  # a damaged layer is replaced whole
    return {str(t["id"]).lower(): t for t in [*updates, *models]}


def _compare(plan: Plan, builtin: list[dict[str, Any]], previous: dict[str, dict[str, Any]]) -> None:
    """What the new layer changes of the registry in use (the built-in entries under the old layer)."""
    by_id = {raw["id"].lower(): raw for raw in builtin}
    old_added = {k for k in previous if k not in by_id}
    new_added = {m["id"].lower(): m for m in plan.added}
    plan.added_ids = sorted(m["id"] for k, m in new_added.items() if k not in old_added)
    plan.removed_ids = sorted(previous[k]["id"] for k in old_added if k not in new_added)
    for update in plan.updates:
        key = update["id"].lower()
        old = apply_update(by_id[key], previous[key]) if key in previous else by_id[key]
        new = apply_update(by_id[key], update)
        _diff(plan, update["id"], old, new)
    for key, before in previous.items():  # updates dropped: back to the built-in facts
        if key in by_id and not any(u["id"].lower() == key for u in plan.updates):
            _diff(plan, by_id[key]["id"], apply_update(by_id[key], before), by_id[key])
    for key in new_added.keys() & old_added:
        _diff(plan, new_added[key]["id"], previous[key], new_added[key])


def _diff(plan: Plan, model: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    origin = plan.provenance.get(model, {})
    for key in ("context_window", "max_output_tokens", "release_date", "capabilities", "status"):
        if old.get(key) != new.get(key):
            plan.changes.append(Change(model, key, old.get(key), new.get(key), origin.get(key, "built-in registry")))
            if key == "status" and new.get(key) == "deprecated":
                plan.deprecated.append(model)
    old_access, new_access = old.get("access", {}), new.get("access", {})
    for key in sorted(set(old_access) | set(new_access)):
        if old_access.get(key) != new_access.get(key):
            source = origin.get(f"access.{key}", "built-in registry")
            plan.changes.append(Change(model, f"access.{key}", old_access.get(key), new_access.get(key), source))


def render(plan: Plan) -> str:
    """The layer as TOML, with its header."""
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "sources": plan.sources}
    if plan.updates:
        doc["updates"] = plan.updates
    if plan.added:
        doc["models"] = plan.added
    if plan.provenance:
        doc["provenance"] = plan.provenance
    return HEADER + tomli_w.dumps(doc)


def write(plan: Plan) -> bool:
    """Write the layer (atomically) unless it is already what is on disk; whether it was written."""
    text = render(plan)
    parse_toml(text, str(plan.path))  # what is written must read back
    try:
        if plan.path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    atomic_write(plan.path, text.encode("utf-8"))
    return True


def provenance(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Where each fact of the generated layer came from: {model id: {key: source}}."""
    path = path or generated_registry()
    if not path.exists():
        return {}
    doc = parse_toml(path.read_text(encoding="utf-8"), str(path))
    table = doc.get("provenance", {})
    return table if isinstance(table, dict) else {}


def providers_with_keys(mapping: Mapping_) -> list[str]:
    """The mapped providers whose API key this user has (environment or keys file)."""
    return [p.key for p in mapping.providers if find_key(p.kind, key_env=p.key_env).value]


def update_registry(*, dry_run: bool = False, only_keyed: bool = False, live: bool = False,
                    loaders: Mapping[str, Callable[[], "tuple[Any, str]"]] | None = None,
                    today: str | None = None) -> tuple[Plan, bool]:
    """Read the sources (the installed packages', or with `live` models.dev's and LiteLLM's
    over HTTP), plan the generated layer and write it unless `dry_run`: (the plan, whether the
    file was written). Any bad source or entry raises before anything is written."""
    mapping = load_mapping()
    today = today or today_iso()
    fetched = live_sources.fetch_all() if live else []
    if fetched:
        loaders = {f.source.name: f.document for f in fetched}
    catalogue, prices, labels = read_sources(loaders or INSTALLED, mapping, today)
    providers = providers_with_keys(mapping) if only_keyed else None
    plan = plan_update(catalogue, prices, labels, mapping=mapping, providers=providers, today=today)
    if dry_run:
        return plan, False
    wrote = write(plan)
    live_sources.save(fetched)  # the copies the next run's conditional requests rest on
    return plan, wrote
