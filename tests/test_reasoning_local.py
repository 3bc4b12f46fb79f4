"""Reasoning with a model run here (the real Gemma 3 270M through llama.cpp): a template that
opens `<think>` itself, as DeepSeek-R1's and Qwen3's do, leaves the whole answer inside the
reasoning until the model closes it. Gemma never does, so all it writes is reasoning."""

from __future__ import annotations

import ast
import json
import re

import pytest

pytest.importorskip("llama_cpp")

THINKING_TEMPLATE = (
    "{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
    "{{ m.content }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n<think>\n"
)


def test_a_prompt_that_opens_think_makes_the_answer_reasoning(cli, model_path, tmp_path):
    template = tmp_path / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    r = cli("chat", "-m", str(model_path), "--template", str(template), "--json", "--max-tokens", "6",
            "--temperature", "0", "Count to three.")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["text"] == "" and data["reasoning"]
    # Locally each streamed piece is one generated token.
    assert 1 <= data["usage"]["reasoning_tokens"] <= data["usage"]["completion_tokens"] == 6


def test_harmony_markers_are_written_out_and_other_control_tokens_not(model_path):
    """gpt-oss's markers (control tokens) reach the text, so that its channels can be parted; any
    other control token stays out. Gemma's vocabulary stands in: its <start_of_turn> is a control
    token, which is written out only when named as one to show."""
    import llama_cpp

    from modelctl.backends.llamacpp import SHOWN_CONTROL_TOKENS, generated_piece

    vocab_only = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    vocab = vocab_only._model.vocab
    (start,) = vocab_only.tokenize(b"<start_of_turn>", add_bos=False, special=True)
    (word,) = vocab_only.tokenize(b"hello", add_bos=False, special=False)
    assert generated_piece(llama_cpp, vocab, start) == b""
    assert generated_piece(llama_cpp, vocab, start, SHOWN_CONTROL_TOKENS | {b"<start_of_turn>"}) == b"<start_of_turn>"
    assert generated_piece(llama_cpp, vocab, word) == b"hello"


@pytest.mark.parametrize("flags, expected", [
    ((), "<|im_start|>assistant\n"),                                   # Qwen3 thinks by default
    (("--no-think",), "<|im_start|>assistant\n<think>\n\n</think>\n\n"),  # enable_thinking=false
])
def test_no_think_reaches_a_local_models_template(cli, model_path, flags, expected):
    """--no-think is Qwen3's enable_thinking=false in the prompt the local model is given."""
    r = cli("chat", "-m", str(model_path), "--template", "qwen3", "--debug", "--max-tokens", "1", "--temperature",
            "0", "--no-log", *flags, "Hi")
    assert r.exit_code == 0, r.output
    segments = (re.fullmatch(r"debug:   (?:template|content) +(.+)", line) for line in r.stderr.splitlines())
    prompt = "".join(ast.literal_eval(m.group(1)) for m in segments if m)
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n" + expected)


def test_reasoning_effort_reaches_gpt_oss_template(model_path):
    from modelctl.backends.base import GenerationParams, collect
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.templates import resolve_template

    backend = LlamaCppBackend(model_path, template=resolve_template(template="gpt-oss"))
    try:
        collect(backend.chat([{"role": "user", "content": "Hi"}], GenerationParams(max_tokens=1, reasoning_effort="high")))
        assert "Reasoning: high" in backend.last_rendered.text
    finally:
        backend.close()
