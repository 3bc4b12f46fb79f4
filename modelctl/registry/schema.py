"""The registry schema as data, and validation that reports every problem at once.

Each table's allowed keys map to a checker. A checker returns None when the value is fine, or a
short message saying what was expected. `validate_model` walks one raw `[[models]]` table, adds
`Problem`s for unknown keys, wrong types, bad enum values, missing fields and inconsistencies,
and never raises: the caller decides whether problems are fatal.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from modelctl.registry.vocab import (
    CACHE_PRICES,
    CAPABILITIES,
    CATEGORIES,
    DEPLOYMENT_KINDS,
    ENGINES,
    LINK_KINDS,
    LOCAL_KINDS,
    STATUSES,
    TASKS,
    TOKEN_PRICES,
    is_local,
)
from modelctl.transport.urls import url_problem

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """One validation finding: where (file, line, model, key) and what."""

    file: str
    message: str
    model: str | None = None
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [where]
        if self.model:
            parts.append(f"model '{self.model}'")
        if self.key:
            parts.append(self.key)
        return ": ".join(parts) + f": {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# --- checkers -------------------------------------------------------------------------------

Checker = Callable[[Any], "str | None"]


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "expected a non-empty string"


def _name(v: Any) -> str | None:
    """A name a person types (an id, an alias): names typed are taken without the white space
    at their ends, so a name that has some there could never be given."""
    if not isinstance(v, str) or not v.strip():
        return "expected a non-empty string"
    return None if v == v.strip() else f"{v!r} has white space at an end, so it could never be typed"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def _pos_int(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
    return None if ok else "expected a positive integer"


def _int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else "expected an integer"


def _number(lo: float | None = None, hi: float | None = None) -> Checker:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "expected a number"
        if isinstance(v, float) and not math.isfinite(v):  # TOML's nan and inf
            return "expected a finite number"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"expected a number from {lo} to {hi}" if hi is not None else f"expected a number >= {lo}"
        return None

    return check


def _enum(choices: tuple[str, ...]) -> Checker:
    def check(v: Any) -> str | None:
        if isinstance(v, str) and v in choices:
            return None
        near = difflib.get_close_matches(str(v), choices, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"'{v}' is not one of: {', '.join(choices)}{hint}"

    return check


def _list(item: Checker, *, nonempty: bool = False) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return "expected a list"
        if nonempty and not v:
            return "expected at least one item"
        for i, x in enumerate(v):
            msg = item(x)
            if msg:
                return f"item {i + 1}: {msg}"
        if len({repr(x) for x in v}) != len(v):
            return "has duplicate items"
        return None

    return check


def _date(v: Any) -> str | None:
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", v):
        return None
    return "expected a date as YYYY-MM or YYYY-MM-DD (a quoted string)"


def _day(v: Any) -> str | None:
    """A calendar date as YYYY-MM-DD: lifecycle and price dates are compared with today."""

    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        try:
            datetime.date.fromisoformat(v)
            return None
        except ValueError:
            return f"'{v}' is not a calendar date"
    return "expected a date as YYYY-MM-DD (a quoted string)"


def _env_name(v: Any) -> str | None:
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return None
    return "expected an environment variable name"


def _sha256(v: Any) -> str | None:
    return None if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) else "expected 64 lowercase hex digits"


def safe_relative_path(v: Any) -> str | None:
    """A file name from a registry or server: relative, no '..', no backslash, no control chars."""
    if not isinstance(v, str) or not v:
        return "expected a file name"
    if v.startswith("/") or "\\" in v or re.search(r"[\x00-\x1f]", v) or re.match(r"^[A-Za-z]:", v):
        return f"'{v}' is not a plain relative path"
    if any(part in ("", ".", "..") for part in v.split("/")):
        return f"'{v}' would leave its directory or is not a plain relative path"
    return None



TIER_FIELDS = ("above_input_tokens", "cost_input", "cost_output", *CACHE_PRICES)


def _price_tier(v: Any) -> str | None:
    """One long-prompt price: `{above_input_tokens = N, cost_input = X, cost_output = Y}`, and
    the cache's prices above that size where they differ."""
    if not isinstance(v, dict):
        return "expected a table with above_input_tokens and cost_input and/or cost_output"
    extra = sorted(set(v) - set(TIER_FIELDS))
    if extra:
        return f"unknown key {extra[0]} (a tier has {', '.join(TIER_FIELDS)})"
    if "above_input_tokens" not in v:
        return "missing above_input_tokens"
    if "cost_input" not in v and "cost_output" not in v:
        return "needs cost_input or cost_output"
    for key in TIER_FIELDS:
        msg = (_pos_int if key == "above_input_tokens" else _number(0))(v[key]) if key in v else None
        if msg:
            return f"{key}: {msg}"
    return None


