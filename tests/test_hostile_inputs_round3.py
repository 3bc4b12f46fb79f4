"""Hostile input, third round: numbers no option can take (NaN, infinities, whole numbers past
any bound), integers past what TOML or Python reads (in every TOML file modelctl reads and in
templates), arguments that are not UTF-8, output encodings that cannot write the text, URLs httpx
would refuse, dates at the ends of the calendar, TOML dates in JSON, names that can never be
typed, control characters in printed data, history files whose tables are not modelctl's.

Each ends in its documented exit code and one line on stderr that names the input; none reaches
the catch-all's `unexpected`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registries import model, write_registry

HUGE = "9" * 5000  # past Python's 4,300-digit limit on reading an integer
LONG = "99999999999999999999"  # 20 digits: past 64 bits
DEAD_API = "http://127.0.0.1:9/v1"  # never contacted: every case here fails before a request
MESSAGES = '[{"role": "user", "content": "Hello"}]'


def exit_code(result) -> int:
    """The exit status of an in-process run (click's Result) or a real one (CompletedProcess)."""
    return result.exit_code if hasattr(result, "exit_code") else result.returncode


def expect(result, code: int, *words: str) -> str:
    """The one `modelctl: error:` line of a run that ended with `code`, holding `words`."""
    err = result.stderr
    assert exit_code(result) == code, (exit_code(result), err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), err
    assert "unexpected" not in err and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --- every number option of every command ---------------------------------------------------------


def _number_options() -> list[tuple[list[str], str, str]]:
    """(command words, option, "int" or "float") for every number option of every command,
    read from the Typer app itself: a new option is swept as soon as it exists."""
    import typer.main

    from modelctl.cli.main import make_app

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*words, name])
        for param in command.params:
            kind = param.type.name.split()[0]
            if type(param).__name__.endswith("Option") and kind in ("int", "integer", "float"):
                yield words, param.opts[0], "float" if kind == "float" else "int"

    return list(walk(typer.main.get_command(make_app()), []))


NUMBER_OPTIONS = _number_options()
FLOAT_VALUES = ["nan", "NaN", "inf", "-inf", "1e309", "-1e400", "Infinity"]
INT_VALUES = [LONG, f"-{LONG}", "2147483648", "-2147483649", HUGE, "nan", "1e3", "²"]


def test_every_number_option_is_swept():
    found = {(" ".join(w), o) for w, o, _ in NUMBER_OPTIONS}
    assert {("chat", "--max-cost"), ("chat", "--max-tokens"), ("services", "--timeout"), ("chat", "--seed"),
            ("history list", "--limit"), ("image", "--count")} <= found
    assert len(NUMBER_OPTIONS) > 20


@pytest.mark.parametrize("words,option,kind", NUMBER_OPTIONS, ids=[" ".join(w) + " " + o for w, o, _ in NUMBER_OPTIONS])
def test_a_number_no_option_can_take_is_a_usage_error(cli, words, option, kind):
    for value in FLOAT_VALUES if kind == "float" else INT_VALUES:
        result = cli(*words, option, value)
        line = expect(result, 2, option)
        assert result.stdout == "", (value, result.stdout)
        assert len(line) < 400, line  # a 5,000-digit value is not echoed whole


def test_max_cost_nan_is_refused_before_anything_is_sent(cli):
    for value in ("nan", "-nan", "inf", "1e999"):
        expect(cli("chat", "--api-base", DEAD_API, "-m", "m", "--max-cost", value, "hi"), 2, "--max-cost",
               "finite")


def test_whole_numbers_within_bounds_still_pass(cli):
    result = cli("chat", "--dry-run", "--json", "--api-base", DEAD_API, "-m", "m", "--max-tokens", "2147483647",
                 "--seed", "-2147483648", "--temperature", "1e-300", "hi")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)["request"]["body"]
    assert body["max_tokens"] == 2147483647 and body["seed"] == -2147483648


