"""`modelctl history list|show|search|rm|export`: the chats logged in the history database."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from modelctl.chat.render import is_terminal, preview
from modelctl.cli import help as panel
from modelctl.cli import options as opt
from modelctl.cli import output
from modelctl.cli.flags import command_group
from modelctl.cli.format import cost_cell
from modelctl.cli.help import examples
from modelctl.errors import UsageError
from modelctl.terminal_text import for_terminal, json_text, safe
from modelctl.units import counted

if TYPE_CHECKING:
    from modelctl.history import History

history_app = command_group("The chat history: every turn of `modelctl chat`, kept in SQLite in the data directory.")

_REF_HELP = "A conversation id (from `history list`) or a session name."


def _open() -> History:
    from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

    return History()


def _json(data: Any) -> None:
    """History as JSON, every credential in it hidden (a key logged before modelctl knew it)."""
    from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    output.print_json(redact_data(data))


def _write(text: str) -> None:
    """Logged text (from turns already redacted) to stdout; at a terminal, its control
    characters written out (an answer's escape sequences stay data)."""

    sys.stdout.write(for_terminal(text) if is_terminal(sys.stdout) else text)


@history_app.command("list", epilog=examples(
    ('The five latest conversations', 'modelctl history list -n 5'),
    ('As JSON', 'modelctl history list --json'),
))
def list_conversations(
    limit: Annotated[int, opt.reworded(opt.Limit, "Show at most this many (latest first).")] = 20,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array.")] = False,
) -> None:
    """The conversations, latest first: id, session name, turns, models, cost, first question."""

    with _open() as history:
        found = history.conversations(limit=limit)
    if as_json:
        _json(found)
        return
    rows = [[str(c["id"]), c["name"] or "", c["updated"], str(c["turns"]), ", ".join(c["models"]),
             cost_cell(c["cost"]), preview(c["first_prompt"])] for c in found]
    output.table(["id", "session", "updated", "turns", "models", "cost", "first question"], rows,
                 "History", right=("id", "turns", "cost"), drop=("cost", "models", "turns", "session", "updated"))


@history_app.command("show", epilog=examples(
    ('A conversation by id', 'modelctl history show 12'),
    ('A session by name, every field as JSON', 'modelctl history show trip --json'),
))
def show(
    ref: str = typer.Argument(..., metavar="ID|NAME", help=_REF_HELP),
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print the conversation and its turns as JSON.")] = False,
) -> None:
    """One conversation's turns: each question and answer, with model, tokens and cost."""

    with _open() as history:
        found = history.require(ref)
        turns = history.turns(found.id)
    if as_json:
        _json({"id": found.id, "name": found.name, "system": found.system,
               "messages": found.messages, "turns": turns})
        return
    if not turns:  # saved with /save while the chat was not logged
        sys.stderr.write(f"modelctl: conversation {found.id} has no logged turns; "
                         f"--json shows its {counted(len(found.messages), 'saved message')}\n")
        return
    from modelctl.history.export import to_markdown  # noqa: PLC0415 (sqlite3: imported only where used)
    from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    _write("".join(to_markdown(redact_data(turns))))  # a key logged before modelctl knew it


@history_app.command("search", epilog=examples(
    ('Turns with both words', 'modelctl history search penguins south'),
    ('A phrase, as JSON', 'modelctl history search \'"context window"\' --json'),
    ('Words that start with gguf', "modelctl history search 'gguf*'"),
))
def search(
    query: List[str] = typer.Argument(..., help='Words to find (FTS5 syntax: "a phrase", prefix*, OR, NOT).'),
    limit: Annotated[int, opt.reworded(opt.Limit, "Show at most this many turns (best first).")] = 20,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print a JSON array of turns.")] = False,
) -> None:
    """Full-text search over questions, answers and system messages."""

    with _open() as history:
        found = history.search(" ".join(query), limit=limit)
    if as_json:
        _json(found)
        return
    rows = [[str(t["conversation"]), str(t["id"]), t["session"] or "", t["model"] or "", t["created"],
             preview(t["snippet"], 80)] for t in found]
    output.table(["conversation", "turn", "session", "model", "when", "match"], rows, "Matches",
                 right=("conversation", "turn"), drop=("model", "session", "when"))


@history_app.command("rm", epilog=examples(
    ('Two conversations (asks first)', 'modelctl history rm 3 4'),
    ('A session, without asking', 'modelctl history rm --session trip --yes'),
    ('Every turn older than 30 days', 'modelctl history rm --older-than 30d'),
))
def remove(
    ids: Optional[List[int]] = typer.Argument(None, metavar="[ID]...", help="Conversation ids to remove."),
    session: Annotated[Optional[str], opt.reworded(opt.Session, "Remove the session NAME.", rich_help_panel=None)] = None,
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", help="Remove turns older than AGE: 30d, 12h, 2w, 90m."),
    yes: opt.Yes = False,
    as_json: Annotated[bool, opt.reworded(opt.Json, "Print what was removed as JSON.")] = False,
) -> None:
    """Remove conversations by id, a session by name, or every turn older than an age (asks first)."""

    from modelctl.history.when import parse_age  # noqa: PLC0415 (sqlite3: imported only where used)

    if sum(bool(x) for x in (ids, session, older_than)) != 1:
        raise UsageError("give conversation ids, --session NAME or --older-than AGE (one of them)")
    with _open() as history:
        if older_than:
            cutoff = time.time() - parse_age(older_than, "--older-than")
            count = history.count_older_than(cutoff)
            question = f"Remove {counted(count, 'turn')} older than {older_than}?"
        else:
            targets = [history.require(session).id] if session else \
                [history.require(str(i)).id for i in ids or []]
            turns = sum(len(history.turns(i)) for i in targets)
            question = f"Remove {counted(len(targets), 'conversation')} ({counted(turns, 'turn')})?"
        if not yes:
            output.confirm_removal(question)
        if older_than:
            turns, conversations = history.remove_older_than(cutoff)
            result: dict[str, object] = {"turns": turns, "conversations": conversations}
        else:
            conversations = history.remove_conversations(targets)
            result = {"turns": turns, "conversations": conversations, "ids": targets}
    if as_json:
        _json(result)
        return
    sys.stdout.write(f"removed {counted(conversations, 'conversation')}, {counted(turns, 'turn')}\n")


@history_app.command("export", epilog=examples(
    ('Every turn as JSON lines', 'modelctl history export > turns.jsonl'),
    ('A session as a Markdown transcript', 'modelctl history export trip --format markdown -o trip.md'),
    ('Every turn as one JSON array', 'modelctl history export --json | jq length'),
))
def export(
    refs: Optional[List[str]] = typer.Argument(None, metavar="[ID|NAME]...", help="Conversations to export (default: all)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", metavar="jsonl|markdown", help="JSON lines (one turn a line; the default) or Markdown."),
    output_file: Annotated[Optional[str], opt.reworded(opt.Output, "Write to FILE instead of stdout.", metavar="FILE", rich_help_panel=None)] = None,
    as_json: Annotated[bool, opt.reworded(opt.Json, "One JSON array of the turns, each as `history show --json` has it.")] = False,
) -> None:
    """Write turns out as JSON lines, a JSON array or a Markdown transcript."""
    from modelctl.history.export import FORMATS, to_jsonl, to_markdown  # noqa: PLC0415 (sqlite3: imported only where used)

    if as_json and fmt is not None:
        raise UsageError(f"--json and --format {fmt} both say how to write the turns: give one")
    name = (fmt or "jsonl").lower()
    name = {"md": "markdown", "json": "jsonl"}.get(name, name)
    if name not in FORMATS:
        raise UsageError(f"--format {name!r}: expected jsonl or markdown")
    with _open() as history:
        if refs:
            turns = [t for ref in refs for t in history.turns(history.require(ref).id)]
        else:
            turns = history.turns()
    from modelctl.redaction import redact_data  # noqa: PLC0415 (modelctl.redaction: not on the --help path)

    turns = redact_data(turns)  # a file too: a key logged before modelctl knew it
    if as_json and output_file is None:
        output.print_json(turns)
        return
    if as_json:
        text = json_text(turns) + "\n"
    else:
        text = "".join(to_jsonl(turns) if name == "jsonl" else to_markdown(turns))
    if output_file is None:
        _write(text)
        return

    from modelctl.files import write_user_file  # noqa: PLC0415 (modelctl.files: not on the --help path)

    path = write_user_file(Path(output_file).expanduser(), text.encode("utf-8"), "export file")
    sys.stderr.write(f"modelctl: exported {counted(len(turns), 'turn')} to {safe(str(path))}\n")  # a path is data


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history", rich_help_panel=panel.RECORDS, epilog=examples(
        ('The latest conversations', 'modelctl history list'),
        ('Find a turn by its words', 'modelctl history search penguins'),
        ('Continue a conversation with the model it used, or another', 'modelctl chat --session trip'),
    ))
