"""A running serving engine, probed: is it up, which models does it serve, how loaded is it.

    status = probe_engine("vllm", "http://gpu1:8000/v1", timeout=1.5)
    status.state            # "ready" (health 200), "loading" (503), "down" (anything else)
    status.served           # ("Qwen/Qwen2.5-7B-Instruct",), or None where the list was not read
    status.load_for(model)  # Load(waiting=2.0, running=8.0, kv_cache=0.41), or None

What is asked, in order (each engine's paths are in `catalog`): its health route at the server's
root (the address without its `/v1`); where that is 200, `GET {api_base}/models`, then its
Prometheus `/metrics`. An engine without a health route is probed by its model list alone. Each
request gets `timeout` (a probe of an engine that is up makes three) and reads at most a few MiB; an answer that is too slow, too
large or malformed counts as none, never as a hang or a crash. No key is sent, except to the
model list of a deployment that names its own key variable (`key_env`): vLLM's `--api-key`
guards `/v1/*` but not `/health` or `/metrics`.

The metrics parser is our own and small: it reads the Prometheus text format's sample lines of
untyped, gauge and counter families (labels, escapes, NaN and ±Inf), keeps only the series the
catalog names, and skips histograms, summaries and any line it cannot read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from modelctl.engines.catalog import Engine, engine_facts
from modelctl.transport import wire
from modelctl.transport.probe_get import Answer, probe_get

READY, LOADING, DOWN = "ready", "loading", "down"
PROBE_TIMEOUT = 1.5
# The most read of a health answer, a model list, a metrics page (vLLM's, histograms and all,
# is tens of KiB per model).
HEALTH_BYTES = 64 << 10
LIST_BYTES = 4 << 20
METRICS_BYTES = 4 << 20
MAX_LINE = 8192  # a metrics line longer than this is skipped
MAX_LABELS = 64
MAX_SAMPLES = 10_000  # of the wanted series; more is not an engine's page
_KEPT_TYPES = ("untyped", "gauge", "counter", "unknown")


@dataclass(frozen=True)
class Sample:
    """One Prometheus sample: a series name, its labels, its value (NaN and ±Inf kept)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return next((v for k, v in self.labels if k == key), None)


@dataclass(frozen=True)
class Load:
    """How busy an engine is: requests queued, requests being answered, the KV cache's use
    (0 to 1); None where the engine does not say."""

    waiting: float | None = None
    running: float | None = None
    kv_cache: float | None = None

    def rank(self) -> tuple[float, float]:
        """Smaller is less loaded: the queue first, then the KV cache; unknown counts as full."""
        return (math.inf if self.waiting is None else self.waiting,
                math.inf if self.kv_cache is None else self.kv_cache)

    def text(self) -> str:
        parts = [f"{_count(v)} {what}" for v, what in ((self.waiting, "waiting"), (self.running, "running"))
                 if v is not None]
        if self.kv_cache is not None:
            parts.append(f"KV cache {self.kv_cache:.0%}")
        return ", ".join(parts) or "load unknown"

    def to_dict(self) -> dict[str, float | None]:
        return {"waiting": self.waiting, "running": self.running, "kv_cache": self.kv_cache}


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class EngineStatus:
    """What a probe of one engine found (see the module docstring)."""

    engine: str
    state: str  # READY, LOADING or DOWN
    why: str  # what happened, for people: "vLLM ready at http://gpu1:8000/health (HTTP 200)"
    served: tuple[str, ...] | None = None  # the model list's ids; None: not read
    samples: tuple[Sample, ...] = ()  # the catalog's load series, as the engine reported them

    def serves(self, model: str | None) -> bool:
        """Whether the engine lists `model` (true where its list is unknown or no name is given)."""
        return self.served is None or model is None or model in self.served

    def load_for(self, model: str | None = None) -> Load | None:
        """The load of the engine's series; where they carry a `model_name` label, those of
        `model` if any are (an engine serving several models labels each). None: no series."""
        return load_from(self.samples, engine_facts(self.engine), model)

    def to_dict(self, model: str | None = None) -> dict[str, Any]:
        load = self.load_for(model)
        return {"engine": self.engine, "state": self.state, "served": list(self.served) if self.served is not None else None,
                "load": load.to_dict() if load else None}


# --- the Prometheus text format -------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_SPECIAL = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}


def parse_metrics(text: str, wanted: Iterable[str] | None = None) -> list[Sample]:
    """The samples of `text` (Prometheus text exposition format) of untyped, gauge and counter
    families, only those named in `wanted` where given; lines that cannot be read are skipped."""
    names = set(wanted) if wanted is not None else None
    types: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text.splitlines():
        if len(line) > MAX_LINE or not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip().lower()
            continue
        name = _NAME.match(line)
        if name is None or (names is not None and name.group() not in names):
            continue  # most of an engine's page: histograms' buckets, other series
        sample = _sample(line, name)
        if sample is None:
            continue
        if _family_type(sample.name, types) in _KEPT_TYPES:
            samples.append(sample)
            if len(samples) >= MAX_SAMPLES:
                break
    return samples


