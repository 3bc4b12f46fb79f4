"""The interactive chat: a prompt with line editing and history, commands, streamed Markdown.

Input: one line is one message. A line ending in a backslash continues on the next line; a line
holding only `\"\"\"` starts a block that the next such line ends. `//text` sends `/text`.
Ctrl-C during an answer stops it and keeps what arrived; Ctrl-C or Ctrl-D at the prompt leaves.
"""

from __future__ import annotations

import difflib
import os
import shlex
import stat
import sys
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modelctl.backends.base import PARAM_NAMES, REASONING_PARAMS, is_local, serving, template_name
from modelctl.backends.images import ImagePart
from modelctl.backends.llama_options import split_options
from modelctl.chat import debug as dbg
from modelctl.chat import terminal
from modelctl.chat.history_log import TurnLog, answer_cost
from modelctl.chat.images import load_image
from modelctl.chat.messages import clean_text
from modelctl.chat.opening import Chat, choose_template
from modelctl.chat.render import (
    THINK_CHOICES,
    THINK_HIDE,
    THINK_SHOW,
    MarkdownStream,
    PlainStream,
    ReasoningStream,
    length_note,
    preview,
    thought_line,
)
from modelctl.chat.session import ChatSession, Reply
from modelctl.chat.typeahead import TypeAhead
from modelctl.config import get_paths
from modelctl.errors import ModelctlError, UsageError
from modelctl.redaction import looks_like_secret, remember_secret
from modelctl.terminal_text import for_terminal, safe
from modelctl.units import counted

if TYPE_CHECKING:
    from modelctl.chat.tool_chain import ToolRunner

PROMPT = ">>> "
CONTINUATION = "... "
BLOCK = '"""'


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    help: str


COMMANDS = (
    Command("help", "", "show this help"),
    Command("exit", "", "leave (also /quit, Ctrl-D, Ctrl-C at the prompt)"),
    Command("reset", "", "start the conversation again (the system message stays)"),
    Command("undo", "", "remove the last question and its answer"),
    Command("regen", "", "answer the last question again"),
    Command("system", "[TEXT]", "show, or set, the system message (/system off removes it)"),
    Command("template", "[NAME]", "show, or switch, the conversation template"),
    Command("set", "[KEY VALUE]", f"show, or set, a parameter: {', '.join((*PARAM_NAMES, *REASONING_PARAMS))}, "
            "or a llama.cpp sampling option (VALUE none resets); think show|hide shows or hides reasoning"),
    Command("save", "NAME|FILE", "save the conversation as session NAME in the history, or as a JSON FILE"),
    Command("load", "NAME|FILE", "continue session NAME from the history, or load a conversation saved as JSON"),
    Command("sessions", "", "the named sessions and recent conversations in the history"),
    Command("debug", "on|off", "show the prompt, tokens and timings of each answer"),
    Command("info", "", "the model, backend, template and parameters"),
    Command("image", "FILE|URL", "attach an image to the next question (models with vision)"),
)
_ALIASES = {"quit": "exit", "q": "exit", "?": "help", "clear": "reset"}


class _Exit(Exception):
    pass


def _history_file() -> Path:
    return get_paths().data_dir / "chat_history"


