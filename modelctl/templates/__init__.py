"""The template layer: how a conversation becomes the exact prompt a local model was trained on.

    from modelctl.templates import resolve_template
    tpl = resolve_template(names=["Meta-Llama-3-8B-Instruct.Q4_K_M.gguf"])
    rendered = tpl.render([{"role": "user", "content": "Hello"}])
    rendered.text, rendered.segments, rendered.stop, rendered.stop_token_ids

Built-in templates are data (`Conversation` values, registered on import); Jinja chat templates
from GGUF files or template files are rendered in a sandbox (`JinjaChatTemplate`, imported on first
use so that importing this package does not import jinja2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelctl.templates.adapters import (
    AdapterMatch,
    ModelAdapter,
    match_adapter,
    model_adapters,
    register_builtin_adapters,
    register_model_adapter,
)
from modelctl.templates.builtin import register_builtin_templates
from modelctl.templates.conversation import (
    Conversation,
    SeparatorStyle,
    TurnFormats,
    find_conv_template,
    get_conv_template,
    list_templates,
    register_conv_template,
    template_aliases,
)
from modelctl.templates.resolve import (
    FALLBACK_TEMPLATE,
    ensure_bos,
    gguf_adds_bos,
    load_template_file,
    resolve_template,
)
from modelctl.templates.types import ChatTemplate, RenderedPrompt, Segment, SystemPolicy

if TYPE_CHECKING:
    from modelctl.templates.jinja import JinjaChatTemplate

__all__ = [
    "AdapterMatch",
    "ChatTemplate",
    "Conversation",
    "FALLBACK_TEMPLATE",
    "JinjaChatTemplate",
    "ModelAdapter",
    "RenderedPrompt",
    "Segment",
    "SeparatorStyle",
    "SystemPolicy",
    "TurnFormats",
    "ensure_bos",
    "find_conv_template",
    "get_conv_template",
    "gguf_adds_bos",
    "list_templates",
    "load_template_file",
    "match_adapter",
    "model_adapters",
    "register_conv_template",
    "register_model_adapter",
    "resolve_template",
    "template_aliases",
]


def __getattr__(name: str) -> Any:
    if name == "JinjaChatTemplate":
        from modelctl.templates.jinja import JinjaChatTemplate  # noqa: PLC0415 (lazy on purpose: docs/architecture.md)

        return JinjaChatTemplate
    raise AttributeError(f"module 'modelctl.templates' has no attribute {name!r}")


def _register_builtins() -> None:
    register_builtin_templates()
    if not model_adapters():
        register_builtin_adapters()


_register_builtins()
