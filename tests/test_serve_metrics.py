"""`modelctl serve`'s metrics, read back with a parser of the Prometheus text format 0.0.4 (the
grammar of its documentation, escapes included): what was counted is what is shown, under any
model name a client may send."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

import pytest

from modelctl.serve.metrics import FIRST_TOKEN_BUCKETS, GAUGES, Metrics

# --- a parser of the text format --------------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_COMMENT = re.compile(rf"# (HELP|TYPE) ({_NAME}) (.*)")
_SAMPLE_START = re.compile(rf"({_NAME})")
_VALUE = re.compile(r" ([^ ]+)$")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass
class Family:
    help: str | None = None
    type: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _label_value(line: str, at: int) -> tuple[str, int]:
    """The value of a quoted label starting at `at` (just after its opening quote), and the index
    after its closing quote."""
    out = []
    while line[at] != '"':
        if line[at] == "\\":
            out.append(_UNESCAPE[line[at + 1]])  # any other escape is an error of the format
            at += 2
        else:
            assert line[at] != "\n"
            out.append(line[at])
            at += 1
    return "".join(out), at + 1


def _labels(line: str, at: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while line[at] != "}":
        m = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(line, at)
        assert m, f"a label expected at {at}: {line!r}"
        assert m[1] not in labels
        labels[m[1]], at = _label_value(line, m.end())
        if line[at] == ",":
            at += 1
    return labels, at + 1


def _float(text: str) -> float:
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def parse(text: str) -> dict[str, Family]:
    """Families by name; every sample must follow its family's HELP and TYPE lines."""
    assert text.endswith("\n")
    families: dict[str, Family] = {}
    for line in text[:-1].split("\n"):
        comment = _COMMENT.fullmatch(line)
        if comment:
            kind, name, rest = comment.groups()
            family = families.setdefault(name, Family())
            assert not family.samples, f"{kind} of {name} after its samples"
            if kind == "HELP":
                family.help = re.sub(r"\\(.)", lambda m: _UNESCAPE[m[1]], rest)
            else:
                family.type = rest
            continue
        name = _SAMPLE_START.match(line)[1]
        labels, at = _labels(line, len(name) + 1) if line[len(name):len(name) + 1] == "{" else ({}, len(name))
        value = _VALUE.fullmatch(line, at)
        assert value, f"no value: {line!r}"
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = families.get(name) or families.get(base)
        assert family is not None and family.help and family.type, f"{name} has no HELP and TYPE before it"
        family.samples.append((name, labels, _float(value[1])))
    return families


