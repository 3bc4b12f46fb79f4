"""The history database: its schema, the steps that migrate it, and opening it.

`PRAGMA user_version` holds how many steps of MIGRATIONS a database has had; opening one runs the
steps it lacks, each in its own transaction, so a database from any earlier release is brought up
to date and one from a later release is refused rather than misread. The journal is a WAL: a
process killed mid-write leaves the database as it was after its last committed turn.
"""

from __future__ import annotations

import errno
import re
import sqlite3
import time
from pathlib import Path

from modelctl.errors import ModelctlError

# Seconds a writer waits for another process's transaction to end before it gives up.
BUSY_TIMEOUT_S = 30.0

# Each step takes a database at user_version i to i + 1. Released steps never change: a new
# column or table is a new step at the end.
MIGRATIONS: tuple[str, ...] = (
    # 1: conversations (a name makes one a session) and their turns.
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        name TEXT UNIQUE,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        system TEXT,
        messages TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        created REAL NOT NULL,
        model TEXT,
        deployment TEXT,
        deployment_kind TEXT,
        template TEXT,
        params TEXT NOT NULL DEFAULT '{}',
        system TEXT,
        messages TEXT NOT NULL DEFAULT '[]',
        prompt TEXT NOT NULL DEFAULT '',
        answer TEXT NOT NULL DEFAULT '',
        finish_reason TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        timings TEXT,
        cost REAL,
        error TEXT
    );
    CREATE INDEX turns_by_conversation ON turns(conversation_id, id);
    CREATE INDEX turns_by_time ON turns(created);
    CREATE INDEX conversations_by_update ON conversations(updated);
    """,
    # 2: full-text search over prompts, answers and system messages, kept in step by triggers.
    """
    CREATE VIRTUAL TABLE turns_fts USING fts5(
        prompt, answer, system, content='turns', content_rowid='id', tokenize='unicode61'
    );
    CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts(rowid, prompt, answer, system) VALUES (new.id, new.prompt, new.answer, new.system);
    END;
    CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, prompt, answer, system)
            VALUES ('delete', old.id, old.prompt, old.answer, old.system);
    END;
    CREATE TRIGGER turns_fts_update AFTER UPDATE ON turns BEGIN
        INSERT INTO turns_fts(turns_fts, rowid, prompt, answer, system)
            VALUES ('delete', old.id, old.prompt, old.answer, old.system);
        INSERT INTO turns_fts(rowid, prompt, answer, system) VALUES (new.id, new.prompt, new.answer, new.system);
    END;
    INSERT INTO turns_fts(turns_fts) VALUES ('rebuild');
    """,
    # 3: how the service was chosen (`--model auto`'s choice and reasons, `--fallback` switches).
    """
    ALTER TABLE turns ADD COLUMN route TEXT;
    """,
    # 4: the prompt tokens read from the provider's cache and written to it, and what the cache saved.
    """
    ALTER TABLE turns ADD COLUMN cached_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN cache_write_tokens INTEGER;
    ALTER TABLE turns ADD COLUMN cache_saved REAL;
    """,
    # 5: a hash of the request's messages (`store.prefix_hashes`), to tell whether a conversation's
    # prefix was sent to the same deployment recently enough to be in its prompt cache.
    """
    ALTER TABLE turns ADD COLUMN prompt_hash TEXT;
    CREATE INDEX turns_by_model_time ON turns(model, created);
    """,
    # 6: the label of the `serve` API key a request came with (never the key), and what each label
    # spent when (`store.History.spent`, per-key budgets): a partial index, covering the cost.
    """
    ALTER TABLE turns ADD COLUMN key_label TEXT;
    CREATE INDEX turns_by_key_label ON turns(key_label, created, cost) WHERE key_label IS NOT NULL;
    """,
    # 7: the tools an answer called (JSON: [{"id", "name", "arguments"}]); their results are the
    # "tool" messages of the next turn's request.
    """
    ALTER TABLE turns ADD COLUMN tool_calls TEXT;
    """,
    # 8: a hash of each conversation's state (its system message, messages and last answer, as
    # `store.prefix_hashes` chains them), to find the conversation a served request goes on from.
    # Conversations from before it have none and are found only when a client names them.
    """
    ALTER TABLE conversations ADD COLUMN state_hash TEXT;
    CREATE INDEX conversations_by_state ON conversations(state_hash) WHERE state_hash IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(ModelctlError):
    """The history database cannot be opened, read or written."""


