"""A conversation with one backend: ask, regenerate, undo, reset, save and load.

The session owns the messages; the backend owns the model (and, for llama.cpp, the evaluated
tokens, which it reuses because every turn sends the whole conversation again). An answer cut
short (Ctrl-C) is kept as it stands, so the conversation always alternates user/assistant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from modelctl.backends.base import (
    FINISH_INTERRUPTED,
    NUMBER_PARAMS,
    REASONING_EFFORTS,
    Backend,
    Chunk,
    GenerationParams,
    Timings,
    ToolCall,
    Usage,
    is_local,
    serving,
    template_name,
)
from modelctl.backends.images import ImageMessage, ImagePart, carry_images
from modelctl.backends.stops import unescape_stop
from modelctl.chat.messages import CHAT_ROLES, parse_messages, split_system
from modelctl.chat.reasoning import ReasoningSplitter, Split, opens_thinking
from modelctl.errors import UsageError
from modelctl.files import load_json, read_user_file, write_user_file
from modelctl.redaction import redact_data

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


T = TypeVar("T")
_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def switch_value(key: str, value: str, choices: Mapping[str, T], shown: str) -> T | None:
    """`/set think on|off`, `/set reasoning_effort low|medium|high`: the value `choices` maps the
    word to, None for `none` (the model's default), else a UsageError that shows the choices."""
    word = value.strip().lower()
    if word in ("none", "default", ""):
        return None
    if word not in choices:
        raise UsageError(f"{key} takes {shown}, not {value!r}")
    return choices[word]


@dataclass
class Reply:
    """One streamed answer. Iterate for the answer's text deltas, or `splits()` for the reasoning
    and the text apart; afterwards `text`, `reasoning`, `finish_reason`, `usage` and `timings`
    describe it. Reasoning never mixes into the text: a provider's reasoning deltas, and what the
    model wrote between `<think>` tags or in gpt-oss's analysis channel, go to `reasoning`.
    Stopping early (`close()`, or an exception such as Ctrl-C while iterating) keeps the partial
    text with finish_reason "interrupted" (and a backend's error message in `error`). `request` is
    the conversation that was sent."""

    _chunks: Iterator[Chunk]
    _on_done: Any
    request: list[dict[str, str]] = field(default_factory=list)
    splitter: ReasoningSplitter = field(default_factory=ReasoningSplitter)
    chunks_are_tokens: bool = False  # a local model streams one chunk per generated token
    parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    error: str | None = None
    reasoning_chunks: int = 0  # chunks that held reasoning
    tool_calls: tuple[ToolCall, ...] = ()  # the tools the model asked to call (finish_reason "tool_calls")
    _done: bool = False

    def __iter__(self) -> Iterator[str]:
        for split in self.splits():
            if split.text:
                yield split.text

    def splits(self) -> Iterator[Split]:
        try:
            for chunk in self._chunks:
                split = self.splitter.feed(chunk.text) if chunk.text else Split()
                if chunk.reasoning:
                    split = Split(chunk.reasoning + split.reasoning, split.text)
                if chunk.final:
                    self.finish_reason = chunk.finish_reason
                    self.usage, self.timings = chunk.usage, chunk.timings
                    self.tool_calls = chunk.tool_calls
                    rest = self.splitter.finish()
                    split = Split(split.reasoning + rest.reasoning, split.text + rest.text)
                if split.reasoning:
                    self.reasoning_chunks += 1
                if self._keep(split):
                    yield split
        except Exception as exc:
            self.error = str(exc)
            raise
        finally:
            self.close()

    def _keep(self, split: Split) -> bool:
        if split.reasoning:
            self.reasoning_parts.append(split.reasoning)
        if split.text:
            self.parts.append(split.text)
        return bool(split)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def reasoning(self) -> str | None:
        """The model's reasoning, or None when it showed none."""
        return "".join(self.reasoning_parts) or None

    @property
    def reasoning_tokens(self) -> int | None:
        """Tokens of reasoning: as the provider counts them, else (a local model) as generated;
        None when unknown."""
        if self.usage is not None and self.usage.reasoning_tokens is not None:
            return self.usage.reasoning_tokens
        if self.chunks_are_tokens and self.reasoning_parts:
            return self.reasoning_chunks
        return None

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        if self.finish_reason is None:
            self.finish_reason = FINISH_INTERRUPTED
            self._keep(self.splitter.finish())
        self._on_done(self)


class ChatSession:
    def __init__(
        self,
        backend: Backend,
        params: GenerationParams | None = None,
        *,
        system: str | None = None,
        model: str | None = None,
        on_turn: Callable[["ChatSession", Reply], None] | None = None,
    ) -> None:
        self.backend = backend
        self.on_turn = on_turn  # hears every answer once it ends (finished or interrupted)
        self.params = params or GenerationParams()
        self.system = system or None
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self._answers_since_seed = 0  # answer k after the seed was set samples with seed + k

    # --- the conversation ---------------------------------------------------------------------

    def conversation(self) -> list[dict[str, str]]:
        """What is sent: the system message (if any), then the turns."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [carry_images(m, dict(m)) for m in self.messages]

    def ask(self, text: str, images: "tuple[ImagePart, ...]" = ()) -> Reply:
        """Add a user message (with `images`, if any) and start the answer. Errors raised before
        the answer's first text (a template that cannot render, a full context, a server that
        refuses or fails before it begins) leave the conversation unchanged."""
        turn = {"role": "user", "content": text}
        return self._answer([*self.messages, ImageMessage(turn, images) if images else turn])

    def resume(self) -> Reply:
        """Answer the conversation as it stands: after the results of the tools the last answer
        called, the model goes on."""
        if not self.messages or self.messages[-1]["role"] != "tool":
            raise UsageError("nothing to go on from: the last message is not a tool's result")
        return self._answer(list(self.messages))

    def answer(self, turns: list[dict[str, str]]) -> Reply:
        """Start an answer to `turns`, a whole conversation given at once (a server's request,
        whose last message is the question): they become the conversation."""
        return self._answer(list(turns))

    def regen(self) -> Reply:
        """Answer the last user message again, dropping the previous answer (which stays when
        the new one fails before its first text)."""
        turns = self.messages[:-1] if self.messages and self.messages[-1]["role"] == "assistant" else self.messages
        if not turns or turns[-1]["role"] != "user":
            raise UsageError("nothing to regenerate: ask something first")
        return self._answer(list(turns))

    def _answer(self, turns: list[dict[str, str]]) -> Reply:
        """Start an answer to `turns` (which become the conversation). With a seed, each answer
        samples with the next seed (seed, seed + 1, ...): a one-shot answer is reproducible, and
        /regen gives another answer."""
        before = list(self.messages)
        self.messages[:] = turns
        try:
            return self._start(partial(self._finished, before))
        except BaseException:
            self.messages[:] = before
            raise

    def _start(self, on_done: Callable[[Reply], None]) -> Reply:
        params = self.params
        if params.seed is not None:
            params = replace(params, seed=params.seed + self._answers_since_seed)
        request = self.conversation()
        chunks = self.backend.chat(request, params)
        self._answers_since_seed += 1
        # A template that opened <think> (DeepSeek-R1's, Qwen3's) leaves the answer inside it.
        thinking = False
        backend = serving(self.backend)  # the one that answered (after any --fallback switch)
        if is_local(backend):
            rendered = backend.last_rendered
            thinking = rendered is not None and opens_thinking(rendered.text)
        return Reply(chunks, on_done, request, ReasoningSplitter(thinking=thinking),
                     chunks_are_tokens=is_local(backend))

    def _finished(self, before: list[dict[str, str]], reply: Reply) -> None:
        # The reply's user message is the last message while it streams. Only the answer is kept:
        # earlier turns' reasoning is never sent back (the official templates strip it too). An
        # answer that failed before any text leaves no empty turn behind (a provider may refuse
        # one): the conversation is as it was before the question.
        if reply.error is not None and not reply.text:
            self.messages[:] = before
        elif reply.tool_calls:
            self.messages.append({"role": "assistant", "content": reply.text,
                                  "tool_calls": [call.to_dict() for call in reply.tool_calls]})
        else:
            self.messages.append({"role": "assistant", "content": reply.text})
        if self.on_turn is not None:
            self.on_turn(self, reply)

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
            stops = () if value.lower() in ("none", "") else (*self.params.stop, unescape_stop(value, "/set stop"))
            self.params = replace(self.params, stop=stops)
        elif key == "think":
            self.params = replace(self.params, think=switch_value(key, value, _SWITCH, "on or off"))
        elif key == "reasoning_effort":
            efforts = {e: e for e in REASONING_EFFORTS}
            self.params = replace(self.params, reasoning_effort=switch_value(key, value, efforts, ", ".join(efforts)))
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
            "params": self.params.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the conversation to `path`: a new file, or a regular file it replaces (never a
        FIFO, a device or a symlink)."""

        data = json.dumps(redact_data(self.to_dict()), indent=2, ensure_ascii=False) + "\n"  # no key in a file
        return write_user_file(Path(path).expanduser(), data.encode("utf-8"), "file")

    def load(self, path: str | Path) -> None:
        """Replace the system message and turns with those saved in `path` (a regular file of at
        most MAX_FILE_BYTES)."""

        source = Path(path).expanduser()
        raw = read_user_file(source, "saved conversation", limit=MAX_FILE_BYTES, missing=UsageError)
        data = load_json(raw, repr(str(source)))
        self.system, self.messages = split_system(parse_messages(data, repr(str(source)), roles=CHAT_ROLES))
