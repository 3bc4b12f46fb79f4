"""What `--debug` and `/debug on` show: the exact prompt, its tokens and stop rules, then the
cost of the answer. Written to stderr; never contains anything but the conversation itself."""

from __future__ import annotations

import sys
from typing import IO, Any

from modelctl.backends.base import Backend, is_local, serving
from modelctl.redaction import redact
from modelctl.terminal_text import safe
from modelctl.transport.urls import redact_url


def _line(out: IO[str], label: str, value: Any) -> None:
    out.write(safe(f"debug: {label}: {value}") + "\n")


def prompt_report(backend: Backend, out: IO[str] | None = None) -> None:
    """The template dump for the prompt just prepared by `backend.chat()`."""
    out = out or sys.stderr
    backend = serving(backend)
    rendered = backend.last_rendered if is_local(backend) else None
    tokens = list(backend.last_prompt_tokens) if is_local(backend) else []
    describe = backend.describe()
    where = describe.get("file") or redact_url(describe.get("endpoint") or "?")  # a URL may hold a password
    _line(out, "model", f"{describe.get('model_id')} ({where})")
    if describe.get("compute"):  # in-process: where the layers run
        _line(out, "backend", f"{describe.get('kind')}, {describe['compute']}"
              + (f", {describe['threads']} threads" if describe.get("threads") else ""))
    else:  # a server or API: which service answers, and with whose key (never the key itself)
        _line(out, "backend", describe.get("kind"))
        for key in ("api_version", "deployment_name", "key_source"):
            if describe.get(key):
                _line(out, key.replace("_", " "), describe[key])
    if describe.get("load_s") is not None:
        _line(out, "load time", f"{describe['load_s']:.3f} s")
    if rendered is None:
        if tokens:  # a text completion: no template, the text as it stands
            _line(out, "template", "none (text completion)")
            _line(out, "prompt tokens", f"{len(tokens)} (first ids: {tokens[:8]})")
        return
    _line(out, "template", f"{rendered.template} (source: {rendered.source})")
    _line(out, "stop strings", list(rendered.stop))
    _line(out, "stop token ids", list(rendered.stop_token_ids))
    bos = describe.get("bos_token")
    _line(out, "bos", f"{bos!r} written by the template: {'yes' if rendered.bos_token else 'no'}")
    _line(out, "prompt tokens", f"{len(tokens)} (first ids: {tokens[:8]})")
    for seg in rendered.segments:
        kind = "template" if seg.special else "content "
        out.write(redact(f"debug:   {kind} {seg.text!r}") + "\n")
    out.flush()


def answer_report(reply: Any, out: IO[str] | None = None, *, cost: float | None = None) -> None:
    """The cost of an answer: tokens, evaluation, speed, and USD when the price is known."""
    out = out or sys.stderr
    usage, t = reply.usage, reply.timings
    _line(out, "finish reason", reply.finish_reason)
    if usage is not None:
        _line(out, "usage", f"{usage.prompt_tokens} prompt tokens, {usage.completion_tokens} completion tokens")
    if reply.reasoning:
        tokens = reply.reasoning_tokens
        _line(out, "reasoning", f"{len(reply.reasoning)} characters" + (f", {tokens} tokens" if tokens is not None else ""))
    if cost is not None:
        _line(out, "cost", f"${cost:.6f}")
    if t is not None:
        if t.prompt_eval_tokens is not None:
            _line(out, "prompt tokens evaluated", t.prompt_eval_tokens)
        if t.first_token_s is not None:
            _line(out, "first token", f"{t.first_token_s:.3f} s")
        if t.tokens_per_second is not None:
            _line(out, "tokens per second", f"{t.tokens_per_second:.1f}")
    out.flush()
