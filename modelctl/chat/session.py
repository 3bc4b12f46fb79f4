"""A conversation with one backend: ask, regenerate, undo, reset, save and load.

The session owns the messages; the backend owns the model (and, for llama.cpp, the evaluated
tokens, which it reuses because every turn sends the whole conversation again). An answer cut
short (Ctrl-C) is kept as it stands, so the conversation always alternates user/assistant.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from modelctl.backends.base import (
    FINISH_INTERRUPTED,
    Backend,
    Chunk,
    GenerationParams,
    Timings,
    Usage,
)
from modelctl.errors import ModelctlError, UsageError

FILE_FORMAT = "modelctl-chat"
FILE_VERSION = 1
MAX_FILE_BYTES = 8 * 2**20  # a saved conversation larger than this is not one


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


@dataclass
class Reply:
    """One streamed answer. Iterate for the text deltas; afterwards `text`, `finish_reason`,
    `usage` and `timings` describe it. Stopping early (`close()`, or an exception such as Ctrl-C
    while iterating) keeps the partial text with finish_reason "interrupted"."""

    _chunks: Iterator[Chunk]
    _on_done: Any
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    _done: bool = False

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._chunks:
                if chunk.text:
                    self.parts.append(chunk.text)
                    yield chunk.text
                if chunk.final:
                    self.finish_reason = chunk.finish_reason
                    self.usage, self.timings = chunk.usage, chunk.timings
        finally:
            self.close()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        if self.finish_reason is None:
            self.finish_reason = FINISH_INTERRUPTED
        self._on_done(self)


class ChatSession:
    def __init__(
        self,
        backend: Backend,
        params: GenerationParams | None = None,
        *,
        system: str | None = None,
        model: str | None = None,
    ) -> None:
        self.backend = backend
        self.params = params or GenerationParams()
        self.system = system or None
        self.model = model
        self.messages: list[dict[str, str]] = []
        self._answers_since_seed = 0  # answer k after the seed was set samples with seed + k

    # --- the conversation ---------------------------------------------------------------------

    def conversation(self) -> list[dict[str, str]]:
        """What is sent: the system message (if any), then the turns."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [dict(m) for m in self.messages]

    def ask(self, text: str) -> Reply:
        """Add a user message and start the answer. Errors raised before the first chunk (a
        template that cannot render, a full context) leave the conversation unchanged."""
        self.messages.append({"role": "user", "content": text})
        try:
            return self._answer()
        except BaseException:
            self.messages.pop()
            raise

    def regen(self) -> Reply:
        """Answer the last user message again, dropping the previous answer."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            dropped = self.messages.pop()
        else:
            dropped = None
        if not self.messages or self.messages[-1]["role"] != "user":
            if dropped is not None:
                self.messages.append(dropped)
            raise UsageError("nothing to regenerate: ask something first")
        try:
            return self._answer()
        except BaseException:
            if dropped is not None:
                self.messages.append(dropped)
            raise

    def _answer(self) -> Reply:
        """Start an answer. With a seed, each answer samples with the next seed (seed, seed + 1,
        ...): a one-shot answer is reproducible, and /regen gives another answer."""
        params = self.params
        if params.seed is not None:
            params = replace(params, seed=params.seed + self._answers_since_seed)
        chunks = self.backend.chat(self.conversation(), params)
        self._answers_since_seed += 1
        return Reply(chunks, self._finished)

    def _finished(self, reply: Reply) -> None:
        # The reply's user message is the last message while it streams.
        self.messages.append({"role": "assistant", "content": reply.text})

    def undo(self) -> int:
        """Remove the last exchange (the answer and the question it answered); return how many
        messages were removed."""
        removed = 0
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
            removed += 1
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.pop()
            removed += 1
        return removed

    def reset(self) -> None:
        """Forget the turns; keep the system message and parameters."""
        self.messages.clear()

    # --- parameters -------------------------------------------------------------------------------

    def set_param(self, key: str, value: str) -> GenerationParams:
        """`/set KEY VALUE`: a generation parameter by name, or any backend option (extra)."""
        key = key.replace("-", "_")
        numeric = {"temperature": float, "top_p": float, "repeat_penalty": float,
                   "top_k": int, "max_tokens": int, "seed": int}
        if key in numeric:
            if value.lower() in ("none", "default", ""):
                self.params = replace(self.params, **{key: None})
                return self.params
            try:
                converted = numeric[key](value)
            except ValueError:
                raise UsageError(f"{key} takes a number, not {value!r}") from None
            self.params = replace(self.params, **{key: converted})
            if key == "seed":
                self._answers_since_seed = 0
        elif key == "stop":
            self.params = replace(self.params, stop=() if value.lower() in ("none", "") else (*self.params.stop, value))
        else:
            extra = dict(self.params.extra)
            if value.lower() in ("none", "default"):
                extra.pop(key, None)
            else:
                extra[key] = value
            self.params = replace(self.params, extra=extra)
        return self.params

    # --- files ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "model": self.model,
            "template": getattr(getattr(self.backend, "template", None), "name", None),
            "system": self.system,
            "messages": [dict(m) for m in self.messages],
            "params": self.params.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        from modelctl.config import atomic_write

        target = Path(path).expanduser()
        if target.is_dir():
            raise UsageError(f"{target}: is a directory")
        if not target.parent.is_dir():
            raise UsageError(f"{target.parent}: no such directory")
        data = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        try:
            atomic_write(target, data.encode("utf-8"))
        except OSError as exc:
            raise ModelctlError(f"{target}: cannot write ({exc.strerror or exc})") from None
        return target

    def load(self, path: str | Path) -> None:
        """Replace the system message and turns with those saved in `path`."""
        source = Path(path).expanduser()
        try:
            data = json.loads(_read_file(source).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UsageError(f"{source}: cannot read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source}: not a saved conversation (invalid JSON: {exc})") from None
        except RecursionError:
            raise UsageError(f"{source}: not a saved conversation (JSON nested too deeply)") from None
        system, messages = parse_conversation(data, source)
        self.system = None if system is None else clean_text(system)
        self.messages = [{"role": m["role"], "content": clean_text(m["content"])} for m in messages]


def _read_file(source: Path) -> bytes:
    """The bytes of a saved conversation: a regular file of at most MAX_FILE_BYTES (not a device
    such as /dev/zero, which never ends)."""
    try:
        st = source.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{source}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{source}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise UsageError(f"{source}: {st.st_size:,} bytes, more than a saved conversation can be "
                             f"({MAX_FILE_BYTES // 2**20} MiB)")
        with open(source, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror or exc})") from None


def parse_conversation(data: Any, source: Any = "conversation") -> tuple[str | None, list[dict[str, str]]]:
    """Validate a saved conversation ({"system", "messages"}, or a bare list of messages)."""
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise UsageError(f"{source}: not a saved conversation (no \"messages\" list)")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise UsageError(f"{source}: \"system\" must be a string")
    messages: list[dict[str, str]] = []
    for i, m in enumerate(data["messages"]):
        if not (isinstance(m, dict) and isinstance(m.get("content"), str)
                and m.get("role") in ("system", "user", "assistant")):
            raise UsageError(
                f"{source}: message {i + 1} needs a role (system, user, assistant) and text content"
            )
        if m["role"] == "system":
            system = m["content"]
        else:
            messages.append({"role": m["role"], "content": m["content"]})
    return system, messages
