"""Queries over registry models: filters (AND), sorting, and ranked free-text search."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Iterable, NamedTuple, Sequence

from modelctl.errors import UsageError
from modelctl.registry.model import Model
from modelctl.registry.vocab import today_iso


@dataclass(frozen=True)
class ModelFilter:
    """Every set criterion must hold (AND). Text criteria are case-insensitive. Retired models
    (retirement date today or earlier) match only with `include_retired`."""

    provider: str | None = None
    task: str | None = None
    category: str | None = None
    free: bool = False
    local: bool = False
    open: bool = False
    min_context: int | None = None
    use_case: str | None = None
    kind: str | None = None
    include_retired: bool = False  # models whose retirement date has come (`list --all`)
    today: str | None = None  # YYYY-MM-DD the retirement dates are judged against; None: the real date

    def matches(self, m: Model) -> bool:
        if not self.include_retired and m.retired(self.today):
            return False
        if self.provider and self.provider.lower() not in m.provider.lower():
            return False
        if self.task and self.task.lower() not in m.tasks:
            return False
        if self.category and m.category != self.category.lower():
            return False
        if self.free and not m.free:
            return False
        if self.local and not m.local:
            return False
        if self.open and not m.open_weights:
            return False
        if self.min_context and (m.context_window or 0) < self.min_context:
            return False
        if self.use_case:
            needle = self.use_case.lower()
            if not any(needle in u.lower() for u in m.use_cases):
                return False
        if self.kind and not any(d.kind == self.kind for d in m.deployments):
            return False
        return True


def filter_models(models: Iterable[Model], flt: ModelFilter) -> list[Model]:
    if flt.today is None and not flt.include_retired:  # read the clock once, not once per model
        flt = replace(flt, today=today_iso())
    return [m for m in models if flt.matches(m)]


_BIG = float("inf")

# Sort keys; models without a value sort last whatever the direction.
SortKey = tuple[bool | float | str, ...]  # compared item by item
SORT_KEYS: dict[str, Callable[[Model], SortKey]] = {
    "id": lambda m: (m.id.lower(),),
    "name": lambda m: (m.name.lower(),),
    "provider": lambda m: (m.provider.lower(), m.id.lower()),
    "context": lambda m: (m.context_window is None, m.context_window or 0),
    "parameters": lambda m: (m.parameters is None, m.parameters or 0),
    "cost": lambda m: (m.access.cost_input is None, m.access.cost_input or 0, m.access.cost_output or 0),
    "release": lambda m: (m.release_date is None, m.release_date or ""),
}


def sort_models(models: Sequence[Model], key: str | None) -> list[Model]:
    """Sort ascending by one of SORT_KEYS; a leading '-' sorts descending. Missing values stay last."""
    if not key:
        return list(models)
    reverse = key.startswith("-")
    name = key.lstrip("-")
    fn = SORT_KEYS.get(name)
    if fn is None:
        raise UsageError(f"unknown sort key '{name}' (choose from: {', '.join(SORT_KEYS)})")
    present = [m for m in models if fn(m)[0] is not True]
    missing = [m for m in models if fn(m)[0] is True]
    return sorted(present, key=fn, reverse=reverse) + missing


_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# Field weights: a hit in an id or alias says far more than one in a description.
_FIELDS: tuple[tuple[str, float], ...] = (
    ("id", 10.0),
    ("aliases", 9.0),
    ("name", 8.0),
    ("family", 5.0),
    ("provider", 4.0),
    ("tasks", 4.0),
    ("use_cases", 3.0),
    ("description", 2.0),
    ("limitations", 0.5),
)


class SearchHit(NamedTuple):
    model: Model
    score: float


def search_models(models: Iterable[Model], query: str, limit: int | None = None,
                  today: str | None = None) -> list[SearchHit]:
    """Rank models by how well they match every word of `query`, models still in service first.

    Each query word must appear (as a whole word, a word prefix, or inside an id) somewhere in
    the model; its score is the weight of the best field it hits, whole words counting more
    than prefixes. An exact id or alias match of the whole query comes first among models of its
    standing: active and preview models first, then legacy ones (served, superseded), then
    deprecated and retired ones (on `today`, YYYY-MM-DD: the real date by default), each group
    in score order.
    """
    q = query.strip().lower()
    terms = _words(q)
    if not terms:
        raise UsageError("the search query has no words to look for")
    hits: list[SearchHit] = []
    for m in models:
        texts = [m.text(name).lower() for name, _ in _FIELDS]
        blob = " ".join(texts)
        if not all(term in blob for term in terms):  # cheap rejection of most models
            continue
        score = 0.0
        for term in terms:
            best = 0.0
            for (_, weight), text in zip(_FIELDS, texts, strict=True):
                if not text or term not in text:
                    continue
                words = _words(text)
                if term in words:
                    best = max(best, weight)
                elif any(w.startswith(term) for w in words):
                    best = max(best, weight * 0.6)
                else:
                    best = max(best, weight * 0.3)
            score += best
        if q == m.id.lower() or q in (a.lower() for a in m.aliases):
            score += 100.0
        elif q in m.id.lower() or q in m.name.lower():
            score += 5.0
        hits.append(SearchHit(m, score))

    day = today or today_iso()

    def standing(m: Model) -> int:
        """0: active or preview; 1: legacy (served, superseded); 2: deprecated or retired."""
        if m.status == "deprecated" or m.retired(day):
            return 2
        return 1 if m.status == "legacy" else 0

    hits.sort(key=lambda h: (standing(h.model), -h.score, h.model.id.lower()))
    return hits[:limit] if limit else hits
