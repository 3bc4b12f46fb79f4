"""Properties of the checks on what servers send: whatever JSON a server puts anywhere in an
answer, reading it gives text and counts that are sane, or one modelctl error, never another
exception; bounded decompression never gives more than its limit."""

from __future__ import annotations

import gzip
import json
import math
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.backends.api import StreamState
from modelctl.errors import ModelctlError
from modelctl.registry import Deployment
from modelctl.transport.http_client import LineStream
from modelctl.transport.response_limits import LimitExceeded, Limits, bounded_body, value_bound
from modelctl.transport.sse import Event
from modelctl.transport.wire import MAX_COUNT, Wire, WireError

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udfffb", "stop", "STOP", "end_turn", "text", "text_delta"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def backend(kind: str):
    from modelctl.backends.factory import open_backend

    fields = {"openai-compatible": {"model": "m", "api_base": "http://127.0.0.1:9/v1"},
              "anthropic": {"model": "claude", "api_base": "http://127.0.0.1:9"},
              "gemini": {"model": "gemini", "api_base": "http://127.0.0.1:9/v1beta"}}[kind]
    return open_backend(None, Deployment(id=kind, kind=kind, **fields), api_key="k")


# Well-formed events, and the places in them a hostile server may put anything.
TEMPLATES = {
    "openai-compatible": ({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
                          [(), ("choices",), ("choices", 0), ("choices", 0, "index"), ("choices", 0, "delta"),
                           ("choices", 0, "delta", "content"), ("choices", 0, "finish_reason"), ("usage",),
                           ("usage", "prompt_tokens"), ("error",)]),
    "anthropic": ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi", "stop_reason": "x"},
                   "message": {"usage": {"input_tokens": 3}}, "usage": {"output_tokens": 1}},
                  [(), ("type",), ("delta",), ("delta", "text"), ("delta", "stop_reason"), ("message",),
                   ("message", "usage"), ("message", "usage", "input_tokens"), ("usage",), ("usage", "output_tokens")]),
    "gemini": ({"candidates": [{"index": 0, "content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}},
               [(), ("candidates",), ("candidates", 0), ("candidates", 0, "content"),
                ("candidates", 0, "content", "parts"), ("candidates", 0, "content", "parts", 0, "text"),
                ("candidates", 0, "finishReason"), ("usageMetadata",), ("usageMetadata", "promptTokenCount"),
                ("promptFeedback",)]),
}
ANTHROPIC_KINDS = ["message_start", "content_block_delta", "message_delta", "message_stop"]


def put(doc, path, value):
    """A copy of `doc` with `value` at `path`."""
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def assert_sane(texts, state: StreamState) -> None:
    assert all(isinstance(t, str) for t in texts)
    "".join(texts).encode("utf-8")  # no lone surrogate reaches the chat
    if state.usage is not None:
        for n in (state.usage.prompt_tokens, state.usage.completion_tokens):
            assert type(n) is int and 0 <= n < 2 * MAX_COUNT
    assert state.finish_reason is None or (isinstance(state.finish_reason, str) and len(state.finish_reason) <= 64)


@pytest.mark.parametrize("kind", TEMPLATES)
@SETTINGS
@given(data=st.data())
def test_any_value_anywhere_in_an_event_is_read_or_refused(kind, data):
    b = backend(kind)
    template, paths = TEMPLATES[kind]
    doc = put(template, data.draw(st.sampled_from(paths)), data.draw(json_values))
    if kind == "anthropic" and isinstance(doc, dict):
        doc["type"] = data.draw(st.sampled_from(ANTHROPIC_KINDS))
    state = StreamState()
    try:
        texts = b.read_event(Event("message", json.dumps(doc)), state, LineStream(b.http, None))
    except ModelctlError:
        return
    assert_sane(texts, state)


@pytest.mark.parametrize("kind", TEMPLATES)
@SETTINGS
@given(value=json_values)
def test_any_whole_answer_is_read_or_refused(kind, value):
    try:
        text, state = backend(kind).read_whole(value)
    except ModelctlError:
        return
    assert_sane([text], state)


@SETTINGS
@given(rows=json_values, count=st.integers(0, 3))
def test_embeddings_are_finite_vectors_of_one_length_or_refused(rows, count):
    try:
        vectors = Wire("a server").vectors(rows, count)
    except WireError:
        return
    assert len(vectors) == count and len({len(v) for v in vectors}) <= 1
    assert all(type(x) is float and math.isfinite(x) for v in vectors for x in v)


@SETTINGS
@given(payload=st.binary(max_size=4096), repeat=st.integers(1, 64), layers=st.integers(0, 3),
       deflate=st.booleans(), cap=st.integers(1, 200_000), split=st.integers(1, 5000))
def test_bounded_decompression_gives_the_body_or_stops_at_the_limit(payload, repeat, layers, deflate, cap, split):
    plain = payload * repeat
    data, codings = plain, []
    for i in range(layers):
        use_deflate = deflate and i == 0
        data = zlib.compress(data) if use_deflate else gzip.compress(data)
        codings.append("deflate" if use_deflate else "gzip")
    raw = [data[i:i + split] for i in range(0, len(data), split)]
    limits = Limits(max_bytes=cap, read_timeout=1.0, deadline=None)
    out = b""
    try:
        for block in bounded_body(iter(raw), ", ".join(codings), where="a server", status=200,
                                  limits=limits, started=0.0):
            out += block
            assert len(out) <= cap
    except LimitExceeded:  # too large, or it could hold more JSON values than the cap allows
        assert len(plain) > cap or value_bound(plain) >= limits.max_values
        return
    assert out == plain
