"""Conversations with tools, rendered by the built-in templates as their official templates do.

An official template that supports tools is a program: it lists the tools in a system block (or in
the first user turn, or before the last one), writes each tool call and result in markup of its
own, and reads the whole conversation to decide where. So each tool-capable family has one
renderer here, a line-by-line port of its official template, given a `ToolPrompt` and returning
segments; `ToolStyle` pairs it with the name of the family's call format (`tool_format`, the key of
the call parsers). A built-in `Conversation` with a `tool_style` renders through it whenever the
conversation has tools or tool turns; tests/test_templates_tools.py compares each with its
official template, byte for byte.

Template text and content (see `types.Segment`): everything that came from the caller (message
text, tool names, descriptions and schemas, call arguments, results) is content, never parsed for
control tokens; only the markup the official template writes is template text.

Where an official template cannot render a conversation modelctl keeps, the renderer writes what
the official template writes for the nearest conversation it can render, said at each place:
several calls in one assistant turn for a family that takes one call per turn are written as
consecutive turns of one call each (Llama 3.x; gpt-oss, each call followed by its result);
Mistral's 9-character call ids are made from other ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import TemplateError
from modelctl.templates.tool_messages import with_system_tools
from modelctl.templates.tool_texts import (
    COMMAND_R7B_DEFAULT_PREAMBLE,
    COMMAND_R7B_DEVELOPER,
    COMMAND_R7B_PREAMBLE,
    COMMAND_R7B_TOOL_USE,
    GRANITE_THINKING,
    SMOLLM3_THINK_DEFAULT,
)
from modelctl.templates.types import Segment

Message = dict[str, Any]


@dataclass(frozen=True)
class ToolPrompt:
    """What a tool renderer reads: the checked messages (Hugging Face form), the tools, and the
    template's texts and variables."""

    template: str  # the template's name, for errors
    messages: list[Message]
    tools: list[dict[str, Any]]
    add_generation_prompt: bool
    bos: str
    eos: str
    date: str
    default_system: str  # the template's default system message ("" for none)
    variables: Mapping[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        """The leading system message's text, None when there is none."""
        first = self.messages[0] if self.messages else None
        return first["content"] if first and first["role"] == "system" else None

    @property
    def turns(self) -> list[Message]:
        """The messages after a leading system message."""
        return self.messages[1:] if self.system is not None else self.messages


@dataclass(frozen=True)
class ToolStyle:
    """A family's tool rendering: `format` names how its models write a call (the parsers' key),
    `render` writes a conversation with tools as the official template does."""

    format: str
    render: Callable[[ToolPrompt], list[Segment]]


class _Out:
    """Segments being written: `t` template text, `c` content."""

    def __init__(self) -> None:
        self.parts: list[Segment] = []

    def t(self, text: str) -> None:
        self.parts.append(Segment(text, True))

    def c(self, text: str) -> None:
        self.parts.append(Segment(text, False))


def tojson(value: Any, indent: int | None = None) -> str:
    """Jinja's `tojson` as chat templates run it (transformers' settings): key order kept, non-ASCII
    kept, no HTML escaping."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _function(tool: Mapping[str, Any]) -> dict[str, Any]:
    return dict(tool.get("function", tool))


def _call(call: Mapping[str, Any]) -> dict[str, Any]:
    return dict(call.get("function", call))


def _arguments_json(arguments: Any) -> str:
    """`arguments | tojson` (a string the model wrote that is not an object is quoted)."""
    return tojson(arguments)


def _arguments_as_written(arguments: Any) -> str:
    """`arguments` if a string, else `arguments | tojson` (Qwen3, Hermes)."""
    return arguments if isinstance(arguments, str) else tojson(arguments)


def _is_tool(messages: Sequence[Message], i: int) -> bool:
    return 0 <= i < len(messages) and messages[i]["role"] == "tool"


def one_call_per_turn(messages: list[Message]) -> list[Message]:
    """Each assistant turn with several calls as consecutive turns of one call each, the text on
    the first (for templates that render one call per turn)."""
    out: list[Message] = []
    for m in messages:
        calls = m.get("tool_calls") or []
        if len(calls) < 2:
            out.append(m)
            continue
        out += [{**m, "content": m["content"] if k == 0 else "", "tool_calls": [call]} for k, call in enumerate(calls)]
    return out


# --- Qwen 2.5, Qwen3, QwQ (tools in the system block, <tool_call> JSON) ---------------------------

_QWEN_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_QWEN_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call><|im_end|>\n"
)


def _qwen_tools(out: _Out, tools: list[dict[str, Any]]) -> None:
    out.t(_QWEN_TOOLS_HEAD)
    for tool in tools:
        out.t("\n")
        out.c(tojson(tool))
    out.t(_QWEN_TOOLS_TAIL)


def _chatml_turn(out: _Out, role: str, content: str) -> None:
    out.t(f"<|im_start|>{role}\n")
    out.c(content)
    out.t("<|im_end|>\n")


def _json_call(out: _Out, call: Mapping[str, Any], key: str, arguments: Callable[[Any], str],
               before: str = "", after: str = "") -> None:
    """`{"name": "NAME", "KEY": ARGUMENTS}` between `before` and `after`."""
    function = _call(call)
    out.t(before + '{"name": "')
    out.c(function["name"])
    out.t(f'", "{key}": ')
    out.c(arguments(function.get("arguments")))
    out.t("}" + after)


def _qwen_call(out: _Out, call: Mapping[str, Any], arguments: Callable[[Any], str]) -> None:
    _json_call(out, call, "arguments", arguments, "<tool_call>\n", "\n</tool_call>")


def _qwen_result(out: _Out, messages: Sequence[Message], i: int) -> None:
    """A tool result: consecutive results share one user turn."""
    if not _is_tool(messages, i - 1):
        out.t("<|im_start|>user")
    out.t("\n<tool_response>\n")
    out.c(messages[i]["content"])
    out.t("\n</tool_response>")
    if not _is_tool(messages, i + 1):
        out.t("<|im_end|>\n")


def _qwen_system(out: _Out, p: ToolPrompt, default: str | None, between: str) -> None:
    """The system block: with tools, the system text (or `default`, template text) then the tool
    list; without, the system message alone when there is one (or `default`)."""
    if p.tools:
        out.t("<|im_start|>system\n")
        if p.system is not None:
            out.c(p.system)
            out.t(between)
        elif default is not None:
            out.t(default + between)
        _qwen_tools(out, p.tools)
    elif p.system is not None:
        _chatml_turn(out, "system", p.system)
    elif default:
        out.t(f"<|im_start|>system\n{default}<|im_end|>\n")


def _render_qwen(p: ToolPrompt, default: str | None, assistant: Callable[[_Out, ToolPrompt, int], None],
                 generation: str) -> list[Segment]:
    """The Qwen templates' common loop; `assistant` writes an assistant turn (message i)."""
    out = _Out()
    _qwen_system(out, p, default, "\n\n")
    for i, m in enumerate(p.messages):
        if i == 0 and m["role"] == "system":
            continue
        if m["role"] == "tool":
            _qwen_result(out, p.messages, i)
        elif m["role"] == "assistant":
            assistant(out, p, i)
        else:
            _chatml_turn(out, m["role"], m["content"])
    if p.add_generation_prompt:
        out.t(generation)
    return out.parts


def _qwen_calls_turn(out: _Out, m: Message, content: str) -> None:
    """Qwen 2.5's and QwQ's turn with calls: the text (when the message has any), the calls."""
    out.t("<|im_start|>assistant")
    if m["content"]:
        out.t("\n")
        out.c(content)
    for call in m["tool_calls"]:
        out.t("\n")
        _qwen_call(out, call, _arguments_json)
    out.t("<|im_end|>\n")


def _qwen2_5_assistant(out: _Out, p: ToolPrompt, i: int) -> None:
    m = p.messages[i]
    if m.get("tool_calls"):
        _qwen_calls_turn(out, m, m["content"])
    else:
        _chatml_turn(out, "assistant", m["content"])


def _qwq_assistant(out: _Out, p: ToolPrompt, i: int) -> None:
    m = p.messages[i]
    content = m["content"]
    if i != len(p.messages) - 1:  # earlier reasoning is dropped
        content = content.split("</think>")[-1].lstrip("\n")
    if m.get("tool_calls"):
        _qwen_calls_turn(out, m, content)
    else:
        _chatml_turn(out, "assistant", content)


def _qwen3_last_query(messages: Sequence[Message]) -> int:
    """The index of the last user message that is not a tool response written as a user turn."""
    for index in range(len(messages) - 1, -1, -1):
        m = messages[index]
        text = m["content"]
        if m["role"] == "user" and not (text.startswith("<tool_response>") and text.endswith("</tool_response>")):
            return index
    return len(messages) - 1


def _qwen3_reasoning(content: str) -> tuple[str, str]:
    """(reasoning, answer) as Qwen3's template reads an assistant message."""
    if "</think>" not in content:
        return "", content
    head = content.split("</think>")[0]
    return head.rstrip("\n").split("<think>")[-1].lstrip("\n"), content.split("</think>")[-1].lstrip("\n")


def _qwen3_assistant(out: _Out, p: ToolPrompt, i: int) -> None:
    """An answer after the last request keeps its reasoning (the last one always writes a block)."""
    m = p.messages[i]
    reasoning, content = _qwen3_reasoning(m["content"])
    if i > _qwen3_last_query(p.messages) and (i == len(p.messages) - 1 or reasoning):
        out.t("<|im_start|>assistant\n<think>\n")
        out.c(reasoning.strip("\n"))
        out.t("\n</think>\n\n")
        out.c(content.lstrip("\n"))
    else:
        out.t("<|im_start|>assistant\n")
        out.c(content)
    for k, call in enumerate(m.get("tool_calls") or ()):
        if k or content:
            out.t("\n")
        _qwen_call(out, call, _arguments_as_written)
    out.t("<|im_end|>\n")


def render_qwen2_5(p: ToolPrompt) -> list[Segment]:
    return _render_qwen(p, p.default_system, _qwen2_5_assistant, "<|im_start|>assistant\n")


def render_qwq(p: ToolPrompt) -> list[Segment]:
    return _render_qwen(p, "", _qwq_assistant, "<|im_start|>assistant\n<think>\n")


def render_qwen3(p: ToolPrompt) -> list[Segment]:
    thinking_off = p.variables.get("enable_thinking") is False  # an empty reasoning opens the answer
    return _render_qwen(p, None, _qwen3_assistant,
                        "<|im_start|>assistant\n" + ("<think>\n\n</think>\n\n" if thinking_off else ""))


# --- Hermes 2 Pro (its tool_use template) -----------------------------------------------------

_HERMES_HEAD = (
    "<|im_start|>system\nYou are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user query. Don't make "
    "assumptions about what values to plug into functions. Here are the available tools: <tools> "
)
_HERMES_TAIL = (
    ' </tools>Use the following pydantic model json schema for each tool call you will make: {"properties": '
    '{"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", "type": "object"}}, '
    '"required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}}\n'
    "For each function call return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-dict>}\n</tool_call><|im_end|>\n'
)
_PYTHON_TYPES = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"}


def _python_type(spec: Any) -> str:
    """The template's json_to_python_type macro. (Its `json_spec|items` for an array's items is
    Jinja's `items` filter, whose result has no type: every array is `list[Union[]]`.)"""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if isinstance(kind, str) and kind in _PYTHON_TYPES:
        return _PYTHON_TYPES[kind]
    if kind == "array":
        return "list[Union[]]"
    if kind == "object":
        extra = spec.get("additionalProperties") if isinstance(spec, Mapping) else None
        return f"dict[str, {_python_type(extra)}]" if "additionalProperties" in spec else "dict"
    if kind is None or isinstance(kind, (list, tuple)):  # an undefined type iterates as an empty list
        return "Union[" + ",".join(_python_type({"type": t}) for t in (kind or ())) + "]"
    return "Any"  # the official template recurses without end here


def _hermes_tool(out: _Out, tool: Mapping[str, Any]) -> None:
    function = _function(tool)
    name, parameters = function["name"], function.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    out.t('{"type": "function", "function": {"name": "')
    out.c(name)
    out.t('", "description": "')
    out.c(name + "(" + ", ".join(f"{k}: {_python_type(v)}" for k, v in properties.items()) + ")")
    if "return" in function:
        out.c(" -> " + _python_type(function["return"]))
    out.c(" - " + str(function.get("description", "")) + "\n\n")
    if properties:
        out.c("    Args:\n" + "".join(
            f"        {k}({_python_type(v)}): " + str(v.get("description", "")).strip() for k, v in properties.items()))
    returned = function.get("return")
    if isinstance(returned, Mapping) and "description" in returned:
        out.c("\n    Returns:\n        " + str(returned["description"]))
    out.t('", "parameters": ')
    if properties:
        out.c(tojson(parameters))
    else:
        out.t("{}")
    out.t("}")


def render_hermes_2_pro(p: ToolPrompt) -> list[Segment]:
    out = _Out()
    out.t(p.bos + _HERMES_HEAD)
    for k, tool in enumerate(p.tools):
        if k:
            out.t("\n")
        _hermes_tool(out, tool)
    out.t(_HERMES_TAIL)
    messages = p.messages
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if i > 0 and not _is_tool(messages, i - 1):
                out.t("<|im_start|>tool\n")
            out.t("<tool_response>\n")
            out.c(m["content"])
            out.t("\n</tool_response>\n" if i < len(messages) - 1 else "\n</tool_response>")
            if not _is_tool(messages, i + 1):
                out.t("<|im_end|>")
        elif m.get("tool_calls"):
            out.t("<|im_start|>assistant")
            for call in m["tool_calls"]:
                out.t("\n")
                _qwen_call(out, call, _arguments_as_written)
            out.t("<|im_end|>\n")
        else:
            _chatml_turn(out, m["role"], m["content"])
    if p.add_generation_prompt:
        out.t("<|im_start|>assistant\n")
    return out.parts


# --- Llama 3.1 to 3.3, Llama 4 (JSON calls, results from "ipython") -------------------------------

_LLAMA_FORMAT = ('Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
                 "Do not use variables.\n\n")
_LLAMA_IN_SYSTEM = ("You have access to the following functions. To call a function, please respond with JSON for a "
                    "function call." + _LLAMA_FORMAT)
_LLAMA_IN_USER = ("Given the following functions, please respond with a JSON for a function call with its proper "
                  "arguments that best answers the given prompt.\n\n" + _LLAMA_FORMAT)


@dataclass(frozen=True)
class _Llama:
    """What Llama 3.x and Llama 4 write differently."""

    header: str  # a turn's header, {role}
    eot: str
    dated: bool  # the system block (always written) dates the prompt; else it is written for a system message only
    trim: bool  # message texts are trimmed


_LLAMA_3 = _Llama("<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>", dated=True, trim=True)
_LLAMA_4 = _Llama("<|header_start|>{role}<|header_end|>\n\n", "<|eot|>", dated=False, trim=False)


def _llama_tool_list(out: _Out, intro: str, tools: list[dict[str, Any]]) -> None:
    out.t(intro)
    for tool in tools:
        out.c(tojson(tool, indent=4))
        out.t("\n\n")


def _render_llama(p: ToolPrompt, llama: _Llama) -> list[Segment]:
    out = _Out()
    out.t(p.bos)
    in_user = p.variables.get("tools_in_user_message", True)
    turns = list(p.turns)
    if p.system is not None or llama.dated:
        out.t(llama.header.format(role="system"))
        if p.tools:
            out.t("Environment: ipython\n")
        if llama.dated:
            out.t(f"Cutting Knowledge Date: December 2023\nToday Date: {p.date}\n\n")
        if p.tools and not in_user:
            _llama_tool_list(out, _LLAMA_IN_SYSTEM, p.tools)
        out.c((p.system or "").strip())
        out.t(llama.eot)
    if p.tools and in_user:
        if not turns:
            raise TemplateError(f"template '{p.template}': the tools go in the first user message, and there is none")
        first = turns.pop(0)
        _llama_tool_list(out, llama.header.format(role="user") + _LLAMA_IN_USER, p.tools)
        out.c(first["content"].strip())
        out.t(llama.eot)
    # Llama 3.x's template takes one call per assistant turn (it refuses more): several are written
    # as turns of one call each
    for m in turns if not llama.dated else one_call_per_turn(turns):
        if m["role"] == "tool":
            out.t(llama.header.format(role="ipython"))
            out.c(tojson(m["content"]))  # a string is iterable to the template: it writes it as JSON
            out.t(llama.eot)
        elif m.get("tool_calls"):
            out.t(llama.header.format(role="assistant"))
            if not llama.dated:  # Llama 4 keeps the text, between python tags
                out.t("<|python_start|>")
                out.c(m["content"])
                out.t("<|python_end|>")
            for call in m["tool_calls"]:
                _json_call(out, call, "parameters", _arguments_json)
            out.t(llama.eot)
        else:
            out.t(llama.header.format(role=m["role"]))
            out.c(m["content"].strip() if llama.trim else m["content"])
            out.t(llama.eot)
    if p.add_generation_prompt:
        out.t(llama.header.format(role="assistant"))
    return out.parts


def render_llama_3(p: ToolPrompt) -> list[Segment]:
    return _render_llama(p, _LLAMA_3)


def render_llama_4(p: ToolPrompt) -> list[Segment]:
    return _render_llama(p, _LLAMA_4)


# --- Mistral v0.3 and Nemo ([AVAILABLE_TOOLS] before the last request, [TOOL_CALLS] JSON) ---------


@dataclass(frozen=True)
class _Mistral:
    space: str  # after [INST], [AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS]: " " (v0.3) or "" (Nemo)
    trim_answers: bool  # v0.3 writes " " + the answer trimmed


_MISTRAL_V3 = _Mistral(" ", trim_answers=True)
_MISTRAL_NEMO = _Mistral("", trim_answers=False)


def mistral_call_id(call_id: str) -> str:
    """A call id as Mistral's templates take it (9 characters): one of 9 kept, any other made into
    9 letters and digits of its hash, the same for the call and its result."""
    if len(call_id) == 9:
        return call_id
    return hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:9]