def _price_tiers(v: Any) -> str | None:
    """Prices for prompts above a size, thresholds rising (Gemini's and Anthropic's long-context
    prices: a prompt over the threshold is billed, whole, at the tier's prices)."""
    msg = _list(_price_tier, nonempty=True)(v)
    if msg:
        return msg
    above = [tier["above_input_tokens"] for tier in v]
    return None if above == sorted(set(above)) else "tiers must have rising above_input_tokens"


# Prices not per token (USD): per request (any request, a chat's too), per generated image, per
# minute of audio transcribed, per million characters spoken.
PRICE_UNITS = ("request", "image", "audio_minute", "million_characters")


def _unit_prices(v: Any) -> str | None:
    if not isinstance(v, dict) or not v:
        return f"expected a table of prices by unit ({', '.join(PRICE_UNITS)})"
    for unit, price in v.items():
        if unit not in PRICE_UNITS:
            return _enum(PRICE_UNITS)(unit)
        msg = _number(0)(price)
        if msg:
            return f"{unit}: {msg}"
    return None


# --- the tables -----------------------------------------------------------------------------

LICENSE_FIELDS: dict[str, Checker] = {"name": _str, "open_weights": _bool, "url": url_problem, "gated": _bool}
LICENSE_REQUIRED = ("name", "open_weights")

ACCESS_FIELDS: dict[str, Checker] = {
    "free_tier": _bool,
    "local_capable": _bool,
    "free_tier_notes": _str,
    "rate_limits": _str,
    **{key: _number(0) for key in TOKEN_PRICES},
    "price_tiers": _price_tiers,
    "unit_prices": _unit_prices,
    "prices_as_of": _day,
}
ACCESS_REQUIRED = ("free_tier", "local_capable")

DEFAULTS_FIELDS: dict[str, Checker] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": _int,
    "max_tokens": _pos_int,
    "seed": _int,
    "repeat_penalty": _number(0),
    "stop": _list(_str),
}

GGUF_FILE_FIELDS: dict[str, Checker] = {
    "quant": _str,
    "filename": safe_relative_path,
    "size_bytes": _pos_int,
    "sha256": _sha256,
    "shards": _list(safe_relative_path, nonempty=True),
}
GGUF_FILE_REQUIRED = ("quant", "filename")

_COMMON_DEPLOYMENT: dict[str, Checker] = {
    "id": _name,
    "kind": _enum(DEPLOYMENT_KINDS),
    "key_env": _env_name,
    **{key: _number(0) for key in TOKEN_PRICES},
    "price_tiers": _price_tiers,
    "unit_prices": _unit_prices,
    "prices_as_of": _day,
    "notes": _str,
}

# kind -> (required keys, optional keys); each key's checker is in _DEPLOYMENT_CHECKERS.
DEPLOYMENT_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "llama.cpp": ((), ("repo", "files", "package", "default_quant", "revision", "mmproj")),
    "ollama": (("tag",), ("host",)),
    "openai": (("model",), ("api_base", "organization")),
    "azure-openai": (("model", "api_version"), ("deployment", "endpoint")),
    "azure-ai": (("model",), ("deployment", "endpoint", "api_version")),
    "openai-compatible": (("model", "api_base"), ("engine",)),
    "hf-inference": (("model",), ("api_base", "provider", "task")),
    "mistral": (("model",), ("api_base",)),
    "gemini": (("model",), ("api_base",)),
    "anthropic": (("model",), ("api_base", "api_version")),
}

_DEPLOYMENT_CHECKERS: dict[str, Checker] = {
    "model": _str,
    "engine": _enum(ENGINES),
    "api_base": url_problem,
    "endpoint": url_problem,
    "api_version": _str,
    "deployment": _str,
    "organization": _str,
    "provider": _str,
    "task": _str,
    "tag": _str,
    "host": url_problem,
    "repo": lambda v: None if isinstance(v, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", v) else "expected OWNER/NAME",
    "package": lambda v: (None if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][\w.]*", v)
                          else "expected a Python package name"),
    "default_quant": _str,
    "revision": _str,
    "mmproj": safe_relative_path,
    "files": lambda v: None if isinstance(v, list) and v else "expected a non-empty list of file tables",
}

