"""What would crash llama.cpp is refused before llama.cpp sees it: a `--schema` whose repetition
bounds its grammar parser cannot take (the parser gives up and llama-cpp-python then uses a
NULL grammar: SIGSEGV), `-o kv_overrides` that change the model's structure (SIGABRT), batch
sizes below 1 (SIGSEGV). Each runs the real CLI with the real Gemma GGUF in a child process:
one line on stderr, exit 2, never a signal."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")


def refused(proc, *needles: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # a signal is a negative code
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


REPETITIONS = [
    ({"type": "string", "maxLength": 5000}, "maxLength 5,000 (at the top level)"),
    ({"type": "string", "maxLength": 1001}, "maxLength 1,001"),
    ({"type": "string", "minLength": 10, "maxLength": 1500}, "at most 1,000 above minLength (10)"),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "integer"}, "minItems": 2,
                                                "maxItems": 2000}}}, "maxItems 2,000 (at /properties/tags)"),
    ({"type": "string", "minLength": 20000}, "minLength 20,000"),
    ({"type": "array", "items": {"type": "string"}, "minItems": 1000000}, "minItems 1,000,000"),
    ({"type": "string", "pattern": "^a{0,5000}$"}, "the pattern's {0,5000}"),
    ({"type": "string", "pattern": "^[0-9]{3,}-x{20000}$"}, "the pattern's {20000}"),
    ({"$defs": {"long": {"type": "string", "maxLength": 99999}}, "type": "object",
      "properties": {"a": {"$ref": "#/$defs/long"}}}, "(at /$defs/long)"),
]


@pytest.mark.parametrize("schema,needle", REPETITIONS, ids=range(len(REPETITIONS)))
def test_a_schema_llama_cpp_s_grammar_cannot_take_is_refused(schema, needle, run_modelctl, model_path):
    proc = run_modelctl("chat", "-m", str(model_path), "-n", "4", "--schema", json.dumps(schema), "Hi")
    refused(proc, "--schema", needle, "llama.cpp's grammar")


@pytest.mark.parametrize("schema", [{"type": "string", "maxLength": 1000},
                                    {"type": "string", "minLength": 500, "maxLength": 1500},
                                    {"type": "string", "pattern": "^a{0,999}$"}])
def test_repetitions_within_the_limits_still_run(schema, run_modelctl, model_path):
    proc = run_modelctl("chat", "-m", str(model_path), "-n", "4", "--temperature", "0", "--schema", json.dumps(schema),
                        "Hi")
    assert proc.returncode in (0, 7), proc.stderr  # 7: four tokens are no complete answer
    assert "error" not in proc.stderr or "not valid JSON" in proc.stderr


HUGE = "9" * 5000  # more digits than int() reads (4,300)


@pytest.mark.parametrize("schema,needle", [
    ({"type": "string", "pattern": f"^a{{{HUGE}}}$"}, "the pattern's {99999"),
    ({"type": "string", "pattern": f"^a{{1,{HUGE}}}$"}, "the pattern's {1,9999"),
    ({"type": "string", "pattern": f"^a{{{HUGE},}}$"}, "(5,003 characters)"),
    ({"type": "string", "pattern": "^a{0,99999999999999999999}$"}, "{0,99999999999999999999}"),
    ({"type": "string", "maxLength": 10**4000}, "maxLength of more than 18 digits"),
    ({"type": "array", "minItems": -(10**30), "maxItems": 3}, "above minItems (of more than 18 digits)"),
])
def test_repetition_counts_of_any_length_are_refused_in_words(schema, needle):
    """A count too long for int() (or for a message) is one more count past the limits: a
    UsageError that names it briefly, not a ValueError for the catch-all."""
    from modelctl.backends.llama_grammar import check_repetitions
    from modelctl.errors import UsageError

    with pytest.raises(UsageError) as info:
        check_repetitions(schema)
    assert needle in str(info.value) and len(str(info.value)) < 300, str(info.value)[:400]


OVERRIDES = [
    ("gemma3.block_count=int:0", "gemma3.block_count"),
    ("gemma3.block_count=int:1000000", "gemma3.block_count"),
    ("gemma3.block_count=int:-1", "gemma3.block_count"),
    ("gemma3.block_count=int:17", "gemma3.block_count"),
    ("gemma3.embedding_length=int:1000", "gemma3.embedding_length"),
    ("gemma3.attention.head_count=int:0", "gemma3.attention.head_count"),
    ("gemma3.attention.head_count_kv=int:64", "gemma3.attention.head_count_kv"),
    ("gemma3.expert_count=int:8", "gemma3.expert_count"),
    ("gemma3.expert_used_count=int:2", "takes int from 1 to the file's expert_count"),
    ("tokenizer.ggml.model=str:bert", "tokenizer.ggml.model"),
    ("general.architecture=str:llama", "general.architecture"),
    ("llama.block_count=int:0", "llama.block_count"),
    ("gemma3.context_length=int:-5", "gemma3.context_length takes int from 1"),
    ("gemma3.rope.freq_base=float:nan", "takes float above 0"),
    ("gemma3.rope.freq_base=int:10000", "takes float above 0"),
    ("tokenizer.ggml.bos_token_id=int:-1", "takes int from 0"),
    ("tokenizer.ggml.add_bos_token=bool:false,gemma3.feed_forward_length=int:5", "gemma3.feed_forward_length"),
]


@pytest.mark.parametrize("override,needle", OVERRIDES, ids=[o for o, _ in OVERRIDES])
def test_kv_overrides_llama_cpp_cannot_survive_are_refused(override, needle, run_modelctl, model_path):
    proc = run_modelctl("complete", "-m", str(model_path), "-n", "2", "-o", f"kv_overrides={override}", "The sea")
    refused(proc, "option kv_overrides: ", needle)


@pytest.mark.parametrize("override", ["gemma3.block_count=int:18", "tokenizer.ggml.add_bos_token=bool:false",
                                      "gemma3.context_length=int:65536,gemma3.rope.freq_base=float:500000.0",
                                      "general.name=str:renamed"])
def test_kv_overrides_that_tune_the_model_still_work(override, run_modelctl, model_path):
    proc = run_modelctl("complete", "-m", str(model_path), "-n", "2", "--temperature", "0",
                        "-o", f"kv_overrides={override}", "The sea")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


@pytest.mark.parametrize("option", ["n_batch=-1", "n_batch=0", "n_ubatch=0", "n_ubatch=-3"])
def test_batch_sizes_below_one_are_refused(option, run_modelctl, model_path):
    proc = run_modelctl("complete", "-m", str(model_path), "-n", "2", "-o", option, "The sea")
    refused(proc, f"option {option.split('=')[0]}: at least 1")
