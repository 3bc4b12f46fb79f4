"""The chat history: every turn logged to SQLite (`history.sqlite3` in the data directory),
conversations that can be resumed by name, full-text search, and token and cost totals.

    >>> from modelctl.history import History
    >>> with History() as h:
    ...     recent = h.conversations(limit=5)
"""

from modelctl.history.schema import SCHEMA_VERSION, HistoryError, has_fts5
from modelctl.history.store import Conversation, History, Turn

__all__ = ["SCHEMA_VERSION", "Conversation", "History", "HistoryError", "Turn", "has_fts5"]
