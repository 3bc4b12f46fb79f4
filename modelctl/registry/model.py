"""A registry model: a read-only view over one validated `[[models]]` table.

The nested values (licence, access, defaults, deployments; `values.py`) are made on first use,
so listing a large registry builds almost nothing. A model from the loader's cache starts as
less: the few fields every load reads (HEAD_KEYS), where to read its table on first use, and its
`list --json` object as JSON text. The vocabulary (categories, tasks, deployment kinds, which
of them run locally) is in `vocab.py`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from modelctl.errors import NotFoundError
from modelctl.registry.vocab import is_local, today_iso
from modelctl.terminal_text import json_text

if TYPE_CHECKING:
    from modelctl.registry.values import Access, Defaults, Deployment, License

T = TypeVar("T")


class Tables(Protocol):
    """Where models kept by the loader's cache read their tables: the n-th validated table."""

    def table(self, index: int) -> dict[str, Any]: ...


# The fields read for every model of a loaded registry (its index, replacement chains, the
# retirement filter): a cached model has them without parsing its table.
HEAD_KEYS = ("id", "aliases", "retires", "replacement")

# How `retired` reads in a summary's JSON text. A `"` inside a JSON string is always escaped, so
# the unescaped text can only be the key itself.
_NOT_RETIRED, _RETIRED = ', "retired": false, ', ', "retired": true, '


