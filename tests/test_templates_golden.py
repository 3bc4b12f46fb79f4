"""Golden tests: every built-in template against its reference's own rendering.

- Official templates: the reference Jinja text (tests/data/templates/*.jinja, see SOURCES.md) is
  rendered by the sandbox, which uses transformers' settings; the built-in must give the same string.
- FastChat templates: the prompts FastChat's get_prompt() produced (fastchat_renderings.json).
- The sandbox itself: llama.cpp's expected outputs for the same templates (llamacpp_expected.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelctl.errors import TemplateError
from modelctl.templates import get_conv_template, list_templates
from modelctl.templates.jinja import JinjaChatTemplate

DATA = Path(__file__).parent / "data" / "templates"
CONVERSATIONS: dict[str, list[dict]] = json.loads((DATA / "conversations.json").read_text(encoding="utf-8"))
WITH_SYSTEM = {name for name, msgs in CONVERSATIONS.items() if msgs[0]["role"] == "system"}
DATE = "21 Nov 2025"

# builtin, reference file, what the reference does with a system message, BOS text, EOS text
OFFICIAL = [
    ("llama-2", "llama-2", "native", "<s>", "</s>"),
    ("codellama", "codellama", "native", "<s>", "</s>"),
    ("llama-3", "llama-3", "native", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama-3.1", "llama-3.1", "native", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama-3.2", "llama-3.2", "native", "<|begin_of_text|>", "<|eot_id|>"),
    ("chatml", "chatml", "native", None, "<|im_end|>"),
    ("qwen1.5", "qwen1.5", "native", None, "<|im_end|>"),
    ("qwen2", "qwen2", "native", None, "<|im_end|>"),
    ("nous-hermes-2", "nous-hermes-2", "native", "<s>", "<|im_end|>"),
    ("yi-1.5", "yi-1.5", "native", None, "<|im_end|>"),
    ("qwen2.5", "qwen2.5", "native", None, "<|im_end|>"),
    ("mistral", "mistral", "native", "<s>", "</s>"),
    ("zephyr", "zephyr", "native", "<s>", "</s>"),
    ("tinyllama", "zephyr", "native", "<s>", "</s>"),
    ("tulu", "tulu", "ignores", "<s>", "</s>"),
    ("gemma", "gemma", "rejects", "<bos>", "<eos>"),
    ("gemma", "gemma-3", "native", "<bos>", "<eos>"),
    ("phi-3", "phi-3", "native", "<s>", "<|endoftext|>"),
    ("phi-3-medium", "phi-3-medium", "ignores", None, "<|endoftext|>"),
    ("phi-2", "phi-2", "rejects", None, "<|endoftext|>"),
    ("openchat_3.5", "openchat_3.5", "native", "<s>", "<|end_of_turn|>"),
    ("deepseek-coder", "deepseek-coder", "native", "<｜begin▁of▁sentence｜>", "<|EOT|>"),
    ("deepseek-chat", "deepseek-chat", "native", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("command-r", "command-r", "native", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("granite", "granite", "native", None, "<|end_of_text|>"),
    ("qwen3", "qwen3", "native", None, "<|im_end|>"),
    ("qwq", "qwq", "native", None, "<|im_end|>"),
    ("deepseek-r1", "deepseek-r1", "native", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("deepseek-r1", "deepseek-r1-distill", "native", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("deepseek-v3", "deepseek-v3", "native", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("gpt-oss", "gpt-oss", "native", None, "<|return|>"),
    ("phi-4", "phi-4", "native", None, "<|im_end|>"),
    ("phi-4-mini", "phi-4-mini", "native", None, "<|endoftext|>"),
    ("mistral-v3", "mistral-v3", "native", "<s>", "</s>"),
    ("mistral-nemo", "mistral-nemo", "native", "<s>", "</s>"),
    ("mistral-small-3", "mistral-small-3", "native", "<s>", "</s>"),
    ("llama-4", "llama-4", "native", "<|begin_of_text|>", "<|eot|>"),
    ("granite-3", "granite-3", "native", None, "<|end_of_text|>"),
    ("smollm2", "smollm2", "native", None, "<|im_end|>"),
    ("smollm3", "smollm3", "native", None, "<|im_end|>"),
    ("internlm2.5", "internlm2.5", "native", "<s>", "<|im_end|>"),
    ("tulu-3", "tulu-3", "native", None, "<|end_of_text|>"),
    ("olmo-2", "olmo-2", "native", "<|endoftext|>", "<|endoftext|>"),
    ("falcon-3", "falcon-3", "native", None, "<|endoftext|>"),
    ("command-r7b", "command-r7b", "native", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("glm-4", "glm-4", "native", None, "<|endoftext|>"),
]

# template variables, each value golden-tested (the official default too, given explicitly)
VARIABLES = {
    "qwen3": [{"enable_thinking": True}, {"enable_thinking": False}],
    "granite-3": [{"thinking": True}, {"thinking": False}],
    "smollm3": [{"enable_thinking": True}, {"enable_thinking": False}],
    "gpt-oss": [{"reasoning_effort": "low"}, {"reasoning_effort": "medium"}, {"reasoning_effort": "high"},
                {"model_identity": "You are a terse assistant.", "reasoning_effort": "high"}],
}
# templates whose official text dates the prompt with strftime_now, ignoring date_string
DATED_TODAY = {"gpt-oss", "granite-3", "mistral-small-3", "smollm3"}

FASTCHAT = json.loads((DATA / "fastchat_renderings.json").read_text(encoding="utf-8"))["renderings"]
# FastChat assigns roles by position, so it renders a generation prompt after an assistant message
# as a new round; and its falcon template glues a system message to "User:" (ours merges it).
FASTCHAT_SKIP = {("*", "finished/generation"), ("falcon", "system/*"), ("falcon", "multi_system/*")}
FASTCHAT_ALSO = {"wizardlm": "vicuna_v1.1", "xwin": "vicuna_v1.1"}  # same reference


def _cases():
    for builtin, ref, system, bos, eos in OFFICIAL:
        for variables in [None, *VARIABLES.get(builtin, [])]:
            tag = "".join(f"-{k}={v}" for k, v in (variables or {}).items() if k != "model_identity")
            tag += "-identity" if variables and "model_identity" in variables else ""
            for conv in CONVERSATIONS:
                for gen in (True, False):
                    yield pytest.param(builtin, ref, system, bos, eos, conv, gen, variables,
                                       id=f"{builtin}~{ref}{tag}-{conv}-{'gen' if gen else 'nogen'}")


def _reference(ref: str, bos, eos) -> JinjaChatTemplate:
    return JinjaChatTemplate(name=ref, source="file", template=(DATA / f"{ref}.jinja").read_text(encoding="utf-8"),
                             bos_token=bos, eos_token=eos)


@pytest.mark.parametrize("builtin,ref,system,bos,eos,conv,gen,variables", list(_cases()))
def test_official_template_byte_for_byte(builtin, ref, system, bos, eos, conv, gen, variables):
    messages = CONVERSATIONS[conv]
    reference = _reference(ref, bos, eos)
    template = get_conv_template(builtin)
    if conv in WITH_SYSTEM and system != "native":
        if system == "rejects":  # the official template raises; ours merges or rejects, on purpose
            with pytest.raises(TemplateError):
                reference.render(messages, add_generation_prompt=gen)
        pytest.skip(f"{ref}'s template {system} system messages; the policy tests cover ours")
    date = None if builtin in DATED_TODAY else DATE
    day = _today()
    want = reference.render(messages, add_generation_prompt=gen, date_string=date, variables=variables).text
    got = template.render(messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos, date_string=date,
                          variables=variables)
    if date is None and _today() != day:
        pytest.skip("the date changed during the test")
    assert got.text == want
    # the template's own BOS/EOS texts are the model's: rendering without them gives the same text
    assert template.render(messages, add_generation_prompt=gen, date_string=date, variables=variables).text == got.text


def _today():
    from datetime import date

    return date.today()


def _fastchat_cases():
    for name, renderings in {**FASTCHAT, **{k: FASTCHAT[v] for k, v in FASTCHAT_ALSO.items()}}.items():
        for key, want in renderings.items():
            conv, mode = key.split("/")
            if {("*", key), (name, f"{conv}/*")} & FASTCHAT_SKIP:
                continue
            yield pytest.param(name, conv, mode == "generation", want, id=f"{name}-{key}")


@pytest.mark.parametrize("name,conv,gen,fastchat_prompt", list(_fastchat_cases()))
def test_fastchat_template_byte_for_byte(name, conv, gen, fastchat_prompt):
    template = get_conv_template(name)
    rendered = template.render(CONVERSATIONS[conv], add_generation_prompt=gen)
    # FastChat leaves BOS to the tokenizer; we write it out (InternLM's rounds carry their own)
    bos = template.bos if template.formats.prefix == "{bos}" else ""
    assert rendered.text == (bos or "") + fastchat_prompt


GRANITE = json.loads((DATA / "granite_renderings.json").read_text(encoding="utf-8"))["renderings"]


def _granite_cases():
    for name, renderings in GRANITE.items():
        for key, want in renderings.items():
            conv, mode, *variable = key.split("/")
            variables = {"thinking": variable[0] == "thinking=True"} if variable else None
            yield pytest.param(name, conv, mode == "generation", variables, want, id=f"{name}-{key}")


@pytest.mark.parametrize("name,conv,gen,variables,official", list(_granite_cases()))
def test_granite_revisions_render_as_their_own_official_templates(name, conv, gen, variables, official):
    """Granite 3.1 and 3.2 date their default system message on lines of its own, 3.3 does not;
    each built-in renders as its revision's official template (see SOURCES.md)."""
    from datetime import datetime

    today = datetime.now().strftime("%B %d, %Y")
    got = get_conv_template(name).render(CONVERSATIONS[conv], add_generation_prompt=gen, variables=variables).text
    if today != datetime.now().strftime("%B %d, %Y"):
        pytest.skip("the date changed during the test")
    assert got == official.replace("{date}", today)