def _mistral_tools(out: _Out, tools: list[dict[str, Any]], space: str) -> None:
    out.t(f"[AVAILABLE_TOOLS]{space}[")
    for k, tool in enumerate(tools):
        out.t('{"type": "function", "function": {')
        fields = [(key, value) for key, value in _function(tool).items() if key != "return"]
        for j, (key, value) in enumerate(fields):
            if isinstance(value, str):
                out.t('"')
                out.c(key)
                out.t('": "')
                out.c(value)
                out.t('"')
            else:
                out.t('"')
                out.c(key)
                out.t('": ')
                out.c(tojson(value))
            if j < len(fields) - 1:
                out.t(", ")
        out.t("}}")
        out.t(", " if k < len(tools) - 1 else "]")
    out.t("[/AVAILABLE_TOOLS]")


def _check_mistral_order(name: str, turns: Sequence[Message]) -> None:
    """Mistral's rule: leaving out calls and results, turns alternate user/assistant."""
    plain = [m for m in turns if m["role"] != "tool" and not m.get("tool_calls")]
    for k, m in enumerate(plain):
        if (m["role"] == "user") != (k % 2 == 0):
            raise TemplateError(f"template '{name}': after the optional system message, roles must alternate "
                                "user/assistant (tool calls and results aside)")


