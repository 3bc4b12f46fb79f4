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


# --- references, numbers and patterns: checked before anything is sent ----------------------------


def schema_error(text: str) -> str:
    with pytest.raises(UsageError) as info:
        load_format(text, False)
    assert info.value.exit_code == 2
    return str(info.value)


UNRESOLVABLE = [
    ('{"$ref": "REMOTE/s.json"}', "is not in the schema", "never fetched"),
    ('{"properties": {"x": {"$ref": "REMOTE/s.json#/$defs/a"}}}', "is not in the schema", "(at /properties/x)"),
    ('{"properties": {"x": {"$ref": "other.json"}}}', "'other.json' is not in the schema", "(at /properties/x)"),
    ('{"$id": "REMOTE/root.json", "properties": {"x": {"$ref": "sibling.json"}}}', "'sibling.json'", "never fetched"),
    ('{"properties": {"x": {"$ref": "#/$defs/missing"}}}', "'#/$defs/missing' points to nothing", "/properties/x"),
    ('{"items": {"$ref": "#/items/0/nothing"}}', "'#/items/0/nothing' points to nothing", "(at /items)"),
    ('{"properties": {"x": {"$ref": "#nowhere"}}}', "'#nowhere' names an anchor", "/properties/x"),
    ('{"$defs": {"a": {"$dynamicRef": "#meta"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}', "'#meta'", "/$defs/a"),
]


@pytest.mark.parametrize("case", UNRESOLVABLE, ids=range(len(UNRESOLVABLE)))
def test_a_ref_that_does_not_resolve_within_the_schema_is_a_usage_error_and_nothing_is_fetched(case, server):
    text, *needles = case
    message = schema_error(text.replace("REMOTE", f"{server.url}"))
    for needle in needles:
        assert needle in message, message
    assert server.requests == []  # the loopback server was never asked


CYCLES = [
    '{"$ref": "#"}',
    '{"not": {"$ref": "#"}}',
    '{"allOf": [{"type": "object"}, {"$ref": "#"}]}',
    '{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}',
    '{"$defs": {"a": {"if": {"$ref": "#/$defs/a"}}}, "properties": {"x": {"$ref": "#/$defs/a"}}}',
    '{"$defs": {"a": {"dependentSchemas": {"k": {"$ref": "#/$defs/a"}}}}, "$ref": "#/$defs/a"}',
    '{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {"oneOf": [{"$ref": "#/definitions/a"}]}},'
    ' "properties": {"x": {"$ref": "#/definitions/a"}}}',
    '{"$schema": "https://json-schema.org/draft/2019-09/schema", "$recursiveAnchor": true, "$recursiveRef": "#"}',
    '{"$id": "urn:a", "$defs": {"b": {"$id": "urn:b", "$ref": "urn:a"}}, "$ref": "urn:b"}',
]


@pytest.mark.parametrize("text", CYCLES)
def test_a_ref_that_leads_back_to_itself_in_place_is_a_usage_error(text):
    message = schema_error(text)
    assert "leads back to where it started" in message and "$ref" in message or "$recursiveRef" in message


FINE = [
    # a tree: the schema refers to itself below a property
    '{"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},'
    ' "$ref": "#/$defs/node"}',
    '{"$id": "urn:root", "$defs": {"a": {"$id": "urn:a", "type": "string"}}, "properties": {"s": {"$ref": "urn:a"}}}',
    '{"$defs": {"n": {"$anchor": "num", "type": "integer"}}, "properties": {"x": {"$ref": "#num"}}}',
    '{"properties": {"schema": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}}',  # shipped with jsonschema
    '{"properties": {"a": {"$ref": "#/properties/b"}, "b": {"type": "integer"}}}',
]


@pytest.mark.parametrize("text", FINE)
def test_refs_within_the_schema_work(text):
    fmt = load_format(text, False)
    assert fmt is not None and fmt.schema is not None


def test_a_recursive_schema_validates_a_tree():
    fmt = load_format(FINE[0], False)
    assert validate_answer('{"kids": [{"kids": []}, {}]}', fmt) == {"kids": [{"kids": []}, {}]}
    with pytest.raises(BackendError, match="is not of type 'object'"):
        validate_answer('{"kids": [1]}', fmt)


@pytest.mark.parametrize("number,shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                          ("1e999", "Infinity")])
def test_nan_and_infinities_in_a_schema_are_a_usage_error(number, shown):
    message = schema_error('{"type": "object", "properties": {"n": {"type": "number", "maximum": %s}}}' % number)
    assert f"{shown} is not a JSON number (at /properties/n/maximum of the schema)" in message


def test_a_schema_file_with_nan_names_the_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"enum": [1, NaN]}')
    assert schema_error(str(path)).startswith(f"--schema {str(path)!r}: NaN is not a JSON number (at /enum/1")


BACKTRACKING = [*[(where, "(a+)+$") for where in ("pattern", "patternProperties", "additionalProperties",
                                                  "propertyNames")],
                ("pattern", "^(a|a)*$"), ("pattern", "^(a|aa)+$")]