# --- integers past what TOML and Python read ------------------------------------------------------

# (the integer as written, a word of the expected message): past Python's digit limit, past 64 bits
# in decimal, in hex, negative, with TOML's underscores.
TOML_INTEGERS = [(HUGE, "out of range"), (LONG, "out of range"), ("0x" + "f" * 40, "out of range"),
                 ("-" + LONG, "out of range"), ("1_000_000_000_000_000_000_000", "out of range")]


@pytest.mark.parametrize("number,word", TOML_INTEGERS, ids=["digits", "20 digits", "hex", "negative", "underscores"])
def test_an_integer_past_toml_in_a_registry_names_file_and_line(cli, tmp_path, number, word):
    path = write_registry(tmp_path / "reg.toml", model("m", {"kind": "openai", "model": "m"}))
    text = path.read_text().replace('name = "m"', f'name = "m"\ncontext_window = {number}', 1)
    path.write_text(text)
    line_no = text.splitlines().index(f"context_window = {number}") + 1
    expect(cli("--registry", str(path), "list"), 3, str(path), word, f":{line_no}:")
    result = cli("registry", "validate", str(path))
    assert result.exit_code == 3 and "unexpected" not in result.output
    assert f"{path}:{line_no}: invalid TOML" in result.output and word in result.output


@pytest.mark.parametrize("number,word", TOML_INTEGERS, ids=["digits", "20 digits", "hex", "negative", "underscores"])
def test_an_integer_past_toml_in_config_toml(cli, modelctl_home, number, word):
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"[chat]\nseed = {number}\n")
    for args in (["config", "list"], ["config", "list", "--json"], ["chat", "--dry-run", "-m", "m",
                                                                     "--api-base", DEAD_API, "hi"]):
        expect(cli(*args), 1, str(config), word)


def test_an_integer_past_toml_in_the_keys_file(cli, modelctl_home):
    keys = modelctl_home / "config" / "keys.toml"
    keys.parent.mkdir(parents=True)
    for number, _ in TOML_INTEGERS:
        keys.write_text(f"openai = {number}\n")
        keys.chmod(0o600)
        expect(cli("keys", "list"), 1, str(keys))


@pytest.mark.parametrize("number,word", TOML_INTEGERS, ids=["digits", "20 digits", "hex", "negative", "underscores"])
def test_an_integer_past_toml_as_a_typed_value(cli, number, word):
    """`config set`, alias options and `--var` read a value as TOML: a number out of range is
    refused, not stored as text or passed on."""
    expect(cli("config", "set", "chat.seed", number), 2, word)
    expect(cli("alias", "set", "fast", "gpt-4o", "-o", f"seed={number}"), 2, word)
    expect(cli("prompt", "-t", "chatml", "--var", f"x={number}"), 2, word)
    assert cli("alias", "list", "--json").stdout.strip() == "[]"


def test_integers_toml_holds_still_pass(cli):
    """TOML's 64-bit integers are read; a setting then takes those an option can hold (32 bits)."""
    for number in ("2147483647", "-2147483648", "0x7fffffff"):
        result = cli("config", "set", "chat.seed", number)
        assert result.exit_code == 0, result.stderr
    for number in ("9223372036854775807", "-9223372036854775808", "0x7fffffffffffffff"):
        result = cli("config", "set", "chat.seed", number)
        assert result.exit_code == 2 and "expected a whole number from -2147483648 to 2147483647" in result.stderr


# --- templates --------------------------------------------------------------------------------------

TEMPLATE_CASES = {
    "a literal of 5,000 digits": "{{ " + HUGE + " }}",
    "a power past the digit limit": "{{ 10 ** 4400 }}",
    "a product past it": "{% set a = 10 ** 2500 %}{{ a * a }}",
    "a power written out by a filter": "{{ (7 ** 6000) | string }}",
    "a power in JSON": "{{ [10 ** 4400] | tojson }}",
    "a lone surrogate": '{{ "\\ud800" }}',
    "a surrogate joined to text": '{{ "x" ~ "\\udcff" }}',
    "a surrogate from a filter": '{{ "\\udfff" | upper }}',
}