def _render_mistral(p: ToolPrompt, mistral: _Mistral) -> list[Segment]:
    out = _Out()
    turns, space = p.turns, mistral.space
    _check_mistral_order(p.template, turns)
    last_request = [m for m in turns if m["role"] == "user"][-1:]
    out.t(p.bos)
    for i, m in enumerate(turns):
        if m["role"] == "user":
            if p.tools and m == last_request[0]:  # (compared by value, as the template does)
                _mistral_tools(out, p.tools, space)
            out.t(f"[INST]{space}")
            if i == len(turns) - 1 and p.system is not None:  # the system message goes with a last request only
                out.c(p.system)
                out.t("\n\n")
            out.c(m["content"])
            out.t("[/INST]")
        elif m.get("tool_calls"):
            out.t(f"[TOOL_CALLS]{space}[")
            for k, call in enumerate(m["tool_calls"]):
                out.c(tojson(_call(call))[:-1])
                out.t(', "id": "')
                out.c(mistral_call_id(call.get("id", "")))
                out.t('"}')
                out.t(", " if k < len(m["tool_calls"]) - 1 else "]" + p.eos)
        elif m["role"] == "assistant":
            if mistral.trim_answers:
                out.t(" ")
            out.c(m["content"].strip() if mistral.trim_answers else m["content"])
            out.t(p.eos)
        else:
            out.t(f'[TOOL_RESULTS]{space}{{"content": ')
            out.c(m["content"])
            out.t(', "call_id": "')
            out.c(mistral_call_id(m["tool_call_id"]))
            out.t('"}[/TOOL_RESULTS]')
    return out.parts


