"""The JSON the web page reads: `/api/usage` (spend by day and model, the keys' budgets),
`/api/history` and `/api/history/{id}` (conversations), `/api/models` (the registry as `list`
filters it). Behind the server's keys: a key's caller sees only its own turns and budget; the
local token (this user's CLI) and a server without keys see everything. The history's SQLite
and the registry are read in the server's executor, never on the event loop."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelctl.errors import UsageError
from modelctl.history import History
from modelctl.history.totals import days_back, every_day, total
from modelctl.redaction import redact_data
from modelctl.registry.query import ModelFilter, filter_models, search_models
from modelctl.registry.vocab import TASKS, today_iso
from modelctl.serve.budgets import day_of, month_of
from modelctl.serve.wire import ApiError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from modelctl.registry.model import Model
    from modelctl.serve.answer import Answerer, Caller
    from modelctl.serve.auth import ApiKey, Keys

Handler = Callable[[Request, "Caller"], Awaitable[Response]]


class Server(Protocol):
    """What these routes use of `app.Server`."""

    @property
    def executor(self) -> "Executor": ...
    @property
    def keys(self) -> "Keys": ...
    @property
    def answerer(self) -> "Answerer": ...

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]: ...

MAX_DAYS = 366
MAX_CONVERSATIONS = 500
MAX_MODELS = 5000
MAX_QUERY = 200  # characters of a `q` (or `provider`) parameter
PREVIEW = 200  # characters of a conversation's first question in a list
_COUNTERS = ("turns", "prompt_tokens", "completion_tokens", "cost")


def routes(server: Server) -> list[Route]:
    """The routes of this module, behind the server's authentication."""
    data = DataRoutes(server)
    g = server.guarded
    return [
        Route("/api/usage", g(data.usage), methods=["GET"]),
        Route("/api/history", g(data.history), methods=["GET"]),
        Route("/api/history/{id}", g(data.conversation), methods=["GET"]),
        Route("/api/models", g(data.models), methods=["GET"]),
    ]


def scope(caller: "Caller") -> str | None:
    """The key label whose turns `caller` may read; None: all of them."""
    return caller.key.label if caller.key is not None else None


class DataRoutes:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def _run(self, work: Callable[[], Any]) -> JSONResponse:
        body = await asyncio.get_running_loop().run_in_executor(self.server.executor, work)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def usage(self, request: Request, caller: "Caller") -> Response:
        days = _number(request, "days", 30, 1, MAX_DAYS)
        label = scope(caller)
        keys = [caller.key] if caller.key is not None else self.server.keys.entries
        return await self._run(lambda: usage_report(History(), days, label, keys))

    async def history(self, request: Request, caller: "Caller") -> Response:
        limit = _number(request, "limit", 50, 1, MAX_CONVERSATIONS)
        words = _text(request, "q")
        return await self._run(lambda: conversation_list(History(), limit, scope(caller), words))

    async def conversation(self, request: Request, caller: "Caller") -> Response:
        ref = request.path_params["id"]
        number = int(ref) if ref.isascii() and ref.isdigit() and len(ref) < 19 else None
        if number is None:
            raise _no_conversation(ref)
        return await self._run(lambda: conversation_detail(History(), number, scope(caller)))

    async def models(self, request: Request, caller: "Caller") -> Response:
        task = _text(request, "task")
        if task is not None and task.lower() not in TASKS:
            raise ApiError(400, f"task {task!r} is not one of: {', '.join(TASKS)}", param="task")
        flt = ModelFilter(provider=_text(request, "provider"), task=task,
                          free=_flag(request, "free"), local=_flag(request, "local"))
        words, limit = _text(request, "q"), _number(request, "limit", MAX_MODELS, 1, MAX_MODELS)
        registry = self.server.answerer.registry
        return await self._run(lambda: {"models": [model_record(m) for m in
                                                   model_list(registry, flt, words)[:limit]]})


# --- what each route answers (plain functions: the tests call them on a real history) ------------------


