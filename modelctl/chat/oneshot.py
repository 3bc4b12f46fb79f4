"""One question, one answer: streamed to stdout, or printed whole, or as one JSON object."""

from __future__ import annotations

import sys
from typing import IO, Any

from modelctl.backends.base import template_name
from modelctl.chat.render import for_terminal, is_terminal
from modelctl.chat.resolve import ChatSetup
from modelctl.chat.session import ChatSession, Reply
from modelctl.chat.terminal import write_json
from modelctl.errors import ModelctlError


def reply_json(reply: Reply, setup: ChatSetup) -> dict[str, Any]:
    """The `--json` object."""
    timings = reply.timings.to_dict() if reply.timings else {}
    return {
        "text": reply.text,
        "id": setup.model_id,
        "template": template_name(setup.backend),
        "finish_reason": reply.finish_reason,
        "usage": reply.usage.to_dict() if reply.usage else None,
        "timings": {
            "load_s": timings.get("load_s"),
            "first_token_s": timings.get("first_token_s"),
            "tokens_per_second": timings.get("tokens_per_second"),
            "prompt_eval_tokens": timings.get("prompt_eval_tokens"),
        },
    }


def run_once(
    setup: ChatSetup,
    prompt: str,
    *,
    stream: bool = True,
    as_json: bool = False,
    debug: bool = False,
    out: IO[str] | None = None,
) -> Reply:
    """Ask `prompt` once. Ctrl-C stops the answer (what arrived stays printed) and propagates.

    With `as_json`, an answer that ends early (Ctrl-C, a stream cut off midway) still prints its
    object, finish_reason "interrupted" and the error's message under "error", before the error
    propagates to set the exit code."""
    from modelctl.chat import debug as dbg

    out = out or sys.stdout
    session = ChatSession(setup.backend, setup.params, system=setup.system, model=setup.model_id)
    reply = session.ask(prompt)
    if debug:
        dbg.prompt_report(setup.backend)
    live = stream and not as_json
    shown = for_terminal if is_terminal(out) else str  # data to a pipe stays as it came
    wrote_last = ""
    try:
        for delta in reply:
            if live:
                out.write(shown(delta))
                out.flush()
                wrote_last = delta
    except (ModelctlError, KeyboardInterrupt) as exc:
        if as_json:
            reply.close()
            data = reply_json(reply, setup)
            data["error"] = str(exc) if isinstance(exc, ModelctlError) else "interrupted"
            write_json(out, data)
        raise
    finally:
        reply.close()
        if live and wrote_last and not wrote_last.endswith("\n"):
            out.write("\n")
            out.flush()
    if as_json:
        write_json(out, reply_json(reply, setup))
    elif not stream:
        out.write(shown(reply.text) + ("" if reply.text.endswith("\n") else "\n"))
        out.flush()
    if debug:
        dbg.answer_report(reply)
    return reply