class LineReader:
    """`input()` with readline editing and a history of typed lines saved under the data dir.

    The history file is private (0600, in a directory created 0700) and regular: a symlink or a
    FIFO in its place turns the history off. A line that may hold a credential (`/set api_key …`,
    a key pasted as a question, a URL with a password) is neither saved nor kept for Up-arrow.
    """

    def __init__(self, history: Path | None) -> None:
        self.history = history
        self.pending: deque[str] = deque()  # lines typed ahead, to be read before the terminal
        self.started = ""  # a line typed ahead but not finished: the next prompt begins with it
        try:
            import readline  # noqa: PLC0415 (readline: optional)
        except ImportError:  # Windows without pyreadline
            self.readline = None
            return
        self.readline = readline
        readline.set_history_length(2000)
        if history is not None and _regular_or_absent(history) and history.exists():
            try:
                readline.read_history_file(history)
            except OSError:
                pass
            self._forget_secrets()  # saved by an older modelctl: gone when the history is written

    def _forget_secrets(self) -> None:
        if self.readline is None:
            return
        for i in reversed(range(self.readline.get_current_history_length())):
            if looks_like_secret(self.readline.get_history_item(i + 1) or ""):  # items count from 1
                self.readline.remove_history_item(i)

    def type_ahead(self, lines: list[str], partial: str) -> None:
        """Take what was typed while an answer streamed: whole lines are read first, in order;
        the unfinished one is put on the next prompt to go on editing."""
        if self.started and lines:
            lines = [self.started + lines[0], *lines[1:]]
            self.started = ""
        self.pending.extend(lines)
        self.started += partial

    def read(self, prompt: str) -> str:
        if self.pending:
            line = self.pending.popleft()
            # Shown as if typed at the prompt, so that the transcript reads in order.
            sys.stdout.write(f"{prompt}{for_terminal(line)}\n")
            sys.stdout.flush()
            if self.readline is not None and line.strip():
                self.readline.add_history(line)
        else:
            line = self._input(prompt)
        if self.readline is None or not line.strip():
            return line
        if looks_like_secret(line):
            self._forget_last()
        elif self.history is not None and _private_file(self.history):
            try:
                self.readline.append_history_file(1, self.history)
            except OSError:
                pass
        return line

    def _input(self, prompt: str) -> str:
        started, self.started = self.started, ""
        if not started or self.readline is None:
            return started + input(prompt) if started else input(prompt)
        readline = self.readline

        def insert() -> None:
            readline.insert_text(started)
            readline.redisplay()

        readline.set_pre_input_hook(insert)
        try:
            return input(prompt)
        finally:
            readline.set_pre_input_hook(None)

    def _forget_last(self) -> None:
        """Drop the line just typed from readline's memory (input() added it)."""
        if self.readline is None:
            return
        last = self.readline.get_current_history_length() - 1
        if last >= 0:
            self.readline.remove_history_item(last)

    def close(self) -> None:
        if self.readline is not None and self.history is not None and self.history.exists() \
                and _private_file(self.history):
            self._forget_secrets()  # a line typed before its key became known (`/set api_key …` later)
            try:
                self.readline.write_history_file(self.history)  # trims to the history length
            except OSError:
                pass