MODEL_FIELDS: dict[str, Checker] = {
    "id": _name,
    "name": _str,
    "aliases": _list(_name),
    "provider": _str,
    "family": _str,
    "description": _str,
    "category": _enum(CATEGORIES),
    "tasks": _list(_enum(TASKS), nonempty=True),
    "capabilities": _list(_enum(CAPABILITIES)),
    "parameters": _pos_int,
    "active_parameters": _pos_int,
    "context_window": _pos_int,
    "max_output_tokens": _pos_int,
    "embedding_dimensions": _pos_int,
    "architecture": _str,
    "languages": _list(_str),
    "release_date": _date,
    "status": _enum(STATUSES),
    "deprecated": _day,
    "retires": _day,
    "replacement": _name,
    "template": _str,
    "use_cases": _list(_str),
    "limitations": _list(_str),
    "frameworks": _list(_str),
    # Tables are checked by their own field maps below; these only check the container type.
    "links": lambda v: None if isinstance(v, dict) else "expected a table",
    "license": lambda v: None if isinstance(v, dict) else "expected a table",
    "access": lambda v: None if isinstance(v, dict) else "expected a table",
    "defaults": lambda v: None if isinstance(v, dict) else "expected a table",
    "deployments": lambda v: (None if isinstance(v, list) and v
                              else "expected at least one [[models.deployments]] table"),
}
MODEL_REQUIRED = ("id", "name", "provider", "category", "tasks", "license", "access", "deployments")

# What the generated layer (`registry update`) may change of a model below it: `[[updates]]`
# tables of these keys, `access` merged key by key; the rest of the entry is kept as written.
UPDATE_FIELDS = ("id", "context_window", "max_output_tokens", "release_date", "status", "capabilities", "access")
UPDATE_ACCESS_FIELDS = ("cost_input", "cost_output", "cost_cache_read", "cost_cache_write", "price_tiers",
                        "prices_as_of")


# --- validation -----------------------------------------------------------------------------

LineFinder = Callable[[str], "int | None"]


class _Reporter:
    """Collects problems for one model, locating each key's line when it can."""

    def __init__(self, file: str, model: str | None, find_line: LineFinder) -> None:
        self.file, self.model, self.find_line = file, model, find_line
        self.problems: list[Problem] = []

    def add(self, key: str | None, message: str) -> None:
        line = self.find_line(key or "")
        self.problems.append(Problem(self.file, message, self.model, key, line))


