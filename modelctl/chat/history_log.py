"""The chat's side of the history: log each answer as a turn, resume a conversation, save one
under a name, and what an answer cost.

Logging never ends a chat: a history that cannot be written is one warning, and the chat goes
on unlogged. Everything written is redacted first, every field of it (modelctl.redaction: every
key modelctl knows, passwords and keys written into URLs, values named like credentials).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modelctl.backends.base import template_name
from modelctl.chat.session import ChatSession
from modelctl.chat.settings import history_config as checked
from modelctl.errors import ModelctlError, UsageError
from modelctl.redaction import redact, redact_data
from modelctl.terminal_text import safe

if TYPE_CHECKING:
    from modelctl.chat.opening import Chat
    from modelctl.chat.session import Reply
    from modelctl.history import Conversation, History, Turn

def history_config() -> dict[str, Any]:
    """The [history] table of config.toml, type-checked; `retention_days` 0 (keep everything) is
    left out."""

    table = dict(checked())
    if not table.get("retention_days"):
        table.pop("retention_days", None)
    return table


def answer_cost(setup: "Chat", reply: "Reply") -> float | None:
    """USD for `reply` from the usage its backend reported, at the registry's prices (cached
    prompt tokens at the cache's); None when either is unknown."""
    return _costs(setup, reply)[0]


def cache_saving(setup: "Chat", reply: "Reply") -> float | None:
    """USD the provider's prompt cache saved on `reply`: its cost with every prompt token at the
    input price, less its cost. Negative where writing the cache cost more than reading it saved;
    None when the usage tells no cached tokens or the price is unknown."""
    return _costs(setup, reply)[1]


def _costs(setup: "Chat", reply: "Reply") -> tuple[float | None, float | None]:
    usage = reply.usage
    if usage is None:  # many servers report none: then the prices are not even looked up
        return None, None
    from modelctl.registry.pricing import cost, deployment_price  # noqa: PLC0415 (modelctl.registry.pricing: not on the chat --api-base path)

    price = deployment_price(setup.entry, setup.deployment)
    if price is None:
        return None, None
    paid = cost(price, usage.prompt_tokens, usage.completion_tokens,
                usage.cached_tokens or 0, usage.cache_write_tokens or 0)
    if usage.cached_tokens is None and usage.cache_write_tokens is None:
        return paid, None
    return paid, cost(price, usage.prompt_tokens, usage.completion_tokens) - paid


def _redacted(turn: "Turn") -> "Turn":
    """`turn` with every credential modelctl knows hidden in every field (messages, answer,
    parameters with their stop strings and schema, error, route, names)."""

    return replace(turn, **{f.name: redact_data(getattr(turn, f.name), name=f.name) for f in fields(turn)})