def _regular_or_absent(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _private_file(path: Path) -> bool:
    """Make `path` an existing regular file only its owner can read (its directory created 0700);
    False when that cannot be (a symlink or FIFO in its place, a read-only directory)."""
    if not _regular_or_absent(path):
        return False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def read_message(read: Callable[[str], str]) -> str:
    """One message: a line, backslash-continued lines, or a \"\"\" block."""
    first = read(PROMPT)
    if first.strip() == BLOCK:
        lines: list[str] = []
        while True:
            line = read(CONTINUATION)
            if line.strip() == BLOCK:
                return "\n".join(lines)
            lines.append(line)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(read(CONTINUATION))
    return "\n".join(lines)


class Repl:
    def __init__(self, setup: Chat, *, debug: bool = False, think: str = THINK_HIDE,
                 session: ChatSession | None = None, images_refused: ModelctlError | None = None,
                 images: "tuple[ImagePart, ...]" = (), tools: "ToolRunner | None" = None) -> None:
        self.setup = setup
        self.tools = tools  # runs the tools the model calls (-T, --functions)
        self.think = think
        self.images_refused = images_refused  # why /image cannot be used with this model
        self.pending_images = images  # what goes with the next question
        self.session = session or ChatSession(setup.backend, setup.params, system=setup.system, model=setup.model_id)
        # The history this chat is logged to (also where /save NAME and /load NAME go).
        self.log = session.on_turn if session and isinstance(session.on_turn, TurnLog) else \
            TurnLog(setup, None, self.note)
        self.debug = debug
        self.out = terminal.out()
        self.err = terminal.err()
        self.reader = LineReader(_history_file())

    # --- output -------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.err.print(safe(text), style="dim", markup=False, highlight=False)

    def error(self, text: str) -> None:
        self.err.print(f"error: {safe(text)}", style="red", markup=False, highlight=False)

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        backend = serving(self.setup.backend)
        if is_local(backend):
            self.note(f"loading {self.setup.model_id} ...")
            backend.load()
            where = f"{backend.compute_description()}, template {template_name(backend)}"
        else:
            info = backend.describe()
            where = info.get("endpoint") or info.get("kind", "?")
        self.note(f"chatting with {self.setup.model_id} on {where}. /help for commands, /exit or Ctrl-D to leave.")
        if self.session.messages:
            self.note(f"resumed {self._conversation_label()}: {counted(len(self.session.messages), 'message')}")
            self._show_last()
        try:
            while True:
                try:
                    text = clean_text(read_message(self.reader.read))
                except (EOFError, KeyboardInterrupt):
                    self.out.print()
                    return 0
                try:
                    if text.startswith("/") and not text.startswith("//"):
                        self.command(text[1:])
                    elif text.strip():
                        self.ask(text[1:] if text.startswith("//") else text)
                except _Exit:
                    return 0
                except ModelctlError as exc:
                    self.error(str(exc))
        finally:
            self.reader.close()

    def ask(self, text: str) -> None:
        """A question, with the images attached for it; when it fails before its answer began
        (the conversation is as it was), the images wait for the next question."""
        images, self.pending_images = self.pending_images, ()
        before = len(self.session.messages)
        try:
            self.answer(partial(self.session.ask, text, images))
        except ModelctlError:
            if images and len(self.session.messages) == before:
                self.pending_images = images + self.pending_images
                self.note(f"{counted(len(self.pending_images), 'image')} will go with your next question")
            raise

    def answer(self, start: Callable[[], Reply]) -> None:
        """Stream the answer `start` begins; while it calls tools, run them (each call and
        result shown) and stream the answer that reads their results."""
        if self.tools is not None:
            self.tools.start(self.session)  # the chain limit counts per question
        reply = self._answer(start)
        while reply is not None and self.tools is not None and self.tools.goes_on(reply):
            self.tools.run(self.session, reply)
            reply = self._answer(self.session.resume)

    def _answer(self, start: Callable[[], Reply]) -> Reply | None:
        try:
            reply = start()
        except KeyboardInterrupt:  # while the prompt was being prepared: nothing was added
            self.note("[interrupted]")
            return None
        if self.debug:
            dbg.prompt_report(self.session.backend)
        typed = TypeAhead()
        try:
            with typed:
                self._stream(reply)
        except KeyboardInterrupt:
            reply.close()
            self.note("[interrupted: the partial answer is kept; /regen to try again]")
            return None
        finally:
            reply.close()
            self.reader.type_ahead(typed.lines, typed.partial)
        if reply.reasoning and self.think == THINK_HIDE:
            self.note(thought_line(reply.reasoning_tokens, reply.reasoning))
        if reply.finish_reason == "length":
            self.note(length_note(reply, self.session.params.max_tokens, more="/set max_tokens N",
                                  room="/undo or /reset make room, or start again with a larger --ctx"))
        if self.debug:
            dbg.answer_report(reply, cost=answer_cost(self.setup, reply))
        return reply

    def _stream(self, reply: Reply) -> None:
        """Show the answer as it comes: Markdown at a terminal; reasoning, when shown, dimmed
        before it (the answer's live region starts with the answer's first text)."""

        console = self.out
        markdown = console.is_terminal and not console.is_dumb_terminal
        renderer = MarkdownStream(console) if markdown else PlainStream()
        # Reasoning is for the person at the terminal: stderr when the answers go to a pipe.
        thoughts = ReasoningStream(console.file if console.is_terminal else sys.stderr) if self.think == THINK_SHOW else None
        with ExitStack() as stack:
            if thoughts is not None:
                stack.callback(thoughts.close)
            started = False
            for split in reply.splits():
                if thoughts is not None and not started:
                    thoughts.feed(split.reasoning)
                if not split.text:
                    continue
                if not started:
                    if thoughts is not None:
                        thoughts.close()
                    stack.enter_context(renderer)
                    started = True
                renderer.feed(split.text)

    # --- commands -----------------------------------------------------------------------------

    def command(self, line: str) -> None:
        name, _, args = line.strip().partition(" ")
        name = _ALIASES.get(name.lower(), name.lower())
        args = args.strip()
        handler = getattr(self, f"cmd_{name}", None)
        if handler is None or name not in {c.name for c in COMMANDS}:
            close = difflib.get_close_matches(name, [c.name for c in COMMANDS], n=1)
            hint = f"did you mean /{close[0]}?" if close else "/help lists the commands"
            raise UsageError(f"unknown command /{name}", hint=hint)
        handler(args)

    def cmd_help(self, args: str) -> None:
        width = max(len(f"/{c.name} {c.args}") for c in COMMANDS)
        for c in COMMANDS:
            self.note(f"  {f'/{c.name} {c.args}'.ljust(width)}  {c.help}")
        self.note('  end a line with \\ to continue it; """ on its own line starts and ends a block')

    def cmd_image(self, args: str) -> None:
        if self.images_refused is not None:
            raise self.images_refused
        if not args:
            raise UsageError("/image needs a file or URL: /image photo.png")
        self.pending_images += (load_image(args),)
        self.note(f"{counted(len(self.pending_images), 'image')} will go with your next question")

    def cmd_exit(self, args: str) -> None:
        raise _Exit

    def cmd_reset(self, args: str) -> None:
        self.session.reset()
        self.note("conversation reset")

    def cmd_undo(self, args: str) -> None:
        removed = self.session.undo()
        self.note("removed the last exchange" if removed else "nothing to undo")

    def cmd_regen(self, args: str) -> None:
        self.answer(self.session.regen)

    def cmd_system(self, args: str) -> None:
        if not args:
            self.note(f"system message: {self.session.system!r}" if self.session.system else "no system message")
        elif args.lower() == "off":
            self.session.system = None
            self.note("system message removed")
        else:
            self.session.system = args
            self.note("system message set")

    def cmd_template(self, args: str) -> None:
        backend = serving(self.session.backend)
        if self.setup.local is None or not is_local(backend):
            raise UsageError("templates apply to local models; this one runs on a server or API")
        if args:
            backend.template = choose_template(self.setup.local, args)
        tpl = backend.template
        if tpl is None:
            raise UsageError("no template chosen for this model; /template NAME chooses one")
        self.note(f"template: {tpl.name} (source: {tpl.source})")

    def cmd_set(self, args: str) -> None:
        if not args:
            for key, value in self.session.params.to_dict().items():
                self.note(f"  {key} = {value!r}")
            return
        key, _, value = args.partition(" ")
        value = value.strip()
        if not value:
            raise UsageError("usage: /set KEY VALUE")

        if looks_like_secret(args):
            remember_secret(value)  # shown as *** from now on: /set, /info, errors
        if key == "think" and value.lower() in THINK_CHOICES:
            self.think = value.lower()
            self.note(f"reasoning is {'shown' if self.think == THINK_SHOW else 'hidden'}")
            return
        known = {*PARAM_NAMES, *REASONING_PARAMS}
        local = self.setup.local is not None
        if local and key.replace("-", "_") not in known and value.lower() not in ("none", "default"):
            load, _sample = split_options({key: value})
            if load:
                raise UsageError(f"{key} applies when the model is loaded: restart with -o {key}={value}")
        params = self.session.set_param(key, value)
        shown = params.extra.get(key, getattr(params, key.replace("-", "_"), value))
        self.note(f"{key} = {shown!r}")

    def cmd_save(self, args: str) -> None:
        if not args:
            raise UsageError("usage: /save NAME|FILE")
        target = _one_path(args)
        if _is_session_name(target):
            self.log.save(self.session, target)
            self.note(f"saved {counted(len(self.session.messages), 'message')} as session {target!r} "
                      f"(modelctl chat --session {target} resumes it)")
            return
        path = self.session.save(target)
        self.note(f"saved {counted(len(self.session.messages), 'message')} to {path}")

    def cmd_load(self, args: str) -> None:
        if not args:
            raise UsageError("usage: /load NAME|FILE")
        path = _one_path(args)
        try:
            if _is_session_name(path):
                self.log.load(self.session, path)
            else:
                self.session.load(path)
        except ModelctlError:
            raise
        except Exception as exc:  # whatever a file does to the parser, the session goes on
            raise UsageError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
        self.note(f"loaded {counted(len(self.session.messages), 'message')}")
        self._show_last()

    def _show_last(self) -> None:
        for m in self.session.messages[-2:]:
            self.note(f"  {m['role']}: {m['content'][:200]}")

    def _conversation_label(self) -> str:
        if self.log.name:
            return f"session {self.log.name!r}"
        return f"conversation {self.log.conversation}"

    def cmd_sessions(self, args: str) -> None:
        from modelctl.history import History  # noqa: PLC0415 (sqlite3: imported only where used)

        with History() as history:
            found = history.conversations(limit=20)
        if not found:
            self.note("the history is empty")
        for c in found:
            label = c["name"] or f"#{c['id']}"
            first = preview(c["first_prompt"])
            self.note(f"  {label:<20} {c['updated']}  {counted(c['turns'], 'turn')}  {first}")

    def cmd_debug(self, args: str) -> None:
        if args.lower() not in ("on", "off"):
            raise UsageError("usage: /debug on|off")
        self.debug = args.lower() == "on"
        # Server and API backends print their requests themselves, through their debug log.
        self.session.backend.set_debug(self.debug)
        self.note(f"debug {args.lower()}")

    def cmd_info(self, args: str) -> None:
        params = {k: v for k, v in self.session.params.to_dict().items() if v not in (None, [], {})}
        info = {**self.session.backend.describe(), "messages": len(self.session.messages),
                "system": self.session.system, "parameters": params}
        for line in info_lines(info):
            self.note(f"  {line}")


def info_lines(info: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """/info's lines, `key: value` in words; a nested table's keys as `table.key`."""
    for key, value in info.items():
        if isinstance(value, dict) and value:
            yield from info_lines(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}: {human_value(value)}"


def human_value(value: Any) -> str:
    """A value as a person reads it: none, yes, no, 0.5, a, b (not None, True, 0.5, ['a', 'b'])."""
    if value is None or value in ("", [], (), {}):
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(human_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {human_value(v)}" for k, v in value.items())
    return str(value)


def _is_session_name(target: str) -> bool:
    """/save and /load: a name without a slash or .json is a session in the history."""
    return "/" not in target and os.sep not in target and not target.lower().endswith(".json")


def _one_path(args: str) -> str:
    try:
        parts = shlex.split(args)
    except ValueError:
        parts = [args]
    if len(parts) != 1:
        raise UsageError("give one file name (quote it if it has spaces)")
    return parts[0]


def run_repl(setup: Chat, *, debug: bool = False, think: str = THINK_HIDE,
             session: ChatSession | None = None, images_refused: ModelctlError | None = None,
             images: "tuple[ImagePart, ...]" = (), tools: "ToolRunner | None" = None) -> int:
    """The interactive chat; `session` (by default a new, unlogged one) may hold earlier turns
    and a TurnLog as its on_turn; `images` go with the first question, `images_refused` is why
    /image cannot be used with this model (None: it can)."""
    if not sys.stdin.isatty():
        raise UsageError("the interactive chat needs a terminal; pass a prompt or pipe one on stdin")
    repl = Repl(setup, debug=debug, think=think, session=session, images_refused=images_refused,
                images=images, tools=tools)
    if tools is not None:
        tools.show = tools.notify = repl.note
    return repl.run()
