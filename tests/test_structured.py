"""`modelctl chat --schema FILE|JSON` and `--json-mode` with the real Gemma 3 270M GGUF through
llama.cpp's grammar, and through the real llama_cpp.server; the schema's loading and the
answer's validation, with the errors a user sees for bad input."""

from __future__ import annotations

import io
import json

import pytest

from modelctl.backends.base import ResponseFormat
from modelctl.chat.structured import load_format, validate_answer
from modelctl.errors import BackendError, UsageError

CAPITAL = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
QUESTION = "What is the capital of France? Answer in JSON."
GREEDY = ("--temperature", "0", "--seed", "1")


# --- the schema given ------------------------------------------------------------------------------


def test_a_schema_from_a_file_or_inline(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(CAPITAL))
    assert load_format(str(path), False) == ResponseFormat(CAPITAL)
    assert load_format(json.dumps(CAPITAL), False) == ResponseFormat(CAPITAL)
    assert load_format(None, True) == ResponseFormat(None)
    assert load_format(None, False) is None


@pytest.mark.parametrize("args, code, message", [
    (["--schema", "{not json"], 2,
     "--schema (inline JSON): not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (["--schema", '{"type": "object", "properties": {"n": {"type": "integr"}}}'], 2,
     "--schema (inline JSON): not a valid JSON Schema: 'integr' is not valid under any of the given schemas "
     "(at /properties/n/type of the schema)"),
    (["--schema", "[1, 2]"], 2, "--schema (inline JSON): a schema is a JSON object, not an array"),
    (["--schema", "missing.json"], 4, "schema file 'missing.json': no such file"),
    (["--schema", ""], 2, "--schema needs a value; it was given an empty one"),
    (["--schema", "{}", "--json-mode"], 2, "--schema and --json-mode: give one (a schema already asks for JSON)"),
])
def test_bad_schemas_are_one_line_and_an_exit_code(cli, args, code, message):
    result = cli("chat", "Hi", *args)
    assert result.exit_code == code
    assert result.stderr == f"modelctl: error: {message}\n" and result.stdout == ""


def test_a_schema_file_that_cannot_be_read(cli, tmp_path):
    result = cli("chat", "Hi", "--schema", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"modelctl: error: schema file {str(tmp_path)!r} is a directory, not a regular file\n"
    bad = tmp_path / "s.json"
    bad.write_bytes(b'{"type": "\xff"}')
    result = cli("chat", "Hi", "--schema", str(bad))
    assert result.exit_code == 2
    assert result.stderr == f"modelctl: error: schema file {str(bad)!r} is not UTF-8 text (invalid start byte at byte 10)\n"


def test_the_interactive_chat_refuses_a_schema(modelctl_home):
    """At a terminal, without a prompt, `chat --json-mode` would start the REPL: refused."""
    import os
    import sys

    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    child = pexpect.spawn(sys.executable, ["-m", "modelctl", "chat", "--json-mode"], env=env, encoding="utf-8",
                          timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert child.before.strip() == ("modelctl: error: --json, --no-stream, --schema and --json-mode need a prompt "
                                    "(argument or stdin)")


# --- the answer checked ----------------------------------------------------------------------------


def test_validation_names_the_first_problem_and_where():
    fmt = ResponseFormat({"type": "object", "properties": {"a/b": {"type": "array", "items": {"type": "integer"}}}})
    assert validate_answer('{"a/b": [1, 2]}', fmt) == {"a/b": [1, 2]}
    with pytest.raises(BackendError) as info:
        validate_answer('{"a/b": [1, "two"]}', fmt)
    assert str(info.value) == "the answer does not match the schema: 'two' is not of type 'integer' (at /a~1b/1)"
    assert info.value.exit_code == 7
    with pytest.raises(BackendError, match=r"^the answer is an array, not a JSON object$"):
        validate_answer("[1]", ResponseFormat())
    with pytest.raises(BackendError, match=r"nested too deeply"):
        validate_answer("[" * 100 + "]" * 100, fmt)


# --- the real model ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_setup(model_path, tmp_path_factory):
    """One loaded Gemma for the in-process checks (a module-wide MODELCTL_HOME of its own)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELCTL_HOME", str(tmp_path_factory.mktemp("structured-home")))
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.resolve import open_chat

    setup = open_chat(str(model_path), flags=GenerationParams(temperature=0.0, seed=1, max_tokens=60))
    yield setup
    setup.backend.close()
    mp.undo()


def ask(setup, question: str, fmt: ResponseFormat, **kw):
    from modelctl.chat.oneshot import run_once

    out = io.StringIO()
    reply = run_once(setup, question, out=out, response_format=fmt, **kw)
    return reply, out.getvalue()


def test_gemma_answers_in_the_schema(gemma_setup):
    reply, printed = ask(gemma_setup, QUESTION, ResponseFormat(CAPITAL))
    value = json.loads(printed)
    assert set(value) == {"city", "country"} and all(isinstance(v, str) for v in value.values())
    assert reply.finish_reason == "stop"  # the grammar closed the object and the model stopped


def test_gemma_json_mode_gives_an_object_and_the_json_record(gemma_setup):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    _, printed = ask(gemma_setup, "Is water wet? Answer in JSON.", ResponseFormat(schema), as_json=True)
    record = json.loads(printed)
    assert record["data"] == json.loads(record["text"]) and isinstance(record["data"]["ok"], bool)
    assert record["finish_reason"] == "stop" and "error" not in record


def test_a_schema_too_big_for_max_tokens_is_exit_7_with_the_reason(gemma_setup):
    long = {"type": "object", "properties": {f"field_{n}": {"type": "string", "minLength": 8} for n in range(12)},
            "required": [f"field_{n}" for n in range(12)]}
    out = io.StringIO()
    from modelctl.chat.oneshot import run_once

    with pytest.raises(BackendError) as info:
        run_once(gemma_setup, "Describe a house in JSON.", out=out, response_format=ResponseFormat(long))
    assert info.value.exit_code == 7
    assert str(info.value).startswith("the answer is not valid JSON: ")
    assert str(info.value).endswith("(the answer was cut off at max_tokens: raise --max-tokens)")
    assert out.getvalue() == ""


def test_a_schema_the_grammar_cannot_express_is_a_usage_error(gemma_setup):
    with pytest.raises(UsageError, match=r"^llama.cpp cannot turn the schema into a grammar: Pattern must start"):
        ask(gemma_setup, QUESTION, ResponseFormat({"type": "string", "pattern": "[a-z]+"}))


def test_chat_schema_file_to_a_pipe(run_modelctl, model_path, tmp_path):
    """What a shell script does: `modelctl chat --schema s.json "..." | jq`."""
    schema = tmp_path / "capital.json"
    schema.write_text(json.dumps(CAPITAL))
    proc = run_modelctl("chat", "-m", str(model_path), "--schema", str(schema), "-n", "60", *GREEDY, QUESTION)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == {"city", "country"}
    assert proc.stdout.count("\n") == 1  # one line of JSON, as the model wrote it
