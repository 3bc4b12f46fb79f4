"""Choosing the template for a model, in one documented order:

1. `--template`: a registered name, a path to a `.jinja`/`.j2` file or a `tokenizer_config.json`,
   or `gguf:NAME`, one of the named templates a GGUF file holds beside its default
   (`tokenizer.chat_template.NAME`, e.g. `gguf:tool_use`; `gguf:default` is the default one);
2. the registry entry's `template`;
3. the GGUF's embedded `tokenizer.chat_template` (rendered in the sandbox);
4. a model adapter matching the model's names or GGUF metadata;
5. the fallback template, with `source="fallback"`: the caller announces it on stderr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelctl.errors import NotFoundError, TemplateError, UsageError
from modelctl.files import load_json, read_user_text
from modelctl.templates.adapters import match_adapter
from modelctl.templates.conversation import find_conv_template, get_conv_template
from modelctl.templates.types import ChatTemplate, RenderedPrompt

FALLBACK_TEMPLATE = "chatml"
# `--template gguf:NAME`: the GGUF's template `tokenizer.chat_template.NAME` (`gguf:default`:
# `tokenizer.chat_template` itself).
GGUF_PREFIX = "gguf:"
GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
DEFAULT_VARIANT = "default"
TOOL_USE_VARIANT = "tool_use"  # the named template transformers renders with when tools are given
TEMPLATE_FILE_SUFFIXES = (".jinja", ".j2", ".jinja2", ".json", ".txt")
# The largest template file read: a tokenizer_config.json with its added tokens is a few MB.
MAX_TEMPLATE_FILE_BYTES = 16 * 2**20


def resolve_template(
    *,
    template: str | None = None,
    registry_template: str | None = None,
    gguf_metadata: Mapping[str, Any] | None = None,
    names: Sequence[str] = (),
) -> ChatTemplate:
    """The template for a model: --template > registry template > GGUF embedded template >
    adapter match > fallback (source='fallback'; the caller prints the warning)."""
    metadata = gguf_metadata or {}
    if template is not None and template.startswith(GGUF_PREFIX):
        return gguf_variant(metadata, template[len(GGUF_PREFIX):], names)
    if template is not None:  # an empty name is an error, not "choose for me"
        return explicit_template(template)
    if registry_template:
        return replace(get_conv_template(registry_template), source="registry")
    embedded = metadata.get(GGUF_TEMPLATE_KEY)
    if isinstance(embedded, str) and embedded.strip():
        return gguf_template(metadata, names)
    match = match_adapter(names, metadata)
    if match is not None:
        return get_conv_template(match.template)
    return replace(get_conv_template(FALLBACK_TEMPLATE), source="fallback")


def explicit_template(value: str) -> ChatTemplate:
    """A registered template name, or a template file."""
    if not value.strip():
        raise UsageError("the template name is empty")
    found = find_conv_template(value)
    if found is not None:
        return found
    path = Path(os.path.expanduser(value))
    if path.exists() or os.sep in value or "/" in value or value.lower().endswith(TEMPLATE_FILE_SUFFIXES):
        return load_template_file(path)
    get_conv_template(value)  # raises NotFoundError with suggestions
    raise AssertionError("unreachable")


def load_template_file(path: str | os.PathLike[str]) -> ChatTemplate:
    """A Jinja chat template from a `.jinja` file or from a `tokenizer_config.json`."""
    from modelctl.templates.jinja import JinjaChatTemplate  # noqa: PLC0415 (jinja2: imported only where used)
    from modelctl.templates.sandbox import compile_template  # noqa: PLC0415 (jinja2: imported only where used)

    path = Path(path)
    text = read_user_text(path, "template file", limit=MAX_TEMPLATE_FILE_BYTES, error=TemplateError)
    bos = eos = None
    tool_use = None
    if path.suffix.lower() == ".json":
        text, tool_use, bos, eos = _from_tokenizer_config(path, text)
    tpl = JinjaChatTemplate(name=path.name, source="file", template=text, bos_token=bos, eos_token=eos,
                            tool_template=tool_use)
    for source in (tpl.template, tpl.tool_template):  # report syntax errors now
        if source is not None:
            compile_template(tpl.name, source)
    return tpl


def _from_tokenizer_config(path: Path, text: str) -> tuple[str, str | None, str | None, str | None]:
    """The chat template, the one for tools where there is one apart, the BOS and EOS texts."""
    config = load_json(text, repr(str(path)), error=TemplateError)
    chat = config.get("chat_template") if isinstance(config, dict) else None
    tool_use = None
    if isinstance(chat, list):  # named variants: take "default", else the first
        named = {v.get("name"): v.get("template") for v in chat if isinstance(v, dict)}
        chat = named.get("default") or next(iter(named.values()), None)
        tool_use = named.get(TOOL_USE_VARIANT) if _template_text(named.get(TOOL_USE_VARIANT)) else None
    if not isinstance(chat, str) or not chat.strip():
        raise TemplateError(f"{str(path)!r} has no chat_template")
    return chat, tool_use, _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<s>", "lstrip": false, ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def gguf_variants(metadata: Mapping[str, Any]) -> list[str]:
    """The names of the chat templates a GGUF holds: "default" (`tokenizer.chat_template`) when
    it has one, then each `tokenizer.chat_template.NAME` (tool_use, rag, …), in file order."""
    found = [DEFAULT_VARIANT] if _template_text(metadata.get(GGUF_TEMPLATE_KEY)) else []
    prefix = GGUF_TEMPLATE_KEY + "."
    return found + [key[len(prefix):] for key, value in metadata.items()
                    if key.startswith(prefix) and len(key) > len(prefix) and _template_text(value)]


def gguf_variant(metadata: Mapping[str, Any], variant: str, names: Sequence[str] = ()) -> ChatTemplate:
    """`--template gguf:NAME`: the GGUF's template of that name, or an error listing those it has."""

    if not metadata:
        raise UsageError(f"--template {GGUF_PREFIX}{variant} picks a template of a GGUF file: give a local model")
    variants = gguf_variants(metadata)
    name = variant.strip() or DEFAULT_VARIANT
    if name not in variants:
        have = ", ".join(GGUF_PREFIX + v for v in variants) or "none"
        raise NotFoundError(f"the model's GGUF has no template '{name}' (it has: {have})")
    return gguf_template(metadata, names, None if name == DEFAULT_VARIANT else name)