@pytest.mark.parametrize("body", TEMPLATE_CASES.values(), ids=TEMPLATE_CASES.keys())
def test_a_template_making_what_no_text_can_hold_is_a_template_error(cli, tmp_path, body):
    template = tmp_path / "t.jinja"
    template.write_text(body + "{% for m in messages %}{{ m.content }}{% endfor %}")
    messages = tmp_path / "m.json"
    messages.write_text(MESSAGES)
    expect(cli("prompt", "-t", str(template), "--messages", str(messages)), 6, "t.jinja")


# --- arguments, encodings ---------------------------------------------------------------------------


def run_bytes(home: Path, *args: bytes | str, env: dict | None = None) -> subprocess.CompletedProcess:
    """modelctl in a real process, with arguments given as bytes where they must be."""
    full_env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable.encode(), b"-m", b"modelctl", *(a.encode() if isinstance(a, str) else a
                                                                        for a in args)],
                          capture_output=True, env=full_env, timeout=120)


@pytest.mark.parametrize("args,shown", [
    ((b"search", b"caf\xe9"), r"query 'caf\xe9'"),
    ((b"chat", b"--system", b"\xc3\x28", b"hi"), r"--system '\xc3('"),
    ((b"config", b"set", b"chat.model", b"a\xedb"), r"value 'a\xedb'"),
    ((b"history", b"show", b"\xff"), r"ID|NAME '\xff'"),
    ((b"chat", b"--stop", b"\x80", b"hi"), r"--stop '\x80'"),
    ((b"list", b"--provider", b"\xf0\x9f\x98"), r"--provider '\xf0\x9f\x98'"),
], ids=["argument", "option", "config value", "history ref", "repeatable option", "cut-off character"])
def test_text_that_is_not_utf8_is_a_usage_error_naming_where(modelctl_home, args, shown):
    result = run_bytes(modelctl_home, *args)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith(f"modelctl: error: {shown}: not UTF-8 text"), err
    assert len(err.strip().splitlines()) == 1 and "unexpected" not in err
    assert not (modelctl_home / "config" / "config.toml").exists()


@pytest.mark.parametrize("args,code", [
    ((b"show", b"\xff"), 4),
    ((b"--registry", b"/nonexistent/\xfe.toml", b"list"), 3),
    ((b"prompt", b"-t", b"/nonexistent/t\xff.jinja", b"--messages", b"/nonexistent/m\xff.json"), 4),
    ((b"chat", b"--schema", b"/nonexistent/s\xff.json", b"-m", b"m", b"--api-base", DEAD_API.encode(), b"hi"), 4),
], ids=["a model name", "a registry", "a template and messages", "a schema"])
def test_a_file_name_that_is_not_utf8_is_looked_up_as_it_is(modelctl_home, args, code):
    """A parameter that can name a file takes the bytes of a Linux file name as they are: a name
    that is not there is not found, in words."""
    result = run_bytes(modelctl_home, *args)
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert len(err.strip().splitlines()) == 1 and "unexpected" not in err, err
    assert "\\xff" in err or "\\udcff" in err or "\\xfe" in err, err  # the name shown, its bytes escaped


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "ascii:strict"])
def test_an_output_encoding_that_cannot_write_the_text_does_not_end_the_command(modelctl_home, tmp_path, encoding):
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"role": "user", "content": "caf\u00e9 \u2603 \U0001f600"}]))
    result = run_bytes(modelctl_home, "prompt", "-t", "chatml", "--messages", str(messages),
                       env={"PYTHONIOENCODING": encoding})
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("latin-1")
    assert "\\u2603" in out and "\\U0001f600" in out
    missing = run_bytes(modelctl_home, "show", "mod\u00e8le-\u2603", env={"PYTHONIOENCODING": encoding})
    err = missing.stderr.decode("latin-1")
    assert missing.returncode == 4 and "unexpected" not in err and "\\u2603" in err, err


