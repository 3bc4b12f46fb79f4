"""One question, one answer: streamed to stdout, or printed whole, or as one JSON object.

With a response format (`--schema`, `--json-mode`) the answer is held until it is complete and
validated (`chat.structured`), so that a script reading stdout gets valid JSON or nothing (and
exit 7 with the reason)."""

from __future__ import annotations

import sys
from functools import partial
from typing import IO, TYPE_CHECKING, Any

from modelctl.backends.base import ResponseFormat, template_name
from modelctl.backends.images import ImagePart
from modelctl.chat import debug as dbg
from modelctl.chat.history_log import TurnLog, answer_cost, cache_saving
from modelctl.chat.opening import Chat
from modelctl.chat.render import (
    DIM,
    THINK_HIDE,
    THINK_SHOW,
    UNDIM,
    ReasoningStream,
    is_terminal,
    length_note,
    thought_line,
)
from modelctl.chat.session import ChatSession, Reply
from modelctl.chat.structured import validate_answer
from modelctl.chat.terminal import write_json
from modelctl.errors import ModelctlError
from modelctl.terminal_text import for_terminal

if TYPE_CHECKING:
    from modelctl.chat.tool_chain import ToolRunner


def reply_json(reply: Reply, setup: Chat, turn_log: TurnLog | None = None, *,
               templated: bool = True) -> dict[str, Any]:
    """The `--json` object; with `turn_log`, the ids the turn was logged under (null when it
    was not)."""
    timings = reply.timings.to_dict() if reply.timings else {}
    usage = reply.usage.to_dict() if reply.usage else None
    if usage is not None and reply.reasoning_tokens is not None:
        usage["reasoning_tokens"] = reply.reasoning_tokens
    route = {"route": setup.route} if setup.route else {}
    return {
        "text": reply.text,
        "reasoning": reply.reasoning,
        "id": setup.model_id,
        "template": template_name(setup.backend) if templated else None,
        "finish_reason": reply.finish_reason,
        "usage": usage,
        "timings": {
            "load_s": timings.get("load_s"),
            "first_token_s": timings.get("first_token_s"),
            "tokens_per_second": timings.get("tokens_per_second"),
            "prompt_eval_tokens": timings.get("prompt_eval_tokens"),
        },
        "cost": answer_cost(setup, reply),
        "cache_saved": cache_saving(setup, reply),
        "conversation": turn_log.conversation if turn_log and turn_log.last_turn is not None else None,
        "turn": turn_log.last_turn if turn_log else None,
        **route,
    }


def run_once(
    setup: Chat,
    prompt: str,
    *,
    stream: bool = True,
    as_json: bool = False,
    debug: bool = False,
    think: str = THINK_HIDE,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    session: ChatSession | None = None,
    response_format: ResponseFormat | None = None,
    images: "tuple[ImagePart, ...]" = (),
    tools: "ToolRunner | None" = None,
) -> Reply:
    """Ask `prompt` (with `images`) once. Ctrl-C stops the answer (what arrived stays printed) and propagates.

    A model's reasoning never goes into the answer: with `think` "show" it is shown dimmed before
    the answer at a terminal (on stderr when stdout is piped); hidden, one line on stderr says how
    long it was. `--json` has it apart, under "reasoning".

    With `as_json`, an answer that ends early (Ctrl-C, a stream cut off midway) still prints its
    object, finish_reason "interrupted" and the error's message under "error", before the error
    propagates to set the exit code. `session` (by default a new one) may hold earlier turns, and
    a TurnLog as its on_turn (`chat --continue`). `images` go with the question.

    With `response_format`, nothing is printed before the whole answer is validated; an answer
    that is not valid JSON of the schema raises BackendError (with `as_json`, after its object,
    whose "error" says why). A valid one's JSON value is the object's "data".

    With `tools`, the calls the model makes are run and their results sent back until it answers
    without calling any (or the chain limit); each answer's text is shown as it comes, each call
    and result is one line on stderr, and `--json` prints one object for the whole exchange, the
    calls under "tool_calls" (with their results) and the round trips under "rounds"."""
    session = session or ChatSession(setup.backend, setup.params, system=setup.system, model=setup.model_id)
    if response_format is not None:
        session.params = session.params.overlay(response_format=response_format)
    turn_log = session.on_turn if isinstance(session.on_turn, TurnLog) else None
    show = partial(show_reply, setup=setup, stream=stream, as_json=as_json, debug=debug, think=think, out=out,
                   err=err, turn_log=turn_log, response_format=response_format)
    if tools is None:
        return show(session.ask(prompt, images))
    reply = show(session.ask(prompt, images), print_json=False)
    while tools.goes_on(reply):
        tools.run(session, reply)
        reply = show(session.resume(), print_json=False)
    if as_json:
        write_json(out or sys.stdout, {**reply_json(reply, setup, turn_log), "rounds": tools.rounds,
                                       "tool_calls": [record.to_dict() for record in tools.records]})
    return reply