@pytest.mark.parametrize("where,pattern", BACKTRACKING)
def test_a_pattern_that_backtracks_on_a_long_answer_stops_with_an_error(where, pattern):
    """Run in a real process with a bound on its time: matching that hangs fails the test
    instead of hanging it."""
    import subprocess
    import sys

    long = "a" * 5000 + "!"
    schema = {
        "pattern": {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}},
        "patternProperties": {"type": "object", "patternProperties": {pattern: {"type": "integer"}}},
        "additionalProperties": {"type": "object", "patternProperties": {pattern: {}}, "additionalProperties": False},
        "propertyNames": {"type": "object", "propertyNames": {"pattern": pattern}},
    }[where]
    answer = {"s": long} if where == "pattern" else {long: 1}
    script = ("import json, sys\n"
              "from modelctl.chat.structured import load_format, validate_answer\n"
              "from modelctl.errors import ModelctlError\n"
              "try:\n    validate_answer(sys.argv[2], load_format(sys.argv[1], False))\n"
              "except ModelctlError as exc:\n    print(exc.exit_code, exc)\n")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(schema), json.dumps(answer)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("7 the answer cannot be checked against the schema: the pattern"), proc.stdout
    assert "took more than 2 s" in proc.stdout


def test_patterns_still_match_and_fail_as_before():
    fmt = load_format('{"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]{2}\\\\d+$"}},'
                      ' "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": {"type": "string"}}',
                      False)
    assert validate_answer('{"id": "ab12", "x-n": 3, "other": "t"}', fmt) == {"id": "ab12", "x-n": 3, "other": "t"}
    for answer, needle in [('{"id": "12ab"}', "'12ab' does not match"), ('{"x-n": "three"}', "is not of type 'integer'"),
                           ('{"other": 5}', "is not of type 'string'")]:
        with pytest.raises(BackendError, match=needle):
            validate_answer(answer, fmt)
    closed = load_format('{"type": "object", "patternProperties": {"^x-": {}}, "additionalProperties": false}', False)
    with pytest.raises(BackendError, match=r"'y' was unexpected"):
        validate_answer('{"x-a": 1, "y": 2}', closed)


def test_pattern_properties_under_unevaluated_properties_are_refused():
    message = schema_error('{"patternProperties": {"^a": {}}, "unevaluatedProperties": false}')
    assert "patternProperties with unevaluatedProperties" in message


def test_a_pattern_the_regex_engine_cannot_compile_is_a_usage_error():
    message = schema_error('{"type": "string", "pattern": "(?<=a+)b"}')  # re refuses it too: the schema check says
    assert "(?<=a+)b" in message


@pytest.mark.parametrize("pattern", ["a{" + "9" * 5000 + "}", "a{1," + "9" * 4400 + "}", "a{4294967296}",
                                     "a{99999999999999999999}"])
def test_a_pattern_python_cannot_compile_is_a_usage_error(pattern):
    """`re` raises more than re.error while the meta-schema's regex format compiles a pattern."""
    message = schema_error('{"type": "string", "pattern": "' + pattern + '"}')
    assert "not a valid JSON Schema" in message and "unexpected" not in message


# --- the real model ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_setup(model_path, tmp_path_factory):
    """One loaded Gemma for the in-process checks (a module-wide MODELCTL_HOME of its own)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MODELCTL_HOME", str(tmp_path_factory.mktemp("structured-home")))
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.opening import ChatOptions, open_chat

    setup = open_chat(str(model_path), ChatOptions(flags=GenerationParams(temperature=0.0, seed=1, max_tokens=60)))
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


@pytest.mark.parametrize("grammar", ['root ::= "a" (', 'root ::= root "a"', 'root ::= undefined-rule',
                                     "root ::= " + "(" * 3000 + '"a"' + ")?" * 3000])
def test_a_grammar_llama_cpp_refuses_is_a_usage_error_not_a_crash(grammar, gemma_setup, capfd):
    """What llama.cpp's parser refuses it answers with NULL, which llama-cpp-python would use
    and crash on: `checked` asks the parser first; its complaint is the message, not a dump
    of the grammar on stderr."""
    from llama_cpp.llama_grammar import LlamaGrammar

    from modelctl.backends.llama_grammar import checked

    with pytest.raises(UsageError, match=r"^llama.cpp cannot use the grammar of this schema: "):
        checked(LlamaGrammar.from_string(grammar), gemma_setup.backend._loaded._model.vocab)
    assert capfd.readouterr().err == ""


def test_chat_schema_file_to_a_pipe(run_modelctl, model_path, tmp_path):
    """What a shell script does: `modelctl chat --schema s.json "..." | jq`."""
    schema = tmp_path / "capital.json"
    schema.write_text(json.dumps(CAPITAL))
    proc = run_modelctl("chat", "-m", str(model_path), "--schema", str(schema), "-n", "60", *GREEDY, QUESTION)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == {"city", "country"}
    assert proc.stdout.count("\n") == 1  # one line of JSON, as the model wrote it