def _family_type(name: str, types: Mapping[str, str]) -> str:
    """The TYPE of the family `name` belongs to (a counter's `_total` sample: its family's); a
    typed family's `_created` sample (when it began counting) is of no type kept."""
    if name in types:
        return types[name]
    for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
        family = name[: -len(suffix)]
        if name.endswith(suffix) and family in types:
            return "created" if suffix == "_created" else types[family]
    return "untyped"


def _sample(line: str, name: "re.Match[str]") -> Sample | None:
    rest = line[name.end():]
    labels: list[tuple[str, str]] = []
    if rest.startswith("{"):
        end = _labels(rest, labels)
        if end is None:
            return None
        rest = rest[end:]
    fields = rest.split()
    if not fields or len(fields) > 2:  # the value, and an optional timestamp
        return None
    value = _number(fields[0])
    return None if value is None else Sample(name.group(), tuple(labels), value)


def _labels(text: str, into: list[tuple[str, str]]) -> int | None:
    """Read `{k="v",...}` at the start of `text` into `into`; the index after `}`, or None."""
    pos = 1
    while True:
        if text[pos:].lstrip().startswith("}"):
            return text.index("}", pos) + 1
        match = _LABEL.match(text, pos)
        if match is None or len(into) >= MAX_LABELS:
            return None
        value = re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(), m.group()), match.group(2))
        into.append((match.group(1), value))
        pos = match.end()


def _number(text: str) -> float | None:
    special = _SPECIAL.get(text.lower())
    if special is not None:
        return special
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not math.isinf(value) else None  # "1e999": not a form the format writes


def load_from(samples: Iterable[Sample], facts: Engine, model: str | None = None) -> Load | None:
    """The engine's load from its samples: for each quantity the first of the catalog's series
    found; requests summed over label sets (the engines of a data-parallel server), the KV cache's
    use averaged; NaN left out. None where no series is there."""
    chosen = _for_model(list(samples), model)
    if not chosen:
        return None
    waiting = _first(chosen, facts.waiting, sum)
    running = _first(chosen, facts.running, sum)
    kv_cache = _first(chosen, facts.kv_cache, lambda vs: sum(vs) / len(vs))
    if waiting is None and running is None and kv_cache is None:
        return None
    return Load(waiting, running, kv_cache)


def _for_model(samples: list[Sample], model: str | None) -> list[Sample]:
    labelled = [s for s in samples if s.label("model_name") == model] if model else []
    return labelled or samples


def _first(samples: list[Sample], series: tuple[str, ...], combine: Callable[[list[float]], float]) -> float | None:
    for name in series:
        values = [s.value for s in samples if s.name == name and not math.isnan(s.value)]
        if values:
            return float(combine(values))
    return None


def server_root(api_base: str) -> str:
    """The address an engine's health and metrics routes hang from: `api_base` without `/v1`."""
    base = api_base.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def served_ids(body: bytes) -> tuple[str, ...] | None:
    """The ids of an OpenAI-style model list (`{"data": [{"id": …}]}`), each once; None if it is not one."""
    try:
        doc = wire.loads(body)
    except ValueError:
        return None
    items = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    ids = [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]
    return tuple(dict.fromkeys(ids))


def probe_engine(engine: str, api_base: str, *, key: str | None = None, timeout: float = PROBE_TIMEOUT) -> EngineStatus:
    """Probe the `engine` serving at `api_base` (see the module docstring): at most three
    requests, each within `timeout` seconds. `key` goes to the model list only."""
    facts = engine_facts(engine)
    root = server_root(api_base)
    models_url = f"{api_base.rstrip('/')}/models"
    health = listing = Answer(None, b"", "not asked")
    if facts.health_path is not None:
        health = probe_get(root + facts.health_path, timeout, HEALTH_BYTES)
        state = _state(health.status)
        if state != READY:
            return EngineStatus(engine, state, _said(facts, state, health))
    listing = probe_get(models_url, timeout, LIST_BYTES, key)
    served = served_ids(listing.body) if listing.status == 200 else None
    if facts.health_path is None:  # the model list is the health probe
        state = _state(listing.status)
        if state == READY and served is None:
            state, listing = DOWN, Answer(listing.status, b"", f"{listing.why}, not a model list")
        if state != READY:
            return EngineStatus(engine, state, _said(facts, state, listing))
    why = _said(facts, READY, health if facts.health_path is not None else listing)
    if served is None:
        why += f"; its model list was not read ({listing.why})"
    samples: tuple[Sample, ...] = ()
    if facts.metrics_path is not None:
        page = probe_get(root + facts.metrics_path, timeout, METRICS_BYTES)
        if page.status == 200:
            wanted = (*facts.waiting, *facts.running, *facts.kv_cache)
            samples = tuple(parse_metrics(page.body.decode("utf-8", "replace"), wanted))
    return EngineStatus(engine, READY, why, served, samples)


def _state(status: int | None) -> str:
    return READY if status == 200 else LOADING if status == 503 else DOWN


def _said(facts: Engine, state: str, answer: Answer) -> str:
    if answer.status is None:
        return f"{facts.label} {state}: {answer.why}"
    return f"{facts.label} {state} at {answer.why}"
