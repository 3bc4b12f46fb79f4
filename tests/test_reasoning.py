"""Reasoning parted from the answer as it streams: `<think>` tags and gpt-oss's harmony channels,
with every tag cut at every place between two deltas."""

from __future__ import annotations

import pytest

from modelctl.chat.reasoning import ReasoningSplitter, Split, opens_thinking


def run(deltas, *, thinking=False) -> tuple[str, str]:
    splitter = ReasoningSplitter(thinking=thinking)
    parts = [splitter.feed(d) for d in deltas] + [splitter.finish()]
    return "".join(p.reasoning for p in parts), "".join(p.text for p in parts)


def every_cut(text: str):
    """`text` as two deltas, cut at every place, and as one delta per character."""
    yield [text]
    for i in range(1, len(text)):
        yield [text[:i], text[i:]]
    yield list(text)


THINK = "<think>\nThe user greets me. I greet back.\n</think>\n\nHello! How can I help?"
HARMONY = ("<|channel|>analysis<|message|>User says hi. Reply politely.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>Hi there!<|return|>")


@pytest.mark.parametrize("deltas", list(every_cut(THINK)))
def test_think_tags_split_across_chunks(deltas):
    assert run(deltas) == ("\nThe user greets me. I greet back.\n", "Hello! How can I help?")


@pytest.mark.parametrize("deltas", list(every_cut(HARMONY)))
def test_harmony_channels_split_across_chunks(deltas):
    assert run(deltas) == ("User says hi. Reply politely.", "Hi there!")


def test_a_closing_tag_split_inside_reports_nothing_early():
    splitter = ReasoningSplitter(thinking=True)
    assert splitter.feed("step one</th") == Split("step one", "")  # "</th" is held back
    assert splitter.feed("ink>answer") == Split("", "answer")


def test_an_answer_that_starts_inside_thinking():
    """DeepSeek-R1's and Qwen3's templates open <think> in the prompt: the answer has no opening tag."""
    for deltas in every_cut("weigh it</think>\n\n42"):
        assert run(deltas, thinking=True) == ("weigh it", "42")
    assert opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_text_without_tags_passes_unchanged_and_in_step():
    splitter = ReasoningSplitter()
    assert splitter.feed("  indented code") == Split("", "  indented code")
    assert splitter.feed(" and a <") == Split("", " and a ")  # "<" may begin a marker: held back
    assert splitter.feed(" b") == Split("", "< b")
    assert splitter.feed("") == Split()
    assert splitter.feed("a <|") == Split("", "a ")
    assert splitter.finish() == Split("", "<|")


def test_a_think_tag_inside_the_answer_is_text():
    assert run(["Use the ", "<think> tag", " like <think>this</think>."]) == \
        ("", "Use the <think> tag like <think>this</think>.")


def test_an_unfinished_tag_or_reasoning_at_the_end():
    assert run(["<think>still thinking when cut off"]) == ("still thinking when cut off", "")
    assert run(["answer <|chan"]) == ("", "answer <|chan")


def test_white_space_before_the_opening_tag_is_dropped():
    assert run(["\n", " ", "<thi", "nk>r</think>", "\n\nA"]) == ("r", "A")
    assert run(["\n", "A"]) == ("", "\nA")  # no reasoning: the answer keeps its white space