def usage_report(history: History, days: int, label: str | None, keys: Sequence["ApiKey"],
                 *, now: float | None = None) -> dict[str, Any]:
    """`/api/usage`: the last `days` (local) days, each present; the models by cost; the keys'
    budgets; the total. Only the turns of the key `label` when given."""
    today = date.today()
    first, since = days_back(days, today)
    with history:
        by_day = history.usage(since, "day", key_label=label)
        by_model = history.usage(since, "model", key_label=label)
        budgets = [budget_row(history, key, time.time() if now is None else now) for key in keys]
    daily = [{"date": r["day"], **_counters(r)} for r in every_day(by_day, first, today)]
    models = sorted(({"model": r["model"], **_counters(r)} for r in by_model),
                    key=lambda r: (r["cost"] is None, -(r["cost"] or 0.0), -r["turns"], r["model"]))
    return {"days": daily, "models": models, "budgets": budgets, "total": _counters(total(by_model))}


def _counters(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in _COUNTERS}


def budget_row(history: History, key: "ApiKey", now: float) -> dict[str, Any]:
    """A key's budgets (USD; None: no cap), what it spent in the current UTC day and month, and
    what is left of each."""
    spent_day = history.spent(key.label, day_of(now).start)
    spent_month = history.spent(key.label, month_of(now).start)

    def left(cap: float | None, spent: float) -> float | None:
        return None if cap is None else max(0.0, cap - spent)

    return {"label": key.label, "budget_day": key.budget_day, "budget_month": key.budget_month,
            "spent_day": spent_day, "spent_month": spent_month,
            "left_day": left(key.budget_day, spent_day), "left_month": left(key.budget_month, spent_month)}


def conversation_list(history: History, limit: int, label: str | None, words: str | None) -> dict[str, Any]:
    """`/api/history`: the latest conversations (those of the key `label` only, when given)."""
    with history:
        found = history.conversations(limit, key_label=label, words=words)
    return {"conversations": redact_data([
        {"id": c["id"], "name": c["name"], "updated": c["updated"], "model": c["model"], "turns": c["turns"],
         "preview": (c["first_prompt"] or "")[:PREVIEW]} for c in found])}


def conversation_detail(history: History, number: int, label: str | None) -> dict[str, Any]:
    """`/api/history/{id}`: a conversation and its turns, as `history show --json` prints them; a
    conversation not all of whose turns are the key `label`'s is not there for its caller."""
    with history:
        found = history.conversation(number)
        if found is None or label is not None and not history.owned(number, label):
            raise _no_conversation(str(number))
        turns = history.turns(found.id)
    detail: dict[str, Any] = redact_data({"id": found.id, "name": found.name, "system": found.system,
                                          "messages": found.messages, "turns": turns})
    return detail


def _no_conversation(ref: str) -> ApiError:
    return ApiError(404, f"no conversation {ref[:40]!r} in the history", code="not_found")


def model_list(models: Any, flt: ModelFilter, words: str | None) -> list["Model"]:
    """The registry's models that pass `flt`, best match of `words` first when given (as
    `modelctl search`), else in the registry's order (as `modelctl list`)."""
    kept = filter_models(models, flt)
    if not words or not words.strip():
        return kept
    try:
        return [hit.model for hit in search_models(kept, words)]
    except UsageError:  # a query without a word to look for: nothing matches it
        return []


def model_record(m: "Model", today: str | None = None) -> dict[str, Any]:
    """A model as the page lists it; prices in USD per 1M tokens, as /v1/models has them."""
    access = m.access
    priced = access.cost_input is not None or access.cost_output is not None
    return {"id": m.id, "name": m.name, "provider": m.provider, "context_window": m.context_window,
            "pricing": {"input": access.cost_input, "output": access.cost_output} if priced else None,
            "local": m.local, "free": m.free, "tasks": list(m.tasks),
            "status": "retired" if m.retired(today or today_iso()) else m.status}


# --- query parameters -----------------------------------------------------------------------------------


def _number(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and low <= int(raw) <= high):
        raise ApiError(400, f"{name}: expected a whole number from {low} to {high}", param=name)
    return int(raw)


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_QUERY:
        raise ApiError(400, f"{name}: at most {MAX_QUERY} characters", param=name)
    return raw


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _flag(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "").lower()
    if raw not in _YES + _NO:
        raise ApiError(400, f"{name}: expected 1 or 0", param=name)
    return raw in _YES
