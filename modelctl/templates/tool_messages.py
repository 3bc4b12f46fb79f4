"""Tool calls and results in the form a chat template reads, and the tools a template is told of.

modelctl's messages are provider-neutral (docs/tools.md):

    {"role": "assistant", "content": "text or ''", "tool_calls": [{"id", "name", "arguments": "JSON text"}]}
    {"role": "tool", "tool_call_id": ID, "name": TOOL_NAME, "content": "result text"}

A Jinja chat template (and every built-in, which renders as its official template does) reads the
Hugging Face form instead, which `hf_message` gives:

    {"role": "assistant", "content": "...", "tool_calls": [{"type": "function", "id": ID,
        "function": {"name": NAME, "arguments": {...}}}]}
    {"role": "tool", "content": "...", "name": NAME, "tool_call_id": ID}

The arguments are a JSON object there (a dict), as templates `tojson` them; arguments that are not
a JSON object are passed as the text the model wrote. A message already in that form is taken as
it is, so converting twice changes nothing.

The tools themselves are the `tools` template variable: a list of
`{"type": "function", "function": {"name", "description", "parameters"}}` (`ToolSpec.openai()`),
checked by `tool_list`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelctl.errors import TemplateError

TOOL_ROLE = "tool"


def hf_message(name: str, index: int, message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Hugging Face form of a tool result or of an assistant message with tool calls; None for
    any other message. `name` and `index` (1-based) name the template and message in errors."""
    role = message.get("role")
    if role == TOOL_ROLE:
        return {
            "role": TOOL_ROLE,
            "content": _text(name, index, message.get("content"), "content"),
            "name": _text(name, index, message.get("name", ""), "name"),
            "tool_call_id": _text(name, index, message.get("tool_call_id", ""), "tool_call_id"),
        }
    calls = message.get("tool_calls")
    if role != "assistant" or not calls:
        return None
    if isinstance(calls, (str, bytes)) or not isinstance(calls, Sequence):
        raise TemplateError(f"template '{name}': message {index} has tool_calls that are not a list")
    content = message.get("content")
    return {
        "role": "assistant",
        "content": "" if content is None else _text(name, index, content, "content"),
        "tool_calls": [_hf_call(name, index, call) for call in calls],
    }


def _hf_call(name: str, index: int, call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise TemplateError(f"template '{name}': message {index} has a tool call that is not an object")
    function = call.get("function")
    source = function if isinstance(function, Mapping) else call
    arguments = source.get("arguments", "{}")
    if not isinstance(arguments, Mapping):
        arguments = _arguments(_text(name, index, arguments, "tool call arguments"))
    return {
        "type": "function",
        "id": _text(name, index, call.get("id", ""), "tool call id"),
        "function": {"name": _text(name, index, source.get("name"), "tool call name"), "arguments": arguments},
    }


def _arguments(text: str) -> dict[str, Any] | str:
    """The arguments as a JSON object, or the text as written when it is not one."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return text
    return value if isinstance(value, dict) else text


def _text(name: str, index: int, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"template '{name}': message {index} has a {what} that is not text")
    return value


def tool_list(name: str, value: Any) -> list[dict[str, Any]]:
    """The `tools` variable checked: OpenAI-style function tools (an empty list for None)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TemplateError(f"template '{name}': tools must be a list of {{type: function, function}} objects")
    tools = []
    for i, tool in enumerate(value, 1):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise TemplateError(f"template '{name}': tool {i} is not a {{type: function, function: {{name, ...}}}} object")
        tools.append({"type": "function", "function": dict(function)})
    return tools


def has_tool_turns(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the conversation holds tool calls or tool results."""
    return any(m.get("role") == TOOL_ROLE or m.get("tool_calls") for m in messages)


# -- the generic form, for templates without tools of their own ---------------------------------

GENERIC_INSTRUCTIONS = (
    "# Tools\n\n"
    "You can call these tools. Each is a JSON object with the tool's name, what it does and a JSON Schema of "
    "its arguments:\n{tools}\n\n"
    'To call a tool, answer with a JSON object alone: {{"tool_call": {{"name": "<tool name>", "arguments": '
    "{{<the arguments, a JSON object>}}}}}}; for several calls, one such object per line. The results come back in "
    'the next user message, one {{"tool_result": {{"name": "<tool name>", "content": "<the result>"}}}} per line.'
)


def generic_messages(name: str, messages: list[dict[str, Any]], tools: Sequence[Mapping[str, Any]],
                     *, in_system: bool = True) -> list[dict[str, Any]]:
    """A conversation with tools as plain messages, for a template that has no tools of its own:
    the tools listed in the system message (after its text; at the start of the first user message
    when `in_system` is false), each call an assistant's `{"tool_call": {"name", "arguments"}}` line,
    each run of results one user message of `{"tool_result": {"name", "content"}}` lines."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == TOOL_ROLE:
            line = _json({"tool_result": {"name": m.get("name", ""), "content": m["content"]}})
            if out and out[-1].get("_results"):
                out[-1]["content"] += "\n" + line
            else:
                out.append({"role": "user", "content": line, "_results": True})
        elif m.get("tool_calls"):
            calls = [_json({"tool_call": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}})
                     for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join(([m["content"]] if m["content"] else []) + calls)})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    for m in out:
        m.pop("_results", None)
    if tools:
        _add_instructions(name, out, GENERIC_INSTRUCTIONS.format(tools="\n".join(
            _json(dict(t.get("function", t))) for t in tools)), in_system)
    return out


