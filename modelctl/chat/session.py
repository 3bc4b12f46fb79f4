"""A conversation with one backend: ask, regenerate, undo, reset, save and load.

The session owns the messages; the backend owns the model (and, for llama.cpp, the evaluated
tokens, which it reuses because every turn sends the whole conversation again). An answer cut
short (Ctrl-C) is kept as it stands, so the conversation always alternates user/assistant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from modelctl.backends.base import (
    FINISH_INTERRUPTED,
    NUMBER_PARAMS,
    Backend,
    Chunk,
    GenerationParams,
    Timings,
    Usage,
    template_name,
)
from modelctl.backends.images import ImageMessage, ImagePart, carry_images
from modelctl.chat.messages import CHAT_ROLES, parse_messages, split_system
from modelctl.errors import UsageError

FILE_FORMAT = "modelctl-chat"
FILE_VERSION = 1
MAX_FILE_BYTES = 8 * 2**20  # a saved conversation larger than this is not one


# Bounds of the numeric sampling parameters (None: no bound). NaN and the infinities pass
# comparisons with any bound, so they are refused first.
PARAM_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0, None), "top_p": (0, 1), "repeat_penalty": (0, None), "top_k": (0, None), "max_tokens": (1, None),
}


def check_params(params: GenerationParams) -> GenerationParams:
    """`params` when every sampling number is finite and in bounds (from flags, config.toml,
    the registry or /set), else a UsageError naming the parameter."""
    for key, (lo, hi) in PARAM_BOUNDS.items():
        value = getattr(params, key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{key} must be a finite number, not {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            raise UsageError(f"{key} must be {bounds}, not {value}")
    for key, value in params.extra.items():
        check_option(key, value)
    return params


def check_option(key: str, value: Any) -> None:
    """A backend option (`-o KEY=VALUE`, `/set KEY VALUE`): a number written as text must be
    finite (`1e999`, `inf` and `nan` are not), and a JSON value must not nest too deeply."""
    if not isinstance(value, str):  # from config.toml: TOML has nan and inf too
        _check_json_option(key, value, 0)
        return
    try:
        number = float(value)
    except (ValueError, OverflowError):
        number = 0.0
    if not math.isfinite(number):
        raise UsageError(f"option {key}: {value!r} is not a finite number")
    if value.lstrip()[:1] in ("[", "{"):
        try:
            found = json.loads(value)
        except RecursionError:
            raise UsageError(f"option {key}: the JSON is nested too deeply") from None
        except ValueError:
            return  # not JSON: the text itself
        _check_json_option(key, found, 0)


MAX_OPTION_DEPTH = 32  # a JSON option (a response format, a tool list) nested deeper is refused


def _check_json_option(key: str, value: Any, depth: int) -> None:
    if depth > MAX_OPTION_DEPTH:
        raise UsageError(f"option {key}: the JSON is nested more than {MAX_OPTION_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"option {key}: {value} is not a finite number")
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        _check_json_option(key, item, depth + 1)


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
        return head + [carry_images(m, dict(m)) for m in self.messages]

    def ask(self, text: str, images: "tuple[ImagePart, ...]" = ()) -> Reply:
        """Add a user message (with `images`, if any) and start the answer. Errors raised before
        the first chunk (a template that cannot render, a full context) leave the conversation
        unchanged."""
        turn = {"role": "user", "content": text}
        self.messages.append(ImageMessage(turn, images) if images else turn)
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
        numeric = NUMBER_PARAMS
        if key in numeric:
            if value.lower() in ("none", "default", ""):
                self.params = replace(self.params, **{key: None})  # type: ignore[arg-type]  # a number param
                return self.params
            try:
                converted = numeric[key](value)
            except ValueError:
                raise UsageError(f"{key} takes a number, not {value!r}") from None
            self.params = check_params(replace(self.params, **{key: converted}))
            if key == "seed":
                self._answers_since_seed = 0
        elif key == "stop":
            self.params = replace(self.params, stop=() if value.lower() in ("none", "") else (*self.params.stop, value))
        else:
            extra = dict(self.params.extra)
            if value.lower() in ("none", "default"):
                extra.pop(key, None)
            else:
                check_option(key, value)
                extra[key] = value
            self.params = replace(self.params, extra=extra)
        return self.params

    # --- files ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "model": self.model,
            "template": template_name(self.backend),
            "system": self.system,
            "messages": [dict(m) for m in self.messages],
            "params": _without_secrets(self.params.to_dict()),
        }

    def save(self, path: str | Path) -> Path:
        """Write the conversation to `path`: a new file, or a regular file it replaces (never a
        FIFO, a device or a symlink)."""
        from modelctl.files import write_user_file

        data = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        return write_user_file(Path(path).expanduser(), data.encode("utf-8"), "file")

    def load(self, path: str | Path) -> None:
        """Replace the system message and turns with those saved in `path` (a regular file of at
        most MAX_FILE_BYTES)."""
        from modelctl.files import load_json, read_user_file

        source = Path(path).expanduser()
        raw = read_user_file(source, "saved conversation", limit=MAX_FILE_BYTES, missing=UsageError)
        data = load_json(raw, repr(str(source)))
        self.system, self.messages = split_system(parse_messages(data, repr(str(source)), roles=CHAT_ROLES))


def _without_secrets(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters for a file: an option holding a credential (`/set api_key …`) is redacted."""
    from modelctl.keys import redact

    extra = {k: redact(v) if isinstance(v, str) else v for k, v in params.get("extra", {}).items()}
    return {**params, "extra": extra}