# --- URLs -------------------------------------------------------------------------------------------

BAD_URLS = {
    "an IPv6 literal left open": "http://[::1",
    "an IPv6 literal that is none": "http://[zz]/v1",
    "a port that is not a number": "http://[::1]x/",
    "a port out of range": "http://localhost:99999/v1",
    "an A-label that does not decode": "http://xn--a.com/v1",
    "an empty A-label": "http://xn--.com/",
    "a symbol IDNA 2008 refuses": "http://\u2603.com/v1",
    "an empty label": "http://a..b/v1",
    "a leading dot": "http://.example.com/",
    "an IPv4 address out of range": "http://1.2.3.999/v1",
    "a label of 64 characters": f"http://{'a' * 64}.com/",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_a_url_httpx_would_refuse_is_refused_where_it_is_given(cli, url):
    expect(cli("config", "set", "api_base.openai", url), 2, "api_base.openai", "not a usable URL")
    expect(cli("chat", "--api-base", url, "-m", "m", "hi"), 2, "--api-base", "not a usable URL")


def test_international_and_fully_qualified_names_still_pass(cli):
    for url in ("http://b\u00fccher.example/v1", "http://example.com./v1", "http://xn--bcher-kva.example/v1",
                "http://[::1]:8080/v1", "http://under_score.example/v1"):
        assert cli("config", "set", "api_base.openai", url).exit_code == 0, url


# --- dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["0001-01-01", "0001-01-01T00:00", "0001-01-01T00:00-12:00",
                                   "9999-12-31", "9999-12-31T23:59:59+14:00", "1969-12-31"])
def test_dates_at_the_ends_of_the_calendar(cli, since):
    result = cli("usage", "--since", since, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == []


@pytest.mark.parametrize("age", [f"{LONG}w", f"{HUGE}d", "600000w", "99999999999m"])
def test_an_age_past_any_date_is_a_usage_error(cli, age):
    expect(cli("usage", "--since", age), 2, "--since", "10,000 years")
    expect(cli("history", "rm", "--older-than", age, "--yes"), 2, "--older-than", "10,000 years")


def test_toml_dates_and_times_in_config_print_as_json(cli, modelctl_home):
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[chat]\nwhen = 1979-05-27T07:32:00Z\nlocal = 1979-05-27T07:32:00.5\nday = 1979-05-27\n'
                      'at = 07:32:00\nlist = [1979-05-27, 1980-01-01]\n')
    result = cli("config", "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["chat"] == {
        "when": "1979-05-27T07:32:00+00:00", "local": "1979-05-27T07:32:00.500000", "day": "1979-05-27",
        "at": "07:32:00", "list": ["1979-05-27", "1980-01-01"]}
    assert json.loads(cli("config", "get", "chat.day", "--json").stdout) == "1979-05-27"


# --- names that can never be typed --------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("id", "spacey "), ("id", " spacey"), ("id", "spacey\t"), ("id", "spacey\n"), ("id", "\u00a0spacey"),
    ("aliases", ["fine", "spacey "]), ("replacement", "gpt-4o "),
], ids=["trailing space", "leading space", "tab", "newline", "no-break space", "alias", "replacement"])
def test_a_name_with_white_space_at_an_end_does_not_validate(cli, tmp_path, field, value):
    entry = model("spacey", {"kind": "openai", "model": "m"}, **{field: value})
    path = write_registry(tmp_path / "reg.toml", entry)
    result = cli("registry", "validate", str(path))
    assert result.exit_code == 3 and "white space at an end" in result.output, result.output
    expect(cli("--registry", str(path), "show", "spacey"), 3, "white space at an end")