def render_mistral_v3(p: ToolPrompt) -> list[Segment]:
    return _render_mistral(p, _MISTRAL_V3)


def render_mistral_nemo(p: ToolPrompt) -> list[Segment]:
    return _render_mistral(p, _MISTRAL_NEMO)


# --- gpt-oss (harmony: tools as a TypeScript namespace, calls on the commentary channel) ---------

_TS_SCALARS = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean"}


def _ts_type(spec: Mapping[str, Any]) -> str:
    """The template's render_typescript_type macro, its whitespace included."""
    kind = spec.get("type")
    null = " | null" if spec.get("nullable") else ""
    if kind == "array":
        items = spec.get("items")
        if not items:
            return "any[]" + null
        item_kind = items.get("type") if isinstance(items, Mapping) else None
        if isinstance(item_kind, str) and item_kind in _TS_SCALARS:
            return _TS_SCALARS[item_kind] + "[]" + null
        inner = _ts_type(items)
        return ("any[]" if inner == "object | object" or len(inner) > 50 else inner + "[]") + null
    if isinstance(kind, (list, tuple)) and kind:
        return " | ".join(map(str, kind)) if len(kind) > 1 else str(kind[0])
    if spec.get("oneOf"):
        # (the template's check for object variants sets a variable inside its loop, which Jinja
        # scopes to the loop: the variants are always written)
        parts = []
        for k, variant in enumerate(spec["oneOf"]):
            part = _ts_type(variant)
            if variant.get("description"):
                part += "// " + str(variant["description"])
            if "default" in variant:
                part += " " * 20 + "// default: " + tojson(variant["default"])
            parts.append(part + (" | \n" if k < len(spec["oneOf"]) - 1 else ""))
        return "".join(parts)
    if kind == "string":
        return '"' + '" | "'.join(map(str, spec["enum"])) + '"' if spec.get("enum") else "string" + null
    if isinstance(kind, str) and kind in _TS_SCALARS:
        return _TS_SCALARS[kind]
    if kind == "object":
        properties: Mapping[str, Any] = spec.get("properties") or {}
        if not properties:
            return "object"
        required = spec.get("required") or []
        fields = [name + ("" if name in required else "?") + ": \n" + " " * 16 + _ts_type(value)
                  for name, value in properties.items()]
        return "{\n" + ", ".join(fields) + "}"
    return "any"


