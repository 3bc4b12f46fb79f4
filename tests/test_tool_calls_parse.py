"""Tool calls read out of a local model's answer, per template family (`templates/tool_calls.py`):
the calls of each format, parallel calls, text around them, malformed and truncated spans, and
streaming: whatever the pieces an answer comes in, the same text and calls, and no markup of a
call shown before it is read."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.errors import BackendError
from modelctl.templates import resolve_template
from modelctl.templates.jinja import JinjaChatTemplate
from modelctl.templates.tool_calls import FORMATS, format_name_of, guess_format, new_call_id, parser_for, tool_format

PARIS = '{"city": "Paris"}'


def read(fmt, answer, *, pieces=None, cut=False):
    """(shown while streaming, the rest at the end, [(name, arguments)], parser)."""
    parser = parser_for(fmt)
    shown = "".join(parser.feed(piece) for piece in (pieces if pieces is not None else [answer]))
    rest, calls = parser.finish(cut=cut)
    return shown, rest, [(c.name, c.arguments) for c in calls], parser


# (format, answer, text shown before the calls, calls)
CALLS = [
    ("hermes", 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
     "Let me look.\n", [("get_weather", PARIS)]),
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>', "", [("get_weather", PARIS), ("now", "{}")]),
    ("hermes", '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>', "",
     [("get_weather", PARIS)]),  # arguments the model quoted as a string
    ("smollm3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "",
     [("get_weather", PARIS)]),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [("get_weather", PARIS)]),
    ("llama3_json", '\n{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}; '
                    '{"name": "now", "parameters": {}}', "\n", [("get_weather", PARIS), ("now", "{}")]),
    ("llama3_json", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "", [("get_weather", PARIS)]),
    ("llama3_json", '<|python_tag|>brave_search.call(query="weather in Paris")', "",
     [("brave_search", '{"query": "weather in Paris"}')]),
    ("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123xyz"}, '
                '{"name": "now", "arguments": {}}]', "", [("get_weather", PARIS), ("now", "{}")]),
    ("mistral_args", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]now[CALL_ID]abc123xyz[ARGS]{}', "",
     [("get_weather", PARIS), ("now", "{}")]),
    ("harmony", '<|channel|>analysis<|message|>The user wants the weather.<|end|><|start|>assistant<|channel|>'
                'commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
     "<|channel|>analysis<|message|>The user wants the weather.<|end|>", [("get_weather", PARIS)]),
    ("harmony", ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}', "",
     [("get_weather", PARIS)]),  # the recipient in the header the generation prompt opened
    ("granite", 'Checking. <|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]', "Checking. ",
     [("get_weather", PARIS)]),
    ("command_r7b", '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": '
                    '{"city": "Paris"}}\n]<|END_ACTION|>', "", [("get_weather", PARIS)]),
    ("phi4", '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|>', "",
     [("get_weather", PARIS)]),
    ("generic", 'Sure. {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}', "Sure. ",
     [("get_weather", PARIS)]),
    ("generic", '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "now"}]}', "",
     [("get_weather", PARIS), ("now", "{}")]),
]


@pytest.mark.parametrize("fmt, answer, before, calls", CALLS)
def test_each_format_s_calls_are_read_and_the_text_before_them_streams(fmt, answer, before, calls):
    shown, rest, found, parser = read(fmt, answer)
    assert (shown, rest, found) == (before, "", calls)
    assert not parser.problems and not parser.truncated


@pytest.mark.parametrize("fmt, answer, before, calls", CALLS)
def test_any_split_of_the_stream_reads_the_same_and_shows_no_markup(fmt, answer, before, calls):
    for pieces in ([answer[i:i + 1] for i in range(len(answer))],
                   *([answer[:k], answer[k:]] for k in range(1, len(answer)))):
        shown, rest, found, _ = read(fmt, answer, pieces=pieces)
        assert (shown, rest, found) == (before, "", calls), pieces


@pytest.mark.parametrize("fmt, answer", [
    ("hermes", "No tools needed: <tool> tags and <tool_calls are text."),
    ("llama3_json", 'Use {"name": "x", "parameters": {}} in your code.'),  # not the answer's start
    ("llama3_json", '{"city": "Paris"}'),  # JSON, but no call's keys
    ("mistral", "[TOOL] and [TOOL_CALL] are text"),
    ("harmony", "<|channel|>final<|message|>It is sunny."),
    ("harmony", "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Sunny."),
    ("generic", 'Here is JSON: {"tool": 1, "call": 2}'),
])
def test_answers_without_calls_stream_whole(fmt, answer):
    for pieces in ([answer], [answer[i:i + 1] for i in range(len(answer))]):
        shown, rest, found, parser = read(fmt, answer, pieces=pieces)
        assert (shown + rest, found) == (answer, [])
        assert not parser.problems


def test_a_possible_opener_is_held_back_only_until_it_is_known():
    parser = parser_for("hermes")
    assert parser.feed("Hello <tool") == "Hello "
    assert parser.feed("s are <to") == "<tools are "
    assert parser.feed("day") == "<today"
    assert parser.finish() == ("", [])


def test_text_after_a_call_comes_at_the_end_in_its_place():
    shown, rest, found, _ = read("hermes", 'A <tool_call>{"name": "now", "arguments": {}}</tool_call> B')
    assert (shown, rest, found) == ("A ", " B", [("now", "{}")])


# --- what is not a clean call ------------------------------------------------------------------------

TRUNCATED = [
    ("hermes", '<tool_call>\n{"name": "get_weather", "argu'),
    ("llama3_json", '{"name": "get_weather", "parameters": {"ci'),
    ("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Pa'),
    ("mistral_args", '[TOOL_CALLS]get_weather[ARGS]{"city": "Pa'),
    ("mistral_args", "[TOOL_CALLS]get_wea"),
    ("harmony", '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Pa'),
    ("granite", '<|tool_call|>[{"name": "get_weather"'),
    ("command_r7b", '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "param'),
    ("phi4", '<|tool_call|>[{"name": "get_weather", "arguments": {'),
    ("generic", '{"tool_call": {"name": "get_weather", "arguments": {"city"'),
    # a whole first call, the second one cut: nothing is called
    ("hermes", '<tool_call>{"name": "now", "arguments": {}}</tool_call>\n<tool_call>{"name": "get_weather"'),
]


@pytest.mark.parametrize("fmt, answer", TRUNCATED)
def test_an_answer_cut_inside_a_call_calls_nothing_and_comes_back_as_text(fmt, answer):
    shown, rest, found, parser = read(fmt, answer, cut=True)
    assert (shown + rest, found) == (answer, [])
    assert parser.truncated


@pytest.mark.parametrize("fmt, answer", [t for t in TRUNCATED if t[0] not in ("mistral_args", "harmony")])
def test_an_answer_that_ends_inside_a_call_by_itself_is_text_and_a_problem(fmt, answer):
    # (not cut: the model stopped there; mistral_args and harmony name the tool apart, below)
    shown, rest, found, parser = read(fmt, answer)
    assert not parser.truncated
    if found:  # the whole first call of the last case stands
        assert found == [("now", "{}")]
    assert answer.endswith(rest) and parser.problems


@pytest.mark.parametrize("fmt, answer, kept", [
    ("hermes", '<tool_call>not JSON</tool_call>\n<tool_call>{"name": "now", "arguments": {}}</tool_call>',
     "<tool_call>not JSON</tool_call>\n"),
    ("hermes", '<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>'),  # no name
    ("mistral", '[TOOL_CALLS]{"name": 3}', '[TOOL_CALLS]{"name": 3}'),
    ("phi4", "<|tool_call|>[]<|/tool_call|>", "<|tool_call|>[]<|/tool_call|>"),
])
def test_a_span_with_no_readable_call_is_text_with_a_problem_and_the_other_calls_stand(fmt, answer, kept):
    shown, rest, found, parser = read(fmt, answer)
    assert shown + rest == kept
    assert found == ([("now", "{}")] if "now" in answer else [])
    assert len(parser.problems) == 1 and "could not be read" in parser.problems[0]


@pytest.mark.parametrize("fmt, answer", [
    ("mistral_args", "[TOOL_CALLS]get_weather[ARGS]{city: Paris}"),
    ("harmony", "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{city: Paris}"),
])
def test_a_call_whose_name_is_readable_but_arguments_are_not_json_is_a_call_that_says_so(fmt, answer):
    _, rest, found, _ = read(fmt, answer)
    assert rest == "" and found == [("get_weather", "{city: Paris}")]
    call = parser_for(fmt)
    call.feed(answer)
    with pytest.raises(BackendError, match="get_weather with arguments that are not JSON"):
        call.finish()[1][0].arguments_json()


def test_an_unknown_tool_name_is_a_call_all_the_same():
    assert read("hermes", '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>')[2] == [("rm_rf", "{}")]


def test_a_missing_closer_after_whole_json_is_a_call():
    # A grammar ends the generation when the call is whole: the closer may never come.
    assert read("phi4", '<|tool_call|>[{"name": "now", "arguments": {}}]', cut=True)[2] == [("now", "{}")]


def test_call_ids_are_nine_letters_and_digits_and_differ():
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids)
    found = parser_for("hermes")
    found.feed('<tool_call>{"name": "a"}</tool_call><tool_call>{"name": "a"}</tool_call>')
    first, second = found.finish()[1]
    assert first.id != second.id


def test_python_style_calls_are_read_without_running_anything():
    shown, rest, found, parser = read("llama3_json", "<|python_tag|>__import__('os').system('false')")
    assert found == [] and parser.problems and shown + rest == "<|python_tag|>__import__('os').system('false')"


# --- which format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, expected", [
    ("qwen2.5", "hermes"), ("qwen3", "hermes"), ("qwq", "hermes"), ("nous-hermes-2", "hermes"),
    ("llama-3.1", "llama3_json"), ("llama-3.2", "llama3_json"), ("mistral-nemo", "mistral"),
    ("granite-3", "granite"), ("command-r7b", "command_r7b"), ("gpt-oss", "harmony"),
    ("phi-4-mini", "phi4"), ("smollm3", "smollm3"), ("gemma", "generic"), ("chatml", "generic"),
])
def test_a_built_in_template_s_format(template, expected):
    assert format_name_of(resolve_template(template=template)) == expected


def test_a_template_s_own_format_wins_and_none_is_generic():
    class Named:
        name = "qwen2.5"
        tool_format: str | None = "mistral_args"

    assert format_name_of(Named()) == "mistral_args"
    Named.tool_format = None
    assert format_name_of(Named()) == "generic"


@pytest.mark.parametrize("marker, expected", [
    ("{{ '<tool_call>\\n' }}", "hermes"), ("[TOOL_CALLS]", "mistral"), ("[TOOL_CALLS]{{ n }}[ARGS]", "mistral_args"),
    ("<|python_tag|>", "llama3_json"), ("<|START_ACTION|>", "command_r7b"), ("<|tool_call|>", "granite"),
    ("<|tool_call|>x<|/tool_call|>", "phi4"), ("to=functions.", "harmony"), ("{{ messages }}", "generic"),
])
def test_a_jinja_template_s_format_from_its_text(marker, expected):
    assert guess_format(marker) == expected
    assert format_name_of(JinjaChatTemplate(name="my.gguf", source="gguf", template=marker)) == expected


def test_unknown_or_no_format_is_generic():
    assert tool_format(None).name == tool_format("no-such-format").name == "generic"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_call_written_in_each_format_s_shape_reads_back(fmt):
    """The shape a grammar forces (here written out) is what the format's parser reads."""
    shape = tool_format(fmt)
    args = {"city": "Paris", "days": 3}
    text = shape.shape.format(call=json.dumps(shape.call_object("get_weather", args)), name="get_weather",
                              arguments=json.dumps(args))
    assert read(fmt, text)[1:3] == ("", [("get_weather", json.dumps(args))])