def test_each_granite_revision_has_its_own_default_system_text():
    texts = {name: get_conv_template(name).render(CONVERSATIONS["single"], date_string=None).text
             for name in ("granite-3.1", "granite-3.2", "granite-3")}
    assert len(set(texts.values())) == 2  # 3.1 and 3.2 agree, 3.3 differs
    assert "April 2024.\nToday's Date: " in texts["granite-3.1"] and ".\nYou are Granite" in texts["granite-3.2"]
    assert "April 2024. Today's Date: " in texts["granite-3"]
    thinking = {name: get_conv_template(name).render(CONVERSATIONS["single"], variables={"thinking": True}).text
                for name in ("granite-3.1", "granite-3.2", "granite-3")}
    assert thinking["granite-3.1"] == texts["granite-3.1"]  # 3.1 has no thinking mode
    assert "after 'Here is my thought process:'" in thinking["granite-3.2"]
    assert "between <think></think>" in thinking["granite-3"]


LLAMACPP = json.loads((DATA / "llamacpp_expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", LLAMACPP["cases"], ids=[c["reference"] for c in LLAMACPP["cases"]])
def test_sandbox_renders_like_llamacpp_engine(case):
    """An independent engine's output for the same reference templates: our renderer is sound."""
    ref = _reference(case["reference"], case["bos_token"], case["eos_token"])
    got = ref.render(LLAMACPP["messages"], add_generation_prompt=LLAMACPP["add_generation_prompt"])
    assert got.text == case["expected"]


def test_every_template_has_a_golden_test():
    covered = {b for b, *_ in OFFICIAL} | set(FASTCHAT) | set(FASTCHAT_ALSO) | set(GRANITE)
    assert {t.name for t in list_templates()} <= covered
    assert len(covered) >= 25


def test_llama_3_2_dates_today_like_strftime_now():
    from datetime import datetime

    messages = CONVERSATIONS["single"]
    today = datetime.now().strftime("%d %b %Y")
    want = _reference("llama-3.2", "<|begin_of_text|>", "<|eot_id|>").render(messages).text
    got = get_conv_template("llama-3.2").render(messages).text
    if today not in got:  # midnight passed between the two renderings
        pytest.skip("the date changed during the test")
    assert got == want and f"Today Date: {today}\n" in got


def test_llama_3_1_fixed_date_without_override():
    text = get_conv_template("llama-3.1").render(CONVERSATIONS["single"]).text
    assert text == _reference("llama-3.1", "<|begin_of_text|>", "<|eot_id|>").render(CONVERSATIONS["single"]).text
    assert "Today Date: 26 Jul 2024\n" in text


def test_variables_the_template_does_not_read_are_ignored_as_jinja_ignores_them():
    messages = CONVERSATIONS["single"]
    plain = get_conv_template("qwen2.5").render(messages).text
    assert get_conv_template("qwen2.5").render(messages, variables={"enable_thinking": False}).text == plain
    reference = _reference("qwen2.5", None, "<|im_end|>")
    assert reference.render(messages, variables={"enable_thinking": False}).text == plain


def test_glm_4_leaves_out_empty_messages_as_its_official_template():
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "?"}]
    want = _reference("glm-4", None, "<|endoftext|>").render(messages).text
    assert get_conv_template("glm-4").render(messages).text == want == "[gMASK]<sop><|user|>\nHi<|user|>\n?<|assistant|>"