@dataclass
class TurnLog:
    """Logs the turns of one chat into `history`, in `conversation` (created, and called `name`,
    at the first turn when None). Call it with (session, reply): it is a ChatSession's on_turn."""

    setup: "Chat"
    history: "History | None"  # None: nothing is logged
    notify: Callable[[str], None]
    conversation: int | None = None
    name: str | None = None
    retention_days: float | None = None
    last_turn: int | None = None
    key_label: str | None = None  # the label of the key a server's request came with (never the key)

    def __call__(self, session: "ChatSession", reply: "Reply") -> None:
        if self.history is None:
            return
        from modelctl.history import Turn  # noqa: PLC0415 (sqlite3: imported only where used)

        dep = self.setup.deployment
        turn = _redacted(Turn(
            messages=reply.request, answer=reply.text, model=self.setup.model_id,
            deployment=dep.id if dep else None, deployment_kind=dep.kind if dep else getattr(session.backend, "kind", None),
            template=_template(session), params=session.params.to_dict(),
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.usage.prompt_tokens if reply.usage else None,
            completion_tokens=reply.usage.completion_tokens if reply.usage else None,
            cached_tokens=reply.usage.cached_tokens if reply.usage else None,
            cache_write_tokens=reply.usage.cache_write_tokens if reply.usage else None,
            timings=reply.timings.to_dict() if reply.timings else None,
            cost=answer_cost(self.setup, reply), cache_saved=cache_saving(self.setup, reply),
            error=reply.error or None,
            route=self.setup.route or None,
            key_label=self.key_label,
            tool_calls=[call.to_dict() for call in reply.tool_calls] or None,
        ))
        try:
            self.conversation, self.last_turn = self.history.add_turn(
                turn, self.conversation, name=self.name, retention_days=self.retention_days)
        except ModelctlError as exc:
            self.notify(f"{exc}; this chat is no longer logged")
            self.history = None

    @contextmanager
    def _store(self) -> "Iterator[History]":
        """The history this chat logs to; for a chat not logged, one opened for the moment and
        closed after (`/save NAME`, `/load NAME`)."""
        if self.history is not None:
            yield self.history
            return
        from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

        with History() as history:
            yield history

    def save(self, session: "ChatSession", name: str) -> None:
        """`/save NAME`: this conversation, as it stands, becomes session `name` (later turns are
        logged into it)."""
        check_session_name(name)
        system = redact_data(session.system) if session.system else None
        with self._store() as history:
            self.conversation = history.save_conversation(system, redact_data(session.messages),
                                                          conversation=self.conversation, name=name)
        self.name = name

    def load(self, session: "ChatSession", name: str) -> None:
        """`/load NAME`: continue session `name` (its turns from now on are logged into it)."""
        with self._store() as history:
            found = history.require(name)
        session.system, session.messages = found.system, list(found.messages)
        self.conversation, self.name = found.id, found.name


def _template(session: "ChatSession") -> str | None:
    return template_name(session.backend)


def check_session_name(name: str) -> str:
    """A session name: not empty, not a number (numbers are conversation ids), printable text
    (no control characters: names are shown in tables and typed back), holding no credential
    (a name is stored and shown as it is)."""

    if redact(name) != name:
        raise UsageError(f"the session name '{safe(name)}' holds a credential: give another name")
    if not name.strip() or name.isdigit():
        raise UsageError(f"session name {name!r}: give a word (a number names a conversation by id)")
    if not name.isprintable():
        raise UsageError(f"session name '{safe(name)}' holds control characters: give printable words")
    return name


def find_resumed(resume_last: bool = False, session_name: str | None = None) -> "Conversation | None":
    """The conversation a chat resumes: the last one (`resume_last`, an error when there is
    none), the session called `session_name` (None while it does not exist yet), or None."""
    if resume_last and session_name:
        raise UsageError("--continue and --session: give one (--session NAME resumes that session)")
    if session_name is not None:
        check_session_name(session_name)
    if not (resume_last or session_name):
        return None
    from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

    history = History()
    try:
        found = history.last_conversation() if resume_last else history.conversation(session_name or "")
    finally:
        history.close()
    if resume_last and found is None:
        raise UsageError("nothing to continue: the history has no conversation yet")
    return found


def open_log(
    setup: "Chat",
    *,
    log: bool = True,
    resumed: "Conversation | None" = None,
    session_name: str | None = None,
    system_flag: str | None = None,
    notify: Callable[[str], None],
) -> tuple["ChatSession", TurnLog]:
    """A ChatSession for `setup` whose turns are logged (unless `log` is False or config.toml
    says `[history] log = false`): in a new conversation (called `session_name`, if given), or
    in `resumed` (`find_resumed`). A resumed conversation keeps its system message unless
    `system_flag` (--system) gives another."""

    cfg = history_config()
    history = None
    if log and cfg.get("log", True):
        from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

        try:
            history = History().open()  # now, so that a broken history is one warning before the chat
        except ModelctlError as exc:
            notify(f"{exc}; this chat is not logged")
    system = system_flag if system_flag is not None else (resumed.system if resumed else setup.system)
    turn_log = TurnLog(setup, history, notify,
                       conversation=resumed.id if resumed else None,
                       name=resumed.name if resumed else session_name, retention_days=cfg.get("retention_days"))
    session = ChatSession(setup.backend, setup.params, system=system, model=setup.model_id, on_turn=turn_log)
    if resumed is not None:
        session.messages = list(resumed.messages)
    return session, turn_log
