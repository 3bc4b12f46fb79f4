"""Reasoning apart from the answer, as it streams.

Models that think write their reasoning into the same text as the answer, in one of two ways:

    <think>reasoning</think>answer                     (DeepSeek-R1, Qwen3, QwQ, …)
    <|channel|>analysis<|message|>reasoning<|end|>
    <|start|>assistant<|channel|>final<|message|>answer  (gpt-oss, OpenAI's harmony format)

A template that opens `<think>` itself (DeepSeek-R1's, Qwen3's in thinking mode) leaves the
answer starting inside the reasoning: `ReasoningSplitter(thinking=True)`.

`feed()` takes the text deltas as they come and returns (reasoning, text) deltas. A tag may be cut
anywhere between two deltas, so the end of a delta that could begin a tag is held back until the
next one says whether it does. `<think>` counts only before any answer text (an answer that
writes about the tag stays as it is); the harmony markers count anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelctl.backends.stops import partial_match_len

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# Harmony: a message is <|start|>ROLE<|channel|>NAME<|message|>CONTENT<|end|> (or <|return|>,
# <|call|> at the end of a turn); `<|constrain|>` may stand in the header of a tool call.
CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
START = "<|start|>"
MESSAGE_ENDS = ("<|end|>", "<|return|>", "<|call|>")
REASONING_CHANNELS = ("analysis",)

_TEXT, _THINK, _HEADER = "text", "think", "header"


@dataclass(frozen=True)
class Split:
    """One delta of an answer, parted: what the model thought, and what it answered."""

    reasoning: str = ""
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.text)


class ReasoningSplitter:
    def __init__(self, *, thinking: bool = False) -> None:
        self._mode = _THINK if thinking else _TEXT
        self._buffer = ""
        self._header = ""
        self._answered = False  # some answer text (not only white space) came
        self._after_reasoning = False  # the white space that follows a reasoning part is dropped

    def feed(self, delta: str) -> Split:
        self._buffer += delta
        reasoning: list[str] = []
        text: list[str] = []
        while self._buffer:
            markers = self._markers()
            found = [(i, m) for m in markers if (i := self._buffer.find(m)) >= 0]
            if found:
                index, marker = min(found)
                before, self._buffer = self._buffer[:index], self._buffer[index + len(marker):]
                if marker == THINK_OPEN and self._mode == _TEXT:
                    if before.strip():  # after answer text the tag is text too
                        self._emit(before + marker, reasoning, text)
                        continue
                    before = ""  # white space before <think> is the template's
                self._emit(before, reasoning, text)
                self._on_marker(marker)
                continue
            keep = partial_match_len(self._buffer, markers)
            ready, self._buffer = self._buffer[: len(self._buffer) - keep], self._buffer[len(self._buffer) - keep:]
            if self._mode == _TEXT and not self._answered and not ready.strip() and THINK_OPEN in markers:
                # White space before an opening <think> is the template's: hold it until it is known.
                self._buffer = ready + self._buffer
                break
            self._emit(ready, reasoning, text)
            break
        return Split("".join(reasoning), "".join(text))

    def finish(self) -> Split:
        """What is held back at the end of the answer (a tag that never completed is text)."""
        rest, self._buffer = self._buffer, ""
        reasoning: list[str] = []
        text: list[str] = []
        self._emit(rest, reasoning, text)
        return Split("".join(reasoning), "".join(text))

    def _markers(self) -> tuple[str, ...]:
        if self._mode == _HEADER:
            return (CHANNEL, MESSAGE)
        harmony = (CHANNEL, START, *MESSAGE_ENDS)
        if self._mode == _THINK:
            return (THINK_CLOSE, *harmony)
        return (THINK_OPEN, *harmony) if not self._answered else harmony

    def _on_marker(self, marker: str) -> None:
        if marker == THINK_OPEN:
            self._mode = _THINK
        elif marker == THINK_CLOSE:
            self._mode = _TEXT
            self._after_reasoning = True
        elif marker in (START, CHANNEL):
            self._mode, self._header = _HEADER, ""
        elif marker == MESSAGE:
            channel = self._header.strip().split("<|", 1)[0].strip()
            self._mode = _THINK if channel.startswith(REASONING_CHANNELS) else _TEXT
            if self._mode == _TEXT:
                self._after_reasoning = True
        # a message's end: what follows is the next header, or nothing

    def _emit(self, part: str, reasoning: list[str], text: list[str]) -> None:
        if not part:
            return
        if self._mode == _HEADER:
            self._header += part
        elif self._mode == _THINK:
            reasoning.append(part)
        else:
            if self._after_reasoning and not self._answered:
                part = part.lstrip()
            if part.strip():
                self._answered = True
            if part:
                text.append(part)



def opens_thinking(prompt: str) -> bool:
    """Whether a rendered prompt ends inside a reasoning part its template opened (`<think>`
    last, not closed again as Qwen3's template does when thinking is off)."""
    return prompt.rstrip().endswith(THINK_OPEN)
