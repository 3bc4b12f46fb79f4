"""Conversations given as data: one parser for every place messages come in (`prompt`'s stdin
and --messages, `/load`, saved sessions).

Accepted shapes: an OpenAI-style array of `{"role", "content"}`, or an object with a
"messages" array (a request body, or a saved conversation with an optional "system" string).
Text is cleaned as chat cleans what enters it: bytes that were not UTF-8 and lone surrogates
become U+FFFD, so a rendered prompt is the one chat sends.
"""

from __future__ import annotations

import re
from typing import Any, Collection

from modelctl.errors import UsageError

CHAT_ROLES = ("system", "user", "assistant")
# Surrogates that are not bytes escaped by Python's surrogateescape (U+DC80..U+DCFF).
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def clean_text(text: str) -> str:
    """`text` as valid Unicode, for every place text enters a chat (arguments, stdin, the REPL,
    /load). Bytes that were not UTF-8 reach Python as surrogate escapes (argv, stdin, a terminal):
    each becomes U+FFFD, as does a lone surrogate (a JSON escape like "\\ud800"). A tokenizer
    can take neither."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        text = _LONE_SURROGATE.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_messages(data: Any, source: str, *, roles: Collection[str] | None = None) -> list[dict[str, str]]:
    """The messages in `data` (parsed JSON), each `{"role", "content"}` with string values and
    clean text. `roles`, when given, are the only roles allowed (else a template decides which it
    takes). A top-level "system" string becomes the first message."""
    system = None
    if isinstance(data, dict) and "messages" in data:
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise UsageError(f"{source}: \"system\" must be a string")
        data = data["messages"]
    if not isinstance(data, list):
        raise UsageError(f"{source} must hold a JSON array of messages like "
                         '[{"role": "user", "content": "Hello"}]')
    wanted = f" ({', '.join(roles)})" if roles else ""
    messages = [{"role": "system", "content": clean_text(system)}] if system is not None else []
    for i, m in enumerate(data, 1):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                and (roles is None or m["role"] in roles)):
            raise UsageError(f"message {i} in {source} needs a string 'role'{wanted} and a string 'content'")
        messages.append({"role": m["role"], "content": clean_text(m["content"])})
    return messages


def split_system(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """The conversation's system message (the last one given) and its other turns."""
    system = None
    turns = []
    for m in messages:
        if m["role"] == "system":
            system = m["content"]
        else:
            turns.append(m)
    return system, turns
