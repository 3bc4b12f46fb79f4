"""What `modelctl serve` did, for `GET /metrics`: counters and a histogram kept in memory, written
in the Prometheus text exposition format 0.0.4 by hand (no dependency).

Label values come from requests (a model name is whatever a client sent) and are untrusted: they
are escaped as the format says (backslash, double quote, line feed), text UTF-8 cannot encode is
replaced, and each metric keeps at most `max_series` label sets, so that a client inventing names
cannot grow the server's memory without end (what did not fit is counted in
`modelctl_metrics_dropped_total`). One lock guards every update and the rendering.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FIRST_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_SERIES = 1000

Labels = tuple[str, ...]
# A gauge's samples, given to `render`: label pairs -> value, e.g. {(("model", "gemma"),): 2}.
GaugeSamples = Mapping[tuple[tuple[str, str], ...], float]


@dataclass(frozen=True)
class Family:
    """A metric: its name, help text, type and label names."""

    name: str
    help: str
    type: str
    labels: Labels


REQUESTS = Family("modelctl_requests_total", "Requests answered, by model, deployment and HTTP status.",
                  "counter", ("model", "deployment", "status"))
TOKENS = Family("modelctl_tokens_total", "Tokens of prompts and of completions.",
                "counter", ("model", "deployment", "direction"))
COST = Family("modelctl_cost_usd_total", "USD the answers cost, where the price is known.", "counter", ("model", "deployment"))
FALLBACKS = Family("modelctl_fallbacks_total", "Switches from a deployment that failed to the next one.",
                   "counter", ("model", "from", "to"))
FIRST_TOKEN = Family("modelctl_time_to_first_token_seconds", "Seconds from a request to its first token.",
                     "histogram", ("model", "deployment"))
DROPPED = Family("modelctl_metrics_dropped_total",
                 "Observations not recorded because their metric already had as many label sets as it keeps.",
                 "counter", ())
COUNTERS = (REQUESTS, TOKENS, COST, FALLBACKS)

# The gauges `render` takes from the server's own state, with their help.
GAUGES: dict[str, str] = {
    "modelctl_queue_depth": "Requests waiting for a local model, by model.",
    "modelctl_loaded_models": "Local models resident in memory.",
    "modelctl_loaded_bytes": "Bytes of the GGUF files of the local models resident in memory.",
}

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(FIRST_TOKEN_BUCKETS))
    count: int = 0
    total: float = 0.0


class Metrics:
    """The server's counters and its time-to-first-token histogram, safe to update from any thread."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {family.name: {} for family in COUNTERS}
        self._first_token: dict[Labels, _Histogram] = {}
        self._dropped = 0

    def request(self, model: str, deployment: str, status: int) -> None:
        self._add(REQUESTS, (model, deployment, str(status)), 1)

    def tokens(self, model: str, deployment: str, prompt: int, completion: int) -> None:
        with self._lock:
            self._add_locked(TOKENS, (model, deployment, "prompt"), prompt)
            self._add_locked(TOKENS, (model, deployment, "completion"), completion)

    def cost(self, model: str, deployment: str, usd: float) -> None:
        self._add(COST, (model, deployment), usd)

    def fallback(self, model: str, from_deployment: str, to_deployment: str) -> None:
        self._add(FALLBACKS, (model, from_deployment, to_deployment), 1)

    def first_token(self, model: str, deployment: str, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            return
        labels = (model, deployment)
        with self._lock:
            if labels not in self._first_token and not self._room(self._first_token):
                return
            histogram = self._first_token.setdefault(labels, _Histogram())
            index = bisect.bisect_left(FIRST_TOKEN_BUCKETS, seconds)  # the first bucket with le >= seconds
            if index < len(histogram.buckets):
                histogram.buckets[index] += 1
            histogram.count += 1
            histogram.total += seconds

    def render(self, gauges: Mapping[str, GaugeSamples] | None = None) -> str:
        """The exposition: every counter, the histogram, then `gauges` (names from GAUGES), each
        with its HELP and TYPE lines, samples in a stable order."""
        lines: list[str] = []
        with self._lock:
            for family in COUNTERS:
                lines += _header(family.name, family.help, family.type)
                for labels, value in sorted(self._counters[family.name].items()):
                    lines.append(_sample(family.name, zip(family.labels, labels), value))
            lines += _header(FIRST_TOKEN.name, FIRST_TOKEN.help, FIRST_TOKEN.type)
            for labels, histogram in sorted(self._first_token.items()):
                lines += _histogram_lines(FIRST_TOKEN, labels, histogram)
            lines += _header(DROPPED.name, DROPPED.help, DROPPED.type)
            lines.append(_sample(DROPPED.name, (), self._dropped))
        for name, samples in (gauges or {}).items():
            lines += _gauge_lines(name, samples)
        return "\n".join(lines) + "\n"

    def _add(self, family: Family, labels: Labels, amount: float) -> None:
        with self._lock:
            self._add_locked(family, labels, amount)

    def _add_locked(self, family: Family, labels: Labels, amount: float) -> None:
        if not (math.isfinite(amount) and amount >= 0):  # a counter never goes down, nor becomes NaN
            return
        series = self._counters[family.name]
        if labels in series or self._room(series):
            series[labels] = series.get(labels, 0) + amount

    def _room(self, series: Mapping[Labels, object]) -> bool:
        """Whether a metric may take one more label set; counts the observation dropped if not."""
        if len(series) < self.max_series:
            return True
        self._dropped += 1
        return False


def _histogram_lines(family: Family, labels: Labels, histogram: _Histogram) -> list[str]:
    pairs = list(zip(family.labels, labels))
    lines, cumulative = [], 0
    for bound, count in zip(FIRST_TOKEN_BUCKETS, histogram.buckets):
        cumulative += count
        lines.append(_sample(f"{family.name}_bucket", [*pairs, ("le", _number(bound))], cumulative))
    lines.append(_sample(f"{family.name}_bucket", [*pairs, ("le", "+Inf")], histogram.count))
    lines.append(_sample(f"{family.name}_sum", pairs, histogram.total))
    lines.append(_sample(f"{family.name}_count", pairs, histogram.count))
    return lines


def _gauge_lines(name: str, samples: GaugeSamples) -> list[str]:
    if name not in GAUGES:
        raise ValueError(f"unknown gauge {name!r}; known: {', '.join(GAUGES)}")
    lines = _header(name, GAUGES[name], "gauge")
    for pairs, value in samples.items():
        bad = [label for label, _ in pairs if not _LABEL_NAME.fullmatch(label) or label == "le"]
        if bad:
            raise ValueError(f"gauge {name}: {bad[0]!r} is not a label name")
        lines.append(_sample(name, pairs, value))
    return lines


def _header(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {_escape(help_text, quote=False)}", f"# TYPE {name} {kind}"]


def _sample(name: str, pairs: Iterable[tuple[str, str]], value: float) -> str:
    inside = ",".join(f'{label}="{_escape(text)}"' for label, text in pairs)
    return f"{name}{{{inside}}} {_number(value)}" if inside else f"{name} {_number(value)}"


def _escape(text: str, *, quote: bool = True) -> str:
    """`text` as the format writes a label value (`quote`) or a help text: backslash and line
    feed escaped (and the double quote in a label value); what UTF-8 cannot encode replaced."""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