# --- whatever comes ---------------------------------------------------------------------------------

FRAGMENTS = ["<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|tool_call|>", "<|/tool_call|>",
             "<|START_ACTION|>", "<|END_ACTION|>", "<|python_tag|>", "<|channel|>", "<|message|>", "<|start|>",
             "<|end|>", "to=functions.f ", '{"name": "f", "arguments": {}}', '{"tool_call": ', "{", "}", "[", "]",
             '"', ":", ",", " ", "\n", "text", "<", "|", "f", '"name"', '"arguments"', "f(x=1)", "é"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(FORMATS)), parts=st.lists(st.sampled_from(FRAGMENTS), max_size=24),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8), cut=st.booleans())
def test_any_stream_loses_no_text_shows_no_call_and_raises_nothing(fmt, parts, cuts, cut):
    answer = "".join(parts)
    bounds = [0, *sorted(c for c in cuts if c < len(answer)), len(answer)]
    parser = parser_for(fmt)
    shown = "".join(parser.feed(answer[a:b]) for a, b in zip(bounds, bounds[1:]))
    rest, calls = parser.finish(cut=cut)
    assert answer.startswith(shown)
    if not calls:  # every character comes out (white space alone around calls aside)
        assert shown + rest == answer
    for opener in tool_format(fmt).openers:
        assert "".join(part or "" for part in opener) not in shown