def _check_table(
    rep: _Reporter,
    table: Mapping[str, Any],
    spec: Mapping[str, Checker],
    required: tuple[str, ...],
    prefix: str,
) -> None:
    for key, value in table.items():
        checker = spec.get(key)
        if checker is None:
            near = difflib.get_close_matches(key, list(spec), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            rep.add(prefix + key, f"unknown key{hint}")
            continue
        msg = checker(value)
        if msg:
            rep.add(prefix + key, msg)
    for key in required:
        if key not in table:
            rep.add(prefix + key, "missing (required)")


def _check_deployment(rep: _Reporter, dep: Any, index: int, seen_ids: set[str]) -> None:
    prefix = f"deployments[{index}]."
    if not isinstance(dep, dict):
        rep.add(prefix.rstrip("."), "expected a table")
        return
    kind = dep.get("kind")
    if kind is None:
        rep.add(prefix + "kind", f"missing (required; one of: {', '.join(DEPLOYMENT_KINDS)})")
        return
    if kind not in DEPLOYMENT_KEYS:
        rep.add(prefix + "kind", _enum(DEPLOYMENT_KINDS)(kind) or "")
        return
    required, optional = DEPLOYMENT_KEYS[kind]
    spec = dict(_COMMON_DEPLOYMENT)
    spec.update({k: _DEPLOYMENT_CHECKERS[k] for k in required + optional})
    _check_table(rep, dep, spec, required, prefix)

    dep_id = dep.get("id", kind)
    if isinstance(dep_id, str):
        if dep_id in seen_ids:
            rep.add(prefix + "id", f"duplicate deployment id '{dep_id}' (give each deployment a distinct id)")
        seen_ids.add(dep_id)

    if kind == "llama.cpp":
        _check_llamacpp(rep, dep, prefix)


def _check_llamacpp(rep: _Reporter, dep: Mapping[str, Any], prefix: str) -> None:
    if "package" not in dep and not ("repo" in dep and "files" in dep):
        rep.add(prefix + "repo", "a llama.cpp deployment needs `repo` and `files`, or `package`")
    files = dep.get("files")
    if not isinstance(files, list):
        return
    quants: set[str] = set()
    for i, f in enumerate(files):
        fprefix = f"{prefix}files[{i}]."
        if not isinstance(f, dict):
            rep.add(fprefix.rstrip("."), "expected a table with quant and filename")
            continue
        _check_table(rep, f, GGUF_FILE_FIELDS, GGUF_FILE_REQUIRED, fprefix)
        q = f.get("quant")
        if isinstance(q, str):
            if q.lower() in quants:
                rep.add(fprefix + "quant", f"quantization '{q}' is listed twice")
            quants.add(q.lower())
    default = dep.get("default_quant")
    if isinstance(default, str) and quants and default.lower() not in quants:
        rep.add(prefix + "default_quant", f"'{default}' is not one of this deployment's files")


def validate_model(raw: Any, *, file: str, index: int, find_line: Callable[[int, str], "int | None"]) -> list[Problem]:
    """All problems of one raw `[[models]]` table (an empty list when it is valid)."""
    label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{index + 1}"
    rep = _Reporter(file, label, lambda key: find_line(index, key))
    if not isinstance(raw, dict):
        rep.add(None, "expected a table")
        return rep.problems

    _check_table(rep, raw, MODEL_FIELDS, MODEL_REQUIRED, "")
    for name, spec, required in (
        ("license", LICENSE_FIELDS, LICENSE_REQUIRED),
        ("access", ACCESS_FIELDS, ACCESS_REQUIRED),
        ("defaults", DEFAULTS_FIELDS, ()),
        ("links", {k: url_problem for k in LINK_KINDS}, ()),
    ):
        table = raw.get(name)
        if isinstance(table, dict):
            _check_table(rep, table, spec, required, name + ".")

    deployments = raw.get("deployments")
    seen_ids: set[str] = set()
    if isinstance(deployments, list):
        for i, dep in enumerate(deployments):
            _check_deployment(rep, dep, i, seen_ids)

    if not rep.problems:
        _check_consistency(rep, raw)
    return rep.problems


def validate_update(raw: Any, *, file: str, index: int) -> list[Problem]:
    """All problems of one `[[updates]]` table of the generated layer (its fields' types only:
    the entry it changes is checked whole when the layer is written)."""
    label = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"update #{index + 1}"
    rep = _Reporter(file, label, lambda key: None)
    if not isinstance(raw, dict):
        rep.add(None, "expected a table")
        return rep.problems
    _check_table(rep, raw, {k: MODEL_FIELDS[k] for k in UPDATE_FIELDS}, ("id",), "")
    access = raw.get("access")
    if isinstance(access, dict):
        known = {k: ACCESS_FIELDS[k] for k in UPDATE_ACCESS_FIELDS if k in ACCESS_FIELDS}
        _check_table(rep, access, known, (), "access.")
    return rep.problems


def _check_consistency(rep: _Reporter, raw: Mapping[str, Any]) -> None:
    """Checks across fields; run only once every field has the right type."""
    deps = raw["deployments"]
    kinds = {d["kind"] for d in deps}
    has_local = any(is_local(d) for d in deps)
    if raw["access"]["local_capable"] != has_local:
        if has_local:
            rep.add("access.local_capable", "is false but the model has a local deployment")
        else:
            rep.add("access.local_capable", "is true but no deployment runs locally (llama.cpp or ollama)")
    if not raw["license"]["open_weights"] and kinds & LOCAL_KINDS:
        rep.add("license.open_weights", "is false but the model has a llama.cpp or ollama deployment")
    if "chat" in raw["tasks"] and "llama.cpp" in kinds and not raw.get("template"):
        rep.add("template", "a chat model with a llama.cpp deployment must name its conversation template")
    own_id = raw["id"].lower()
    for alias in raw.get("aliases", []):
        if alias.lower() == own_id:
            rep.add("aliases", f"alias '{alias}' is the model's own id")
    active = raw.get("active_parameters")
    if active is not None and active > raw.get("parameters", active):
        rep.add("active_parameters", f"{active:_} is more than `parameters` ({raw['parameters']:_})")
    _check_lifecycle(rep, raw)
    _check_price_dates(rep, raw)


def _check_lifecycle(rep: _Reporter, raw: Mapping[str, Any]) -> None:
    deprecated, retires = raw.get("deprecated"), raw.get("retires")
    if deprecated and retires and retires < deprecated:  # ISO dates order as strings
        rep.add("retires", f"{retires} is before the deprecation date {deprecated}")
    if (deprecated or retires) and raw.get("status") == "active":
        rep.add("status", "is 'active' but the entry has a deprecation or retirement date"
                          " (write status = \"deprecated\" or leave status out)")
    replacement = raw.get("replacement")
    if replacement and replacement.lower() in {raw["id"].lower(), *(a.lower() for a in raw.get("aliases", []))}:
        rep.add("replacement", f"'{replacement}' is this model itself")


def _check_price_dates(rep: _Reporter, raw: Mapping[str, Any]) -> None:
    """A price date must date a price: the model's (which also dates deployment prices that
    carry no date of their own) or its deployment's."""

    def priced(table: Mapping[str, Any]) -> bool:
        return any(key in table for key in TOKEN_PRICES) or "unit_prices" in table

    deps = raw["deployments"]
    if "prices_as_of" in raw["access"] and not (priced(raw["access"]) or any(priced(d) for d in deps)):
        rep.add("access.prices_as_of", "dates no price (the entry has no cost_input, cost_output or unit_prices)")
    for i, dep in enumerate(deps):
        if "prices_as_of" in dep and not priced(dep):
            rep.add(f"deployments[{i}].prices_as_of", "dates no price (this deployment has no cost_input, cost_output or unit_prices)")