def _ts_default(spec: Mapping[str, Any]) -> str:
    if "default" not in spec:
        return ""
    if spec.get("enum"):
        return ", // default: " + str(spec["default"])
    if spec.get("oneOf"):
        return "// default: " + str(spec["default"])
    return ", // default: " + tojson(spec["default"])


def _harmony_tools(out: _Out, tools: list[dict[str, Any]]) -> None:
    out.t("# Tools\n\n## functions\n\nnamespace functions {\n\n")
    for tool in tools:
        function = _function(tool)
        parameters = function.get("parameters") or {}
        properties: Mapping[str, Any] = parameters.get("properties") or {}
        required = parameters.get("required") or []
        out.t("// ")
        out.c(str(function.get("description", "")))
        out.t("\ntype ")
        out.c(function["name"])
        out.t(" = ")
        if not properties:
            out.t("() => any;\n\n")
            continue
        out.t("(_: {\n")
        for name, spec in properties.items():
            if spec.get("description"):
                out.t("// ")
                out.c(str(spec["description"]))
                out.t("\n")
            out.c(name + ("" if name in required else "?") + ": " + _ts_type(spec) + _ts_default(spec))
            out.t(",\n")
        out.t("}) => any;\n\n")
    out.t("} // namespace functions")


def harmony_turns(turns: list[Message]) -> list[Message]:
    """gpt-oss's template takes one call per assistant turn and names each result after the latest
    call: an assistant turn with several calls is written as turns of one call, each followed by
    its result (matched by id, else in order)."""
    out: list[Message] = []
    i = 0
    while i < len(turns):
        m = turns[i]
        calls = m.get("tool_calls") or []
        i += 1
        if len(calls) < 2:
            out.append(m)
            continue
        results = []
        while i < len(turns) and turns[i]["role"] == "tool":
            results.append(turns[i])
            i += 1
        for k, call in enumerate(calls):
            out.append({**m, "content": m["content"] if k == 0 else "", "tool_calls": [call]})
            mine = [r for r in results if r["tool_call_id"] == call.get("id")] or results[k:k + 1]
            out += mine
            results = [r for r in results if all(r is not x for x in mine)]
        out += results
    return out


