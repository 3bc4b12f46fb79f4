"""Values and counts in words: `/info`'s lines (none, yes, no; nested tables flattened), and a count
with its noun in the right number wherever one is printed."""

from __future__ import annotations

import pytest

from modelctl.chat.repl import human_value, info_lines
from modelctl.units import counted


@pytest.mark.parametrize("value, shown", [
    (None, "none"), (True, "yes"), (False, "no"), ("", "none"), ([], "none"), ({}, "none"), ((), "none"),
    (0, "0"), (0.5, "0.5"), (4096, "4096"), ("gemma", "gemma"), (["</s>", "<|eot_id|>"], "</s>, <|eot_id|>"),
    ([True, None, 3], "yes, none, 3"), ([{"a": 1, "b": None}], "a 1, b none"),
])
def test_a_value_in_words(value, shown):
    assert human_value(value) == shown


def test_info_lines_flatten_nested_tables_with_no_python_reprs():
    info = {"kind": "llama.cpp", "extra_buffers": {"enabled": False, "reason": None}, "threads": 4,
            "template": None, "add_bos_token": True, "system": "Be terse.",
            "parameters": {"temperature": 0.5, "stop": ["\n\n", "END"], "options": {"n_batch": 8}}, "empty": {}}
    lines = list(info_lines(info))
    assert lines == [
        "kind: llama.cpp", "extra_buffers.enabled: no", "extra_buffers.reason: none", "threads: 4",
        "template: none", "add_bos_token: yes", "system: Be terse.", "parameters.temperature: 0.5",
        "parameters.stop: \n\n, END", "parameters.options.n_batch: 8", "empty: none",
    ]
    for line in lines:
        for repr_only in ("None", "True", "False", "{", "[", "'"):
            assert repr_only not in line


@pytest.mark.parametrize("n, noun, plural, shown", [
    (0, "turn", None, "0 turns"), (1, "turn", None, "1 turn"), (2, "turn", None, "2 turns"),
    (1, "conversation", None, "1 conversation"), (21, "model", None, "21 models"),
    (1, "entry", "entries", "1 entry"), (3, "entry", "entries", "3 entries"), (-1, "token", None, "-1 tokens"),
])
def test_a_count_and_its_noun(n, noun, plural, shown):
    assert counted(n, noun, plural) == shown


def test_no_count_in_the_cli_is_pluralized_by_hand():
    """Every count the CLI prints goes through `counted`: no `'s' if n != 1`, no "image(s)"."""
    import io
    import re
    import tokenize
    from pathlib import Path

    import modelctl

    root = Path(modelctl.__file__).parent
    texts = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    found = []
    for path in [*(root / "cli").glob("*.py"), root / "chat" / "repl.py"]:
        source = path.read_text()
        found += [f"{path.name}:{i}" for i, line in enumerate(source.splitlines(), 1)
                  if re.search(r"""['"]s['"] if .*!= ?1""", line)]
        found += [f"{path.name}:{t.start[0]}" for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type in texts and re.search(r"\w\(s\)", t.string)]
    assert not found, found
