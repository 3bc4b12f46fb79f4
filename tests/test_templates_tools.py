"""Golden tests of tools in local prompts: each built-in template of a family whose official
template takes tools renders a table of tool conversations (tests/data/templates/tools/) byte for
byte as the official template does, rendered by the sandbox with transformers' settings (the
`tools` variable; the messages in the Hugging Face form modelctl converts them to).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from modelctl.templates import get_conv_template
from modelctl.templates.jinja import JinjaChatTemplate
from modelctl.templates.tool_render import harmony_turns

DATA = Path(__file__).parent / "data" / "templates"
TABLE = json.loads((DATA / "tools" / "conversations.json").read_text(encoding="utf-8"))
CONVERSATIONS: dict[str, dict] = TABLE["conversations"]
DATE = "21 Nov 2025"

# builtin, official template (tests/data/templates/NAME.jinja, see SOURCES.md), BOS text, EOS text
OFFICIAL = [
    ("qwen2.5", "qwen2.5", None, "<|im_end|>"),
    ("qwen3", "qwen3", None, "<|im_end|>"),
    ("qwq", "qwq", None, "<|im_end|>"),
    ("nous-hermes-2", "hermes-2-pro-tool_use", "<s>", "<|im_end|>"),
    ("llama-3.1", "llama-3.1", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama-3.2", "llama-3.2", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama-4", "llama-4", "<|begin_of_text|>", "<|eot|>"),
    ("mistral-v3", "mistral-v3", "<s>", "</s>"),
    ("mistral-nemo", "mistral-nemo", "<s>", "</s>"),
    ("gpt-oss", "gpt-oss", None, "<|return|>"),
    ("command-r7b", "command-r7b-tool_use", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("granite-3", "granite-3", None, "<|end_of_text|>"),
    ("phi-4-mini", "phi-4-mini", None, "<|endoftext|>"),
    ("smollm3", "smollm3", None, "<|im_end|>"),
]
# official templates that take one call per assistant turn (Llama 3.x refuses more, gpt-oss drops
# the others): the built-in writes several as consecutive turns, as the reference renders them
ONE_CALL_PER_TURN = {"llama-3.1", "llama-3.2"}
VARIABLES = {"qwen3": [{"enable_thinking": False}], "gpt-oss": [{"reasoning_effort": "high"}],
             "granite-3": [{"thinking": True}], "smollm3": [{"enable_thinking": False}]}
# templates whose official text dates the prompt with strftime_now, ignoring date_string
DATED_TODAY = {"gpt-oss", "granite-3", "smollm3"}


def _reference(ref: str, bos: str | None, eos: str | None) -> JinjaChatTemplate:
    return JinjaChatTemplate(name=ref, source="file", template=(DATA / f"{ref}.jinja").read_text(encoding="utf-8"),
                             bos_token=bos, eos_token=eos)


def _tools(conv: str) -> list[dict]:
    return TABLE["tools"][CONVERSATIONS[conv]["tools"]]


def _cases():
    for builtin, ref, bos, eos in OFFICIAL:
        for variables in [{}, *VARIABLES.get(builtin, [])]:
            tag = "".join(f"-{k}={v}" for k, v in variables.items())
            for conv in CONVERSATIONS:
                for gen in (True, False):
                    yield pytest.param(builtin, ref, bos, eos, conv, gen, variables,
                                       id=f"{builtin}~{ref}{tag}-{conv}-{'gen' if gen else 'nogen'}")


@pytest.mark.parametrize("builtin,ref,bos,eos,conv,gen,variables", list(_cases()))
def test_tools_render_as_the_official_template(builtin, ref, bos, eos, conv, gen, variables):
    messages, tools = CONVERSATIONS[conv]["messages"], _tools(conv)
    day = date.today()
    if ref == "gpt-oss":
        messages = harmony_turns(messages)
    elif ref in ONE_CALL_PER_TURN:
        messages = _one_call_per_turn(messages)
    date_string = None if builtin in DATED_TODAY else DATE
    want = _reference(ref, bos, eos).render(messages, add_generation_prompt=gen, date_string=date_string,
                                            variables={**variables, "tools": tools}).text
    got = get_conv_template(builtin).render(CONVERSATIONS[conv]["messages"], add_generation_prompt=gen, bos_token=bos,
                                            eos_token=eos, date_string=date_string, variables={**variables, "tools": tools})
    if got.text != want and date.today() != day:
        pytest.skip("the date changed during the test")
    assert got.text == want


def _one_call_per_turn(messages: list[dict]) -> list[dict]:
    out = []
    for m in messages:
        calls = m.get("tool_calls") or []
        out += [{**m, "content": m["content"] if k == 0 else "", "tool_calls": [c]} for k, c in enumerate(calls)] or [m]
    return out