def test_a_deployment_id_with_white_space_at_an_end_does_not_validate(cli, tmp_path):
    path = write_registry(tmp_path / "reg.toml", model("m", {"kind": "openai", "model": "m", "id": "srv "}))
    expect(cli("--registry", str(path), "list"), 3, "deployments[0].id", "white space at an end")


# --- control characters in printed data -----------------------------------------------------------


def test_tokens_and_dry_run_print_a_file_name_and_a_prompt_without_raw_escapes(cli, tmp_path, model_path):
    hostile = tmp_path / "evil\x1b[2J\x07.gguf"
    hostile.symlink_to(model_path)
    for args in (["tokens", "-m", str(hostile), "hi\x1b]0;title\x07"],
                 ["chat", "--dry-run", "-m", str(hostile), "hi\x1b[31m\x9b2J"]):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\x9b" not in result.stdout
        assert "\\x1b" in result.stdout
    dry = cli("chat", "--dry-run", "-m", str(hostile), "line one\nline two")
    assert "line one\nline two" in dry.stdout  # the prompt keeps its lines


# --- files that are no files ------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["data:image/png;base64,iVBORw0KGgo=", "file:///tmp/x.png", "s3://bucket/x.png"])
def test_a_url_given_where_a_file_is_read_says_so(cli, ref):
    expect(cli("classify", "--image", ref, "-m", "m", "--api-base", DEAD_API), 2, ref.split(":")[0] + ": URL")
    audio = ref.replace("image/png", "audio/wav").replace(".png", ".wav")
    expect(cli("transcribe", audio, "-m", "m", "--api-base", DEAD_API), 2, ref.split(":")[0] + ": URL")


# --- history databases modelctl did not make ---------------------------------------------------------


@pytest.mark.parametrize("schema", [
    "CREATE TABLE conversations (x); PRAGMA user_version = 3;",
    "CREATE TABLE turns (x);",
    "CREATE TABLE conversations (id INTEGER PRIMARY KEY); CREATE TABLE turns (id INTEGER PRIMARY KEY);"
    " PRAGMA user_version = 3;",
], ids=["a table of another shape", "a table in the way", "tables without their columns"])
def test_a_history_whose_tables_are_not_modelctls_is_one_error_saying_what_to_do(cli, modelctl_home, schema):
    db = modelctl_home / "data" / "history.sqlite3"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(schema)
    conn.close()
    for args in (["history", "list"], ["usage"], ["history", "search", "hello"], ["history", "export"]):
        expect(cli(*args), 1, str(db), "move the file away")


# --- the catch-all is for bugs only ------------------------------------------------------------------

SWEEP = [
    ["history", "show", "\u00b2"], ["history", "show", LONG], ["history", "export", "\u0663"],
    ["history", "rm", LONG, "--yes"], ["usage", "--since", "0001-01-01"], ["usage", "--since", "+10000-01-01"],
    ["services", "--timeout", "nan"], ["config", "set", "api_base.openai", "http://[::1"],
    ["config", "set", "chat.temperature", "nan"], ["config", "set", "chat.seed", "1e999"],
    ["alias", "set", "a", "gpt-4o", "-o", f"max_tokens={HUGE}"], ["list", "--min-context", "1e3"],
    ["search", HUGE], ["show", "gpt-4o", "--json"], ["registry", "validate", "/nonexistent/\u2603.toml"],
    ["prompt", "-t", "chatml", "--var", "x=\ud800"], ["tokens", "-m", "gpt-4o", "--max-tokens", LONG, "hi"],
]


@pytest.mark.parametrize("args", SWEEP, ids=[" ".join(a)[:40] for a in SWEEP])
def test_no_hostile_input_here_reaches_the_catch_all(cli, args):
    result = cli(*args)
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.exit_code != 1 or result.stderr.startswith("modelctl: error: "), result.stderr