class _Field(Generic[T]):
    """A read-only `Model` attribute: the table's value under the attribute's own name (None when
    absent). The loader's validator has checked the value's type; the annotation says which."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name
        self.in_head = name in HEAD_KEYS
        self.__doc__ = f"The entry's `{name}`."

    @overload
    def __get__(self, model: None, owner: type | None = None) -> _Field[T]: ...
    @overload
    def __get__(self, model: Model, owner: type | None = None) -> T: ...
    def __get__(self, model: Model | None, owner: type | None = None) -> T | _Field[T]:
        if model is None:
            return self
        return self.read(model._head if self.in_head else model._raw)

    def read(self, raw: dict[str, Any]) -> T:
        return raw.get(self.key)  # type: ignore[return-value] # (validated: a T)


class _Items(_Field[tuple[str, ...]]):
    """A list of the table as a tuple of strings (empty when absent)."""

    def __set_name__(self, owner: type, name: str) -> None:
        super().__set_name__(owner, name)
        self.__doc__ = f"The entry's `{name}` list."

    def read(self, raw: dict[str, Any]) -> tuple[str, ...]:
        return tuple(raw.get(self.key, ()))


class Model:
    """A registry entry: a read-only view over one validated `[[models]]` table.

    Building 10,000 of these must cost next to nothing (`list` on a large registry answers in
    well under half a second), so the table is kept as parsed and the nested values (licence,
    access, defaults, deployments) are made on first use; a model from the cache (`stored`)
    parses its table only when a field outside HEAD_KEYS is read.
    """

    __slots__ = ("id", "_table", "_head", "_tables", "_index", "_summary_text", "source",
                 "_license", "_access", "_defaults", "_deployments")

    def __init__(self, raw: dict[str, Any], source: str = "") -> None:
        self.id: str = raw["id"]  # read for every model of every load: a plain attribute
        self._table: dict[str, Any] | None = raw
        self._head: dict[str, Any] = raw  # HEAD_KEYS' values (here the whole table)
        self._tables: Tables | None = None  # where the table is, when it is not read yet
        self._index = 0
        self._summary_text: str | None = None  # summary() as JSON, `retired` false
        self.source = source  # the file the entry came from (not part of the export)
        self._license: "License | None" = None
        self._access: "Access | None" = None
        self._defaults: "Defaults | None" = None
        self._deployments: "tuple[Deployment, ...] | None" = None

    @classmethod
    def stored(cls, head: dict[str, Any], tables: Tables, index: int, summary_text: str, source: str) -> Model:
        """A model kept by the loader's cache: its HEAD_KEYS values, where its table is (the
        `index`-th of `tables`), and `summary_json()`'s text with `retired` false."""
        model = cls.__new__(cls)
        model.id = head["id"]
        model._table, model._head, model._tables, model._index = None, head, tables, index
        model._summary_text, model.source = summary_text, source
        model._license = model._access = model._defaults = model._deployments = None
        return model

    @property
    def _raw(self) -> dict[str, Any]:
        """The validated `[[models]]` table (from the cache's tables on first use)."""
        if self._table is None:
            assert self._tables is not None  # a model has its table or where to read it
            self._table = self._tables.table(self._index)
        return self._table

    name = _Field[str]()
    provider = _Field[str]()
    category = _Field[str]()
    family = _Field[str | None]()
    description = _Field[str | None]()
    parameters = _Field[int | None]()
    context_window = _Field[int | None]()
    max_output_tokens = _Field[int | None]()
    embedding_dimensions = _Field[int | None]()
    architecture = _Field[str | None]()
    release_date = _Field[str | None]()
    active_parameters = _Field[int | None]()
    deprecated = _Field[str | None]()
    retires = _Field[str | None]()
    replacement = _Field[str | None]()
    template = _Field[str | None]()
    tasks = _Items()
    aliases = _Items()
    languages = _Items()
    use_cases = _Items()
    limitations = _Items()
    frameworks = _Items()

    @property
    def status(self) -> str:
        """The declared status; without one, 'deprecated' when a deprecation or retirement date
        is set, else 'active'."""
        raw = self._raw
        return raw.get("status") or ("deprecated" if "deprecated" in raw or "retires" in raw else "active")

    def retired(self, today: str | None = None) -> bool:
        """Whether the retirement date has come (`today` is YYYY-MM-DD; the real date by default).
        A retired model is no longer served by its provider; `list` hides it unless `--all`."""
        retires = self._head.get("retires")
        return retires is not None and retires <= (today or today_iso())

    @property
    def prices_as_of(self) -> str | None:
        """The date the entry's prices were read from the provider (deployments may override)."""
        as_of: str | None = self._raw["access"].get("prices_as_of")
        return as_of

    @property
    def links(self) -> dict[str, str]:
        return dict(self._raw.get("links", {}))

    @property
    def license(self) -> License:
        if self._license is None:
            from modelctl.registry.values import License  # noqa: PLC0415 (modelctl.registry.values: not on the list --json path)

            self._license = License(**self._raw["license"])
        return self._license

    @property
    def access(self) -> Access:
        if self._access is None:
            from modelctl.registry.values import Access  # noqa: PLC0415 (modelctl.registry.values: not on the list --json path)

            raw = self._raw["access"]
            self._access = Access(**{**raw, "price_tiers": tuple(raw.get("price_tiers", ()))})
        return self._access

    @property
    def defaults(self) -> Defaults:
        if self._defaults is None:
            from modelctl.registry.values import Defaults  # noqa: PLC0415 (modelctl.registry.values: not on the list --json path)

            raw = dict(self._raw.get("defaults", {}))
            raw["stop"] = tuple(raw.get("stop", ()))
            self._defaults = Defaults(**raw)
        return self._defaults

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        if self._deployments is None:
            from modelctl.registry.values import build_deployment  # noqa: PLC0415 (modelctl.registry.values: not on the list --json path)

            self._deployments = tuple(build_deployment(d) for d in self._raw["deployments"])
        return self._deployments

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, source={self.source!r})"

    # The flags below read the table directly: filters call them for every model.
    @property
    def free(self) -> bool:
        free: bool = self._raw["access"]["free_tier"]
        return free

    @property
    def local(self) -> bool:
        return any(is_local(d) for d in self._raw["deployments"])

    @property
    def open_weights(self) -> bool:
        open_weights: bool = self._raw["license"]["open_weights"]
        return open_weights

    def text(self, key: str) -> str:
        """A field as plain text for searching (lists joined by spaces; '' when absent)."""
        value = self._raw.get(key)
        if isinstance(value, list):
            return " ".join(value)
        return value or ""

    def deployment(self, ref: str | None = None) -> Deployment:
        """A deployment by id or kind; without `ref`, the first local one, else the first."""

        if ref is None:
            return next((d for d in self.deployments if d.local), self.deployments[0])
        for d in self.deployments:
            if d.id == ref:
                return d
        for d in self.deployments:
            if d.kind == ref:
                return d
        known = ", ".join(d.id for d in self.deployments)
        raise NotFoundError(f"model '{self.id}' has no deployment '{ref}' (it has: {known})")

    def entry(self) -> dict[str, Any]:
        """The model's `[[models]]` table as its layers made it, a copy to change and write."""
        return copy.deepcopy(self._raw)

    def to_dict(self) -> dict[str, Any]:
        """The full entry, JSON-ready, with the derived flags the list contract promises."""
        data = {k: v for k, v in self._raw.items() if k != "deployments"}
        data.update(
            aliases=list(self.aliases),
            status=self.status,
            retired=self.retired(),
            free=self.free,
            local=self.local,
            open_weights=self.open_weights,
            license=self.license.to_dict(),
            access=self.access.to_dict(),
            deployments=[d.to_dict() for d in self.deployments],
        )
        return data

    def summary(self, today: str | None = None) -> dict[str, Any]:
        """The `list --json` object: the fields scripts filter on, lifecycle dates, plus deployment
        ids/kinds. `retired` is judged against `today` (YYYY-MM-DD; the real date by default)."""
        raw = self._raw
        return {
            "id": raw["id"],
            "name": raw["name"],
            "aliases": raw.get("aliases", []),
            "provider": raw["provider"],
            "family": raw.get("family"),
            "category": raw["category"],
            "tasks": raw["tasks"],
            "context_window": raw.get("context_window"),
            "parameters": raw.get("parameters"),
            "active_parameters": raw.get("active_parameters"),
            "license": raw["license"]["name"],
            "open_weights": raw["license"]["open_weights"],
            "free": raw["access"]["free_tier"],
            "local": self.local,
            "cost_input": raw["access"].get("cost_input"),
            "cost_output": raw["access"].get("cost_output"),
            "prices_as_of": raw["access"].get("prices_as_of"),
            "status": self.status,
            "deprecated": raw.get("deprecated"),
            "retires": raw.get("retires"),
            "retired": self.retired(today),
            "replacement": raw.get("replacement"),
            "template": raw.get("template"),
            "deployments": [
                {"id": d.get("id", d["kind"]), "kind": d["kind"], "local": is_local(d)}
                for d in raw["deployments"]
            ],
        }

    def summary_json(self, today: str | None = None) -> str:
        """`summary(today)` as `json_text` writes it: a long `list --json` joins these instead of
        encoding every object again."""
        text = self.unretired_summary_json()
        return text.replace(_NOT_RETIRED, _RETIRED, 1) if self.retired(today) else text

    def unretired_summary_json(self) -> str:
        """`summary_json()` with `retired` false whatever the date, made once (or kept by the
        loader's cache, which must not depend on the day it was written)."""
        if self._summary_text is None:
            item = self.summary()
            item["retired"] = False
            self._summary_text = json_text(item)
        return self._summary_text
