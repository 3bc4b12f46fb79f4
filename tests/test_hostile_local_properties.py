"""Property-based tests of the local parsers and printers: whatever the input, each either
returns or raises its one documented error, and nothing printed from data controls a terminal."""

from __future__ import annotations

import json
import struct

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from modelctl.errors import ModelctlError, ModelFileError  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text shaped like what the parsers meet: brackets, quotes, digits, separators and controls.
PARSER_TEXT = st.text(alphabet=st.sampled_from('[]{}"=,:.\n 0123456789eE+-xanif\\\x00\x1b'), max_size=300) | st.builds(
    lambda opener, depth, tail: opener * depth + tail,
    st.sampled_from(["[", "{\"a\":", "a = [", "[[", "x = {y = "]), st.integers(0, 20_000), st.text(max_size=10),
)


def _json(text):
    from modelctl.files import load_json

    return load_json(text, "f.json")


def _toml(text):
    from modelctl.config import parse_toml

    return parse_toml(text, "f.toml")


@pytest.mark.parametrize("parse", [_json, _toml])
@FAST
@given(text=PARSER_TEXT)
def test_a_parser_either_parses_or_raises_one_line(parse, text):
    try:
        parse(text)
    except ModelctlError as exc:  # JSON: a UsageError; TOML: a ModelctlError naming the file
        assert "\n" not in str(exc) and "f." in str(exc)


def _gguf_header(n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, 0, n_kv)


@FAST
@given(n_kv=st.integers(0, 3), body=st.binary(max_size=400), depth=st.integers(0, 4000))
def test_gguf_metadata_either_parses_or_is_a_model_file_error(tmp_path_factory, n_kv, body, depth):
    from modelctl.gguf import read_gguf

    nested = struct.pack("<Q", 1) + b"k" + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * depth
    path = tmp_path_factory.mktemp("gguf") / "x.gguf"
    path.write_bytes(_gguf_header(n_kv) + (nested if depth else b"") + body)
    try:
        read_gguf(path)
    except ModelFileError:
        pass


@FAST
@given(st.text())
def test_printed_data_holds_no_control_character(text):
    from modelctl.cli.output import json_text, printable
    from modelctl.terminal_text import for_terminal

    line = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line)
    assert "\n" not in line and "\u202e" not in line
    answer = for_terminal(text)
    assert not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) < 0xA0 for c in answer)
    assert json.loads(json_text([text])) == [text]  # JSON output escapes, never alters


@FAST
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)))
def test_json_output_is_always_strict_json(data):
    from modelctl.chat.terminal import json_text

    text = json_text(data)
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
