"""The parts of the chat loop that need no model: stop strings over a stream, the Markdown block
splitter and renderer, parameter layering."""

from __future__ import annotations

import io

import pytest

from modelctl.backends.base import GenerationParams
from modelctl.backends.stops import StopMatcher
from modelctl.chat.render import BlockSplitter, MarkdownStream, PlainStream

# --- stop strings --------------------------------------------------------------------------


def run_stream(stops, deltas):
    m = StopMatcher(stops)
    out = [m.feed(d) for d in deltas]
    out.append(m.flush())
    return "".join(out), out, m


def test_stop_split_across_deltas_is_never_shown():
    text, out, m = run_stream(["<end_of_turn>"], ["Hello", " world<end", "_of", "_turn>", "more"])
    assert text == "Hello world" and m.matched == "<end_of_turn>"
    assert out[1] == " world"  # "<end" is held back, not shown
    assert all("<" not in piece for piece in out)


def test_held_text_is_released_when_it_is_not_a_stop():
    text, out, m = run_stream(["<end_of_turn>"], ["a <en", "joy", " b"])
    assert text == "a <enjoy b" and not m.stopped
    assert out[0] == "a " and out[1] == "<enjoy"


def test_earliest_of_several_stops_wins_and_tail_is_flushed():
    text, _, m = run_stream(["\nUser:", "###"], ["x ### y\nUser: z"])
    assert text == "x " and m.matched == "###"
    text, _, m = run_stream(["###"], ["ends with #", "#"])
    assert text == "ends with ##" and not m.stopped  # flushed at the end of the stream


def test_no_stops_passes_through():
    m = StopMatcher(["", ""])
    assert m.feed("<anything>") == "<anything>" and m.flush() == ""


def test_stop_matching_cost_is_bounded_by_the_longest_stop():
    m = StopMatcher(["<|im_end|>"])
    for _ in range(10_000):
        m.feed("word ")
    assert len(m.pending) < len("<|im_end|>")


# --- Markdown blocks -----------------------------------------------------------------------------


def split_all(text: str, step: int = 3, max_lines: int = 40) -> list[str]:
    s = BlockSplitter(max_lines)
    blocks = []
    for i in range(0, len(text), step):
        blocks += s.feed(text[i : i + step])
    rest = s.finish()
    return blocks + ([rest] if rest else [])


def test_blocks_split_at_blank_lines_but_not_inside_fences():
    text = "# Title\n\nA paragraph\nstill it.\n\n```python\ndef f():\n\n    return 1\n```\nAfter code.\n\n- a\n- b\n"
    assert split_all(text) == [
        "# Title",
        "A paragraph\nstill it.",
        "```python\ndef f():\n\n    return 1\n```",
        "After code.",
        "- a\n- b",
    ]


def test_long_blocks_are_cut_and_fences_reopened():
    code = "```js\n" + "".join(f"line{i};\n" for i in range(25)) + "```\n"
    blocks = split_all(code, max_lines=10)
    assert all(b.startswith("```js\n") and b.endswith("```") for b in blocks)
    body = [line for b in blocks for line in b.splitlines() if not line.startswith("```")]
    assert body == [f"line{i};" for i in range(25)]
    para = "".join(f"word{i}\n" for i in range(25))
    assert sum(len(b.splitlines()) for b in split_all(para, max_lines=10)) == 25


def test_open_block_closes_an_open_fence_for_preview():
    s = BlockSplitter()
    s.feed("```py\nx = 1\ny =")
    assert s.open_block == "```py\nx = 1\ny =\n```"


def render_console(width=60):
    from rich.console import Console

    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, height=20, color_system=None), buf


def test_markdown_stream_prints_every_block_once():
    console, buf = render_console()
    text = "# Heading\n\nSome *text* here.\n\n```python\nprint('hi')\n```\n\nlast line"
    with MarkdownStream(console, refresh_per_second=50) as md:
        for i in range(0, len(text), 2):
            md.feed(text[i : i + 2])
    out = buf.getvalue()
    for expected in ("Heading", "Some text here.", "print('hi')", "last line"):
        assert expected in out
    # Finished blocks are printed once (the live preview is transient and erased).
    import re

    printed = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert printed.count("last line") >= 1


def test_plain_stream_ends_with_a_newline():
    buf = io.StringIO()
    with PlainStream(buf) as p:
        p.feed("a")
        p.feed("b")
    assert buf.getvalue() == "ab\n"


# --- parameters ---------------------------------------------------------------------------------


def test_params_overlay_layers_and_accumulates_stops():
    base = GenerationParams(temperature=0.7, stop=("A",))
    layered = base.overlay(temperature=None, top_k=5, stop=("B",), extra={"min_p": "0.1"})
    assert layered.temperature == 0.7 and layered.top_k == 5
    assert layered.stop == ("A", "B") and layered.extra == {"min_p": "0.1"}
    with pytest.raises(TypeError):
        base.overlay(nonsense=1)
