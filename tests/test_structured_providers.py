"""`modelctl chat --schema` / `--json-mode` through every provider, against loopback servers in
each provider's documented wire format: the request carries the provider's own field (OpenAI's
`response_format`, Gemini's `responseSchema`, Ollama's `format`, Anthropic's forced tool, …), and
the answer is validated before it is printed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from providers import anthropic_wire, gemini_wire
from providers.kits import FAKE_KEY, KIT, KITS, Kit, registry_for

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}
# Gemini's responseSchema form of SCHEMA.
GEMINI_SCHEMA = {
    "type": "OBJECT",
    "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "minimum": 0}},
    "required": ["name", "age"],
}
OPENAI_LIKE = ("openai", "azure-openai", "azure-ai", "mistral")


def answer_reply(kit: Kit, pieces: list[str]):
    """The streamed answer `pieces` as the provider sends a structured answer."""
    if kit.name == "anthropic":
        return anthropic_wire.tool_stream("answer", pieces)
    return kit.stream(pieces)


def requested(kit: Kit, body: dict[str, Any]) -> Any:
    """What the request asked for, read from the provider's documented field."""
    if kit.name in (*OPENAI_LIKE, "openai-compatible", "hf-inference"):
        return body["response_format"]
    if kit.name == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": "answer"}
        (tool,) = body["tools"]
        assert tool["name"] == "answer"
        return tool["input_schema"]
    if kit.name == "gemini":
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        return config.get("responseSchema")
    return body["format"]  # ollama


def chat(cli, server, kit: Kit, tmp_path, *args: str):
    registry = registry_for(kit.deployment(server.url), tmp_path / "registry.toml")
    env = {kit.key_env: FAKE_KEY, "MODELCTL_RETRIES": "0"} if kit.key_env else {"MODELCTL_RETRIES": "0"}
    return cli("--registry", registry, "chat", "-m", "test/served-model", "Who is Ada? Answer in JSON.", *args,
               env=env)


@pytest.mark.parametrize("kit", KITS, ids=repr)
def test_schema_goes_in_the_providers_field_and_the_answer_is_printed(kit, server, cli, tmp_path):
    server.route("POST", kit.chat_path, answer_reply(kit, ['{"name": "Ada', ' Lovelace", ', '"age": 36}']))
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(SCHEMA))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "Ada Lovelace", "age": 36}
    asked = requested(kit, server.calls(kit.chat_path)[0].body)
    if kit.name in OPENAI_LIKE:
        assert asked == {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    elif kit.name == "openai-compatible":  # llama.cpp's servers' form
        assert asked == {"type": "json_object", "schema": SCHEMA}
    elif kit.name == "hf-inference":  # TGI's grammar
        assert asked == {"type": "json_object", "value": SCHEMA}
    else:
        assert asked == (GEMINI_SCHEMA if kit.name == "gemini" else SCHEMA)
    assert FAKE_KEY not in result.output


@pytest.mark.parametrize("kit", KITS, ids=repr)
def test_an_answer_against_the_schema_is_exit_7_naming_where(kit, server, cli, tmp_path):
    server.route("POST", kit.chat_path, answer_reply(kit, ['{"name": "Ada", "age": -3}']))
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(SCHEMA))
    assert result.exit_code == 7
    assert result.stdout == ""  # nothing a script could mistake for the answer
    assert result.stderr.strip() == ("modelctl: error: the answer does not match the schema: "
                                     "-3 is less than the minimum of 0 (at /age)")


@pytest.mark.parametrize("kit", KITS, ids=repr)
def test_json_mode_asks_for_any_json_object(kit, server, cli, tmp_path):
    server.route("POST", kit.chat_path, answer_reply(kit, ['{"anything":', ' [1, 2]}']))
    result = chat(cli, server, kit, tmp_path, "--json-mode", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["data"] == {"anything": [1, 2]} and json.loads(data["text"]) == data["data"]
    assert data["finish_reason"] == "stop"
    expected = {"openai-like": {"type": "json_object"}, "anthropic": {"type": "object"}, "gemini": None,
                "ollama": "json", "hf-inference": {"type": "json_object", "value": {"type": "object"}}}
    assert requested(kit, server.calls(kit.chat_path)[0].body) == expected.get(kit.name, expected["openai-like"])


def test_an_answer_that_is_not_json_is_exit_7(server, cli, tmp_path):
    kit = KIT["openai"]
    server.route("POST", kit.chat_path, kit.stream(["Sure! Here is ", "the JSON"]))
    result = chat(cli, server, kit, tmp_path, "--json-mode", "--json")
    assert result.exit_code == 7
    data = json.loads(result.stdout)  # the --json object still comes, with the reason
    assert data["text"] == "Sure! Here is the JSON" and "data" not in data
    assert data["error"] == "the answer is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    assert result.stderr.startswith("modelctl: error: the answer is not valid JSON")


def test_an_answer_cut_off_at_max_tokens_says_so(server, cli, tmp_path):
    kit = KIT["ollama"]
    server.route("POST", kit.chat_path, kit.stream(['{"name": "Ada', ' Lovel'], reason="length"))
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(SCHEMA))
    assert result.exit_code == 7 and result.stdout == ""
    assert "not valid JSON: Unterminated string" in result.stderr
    assert "(the answer was cut off at max_tokens: raise --max-tokens)" in result.stderr


def test_anthropic_whole_answer_is_the_tool_input(server, cli, tmp_path):
    kit = KIT["anthropic"]
    server.route("POST", kit.chat_path, anthropic_wire.tool_message("answer", {"name": "Ada", "age": 36}))
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(SCHEMA), "-o", "stream=false", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["data"] == {"name": "Ada", "age": 36} and data["finish_reason"] == "stop"
    assert "stream" not in server.calls(kit.chat_path)[0].body


def test_gemini_takes_the_schema_in_its_own_subset(server, cli, tmp_path):
    kit = KIT["gemini"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
        "properties": {"colour": {"const": "red"}, "note": {"type": ["string", "null"]},
                       "size": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["big"]}]}},
        "required": ["colour"],
    }
    server.route("POST", kit.chat_path, gemini_wire.stream(['{"colour": "red", "note": null, "size": 3}']))
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(schema))
    assert result.exit_code == 0, result.output
    assert requested(kit, server.calls(kit.chat_path)[0].body) == {
        "type": "OBJECT", "required": ["colour"],
        "properties": {"colour": {"enum": ["red"]}, "note": {"type": "STRING", "nullable": True},
                       "size": {"anyOf": [{"type": "INTEGER"}, {"type": "STRING", "enum": ["big"]}]}},
    }


def test_gemini_refuses_a_schema_it_cannot_take_before_asking(server, cli, tmp_path):
    kit = KIT["gemini"]
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}
    result = chat(cli, server, kit, tmp_path, "--schema", json.dumps(schema))
    assert result.exit_code == 2
    assert "Gemini's responseSchema has no '$ref' (at /properties/a/$ref of the schema)" in result.stderr
    assert server.requests == []