def render_gpt_oss(p: ToolPrompt) -> list[Segment]:
    out = _Out()
    out.t(f"<|start|>system<|message|>{p.variables.get('model_identity', '')}\nKnowledge cutoff: 2024-06\n"
          f"Current date: {p.date}\n\nReasoning: {p.variables.get('reasoning_effort', 'medium')}\n\n"
          "# Valid channels: analysis, commentary, final. Channel must be included for every message.")
    if p.tools:
        out.t("\nCalls to these tools must go to the commentary channel: 'functions'.")
    out.t("<|end|>")
    if p.system or p.tools:
        out.t("<|start|>developer<|message|>")
        if p.system:
            out.t("# Instructions\n\n")
            out.c(p.system)
            out.t("\n\n")
        if p.tools:
            _harmony_tools(out, p.tools)
        out.t("<|end|>")
    turns = harmony_turns(list(p.turns))
    last_call: str | None = None
    for i, m in enumerate(turns):
        if m["role"] == "user":
            out.t("<|start|>user<|message|>")
            out.c(m["content"])
            out.t("<|end|>")
        elif m["role"] == "tool":
            if last_call is None:
                raise TemplateError(f"template '{p.template}': a tool result follows no tool call")
            out.t("<|start|>functions.")
            out.c(last_call)
            out.t(" to=assistant<|channel|>commentary<|message|>")
            out.c(tojson(m["content"]))
            out.t("<|end|>")
        elif m.get("tool_calls"):
            # the text of a call turn is its reasoning, kept until a final answer follows
            final_follows = any(f["role"] == "assistant" and not f.get("tool_calls") for f in turns[i + 1:])
            if m["content"] and not final_follows:
                out.t("<|start|>assistant<|channel|>analysis<|message|>")
                out.c(m["content"])
                out.t("<|end|>")
            function = _call(m["tool_calls"][0])
            out.t("<|start|>assistant to=functions.")
            out.c(function["name"])
            out.t("<|channel|>commentary json<|message|>")
            out.c(tojson(function.get("arguments")))
            out.t("<|call|>")
            last_call = function["name"]
        else:
            out.t("<|start|>assistant<|channel|>final<|message|>")
            out.c(m["content"])
            finished = i == len(turns) - 1 and not p.add_generation_prompt
            out.t("<|return|>" if finished else "<|end|>")
            last_call = None
    if p.add_generation_prompt:
        out.t("<|start|>assistant")
    return out.parts


# --- Cohere Command R7B (its tool_use template: actions and results as JSON lists) ----------------

_COHERE_TURN = "<|START_OF_TURN_TOKEN|><|{role}_TOKEN|>"
_COHERE_END = "<|END_OF_TURN_TOKEN|>"


def _cohere_call_number(messages: Sequence[Message], call_id: str) -> str:
    """The template's tool_call_id_to_int: the place of the call with this id among all calls
    ("" for none)."""
    calls = [call for m in messages for call in m.get("tool_calls") or ()]
    return next((str(k) for k, call in enumerate(calls) if call.get("id") == call_id), "")


