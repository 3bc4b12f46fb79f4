"""The exact prompt a local model receives for a conversation, without loading the model.

    rendered = render_prompt([{"role": "user", "content": "Hello"}], model="llama-2-7b-chat")
    rendered.text, rendered.stop, rendered.segments

The template is the one `chat --model MODEL` would use, found by the same resolver
(`modelctl.resolver`), except that a model file is only read, not checked for
loading, and a registry model whose file is not here is rendered with what the registry says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from modelctl.chat.opening import choose_template, resolve_model, target_defaults
from modelctl.errors import UsageError
from modelctl.templates import ensure_bos, resolve_template
from modelctl.templates.resolve import DEFAULT_VARIANT, GGUF_PREFIX, GGUF_TEMPLATE_KEY, gguf_variants

if TYPE_CHECKING:
    from modelctl.registry import RegistrySource
    from modelctl.templates import ChatTemplate, RenderedPrompt


def prompt_template(model: str | None, template: str | None = None, *,
                    registry: "RegistrySource" = None) -> tuple["ChatTemplate", dict[str, Any]]:
    """The template for MODEL and/or TEMPLATE (a name, a .jinja file, a tokenizer_config.json),
    and the GGUF metadata of the model's file ({} when there is none)."""

    if model is None:
        if template is None:
            raise UsageError("give --template NAME|FILE or --model MODEL|FILE.gguf")
        return resolve_template(template=template), {}
    target = resolve_model(model, registry=registry, check=False)
    # The template a chat would use: [chat], the model's [models."ID"], the alias's options.
    template = template or target_defaults(target).get("template")
    metadata = dict(target.gguf.metadata) if target.gguf is not None else {}
    return choose_template(target, template), metadata


def gguf_templates(model: str, *, registry: RegistrySource = None) -> list[tuple[str, str]]:
    """(`--template` value, GGUF key) of each chat template MODEL's GGUF file holds: its default
    and its named ones (`tokenizer.chat_template.tool_use` -> `gguf:tool_use`). A model without a
    file here has none."""

    target = resolve_model(model, registry=registry, check=False)
    if target.gguf is None:
        return []
    return [(GGUF_PREFIX + name, GGUF_TEMPLATE_KEY if name == DEFAULT_VARIANT else f"{GGUF_TEMPLATE_KEY}.{name}")
            for name in gguf_variants(target.gguf.metadata)]


def render_prompt(messages: Sequence[Mapping[str, str]], *, model: str | None = None, template: str | None = None,
                  add_generation_prompt: bool = True, registry: "RegistrySource" = None,
                  variables: Mapping[str, Any] | None = None) -> "RenderedPrompt":
    """Render `messages` as MODEL's template (or TEMPLATE) would, BOS written out where llama.cpp
    adds one. `rendered.source == "fallback"` says no template was known for the model.
    `variables`: template variables (`enable_thinking`, `reasoning_effort`)."""

    tpl, metadata = prompt_template(model, template, registry=registry)
    rendered = tpl.render(
        messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=metadata.get("tokenizer.ggml.bos_token"),
        eos_token=metadata.get("tokenizer.ggml.eos_token"),
        variables=variables,
    )
    return ensure_bos(rendered, metadata)  # the BOS llama.cpp adds, written out
