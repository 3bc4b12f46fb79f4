"""`modelctl chat --schema` with a model on the real llama_cpp.server (Gemma 3 270M on
loopback): the schema travels as llama.cpp's `response_format`, the server constrains its answer
with it, and modelctl validates what comes back."""

from __future__ import annotations

import json

from test_backend_llama_server import SERVER_KEY, llama_server  # noqa: F401  (the module's server fixture)

CAPITAL = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


def chat(cli, server, *args: str):
    return cli("chat", "--api-base", server["url"], "--model", "gemma", "--api-key", SERVER_KEY,
               "--temperature", "0", "--max-tokens", "60", *args)


def test_schema_through_the_server(llama_server, cli, monkeypatch):  # noqa: F811
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = chat(cli, llama_server, "--schema", json.dumps(CAPITAL), "--json",
                  "What is the capital of France? Answer in JSON.")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record["data"]) == {"city", "country"} and record["finish_reason"] == "stop"


def test_json_mode_through_the_server_reports_an_unfinished_object(llama_server, cli, monkeypatch):  # noqa: F811
    """JSON mode leaves the shape to the model: the server keeps Gemma 270M to JSON, which here
    does not close its object within the tokens given; that is exit 7 with the reason, and the
    `--json` record still shows what came."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = chat(cli, llama_server, "--json-mode", "--json", "-o", "stream=false",
                  "What is the capital of France? Answer in JSON.")
    assert result.exit_code == 7
    record = json.loads(result.stdout)
    assert record["text"].startswith("{") and record["finish_reason"] == "length"
    assert record["error"].startswith("the answer is not valid JSON: ")
    assert record["error"].endswith("(the answer was cut off at max_tokens: raise --max-tokens)")