def run_completion(setup: Chat, text: str, *, stream: bool = True, as_json: bool = False,
                   debug: bool = False, out: IO[str] | None = None, session: ChatSession | None = None) -> Reply:
    """Continue `text` with no template (`modelctl complete`), shown as `run_once` shows an answer.
    With `session`, its on_turn (a TurnLog) logs the text and its continuation as one turn."""
    turn_log = session.on_turn if session is not None and isinstance(session.on_turn, TurnLog) else None

    def done(reply: Reply) -> None:
        if session is not None and turn_log is not None:
            turn_log(session, reply)

    reply = Reply(setup.backend.complete(text, setup.params), done, [{"role": "user", "content": text}])
    return show_reply(reply, setup, stream=stream, as_json=as_json, debug=debug, out=out, turn_log=turn_log,
                      templated=False)


def show_reply(reply: Reply, setup: Chat, *, stream: bool, as_json: bool, debug: bool,
               think: str = THINK_HIDE, out: IO[str] | None = None, err: IO[str] | None = None,
               turn_log: TurnLog | None = None, templated: bool = True,
               response_format: ResponseFormat | None = None, print_json: bool = True) -> Reply:
    """Print `reply` as it streams (or whole, or as the `--json` object: not with `print_json`
    False, where the caller prints one object for several replies) and return it."""

    out = out or sys.stdout
    err = err or sys.stderr
    if debug:
        dbg.prompt_report(setup.backend)
    live = stream and not as_json and response_format is None
    shown = for_terminal if is_terminal(out) else str  # data to a pipe stays as it came
    wrote_last = ""
    # Reasoning shown live goes where a person reads it: the terminal, never a pipe of answers.
    thoughts = ReasoningStream(out if is_terminal(out) else err) if think == THINK_SHOW and not as_json else None
    try:
        for split in reply.splits():
            if thoughts is not None and stream:
                thoughts.feed(split.reasoning)
                if split.text:
                    thoughts.close()  # the answer begins
            if live and split.text:
                out.write(shown(split.text))
                out.flush()
                wrote_last = split.text
    except (ModelctlError, KeyboardInterrupt) as exc:
        if as_json:
            reply.close()
            data = reply_json(reply, setup, turn_log, templated=templated)
            data["error"] = str(exc) if isinstance(exc, ModelctlError) else "interrupted"
            write_json(out, data)
        raise
    finally:
        reply.close()
        if live and wrote_last and not wrote_last.endswith("\n"):
            out.write("\n")
            out.flush()
    if thoughts is not None:
        if not stream and reply.reasoning:
            thoughts.feed(reply.reasoning)
        thoughts.close()
    elif reply.reasoning and not as_json:
        _note(err, thought_line(reply.reasoning_tokens, reply.reasoning))
    if debug:
        dbg.answer_report(reply, cost=answer_cost(setup, reply))
    if response_format is not None:
        _print_structured(reply, setup, response_format, as_json, out, turn_log)
    elif as_json:
        if print_json:
            write_json(out, reply_json(reply, setup, turn_log, templated=templated))
    else:
        if not stream:
            out.write(shown(reply.text) + ("" if reply.text.endswith("\n") else "\n"))
            out.flush()
        if reply.finish_reason == "length":
            _note(err, length_note(reply, setup.params.max_tokens, more="--max-tokens N",
                                   room="shorten the prompt, or give a local model a larger --ctx"))
    return reply


def _note(err: IO[str], line: str) -> None:
    """A line about the answer on stderr, dimmed at a terminal."""
    err.write((f"{DIM}{line}{UNDIM}" if is_terminal(err) else line) + "\n")
    err.flush()


def _print_structured(reply: Reply, setup: Chat, fmt: ResponseFormat, as_json: bool, out: IO[str],
                      turn_log: TurnLog | None) -> None:
    """Validate the complete answer, then print it (as it came, or as the `--json` object)."""

    try:
        value = validate_answer(reply.text, fmt, reply.finish_reason)
    except ModelctlError as exc:
        if as_json:
            write_json(out, {**reply_json(reply, setup, turn_log), "error": str(exc)})
        raise
    if as_json:
        write_json(out, {**reply_json(reply, setup, turn_log), "data": value})
    else:
        text = reply.text.strip()
        out.write((for_terminal(text) if is_terminal(out) else text) + "\n")
        out.flush()