def _cohere_results(out: _Out, messages: Sequence[Message], results: Sequence[Message]) -> None:
    out.t(_COHERE_TURN.format(role="SYSTEM") + "<|START_TOOL_RESULT|>[\n")
    for k, result in enumerate(results):
        out.t(",\n" if k else "")
        out.t('    {\n        "tool_call_id": "')
        out.c(_cohere_call_number(messages, result["tool_call_id"]))
        out.t('",\n        "results": {\n            "0": ')
        out.c(tojson(result["content"]))
        out.t('\n        },\n        "is_error": null\n    }')
    out.t("\n]<|END_TOOL_RESULT|>" + _COHERE_END)


def render_command_r7b(p: ToolPrompt) -> list[Segment]:
    out = _Out()
    out.t(p.bos + _COHERE_TURN.format(role="SYSTEM") + COMMAND_R7B_PREAMBLE)
    if p.tools:
        out.t(COMMAND_R7B_TOOL_USE)
        for k, tool in enumerate(p.tools):
            function = _function(tool)
            out.t('    {"name": "')
            out.c(function["name"])
            out.t('", "description": "')
            out.c(str(function.get("description", "")))
            out.t('", "parameters": ')
            out.c(tojson(function.get("parameters")))
            out.t(', "responses": null}' + ("," if k < len(p.tools) - 1 else "") + "\n")
        out.t("]\n```\n\n")
    out.t(COMMAND_R7B_DEFAULT_PREAMBLE)
    if p.system:  # the developer preamble
        out.t(COMMAND_R7B_DEVELOPER)
        out.c(p.system)
    out.t(_COHERE_END)
    messages, seen, number = p.messages, set(), 0
    for i, m in enumerate(messages):
        if m["role"] == "system" and not (i == 0 and p.system):
            out.t(_COHERE_TURN.format(role="SYSTEM"))
            out.c(m["content"])
            out.t(_COHERE_END)
        elif m["role"] == "user":
            out.t(_COHERE_TURN.format(role="USER"))
            out.c(m["content"])
            out.t(_COHERE_END)
        elif m.get("tool_calls"):
            out.t(_COHERE_TURN.format(role="CHATBOT") + "<|START_THINKING|>")
            out.c(m.get("tool_plan", ""))
            out.t("<|END_THINKING|><|START_ACTION|>[\n")
            for k, call in enumerate(m["tool_calls"]):
                function = _call(call)
                out.t(f'    {{"tool_call_id": "{number}", "tool_name": "')
                out.c(function["name"])
                out.t('", "parameters": ')
                out.c(tojson(function.get("arguments")))
                out.t("}" + ("," if k < len(m["tool_calls"]) - 1 else "") + "\n")
                number += 1
            out.t("]<|END_ACTION|>" + _COHERE_END)
        elif m["role"] == "assistant":
            out.t(_COHERE_TURN.format(role="CHATBOT") + "<|START_RESPONSE|>")
            out.c(m["content"])
            out.t("<|END_RESPONSE|>" + _COHERE_END)
        elif m["role"] == "tool" and m["tool_call_id"] not in seen:
            run = [m]
            for after in messages[i + 1:]:  # the results that follow share its turn
                if after["role"] != "tool":
                    break
                run.append(after)
                seen.add(after["tool_call_id"])
            _cohere_results(out, messages, run)
    out.t(_COHERE_TURN.format(role="CHATBOT"))  # written whether a generation prompt is asked for or not
    return out.parts


# --- IBM Granite 3.3 (an available_tools turn; calls and results as plain turns) ------------------

_GRANITE_TOOLS = (
    " You are a helpful assistant with access to the following tools. When a tool is required to answer the "
    "user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist "
    "in the provided list of tools, notify the user that you do not have the ability to fulfill the request."
)


def _granite_turn(out: _Out, role: str, content: str) -> None:
    out.t(f"<|start_of_role|>{role}<|end_of_role|>")
    out.c(content)
    out.t("<|end_of_text|>\n")


def render_granite_3_3(p: ToolPrompt) -> list[Segment]:
    """(The official template writes an assistant turn's text only: its calls are not written.)"""
    out = _Out()
    if p.system is not None:
        _granite_turn(out, "system", p.system)
    else:
        default = f"Knowledge Cutoff Date: April 2024. Today's Date: {p.date}. You are Granite, developed by IBM."
        if p.tools:
            default += _GRANITE_TOOLS
        elif p.variables.get("thinking"):
            default += " You are a helpful AI assistant." + GRANITE_THINKING.replace(
                "{sections}", "between <think></think> and write your response between <response></response>")
        else:
            default += " You are a helpful AI assistant."
        out.t(f"<|start_of_role|>system<|end_of_role|>{default}<|end_of_text|>\n")
    if p.tools:
        out.t("<|start_of_role|>available_tools<|end_of_role|>")
        out.c(tojson(p.tools, indent=4))
        out.t("<|end_of_text|>\n")
    turns = p.turns
    for i, m in enumerate(turns):
        _granite_turn(out, m["role"], m["content"])
        if i == len(turns) - 1 and p.add_generation_prompt:
            out.t("<|start_of_role|>assistant<|end_of_role|>")
    return out.parts