def _add_instructions(name: str, messages: list[dict[str, Any]], text: str, in_system: bool) -> None:
    first: dict[str, Any] | None
    if messages and messages[0]["role"] == "system":
        first = messages[0]
    elif in_system:
        messages.insert(0, {"role": "system", "content": ""})
        first = messages[0]
    else:
        first = next((m for m in messages if m["role"] == "user"), None)
        if first is None:
            raise TemplateError(f"template '{name}': the tools go in the first user message, and there is none")
    if not first["content"]:
        first["content"] = text
    elif first["role"] == "system":  # after the system message's own text
        first["content"] = f"{first['content']}\n\n{text}"
    else:  # before the request, as a system message merged into it would be
        first["content"] = f"{text}\n\n{first['content']}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def with_system_tools(messages: list[dict[str, Any]], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages as Phi-4-mini's template takes tools: a JSON list of the functions in the system
    message's "tools" field (as its model card shows), an empty system message put first when the
    conversation has none."""
    if not tools:
        return messages
    listing = _json([dict(t.get("function", t)) for t in tools])
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "tools": listing}, *messages[1:]]
    return [{"role": "system", "content": "", "tools": listing}, *messages]


_SYSTEM_TOOLS = re.compile(r"""message(\[\s*['"]tools['"]\s*\]|\.tools\b)""")


def reads_system_tools(template: str) -> bool:
    """Whether a Jinja template reads tools from a message's "tools" field (Phi-4-mini's)."""
    return _SYSTEM_TOOLS.search(template) is not None


# (markup a template writes, the call format it stands for), the first found wins
_CALL_MARKUP = (
    ("<|channel|>commentary", "harmony"),
    ("to=functions.", "harmony"),
    ("<|START_ACTION|>", "command_r7b"),
    ("[ARGS]", "mistral_args"),
    ("[TOOL_CALLS]", "mistral"),
    ("<|start_of_role|>available_tools", "granite"),
    ("<|/tool_call|>", "phi4"),
    ("<|tool_call|>", "granite"),
    ("<|python_tag|>", "llama3_json"),
    ('"parameters": dictionary of argument name', "llama3_json"),
    ("<tool_call>", "hermes"),
)


def tool_format_of(template: str, reads: frozenset[str]) -> str | None:
    """How the model of a Jinja chat template writes a tool call (the call parsers' key), read from
    the markup of the template's tool rendering; None for a template that takes no tools or whose
    markup is none of the known ones."""
    if reads_system_tools(template):
        return "phi4"
    if "xml_tools" in reads and "tools" not in reads:
        return "smollm3"
    if "tools" not in reads:
        return None
    return call_markup_format(template)


def call_markup_format(template: str) -> str | None:
    """The call format whose markup a template's text writes, None where it writes none known."""
    return next((fmt for markup, fmt in _CALL_MARKUP if markup in template), None)
