"""Conversations and their turns in SQLite: write a turn, resume, list, search, remove, total.

Every turn is written in one transaction together with its conversation's new state (the
messages a resumed chat starts from), so a process killed at any point leaves each turn either
wholly there or not at all. Text arrives redacted: the chat layer hides credentials first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from modelctl.config import get_paths
from modelctl.errors import NotFoundError, UsageError
from modelctl.history.schema import BUSY_TIMEOUT_S, connect, history_error, rollback
from modelctl.history.when import iso
from modelctl.redaction import redact_data

DAY_S = 86400

R = TypeVar("R")


def _reading(method: Callable[..., R]) -> Callable[..., R]:
    """A History method that reads: a database that fails it (a damaged file, a record that is
    no longer JSON) is one HistoryError."""
    @functools.wraps(method)
    def read(self: "History", *args: Any, **kwargs: Any) -> R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, ValueError, OSError) as exc:
            raise history_error(self.path, exc, "cannot read it") from None
    return read


@dataclass
class Turn:
    """One question and its answer, as logged."""

    messages: list[dict[str, str]]  # the request: system (if any), earlier turns, the question
    answer: str
    model: str | None = None
    deployment: str | None = None
    deployment_kind: str | None = None
    template: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings: dict[str, Any] | None = None
    cost: float | None = None
    error: str | None = None
    route: dict[str, Any] | None = None  # how the service was chosen (--model auto, --fallback)
    cached_tokens: int | None = None  # of prompt_tokens: read from the provider's cache
    cache_write_tokens: int | None = None  # of prompt_tokens: written to it
    cache_saved: float | None = None  # USD the cache saved (negative: writing it cost more)
    # The label of the `serve` API key the request came with, never the key. Not called `api_key`:
    # redaction hides, whole, the value of any field named like a credential.
    key_label: str | None = None
    tool_calls: list[dict[str, str]] | None = None  # the tools the answer called, {"id", "name", "arguments"}

    @property
    def system(self) -> str | None:
        return next((m["content"] for m in self.messages if m["role"] == "system"), None)

    @property
    def prompt(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")

    @property
    def prompt_hash(self) -> str | None:
        """The hash of the whole request (`prefix_hashes`' last)."""
        hashes = prefix_hashes(self.messages)
        return hashes[-1] if hashes else None


def state_hash(system: str | None, messages: Sequence[Any]) -> str | None:
    """The hash of a conversation's state: its system message, then its messages (`prefix_hashes`'
    last); None for an empty one."""
    hashes = prefix_hashes(([{"role": "system", "content": system}] if system is not None else []) + list(messages))
    return hashes[-1] if hashes else None


def _hash_of_row(row: sqlite3.Row) -> str | None:
    try:
        messages = json.loads(row["messages"])
    except ValueError:
        return None
    return state_hash(row["system"], messages) if isinstance(messages, list) else None


def prefix_hashes(messages: Sequence[Any]) -> list[str]:
    """A hash of each leading part of `messages` (the first message, the first two, ... all),
    each chained on the one before, of the messages as the history keeps them (credentials
    hidden): a request whose hash is among another's shares that much of its prompt."""
    hashes: list[str] = []
    previous = ""
    for message in redact_data(list(messages), name="messages"):
        text = json.dumps(message, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
        previous = hashlib.sha256(f"{previous}\n{text}".encode()).hexdigest()
        hashes.append(previous)
    return hashes


@dataclass
class Conversation:
    """A conversation's state: what a resumed chat starts from."""

    id: int
    name: str | None
    system: str | None
    messages: list[dict[str, str]]
    created: float
    updated: float


class History:
    """The history database at `path` (default: `history.sqlite3` in the data directory),
    opened on first use. A writer waits up to `busy_timeout` seconds for another process's
    write to end."""

    def __init__(self, path: Path | None = None, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        if path is None:
            path = get_paths().history_db
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path, busy_timeout=self.busy_timeout)
        return self._conn

    def open(self) -> "History":
        """Open the database now (creating or migrating it) rather than at first use."""
        self.conn  # noqa: B018 (the property opens it)
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken before reading (BEGIN IMMEDIATE): concurrent writers wait
        for each other (up to the busy timeout) instead of failing or losing a turn. Whatever
        fails in it (a full disk, a damaged file, a lock held too long) is one HistoryError, and
        nothing of the transaction stays."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise history_error(self.path, exc) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            rollback(conn)
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise history_error(self.path, exc) from None
            raise

    # --- writing ----------------------------------------------------------------------------

    def add_turn(self, turn: Turn, conversation: int | None = None, *, name: str | None = None,
                 retention_days: float | None = None) -> tuple[int, int]:
        """Log `turn` in `conversation`; when None, in the session called `name` (created if it
        does not exist yet: chats that start the same new session at once all land in it), or
        in a new conversation. The conversation's state becomes the turn's messages and answer. With `retention_days`,
        turns older than that go in the same transaction. Returns (conversation id, turn id)."""
        now = time.time()
        history = [m for m in turn.messages if m["role"] != "system"]
        answer: dict[str, Any] = {"role": "assistant", "content": turn.answer}
        if turn.tool_calls:
            answer["tool_calls"] = turn.tool_calls
        state_messages = history + [answer]
        state = json.dumps(state_messages, ensure_ascii=False)
        with self._transaction() as conn:
            if conversation is None:
                conversation = self._session(conn, name, now) if name is not None else self._create(conn, None, now)
            cur = conn.execute(
                "INSERT INTO turns (conversation_id, created, model, deployment, deployment_kind, template,"
                " params, system, messages, prompt, answer, finish_reason, prompt_tokens, completion_tokens,"
                " timings, cost, error, route, cached_tokens, cache_write_tokens, cache_saved, prompt_hash, key_label,"
                " tool_calls) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (conversation, now, turn.model, turn.deployment, turn.deployment_kind, turn.template,
                 _dumps(turn.params), turn.system, _dumps(turn.messages), turn.prompt, turn.answer,
                 turn.finish_reason, turn.prompt_tokens, turn.completion_tokens,
                 None if turn.timings is None else _dumps(turn.timings), turn.cost, turn.error,
                 None if turn.route is None else _dumps(turn.route),
                 turn.cached_tokens, turn.cache_write_tokens, turn.cache_saved, turn.prompt_hash, turn.key_label,
                 _dumps(turn.tool_calls) if turn.tool_calls else None))
            conn.execute("UPDATE conversations SET updated = ?, system = ?, messages = ?, state_hash = ? WHERE id = ?",
                         (now, turn.system, state, state_hash(turn.system, state_messages), conversation))
            if retention_days is not None:
                _prune(conn, now - retention_days * DAY_S)
        assert cur.lastrowid is not None
        return conversation, cur.lastrowid

    def save_conversation(self, system: str | None, messages: list[dict[str, str]], *,
                          conversation: int | None = None, name: str | None = None) -> int:
        """Store a conversation's state without a turn (`/save NAME`): into `conversation`
        (naming it `name`), or a new one. A name another conversation holds is refused."""
        now = time.time()
        with self._transaction() as conn:
            if name is not None:
                row = conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()
                if row is not None and row["id"] != conversation:
                    raise UsageError(f"session {name!r} already exists",
                                     hint=f"/load {name} continues it; choose another name to save this one")
            if conversation is None:
                conversation = self._create(conn, name, now)
            elif name is not None:
                conn.execute("UPDATE conversations SET name = ? WHERE id = ?", (name, conversation))
            conn.execute("UPDATE conversations SET updated = ?, system = ?, messages = ?, state_hash = ? WHERE id = ?",
                         (now, system, _dumps(messages), state_hash(system, messages), conversation))
        return conversation

    @staticmethod
    def _session(conn: sqlite3.Connection, name: str, now: float) -> int:
        """The conversation called `name`, created unless it exists, in the caller's transaction."""
        conn.execute("INSERT OR IGNORE INTO conversations (name, created, updated) VALUES (?, ?, ?)", (name, now, now))
        found: int = conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()["id"]
        return found

    @staticmethod
    def _create(conn: sqlite3.Connection, name: str | None, now: float) -> int:
        try:
            cur = conn.execute("INSERT INTO conversations (name, created, updated) VALUES (?, ?, ?)", (name, now, now))
        except sqlite3.IntegrityError:
            raise UsageError(f"session {name!r} already exists") from None
        assert cur.lastrowid is not None
        return cur.lastrowid

    # --- reading ----------------------------------------------------------------------------

    @_reading
    def conversation(self, ref: str | int) -> Conversation | None:
        """A conversation by id (a number) or session name."""
        if isinstance(ref, int) or _is_id(ref):
            number = int(ref)
            if not 0 <= number < 2**63:  # beyond SQLite's integers: no such conversation
                return None
            row = self.conn.execute("SELECT * FROM conversations WHERE id = ?", (number,)).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM conversations WHERE name = ?", (ref,)).fetchone()
        return None if row is None else _conversation(row)

    def require(self, ref: str) -> Conversation:
        found = self.conversation(ref)
        if found is None:
            what = f"conversation {ref}" if _is_id(ref) else f"session {ref!r}"
            raise NotFoundError(f"no {what} in the history", hint="modelctl history list shows them")
        return found

    @_reading
    def last_conversation(self) -> Conversation | None:
        """The conversation with the latest turn or save."""
        row = self.conn.execute("SELECT * FROM conversations ORDER BY updated DESC, id DESC LIMIT 1").fetchone()
        return None if row is None else _conversation(row)

    @_reading
    def conversations(self, limit: int | None = None, *, key_label: str | None = None,
                      words: str | None = None) -> list[dict[str, Any]]:
        """Conversations, latest first: id, name, times, turns, models, the latest turn's model,
        tokens, cost and the first question. With `key_label`, only the conversations whose
        every turn came with that `serve` key; with `words`, only those whose name holds them
        or one of whose turns has each (as a word's start)."""
        where, args = _conversations_where(key_label, words)
        rows = self.conn.execute(
            "SELECT c.id, c.name, c.created, c.updated, count(t.id) AS turns,"
            " json_group_array(DISTINCT t.model) AS models, sum(t.prompt_tokens) AS prompt_tokens,"
            " sum(t.completion_tokens) AS completion_tokens, sum(t.cost) AS cost,"
            " (SELECT prompt FROM turns f WHERE f.conversation_id = c.id ORDER BY f.id LIMIT 1) AS first_prompt,"
            " (SELECT model FROM turns l WHERE l.conversation_id = c.id ORDER BY l.id DESC LIMIT 1) AS model"
            f" FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id {where}"
            " GROUP BY c.id ORDER BY c.updated DESC, c.id DESC LIMIT ?",
            (*args, -1 if limit is None else limit)).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["created"], item["updated"] = iso(row["created"]), iso(row["updated"])
            item["models"] = sorted(m for m in json.loads(row["models"]) if m is not None)
            out.append(item)
        return out

    @_reading
    def continued(self, messages: Sequence[Any], key_label: str | None, since: float, *,
                  conversation: int | None = None) -> int | None:
        """The conversation `messages` go on from, if any: one updated since `since` (a Unix time)
        whose every turn came with the `serve` key `key_label` (None: with none), and whose system
        message and messages so far are a leading part of `messages`, shorter than all of them
        (its `state_hash` is one of theirs); the most recently updated of those. With
        `conversation`, only that one is considered, however long ago it was updated."""
        wanted = prefix_hashes(messages)[:-1][-MAX_CONTINUED_HASHES:]
        if not wanted:
            return None
        owned = f" AND {_OWNED}"
        if conversation is not None:  # a conversation from before state_hash was kept is hashed here
            row = self.conn.execute(f"SELECT c.system, c.messages FROM conversations c WHERE c.id = ?{owned}",
                                    (conversation, key_label, key_label)).fetchone()
            return conversation if row is not None and _hash_of_row(row) in wanted else None
        marks = ",".join("?" * len(wanted))
        row = self.conn.execute(
            f"SELECT c.id FROM conversations c WHERE c.state_hash IN ({marks}) AND c.updated >= ?{owned}"
            " ORDER BY c.updated DESC LIMIT 1", (*wanted, since, key_label, key_label)).fetchone()
        return int(row["id"]) if row is not None else None

    @_reading
    def owned(self, conversation: int, key_label: str) -> bool:
        """Whether `conversation` has turns and every one came with the `serve` key `key_label`."""
        row = self.conn.execute(f"SELECT 1 FROM conversations c WHERE c.id = ? AND {_OWNED}",
                                (conversation, key_label, key_label)).fetchone()
        return row is not None

    @_reading
    def turns(self, conversation: int | None = None) -> list[dict[str, Any]]:
        """The turns of one conversation (or of all), oldest first, as records."""
        sql = "SELECT t.*, c.name AS session FROM turns t JOIN conversations c ON c.id = t.conversation_id"
        args: tuple[Any, ...] = ()
        if conversation is not None:
            sql, args = sql + " WHERE t.conversation_id = ?", (conversation,)
        return [turn_record(row) for row in self.conn.execute(sql + " ORDER BY t.id", args)]

    @_reading
    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Turns whose question, answer or system message match `query` (FTS5 syntax: words,
        "phrases", prefix*, OR, NOT), best first, each with a snippet around the match."""
        sql = ("SELECT t.*, c.name AS session, snippet(turns_fts, -1, '[', ']', '…', 12) AS snippet"
               " FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid"
               " JOIN conversations c ON c.id = t.conversation_id"
               " WHERE turns_fts MATCH ? ORDER BY rank LIMIT ?")
        try:
            rows = self.conn.execute(sql, (query, limit)).fetchall()
        except sqlite3.OperationalError:
            # Not FTS5 syntax (a hyphen, a lone quote): search for the words as they are.
            quoted = " ".join('"' + word.replace('"', '""') + '"' for word in query.split())
            if not quoted:
                raise UsageError("give words to search for") from None
            rows = self.conn.execute(sql, (quoted, limit)).fetchall()
        return [turn_record(row) | {"snippet": row["snippet"]} for row in rows]

    # --- removing ---------------------------------------------------------------------------

    def remove_conversations(self, ids: list[int]) -> int:
        """Remove conversations (and their turns) by id; how many there were."""
        with self._transaction() as conn:
            return sum(conn.execute("DELETE FROM conversations WHERE id = ?", (i,)).rowcount for i in ids)

    def remove_older_than(self, cutoff: float) -> tuple[int, int]:
        """Remove turns logged before `cutoff` (a Unix time), and the conversations that leaves
        empty; (turns, conversations) removed."""
        with self._transaction() as conn:
            return _prune(conn, cutoff)

    @_reading
    def count_older_than(self, cutoff: float) -> int:
        count: int = self.conn.execute("SELECT count(*) FROM turns WHERE created < ?", (cutoff,)).fetchone()[0]
        return count

    @_reading
    def recent_requests(self, model: str, since: float) -> list[dict[str, Any]]:
        """The requests to `model` answered since `since` (a Unix time), newest first: their
        deployment, kind, time, `prompt_hash` and cache counts (for the prompt cache estimate)."""
        rows = self.conn.execute(
            "SELECT deployment, deployment_kind, created, prompt_hash, cached_tokens, cache_write_tokens"
            " FROM turns WHERE model = ? AND created >= ? AND error IS NULL AND prompt_hash IS NOT NULL"
            " ORDER BY created DESC LIMIT 1000", (model, since)).fetchall()
        return [dict(row) for row in rows]

    # --- totals -----------------------------------------------------------------------------

    @_reading
    def spent(self, key_label: str, since: float) -> float:
        """USD spent by the requests that came with the `serve` key labelled `key_label` since
        `since` (a Unix time): the sum of their known costs (an index range, covering the cost)."""
        spent: float = self.conn.execute(
            "SELECT coalesce(sum(cost), 0.0) FROM turns WHERE key_label = ? AND created >= ?",
            (key_label, since)).fetchone()[0]
        return spent

    @_reading
    def usage(self, since: float | None = None, by: str = "model", *, key_label: str | None = None) -> list[dict[str, Any]]:
        """Turns, tokens and cost per model or per local day, since `since` (a Unix time); with
        `key_label`, of the requests that came with that `serve` key only.
        `cost` sums the turns whose price is known; `priced_turns` says how many those are;
        `cached_tokens` are the prompt tokens read from a cache, `cache_saved` what that saved."""
        key = {"model": "coalesce(model, '?')", "day": "date(created, 'unixepoch', 'localtime')"}.get(by)
        if key is None:
            raise UsageError(f"--by {by!r}: expected model or day")
        only = "" if key_label is None else " AND key_label = ?"
        rows = self.conn.execute(
            f"SELECT {key} AS key, count(*) AS turns, coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
            " coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cached_tokens), 0) AS cached_tokens,"
            " sum(cost) AS cost, count(cost) AS priced_turns, sum(cache_saved) AS cache_saved"
            f" FROM turns WHERE created >= ?{only} GROUP BY key ORDER BY key",
            (since or 0.0, *(() if key_label is None else (key_label,)))).fetchall()
        return [{by: row["key"], **{k: row[k] for k in row.keys() if k != "key"}} for row in rows]


# The most leading parts of a request `continued` looks for (its longest): a client sends the whole
# conversation, so the one it goes on from ends just before its last few messages.
MAX_CONTINUED_HASHES = 500

# A conversation (`c`) that has turns, each of them with the `serve` key label given twice as
# arguments (None: each without one).
_OWNED = ("EXISTS (SELECT 1 FROM turns o WHERE o.conversation_id = c.id AND o.key_label IS ?)"
          " AND NOT EXISTS (SELECT 1 FROM turns x WHERE x.conversation_id = c.id AND x.key_label IS NOT ?)")


def _conversations_where(key_label: str | None, words: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and its arguments) of `conversations`' filters."""
    clauses: list[str] = []
    args: list[Any] = []
    if key_label is not None:
        clauses.append(_OWNED)
        args += [key_label, key_label]
    text = (words or "").strip()
    if text:
        # Each word as a quoted prefix: plain words, never FTS5 syntax (a hyphen, a lone quote).
        match = " ".join('"' + term.replace('"', '""') + '"*' for term in text.split())
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(c.name LIKE ? ESCAPE '\\' OR c.id IN (SELECT t2.conversation_id FROM turns_fts"
                       " JOIN turns t2 ON t2.id = turns_fts.rowid WHERE turns_fts MATCH ?))")
        args += [pattern, match]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _is_id(ref: str) -> bool:
    """Whether `ref` is a conversation id: ASCII digits ('²' is a digit to Python, not to int)."""
    return ref.isascii() and ref.isdigit()


def _prune(conn: sqlite3.Connection, cutoff: float) -> tuple[int, int]:
    turns = conn.execute("DELETE FROM turns WHERE created < ?", (cutoff,)).rowcount
    conversations = conn.execute(
        "DELETE FROM conversations WHERE updated < ? AND NOT EXISTS"
        " (SELECT 1 FROM turns WHERE turns.conversation_id = conversations.id)", (cutoff,)).rowcount
    return turns, conversations


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(row["id"], row["name"], row["system"], json.loads(row["messages"]),
                        row["created"], row["updated"])


def turn_record(row: sqlite3.Row) -> dict[str, Any]:
    """A turn as the commands print and export it."""
    turn = Turn(
        messages=json.loads(row["messages"]), answer=row["answer"], model=row["model"],
        deployment=row["deployment"], deployment_kind=row["deployment_kind"], template=row["template"],
        params=json.loads(row["params"]), finish_reason=row["finish_reason"],
        prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        timings=None if row["timings"] is None else json.loads(row["timings"]), cost=row["cost"], error=row["error"],
        route=None if row["route"] is None else json.loads(row["route"]), cached_tokens=row["cached_tokens"],
        cache_write_tokens=row["cache_write_tokens"], cache_saved=row["cache_saved"], key_label=row["key_label"],
        tool_calls=None if row["tool_calls"] is None else json.loads(row["tool_calls"]))
    record = {"id": row["id"], "conversation": row["conversation_id"], "session": row["session"],
              "created": iso(row["created"]), "prompt": turn.prompt, "system": turn.system, **asdict(turn)}
    if turn.key_label is None:  # a turn of the CLI's own, not a request to `serve`
        del record["key_label"]
    if turn.tool_calls is None:  # an answer that called no tool
        del record["tool_calls"]
    return record
