"""The merged registry: models in order, resolution by id or alias, and the export."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from modelctl.errors import NotFoundError, RegistryError
from modelctl.registry.model import Model
from modelctl.registry.vocab import today_iso

if TYPE_CHECKING:
    from modelctl.registry.schema import Problem


class Registry:
    def __init__(self, models: Iterable[Model], sources: Iterable[str] = (), *,
                 check_replacements: bool = True) -> None:
        self.models: list[Model] = list(models)
        self.sources: list[str] = list(sources)
        self._index: dict[str, Model] = {}
        # The models whose deprecation the user was told of (lifecycle.check_use): once a run.
        self.lifecycle_warned: set[str] = set()
        problems = []
        for model in self.models:
            self._index[model.id.lower()] = model
        for model in self.models:
            for alias in model.aliases:
                key = alias.lower()
                other = self._index.get(key)
                if other is not None and other is not model:
                    from modelctl.registry.schema import Problem  # noqa: PLC0415 (modelctl.registry.schema: not on the list --json path)

                    what = "id" if other.id.lower() == key else "alias"
                    problems.append(
                        Problem(
                            model.source,
                            f"alias '{alias}' is already the {what} of model '{other.id}' ({other.source})",
                            model.id,
                            "aliases",
                        )
                    )
                    continue
                self._index[key] = model
        if check_replacements and not problems:
            problems = replacement_problems(self.models, self.get, dated=False)
        if problems:
            raise RegistryError(f"invalid registry: {problems[0]}", problems=problems)

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def get(self, name: str) -> Model | None:
        """The model whose registry id or alias is `name` (case-insensitive), or None. The
        user's own aliases are not the registry's: `modelctl.resolver` follows them."""
        return self._index.get(name.strip().lower())

    def replacement_chain(self, model: Model) -> list[Model]:
        """`model`, its replacement, that one's, and so on: the models a user is pointed to
        (a loaded registry's chains end in a model still served; see replacement_problems)."""
        return _chain(model, self.get)[0]

    def resolve(self, name: str) -> Model:
        """Like get(), but an unknown name raises NotFoundError with "did you mean" suggestions."""
        model = self.get(name)
        if model is not None:
            return model
        raise NotFoundError(f"unknown model '{name}'", hint=self.did_you_mean(name))

    def did_you_mean(self, name: str) -> str:
        suggestions = self.suggest(name)
        if suggestions:
            return "did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?"
        return "see `modelctl search`"

    def model_for_file(self, path: str | os.PathLike[str]) -> Model | None:
        """The model one of whose llama.cpp files has the base name of `path` (any case): a GGUF
        file given by path is that model's local copy, with its template and names."""
        name = Path(path).name.lower()
        for model in self.models:
            for dep in model.deployments:
                if dep.kind == "llama.cpp" and any(Path(f.filename).name.lower() == name for f in dep.files):
                    return model
        return None

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Close ids or aliases for a mistyped name."""
        key = name.strip().lower()
        candidates = list(self._index)
        close = difflib.get_close_matches(key, candidates, n=n, cutoff=0.6)
        if not close:  # "llama2" -> ids containing it
            close = [c for c in candidates if key and key in c][:n]
        # Report each model once, by the spelling that matched.
        seen: set[str] = set()
        out: list[str] = []
        for c in close:
            model = self._index[c]
            if model.id not in seen:
                seen.add(model.id)
                out.append(model.id if c == model.id.lower() else next(a for a in model.aliases if a.lower() == c))
        return out

    def export(self) -> dict[str, Any]:
        """The merged registry as JSON-ready data (`modelctl registry export`)."""
        from modelctl.registry.schema import SCHEMA_VERSION  # noqa: PLC0415 (modelctl.registry.schema: not on the list --json path)

        return {
            "schema_version": SCHEMA_VERSION,
            "sources": self.sources,
            "count": len(self.models),
            "models": [m.to_dict() for m in self.models],
        }


def _chain(model: Model, lookup: Callable[[str], Model | None]) -> tuple[list[Model], str | None]:
    """(the chain of replacements from `model`, as far as it goes; why it stops early: a name
    `lookup` does not know, or a model met before, or None when it ends in a model without one)."""
    chain = [model]
    while chain[-1].replacement:
        name = chain[-1].replacement
        found = lookup(name)
        if found is None:
            return chain, f"'{name}', which is not a model in the registry"
        if found in chain:
            return chain + [found], "loops"
        chain.append(found)
    return chain, None


def replacement_problems(models: Iterable[Model], lookup: Callable[[str], Model | None],
                         today: str | None = None, *, dated: bool = True) -> list[Problem]:
    """Problems of the replacement chains that start at `models`: each must end
    in a registry model (`lookup` finds names) without a loop and, when `dated`, one not retired
    on `today` (YYYY-MM-DD; the real date by default). Only models that name a replacement are
    looked at. Loading checks the chains' shape only: a registry valid today must not stop
    loading on the day its last target retires (`registry validate` says so then)."""
    problems: list[Problem] = []
    for model in models:
        if not model.replacement:
            continue
        chain, broken = _chain(model, lookup)
        shown = " → ".join(m.id for m in chain)
        if broken is None:
            if not dated:
                continue
            if today is None:
                today = today_iso()
            end = chain[-1]
            if not end.retired(today):
                continue
            message = (f"the chain {shown} ends in a model retired {end.retires}"
                       " (point it at a model still served)")
        elif broken == "loops":
            message = f"the chain {shown} loops"
        else:
            message = f"the chain {shown} ends in {broken}"
        from modelctl.registry.schema import Problem  # noqa: PLC0415 (modelctl.registry.schema: not on the list --json path)

        problems.append(Problem(model.source, message, model.id, "replacement"))
    return problems