# --- Phi-4-mini (tools in the system turn) ----------------------------------------------------------


def render_phi_4_mini(p: ToolPrompt) -> list[Segment]:
    """(The official template writes a turn's text only: calls are not written; a result is a
    <|tool|> turn.)"""
    out = _Out()
    for m in with_system_tools(p.messages, p.tools):
        out.t(f"<|{m['role']}|>")
        out.c(m["content"])
        if m["role"] == "system" and m.get("tools") is not None:
            out.t("<|tool|>")
            out.c(m["tools"])
            out.t("<|/tool|>")
        out.t("<|end|>")
    out.t("<|assistant|>" if p.add_generation_prompt else p.eos)
    return out.parts


# --- SmolLM3 (xml_tools in its metadata header) ----------------------------------------------------

_SMOLLM3_TOOLS_HEAD = (
    "### Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n"
)
_SMOLLM3_TOOLS_TAIL = (
    "</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>\n\n<|im_end|>\n"
)


def render_smollm3(p: ToolPrompt) -> list[Segment]:
    """The official template reads the tools as `xml_tools` and writes each as Python writes a dict
    (`tool | string`). (It writes a turn's text only: calls are not written; a result is a user turn.)"""
    out = _Out()
    think = bool(p.variables.get("enable_thinking", True))
    system = p.system
    custom = ""
    if system is not None:
        think = "/no_think" not in system and ("/think" in system or think)
        custom = system.replace("/no_think", "").replace("/think", "").rstrip()
    out.t("<|im_start|>system\n")
    if system is not None and "/system_override" in system:
        out.c(custom.replace("/system_override", "").rstrip())
        out.t("<|im_end|>\n")
    else:
        out.t(f"## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: {p.date}\n"
              f"Reasoning Mode: {'/think' if think else '/no_think'}\n\n## Custom Instructions\n\n")
        if custom:
            out.c(custom)
            out.t("\n\n")
        else:
            out.t((SMOLLM3_THINK_DEFAULT if think else
                   "You are a helpful AI assistant named SmolLM, trained by Hugging Face.") + "\n\n")
        if p.tools:
            out.t(_SMOLLM3_TOOLS_HEAD)
            for tool in p.tools:
                out.c(str(tool))
                out.t("\n")
            out.t(_SMOLLM3_TOOLS_TAIL)
    answer = "<|im_start|>assistant\n" + ("" if think else "<think>\n\n</think>\n")
    for m in p.messages:
        if m["role"] == "assistant":
            out.t(answer)
            out.c(m["content"].lstrip("\n"))
            out.t("<|im_end|>\n")
        elif m["role"] in ("user", "tool"):
            _chatml_turn(out, "user", m["content"])
    if p.add_generation_prompt:
        out.t(answer)
    return out.parts


QWEN_2_5_TOOLS = ToolStyle("hermes", render_qwen2_5)
QWEN_3_TOOLS = ToolStyle("hermes", render_qwen3)
QWQ_TOOLS = ToolStyle("hermes", render_qwq)
HERMES_2_PRO_TOOLS = ToolStyle("hermes", render_hermes_2_pro)
MISTRAL_V3_TOOLS = ToolStyle("mistral", render_mistral_v3)
MISTRAL_NEMO_TOOLS = ToolStyle("mistral", render_mistral_nemo)
GPT_OSS_TOOLS = ToolStyle("harmony", render_gpt_oss)
COMMAND_R7B_TOOLS = ToolStyle("command_r7b", render_command_r7b)
GRANITE_3_3_TOOLS = ToolStyle("granite", render_granite_3_3)
PHI_4_MINI_TOOLS = ToolStyle("phi4", render_phi_4_mini)
SMOLLM3_TOOLS = ToolStyle("smollm3", render_smollm3)
LLAMA_3_TOOLS = ToolStyle("llama3_json", render_llama_3)
LLAMA_4_TOOLS = ToolStyle("llama3_json", render_llama_4)


def check_tool_order(name: str, messages: Sequence[Message]) -> None:
    """A system message only first; a tool result only after an assistant turn with calls or
    another result; the conversation starts (after the system message) with a user turn."""
    previous: Message | None = None
    for i, m in enumerate(messages, 1):
        role = m["role"]
        if role == "system" and i != 1:
            raise TemplateError(f"template '{name}': message {i} has role 'system'; "
                                "a system message is accepted only as the first message")
        if role == "tool" and not (previous and (previous["role"] == "tool" or previous.get("tool_calls"))):
            raise TemplateError(f"template '{name}': message {i} has role 'tool' but follows no tool call")
        if role != "system" and (previous is None or previous["role"] == "system") and role != "user":
            raise TemplateError(f"template '{name}': message {i} has role '{role}'; the conversation must start "
                                "with a user message (after an optional system message)")
        previous = m