# What SQLite's primary result codes mean for the history file, in words, with what to do.
_PROBLEMS: dict[str, tuple[str, str | None]] = {
    "SQLITE_FULL": ("the disk is full", "free some disk space"),
    "SQLITE_IOERR": ("the disk could not read or write it", "check the disk and the file"),
    "SQLITE_READONLY": ("it is read-only here", "check the permissions of the file and its folder"),
    "SQLITE_PERM": ("permission denied", "check the permissions of the file and its folder"),
    "SQLITE_CANTOPEN": ("it cannot be opened", "check the permissions of the file and its folder"),
    "SQLITE_BUSY": ("another process kept it locked too long", "try again when the other modelctl is done"),
    "SQLITE_LOCKED": ("another process kept it locked too long", "try again when the other modelctl is done"),
    "SQLITE_CORRUPT": ("the file is damaged", "move the file away to start a new history"),
    "SQLITE_NOTADB": ("the file is not a SQLite database", "move the file away to start a new history"),
    # Not a SQLite code: SQLITE_ERROR about tables or columns, in a file whose schema was changed by hand.
    "tables": ("its tables are not those of a modelctl history", "move the file away to start a new history"),
}
_TABLES_CHANGED = re.compile(r"no such (table|column)|already exists|has no column named|no column named")


def history_error(path: Path, exc: BaseException, doing: str = "cannot write to it") -> HistoryError:
    """The HistoryError for a failure of SQLite (or of the file system) on the database at
    `path`: what happened in words ('the disk is full'), SQLite's own text after it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    if isinstance(exc, ValueError):  # a record that no longer parses
        primary = "SQLITE_CORRUPT"
    elif primary == "SQLITE_ERROR" and _TABLES_CHANGED.search(str(exc)):
        primary = "tables"
    elif isinstance(exc, OSError):
        primary = {errno.ENOSPC: "SQLITE_FULL", errno.EROFS: "SQLITE_READONLY",
                   errno.EACCES: "SQLITE_PERM", errno.EPERM: "SQLITE_PERM"}.get(exc.errno or 0, "SQLITE_IOERR")
    what, hint = _PROBLEMS.get(primary, (None, None))
    detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    said = f"{what} ({detail})" if what else detail
    return HistoryError(f"history database {path}: {doing}: {said}", hint=hint)


def has_fts5() -> bool:
    """Whether this Python's SQLite has the FTS5 module full-text search needs."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def connect(path: Path, *, steps: int = SCHEMA_VERSION, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (creating it, private to its owner) the history database at `path`, migrated through
    `steps` migrations (all of them, except in a test of migrating an old database). Processes
    that create or migrate the same database at once wait for each other (`busy_timeout`)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        # Transactions are explicit (BEGIN IMMEDIATE per write), not the module's implicit ones.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise history_error(path, exc, "cannot open it") from None
    try:
        conn.row_factory = sqlite3.Row
        _set_up(conn, path, steps, busy_timeout)
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise history_error(path, exc, "cannot open it") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _set_up(conn: sqlite3.Connection, path: Path, steps: int, busy_timeout: float) -> None:
    """WAL mode and the migrations. Some lock conflicts SQLite reports at once, without waiting
    (the first processes to open a new database, or the last one closing it, change its journal
    under the others): those are tried again, until `busy_timeout`."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable up to the last checkpointed commit
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, path, steps)
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite said another connection holds a lock (SQLITE_BUSY, or a lock of this
    process's own: SQLITE_LOCKED)."""
    name: str | None = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in str(exc)


def rollback(conn: sqlite3.Connection) -> None:
    """End a failed transaction. SQLite may have rolled it back already (a full disk, an I/O
    error): then there is nothing to do, and no second error hides the first."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def migrate(conn: sqlite3.Connection, path: Path, steps: int = SCHEMA_VERSION) -> None:
    """Run the migrations `conn` lacks, each in a transaction of its own (two processes opening
    an old database at once: the second waits, then finds the step done)."""
    while True:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(f"history database {path} has schema version {version}; this modelctl "
                               f"knows up to {SCHEMA_VERSION}", hint="upgrade modelctl")
        if version >= steps:
            return
        if version + 1 == 2 and not has_fts5():
            raise HistoryError("this Python's SQLite lacks the FTS5 module that history search needs",
                               hint="use a Python whose sqlite3 is built with FTS5, or turn history off: [history] log = false")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == version:  # not done meanwhile
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript would commit the transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]