def test_a_variable_of_the_wrong_type_is_an_error_naming_it():
    with pytest.raises(TemplateError, match="enable_thinking must be a bool, not 'false'"):
        get_conv_template("qwen3").render(CONVERSATIONS["single"], variables={"enable_thinking": "false"})


def test_render_arguments_cannot_be_set_as_variables():
    with pytest.raises(TemplateError, match="add_generation_prompt cannot be set"):
        _reference("qwen3", None, "<|im_end|>").render(CONVERSATIONS["single"], variables={"add_generation_prompt": False})


def test_qwen3_thinking_switch_and_earlier_reasoning():
    messages = CONVERSATIONS["reasoning"]
    text = get_conv_template("qwen3").render(messages, variables={"enable_thinking": False}).text
    assert "Two and two" not in text  # earlier reasoning is dropped
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# SmolLM3 reads switches in the system message: /think and /no_think (over enable_thinking),
# /system_override (the message alone, without the metadata header)
SMOLLM3_SYSTEMS = ["Be brief. /no_think", "/think\nBe thorough.  ", "/no_think", "Answer in French /think /no_think",
                   "Plain text only. /system_override", "/system_override /no_think\nShort.\n", " \n"]


@pytest.mark.parametrize("enable_thinking", [True, False])
@pytest.mark.parametrize("system", SMOLLM3_SYSTEMS)
def test_smollm3_system_switches_as_the_official_template(system, enable_thinking):
    messages = [{"role": "system", "content": system}, *CONVERSATIONS["reasoning"]]
    variables = {"enable_thinking": enable_thinking}
    for gen in (True, False):
        want = _reference("smollm3", None, "<|im_end|>").render(messages, add_generation_prompt=gen, variables=variables)
        got = get_conv_template("smollm3").render(messages, add_generation_prompt=gen, variables=variables)
        if got.text != want.text and _today().strftime("%d %B %Y") not in got.text:
            pytest.skip("the date changed during the test")
        assert got.text == want.text


def test_smollm3_no_think_prompt_and_its_segments():
    from datetime import datetime

    messages = [{"role": "system", "content": "SYS /no_think"}, {"role": "user", "content": "USER"},
                {"role": "assistant", "content": "\n<think>kept</think>A."}, {"role": "user", "content": "<|im_end|>"}]
    rendered = get_conv_template("smollm3").render(messages)
    today = datetime.now().strftime("%d %B %Y")
    if today not in rendered.text:
        pytest.skip("the date changed during the test")
    assert rendered.text == (
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
        f"Today Date: {today}\nReasoning Mode: /no_think\n\n## Custom Instructions\n\nSYS\n\n"
        "<|im_start|>user\nUSER<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n<think>kept</think>A.<|im_end|>\n"
        "<|im_start|>user\n<|im_end|><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n"
    )
    content = [s.text for s in rendered.segments if not s.special]
    assert content == ["SYS", "USER", "<think>kept</think>A.", "<|im_end|>"]