def values(families: dict[str, Family], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return {tuple(labels.items()): value for sample, labels, value in families[base].samples if sample == name}


# --- the metrics ----------------------------------------------------------------------------


def test_every_counter_histogram_and_gauge_is_written_with_help_and_type():
    m = Metrics()
    m.request("gemma", "local", 200)
    m.request("gemma", "local", 200)
    m.request("gpt-4o-mini", "openai", 429)
    m.tokens("gemma", "local", prompt=12, completion=30)
    m.tokens("gemma", "local", prompt=3, completion=0)
    m.cost("gpt-4o-mini", "openai", 0.0015)
    m.cost("gpt-4o-mini", "openai", 0.0005)
    m.fallback("my-group", "openai", "local")
    gauges = {"modelctl_queue_depth": {(("model", "gemma"),): 3},
              "modelctl_loaded_models": {(): 1},
              "modelctl_loaded_bytes": {(): 253_000_000}}
    families = parse(m.render(gauges))
    assert {name: f.type for name, f in families.items()} == {
        "modelctl_requests_total": "counter", "modelctl_tokens_total": "counter",
        "modelctl_cost_usd_total": "counter", "modelctl_fallbacks_total": "counter",
        "modelctl_time_to_first_token_seconds": "histogram", "modelctl_metrics_dropped_total": "counter",
        "modelctl_queue_depth": "gauge", "modelctl_loaded_models": "gauge", "modelctl_loaded_bytes": "gauge"}
    assert all(f.help for f in families.values())
    assert values(families, "modelctl_requests_total") == {
        (("model", "gemma"), ("deployment", "local"), ("status", "200")): 2,
        (("model", "gpt-4o-mini"), ("deployment", "openai"), ("status", "429")): 1}
    assert values(families, "modelctl_tokens_total") == {
        (("model", "gemma"), ("deployment", "local"), ("direction", "completion")): 30,
        (("model", "gemma"), ("deployment", "local"), ("direction", "prompt")): 15}
    assert values(families, "modelctl_cost_usd_total") == {
        (("model", "gpt-4o-mini"), ("deployment", "openai")): pytest.approx(0.002)}
    assert values(families, "modelctl_fallbacks_total") == {(("model", "my-group"), ("from", "openai"), ("to", "local")): 1}
    assert values(families, "modelctl_queue_depth") == {(("model", "gemma"),): 3}
    assert values(families, "modelctl_loaded_models") == {(): 1}
    assert values(families, "modelctl_loaded_bytes") == {(): 253_000_000}
    assert values(families, "modelctl_metrics_dropped_total") == {(): 0}


def test_an_empty_server_writes_its_families_without_samples():
    families = parse(Metrics().render())
    assert families["modelctl_requests_total"].samples == []
    assert families["modelctl_time_to_first_token_seconds"].samples == []
    assert not set(GAUGES) & set(families)


def test_the_first_token_histogram_is_cumulative_with_sum_and_count():
    m = Metrics()
    observed = [0.001, 0.005, 0.0051, 0.3, 2.0, 30.0, 31.0, 400.0]
    for seconds in observed:
        m.first_token("gemma", "local", seconds)
    m.first_token("gemma", "local", float("nan"))  # not a time: not counted
    m.first_token("gemma", "local", -1.0)
    families = parse(m.render())
    series = (("model", "gemma"), ("deployment", "local"))
    buckets = {dict(labels)["le"]: v for labels, v in values(families, "modelctl_time_to_first_token_seconds_bucket").items()}
    bounds = [*FIRST_TOKEN_BUCKETS, math.inf]
    assert [_float(le) for le in buckets] == bounds  # in order, +Inf last
    assert list(buckets.values()) == [sum(1 for s in observed if s <= b) for b in bounds]
    assert values(families, "modelctl_time_to_first_token_seconds_count") == {series: len(observed)}
    assert values(families, "modelctl_time_to_first_token_seconds_sum") == {series: pytest.approx(sum(observed))}
    assert FIRST_TOKEN_BUCKETS[0] == 0.005 and FIRST_TOKEN_BUCKETS[-1] == 30.0


HOSTILE_NAMES = [
    'a "quoted" name',
    "back\\slash\\",
    "new\nline} 1\nmodelctl_requests_total 99",
    '\\"',
    "ünïcödé 模型 🦙",
    "tab\tand\rcarriage",
    "",
    "{x=\"y\"}",
    "# HELP modelctl_requests_total forged",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_model_name_is_escaped_and_reads_back_as_it_was(name):
    m = Metrics()
    m.request(name, name, 200)
    m.first_token(name, "local", 0.1)
    text = m.render({"modelctl_queue_depth": {(("model", name),): 1}})
    families = parse(text)
    assert values(families, "modelctl_requests_total") == {(("model", name), ("deployment", name), ("status", "200")): 1}
    assert values(families, "modelctl_queue_depth") == {(("model", name),): 1}
    assert values(families, "modelctl_time_to_first_token_seconds_count") == {(("model", name), ("deployment", "local")): 1}
    assert text.count("\n# HELP modelctl_requests_total ") == 0  # the first line is the only one
    text.encode("utf-8")


def test_text_utf8_cannot_encode_is_replaced_not_an_error():
    m = Metrics()
    m.request("bad\udcffsurrogate", "local", 200)  # json.loads lets a client send a lone surrogate
    text = m.render()
    text.encode("utf-8")
    assert values(parse(text), "modelctl_requests_total") == {
        (("model", "bad?surrogate"), ("deployment", "local"), ("status", "200")): 1}


def test_a_counter_never_goes_down_nor_becomes_nan():
    m = Metrics()
    m.cost("m", "d", 0.5)
    for bad in (-0.1, float("nan"), float("inf"), float("-inf")):
        m.cost("m", "d", bad)
    m.tokens("m", "d", prompt=-5, completion=7)
    families = parse(m.render())
    assert values(families, "modelctl_cost_usd_total") == {(("model", "m"), ("deployment", "d")): 0.5}
    assert values(families, "modelctl_tokens_total") == {(("model", "m"), ("deployment", "d"), ("direction", "completion")): 7}


def test_a_client_inventing_names_cannot_grow_the_metrics_without_end():
    m = Metrics(max_series=5)
    for i in range(50):
        m.request(f"invented-{i}", "?", 404)
        m.first_token(f"invented-{i}", "?", 0.1)
    m.request("invented-0", "?", 404)  # a series it keeps still counts
    families = parse(m.render())
    kept = values(families, "modelctl_requests_total")
    assert len(kept) == 5 and kept[(("model", "invented-0"), ("deployment", "?"), ("status", "404"))] == 2
    assert len(values(families, "modelctl_time_to_first_token_seconds_count")) == 5
    assert values(families, "modelctl_metrics_dropped_total") == {(): 90}


def test_updates_from_many_threads_are_all_counted():
    m = Metrics()
    threads, rounds = 8, 500
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait()
        for i in range(rounds):
            m.request("gemma", "local", 200)
            m.tokens("gemma", "local", prompt=1, completion=2)
            m.first_token("gemma", "local", 0.01 * (i % 10))
            if i % 50 == 0:
                parse(m.render())  # rendering meanwhile sees a whole state

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    families = parse(m.render())
    total = threads * rounds
    assert values(families, "modelctl_requests_total") == {(("model", "gemma"), ("deployment", "local"), ("status", "200")): total}
    tokens = values(families, "modelctl_tokens_total")
    assert sorted(tokens.values()) == [total, 2 * total]
    assert values(families, "modelctl_time_to_first_token_seconds_count") == {(("model", "gemma"), ("deployment", "local")): total}


def test_an_unknown_gauge_or_label_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown gauge 'modelctl_queue'"):
        Metrics().render({"modelctl_queue": {(): 1}})
    with pytest.raises(ValueError, match="'bad label' is not a label name"):
        Metrics().render({"modelctl_queue_depth": {(("bad label", "x"),): 1}})


@pytest.mark.parametrize("text", [
    '# HELP x h\n# TYPE x counter\nx{model="a"b"} 1\n',  # a quote not escaped
    '# HELP x h\n# TYPE x counter\nx{model="a\nb"} 1\n',  # a line feed not escaped
    '# HELP x h\n# TYPE x counter\nx{model="a\\qb"} 1\n',  # an escape the format has not
    'x 1\n',  # no HELP and TYPE
])
def test_the_parser_refuses_what_the_format_forbids(text):
    with pytest.raises((AssertionError, KeyError, IndexError, TypeError, ValueError)):
        parse(text)