def _template_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def gguf_template(metadata: Mapping[str, Any], names: Sequence[str] = (), variant: str | None = None) -> ChatTemplate:
    """The GGUF's embedded chat template (or its template `variant`, `tokenizer.chat_template.NAME`),
    with the GGUF's BOS/EOS texts and end-of-turn ids.

    Stop strings also include those of the built-in template the model's names match, if any:
    they are facts about the model (early Llama 3 GGUFs name <|end_of_text|> as EOS, for one).
    """
    from modelctl.templates.jinja import JinjaChatTemplate  # noqa: PLC0415 (jinja2: imported only where used)
    from modelctl.templates.sandbox import compile_template  # noqa: PLC0415 (jinja2: imported only where used)

    source = metadata[GGUF_TEMPLATE_KEY if variant is None else f"{GGUF_TEMPLATE_KEY}.{variant}"]
    files = [n for n in names if isinstance(n, str) and n.lower().endswith(".gguf")]
    general = metadata.get("general.name")
    name = os.path.basename(files[0]) if files else (general if isinstance(general, str) else "embedded")
    if variant is not None:
        name = f"{name} ({variant})"
    ids = tuple(
        dict.fromkeys(
            v
            for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")
            if isinstance(v := metadata.get(k), int) and not isinstance(v, bool) and v >= 0
        )
    )
    match = match_adapter(names, metadata)
    extra_stops = get_conv_template(match.template).stop_str if match else ()
    tool_use = metadata.get(f"{GGUF_TEMPLATE_KEY}.{TOOL_USE_VARIANT}") if variant is None else None
    tpl = JinjaChatTemplate(
        name=name,
        source="gguf",
        template=source,
        bos_token=_gguf_token(metadata, "bos"),
        eos_token=_gguf_token(metadata, "eos"),
        stop=tuple(extra_stops),
        stop_token_ids=ids,
        tool_template=tool_use if _template_text(tool_use) else None,
    )
    for source in (tpl.template, tpl.tool_template):
        if source is not None:
            compile_template(tpl.name, source)
    return tpl


# llama.cpp's default when a GGUF has no tokenizer.ggml.add_bos_token: SentencePiece ("llama") and
# WordPiece ("bert") vocabularies add a BOS; BPE ("gpt2") vocabularies mostly do not.
_ADDS_BOS_BY_DEFAULT = frozenset({"llama", "bert"})


def gguf_adds_bos(metadata: Mapping[str, Any]) -> bool:
    """Whether llama.cpp puts the BOS token in front of every prompt for this GGUF."""
    flag = metadata.get("tokenizer.ggml.add_bos_token")
    if isinstance(flag, bool):
        return flag
    return metadata.get("tokenizer.ggml.model") in _ADDS_BOS_BY_DEFAULT


def ensure_bos(rendered: RenderedPrompt, metadata: Mapping[str, Any]) -> RenderedPrompt:
    """`rendered` as the model of this GGUF receives it: with the BOS text in front (a special
    segment) when llama.cpp adds a BOS and the rendering does not already start with it.

    `modelctl prompt` shows this, and the llama.cpp backend tokenizes it, so that both agree."""
    return rendered.with_bos(_gguf_token(metadata, "bos")) if gguf_adds_bos(metadata) else rendered


def _gguf_token(metadata: Mapping[str, Any], which: str) -> str | None:
    text = metadata.get(f"tokenizer.ggml.{which}_token")
    if isinstance(text, str):
        return text
    tokens, index = metadata.get("tokenizer.ggml.tokens"), metadata.get(f"tokenizer.ggml.{which}_token_id")
    if isinstance(tokens, Sequence) and isinstance(index, int) and 0 <= index < len(tokens):
        token = tokens[index]
        return token if isinstance(token, str) else None
    return None
