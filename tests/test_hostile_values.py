"""Answers that are small to send and huge to build: `[{},{},…]` is three bytes a value on the
wire and about a hundred once parsed, so a 60 MB answer under the size limit would still cost
gigabytes. Every answer, whoever parses it (modelctl, the `ollama` package, huggingface_hub),
is refused past one JSON value per 16 bytes of MODELCTL_MAX_RESPONSE_MB, before it is built.

The limit is set to 1 MiB here (65,536 values), so that the answers stay small."""

from __future__ import annotations

import json

import pytest
from hostile_server import HostileServer, body, many, ndjson, sse
from providers import gemini_wire
from test_hostile_servers import EMBED_PATHS, assert_one_error, embeddings, run_chat

from modelctl.transport import wire

SMALL = {"MODELCTL_MAX_RESPONSE_MB": "1"}
TOO_MANY = 70_000  # values: more than 1 MiB / 16
NESTED = "[" * TOO_MANY + "]" * TOO_MANY


@pytest.fixture
def hostile(provider_env):  # noqa: F811
    server = HostileServer().start()
    yield server
    server.stop()


WHOLE = {
    "openai-compatible": lambda items: '{"choices": %s}' % items,
    "anthropic": lambda items: '{"content": %s, "stop_reason": "end_turn"}' % items,
    "ollama": lambda items: '{"model": "m", "message": {"role": "assistant", "content": "hi"}, "done": true, '
                            '"context": %s}' % items,
    "hf-inference": lambda items: '{"choices": %s}' % items,
    "gemini": lambda items: '{"candidates": %s}' % items,
}
SHAPES = {"empty-objects": many(TOO_MANY), "zeros": many(TOO_MANY, "0"), "strings": many(TOO_MANY, '"ab"'),
          "nested-lists": NESTED}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kit", WHOLE)
def test_a_whole_answer_of_too_many_values_is_refused(kit, shape, hostile, cli, tmp_path):
    path = {"gemini": f"/v1beta/models/{gemini_wire.MODEL}:generateContent"}.get(kit)
    result = run_chat(cli, hostile, tmp_path, kit, body(WHOLE[kit](SHAPES[shape])),
                      "chat", "-m", "test/served-model", "Hi", "-o", "stream=false", path=path, env=SMALL)
    assert_one_error(result, 7, "65,536 JSON values", "MODELCTL_MAX_RESPONSE_MB")


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "gemini", "hf-inference"])
def test_one_event_of_too_many_values_is_refused(kit, hostile, cli, tmp_path):
    answer = sse(many(TOO_MANY), events=["message_start"] if kit == "anthropic" else None)
    assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer, env=SMALL), 7, "JSON values")


def test_one_ollama_line_of_too_many_values_is_refused(hostile, cli, tmp_path):
    assert_one_error(run_chat(cli, hostile, tmp_path, "ollama", ndjson(many(TOO_MANY)), env=SMALL), 7, "JSON values")


@pytest.mark.parametrize("kit", EMBED_PATHS)
def test_an_embedding_of_too_many_numbers_is_refused(kit, hostile, cli, tmp_path):
    answer = embeddings(kit, [many(TOO_MANY, "0.5")])
    result = run_chat(cli, hostile, tmp_path, kit, answer, "embed", "-m", "test/served-model", "a",
                      path=EMBED_PATHS[kit], env=SMALL)
    assert_one_error(result, 7, "JSON values")
    assert result.stdout == ""


def test_an_embedding_within_the_limit_comes_through(hostile, cli, tmp_path):
    answer = embeddings("openai-compatible", [many(30_000, "0.5")])
    result = run_chat(cli, hostile, tmp_path, "openai-compatible", answer, "embed", "-m", "test/served-model", "a",
                      "--json", path="/v1/embeddings", env=SMALL)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dimensions"] == 30_000


def test_a_hub_listing_of_too_many_files_is_refused(hf_env, hub_server, cli, monkeypatch):
    monkeypatch.setenv("MODELCTL_MAX_RESPONSE_MB", "1")
    siblings = many(TOO_MANY, "0")  # small, so that the server has sent it all when it is refused
    hub_server.model_info_body = ("application/json", ('{"id": "test/x", "sha": "abc", "siblings": %s}' % siblings).encode())
    assert_one_error(cli("pull", "--quiet", "hf:test/x"), 7, "JSON values")


# --- the count itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    '["' + "a,b[c{" * 50_000 + '"]',  # brackets and commas inside a string are text
    '["' + '\\"' * 20_000 + ",,,," * 20_000 + '"]',  # escaped quotes do not end the string
    '{"k": "' + "\\\\" * 30_000 + '", "v": "' + "," * 70_000 + '"}',  # nor do escaped backslashes
])
def test_commas_inside_strings_are_not_values(text):
    assert isinstance(wire.loads(text, max_values=1000), (list, dict))


@pytest.mark.parametrize("text", [
    many(1001), many(1001, "[]"), many(1001, '"x,y"'), "[" * 1001 + "]" * 1001,
    '["\\\\", ' + ",".join(["0"] * 1001) + "]",  # an escaped backslash ends no string early
    '"' + '\\"' * 5000 + '"' + ",0" * 1001,  # nor does an escaped quote hide what follows
])
def test_too_many_values_are_refused_before_anything_is_built(text):
    with pytest.raises(wire.TooBig, match="more than 1,000 values"):
        wire.loads(text, max_values=1000)


def test_an_unterminated_string_of_escapes_is_counted_in_one_pass():
    """What a backtracking string pattern would take ages over: a quote, then a hundred
    thousand escaped quotes and never a closing one."""
    text = '"' + '\\"' * 100_000 + "," * 2000
    with pytest.raises(ValueError):
        wire.loads(text, max_values=1000)
