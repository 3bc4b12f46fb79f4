"""modelctl: find, fetch, inspect and chat with language models, from the command line or Python.

    import modelctl

    registry = modelctl.load_registry()
    model = registry.resolve("gemma-3-270m")
    with modelctl.open_chat("gemma-3-270m", registry=registry) as chat:
        reply = modelctl.ChatSession(chat.backend, chat.params).ask("Name a colour.")
        for text in reply:
            print(text, end="")

Every name below is imported on first use, so `import modelctl` stays cheap (no llama.cpp, no
HTTP client, no Jinja until something needs them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from modelctl.version import __version__

# Public name -> the module that defines it.
_API = {
    # the registry
    "load_registry": "modelctl.registry.loader",
    "Registry": "modelctl.registry.registry",
    "Model": "modelctl.registry.model",
    "ModelFilter": "modelctl.registry.query",
    "filter_models": "modelctl.registry.query",
    "search_models": "modelctl.registry.query",
    # model names: parsed once, resolved once
    "parse_ref": "modelctl.refs",
    "Resolver": "modelctl.resolver",
    "Target": "modelctl.resolver",
    "resolve_model": "modelctl.chat.opening",
    # chatting
    "open_chat": "modelctl.chat.opening",
    "Chat": "modelctl.chat.opening",
    "ChatOptions": "modelctl.chat.opening",
    "LoadOptions": "modelctl.chat.opening",
    "ServiceOptions": "modelctl.chat.opening",
    "ChatSession": "modelctl.chat.session",
    "Reply": "modelctl.chat.session",
    "GenerationParams": "modelctl.backends.base",
    "Backend": "modelctl.backends.base",
    # testing code that chats: a backend with prepared answers
    "ScriptedBackend": "modelctl.backends.scripted",
    "ScriptedLocalBackend": "modelctl.backends.scripted",
    "Script": "modelctl.backends.scripted",
    # structured output
    "ResponseFormat": "modelctl.backends.base",
    "load_format": "modelctl.chat.structured",
    "validate_answer": "modelctl.chat.structured",
    # choosing a service: tokens, cost, availability, the selector, routing
    "token_report": "modelctl.chat.tokens",
    "TokenCount": "modelctl.chat.tokens",
    "services": "modelctl.chat.availability",
    "usable_services": "modelctl.chat.availability",
    "Service": "modelctl.chat.availability",
    "select_services": "modelctl.chat.selector",
    "Constraints": "modelctl.chat.selector",
    "Candidate": "modelctl.chat.selector",
    "Selection": "modelctl.chat.selector",
    "open_routed": "modelctl.chat.routing",
    # the other tasks: images, speech, transcription, classification, fill-mask
    "open_task": "modelctl.tasks.select",
    # prompts and templates
    "render_prompt": "modelctl.chat.prompt",
    "resolve_template": "modelctl.templates.resolve",
    "RenderedPrompt": "modelctl.templates.types",
    # local files
    "read_gguf": "modelctl.gguf",
    "GGUFFile": "modelctl.gguf",
    "pull": "modelctl.store.pull",
    # errors
    "ModelctlError": "modelctl.errors",
    "UsageError": "modelctl.errors",
    "RegistryError": "modelctl.errors",
    "NotFoundError": "modelctl.errors",
    "ModelFileError": "modelctl.errors",
    "TemplateError": "modelctl.errors",
    "BackendError": "modelctl.errors",
    "AuthError": "modelctl.errors",
    "OfflineError": "modelctl.errors",
}

__all__ = ["__version__", *_API]

if TYPE_CHECKING:
    from modelctl.backends.base import Backend, GenerationParams, ResponseFormat
    from modelctl.backends.scripted import Script, ScriptedBackend, ScriptedLocalBackend
    from modelctl.chat.availability import Service, services, usable_services
    from modelctl.chat.opening import Chat, ChatOptions, LoadOptions, ServiceOptions, open_chat, resolve_model
    from modelctl.chat.prompt import render_prompt
    from modelctl.chat.routing import open_routed
    from modelctl.chat.selector import Candidate, Constraints, Selection, select_services
    from modelctl.chat.session import ChatSession, Reply
    from modelctl.chat.structured import load_format, validate_answer
    from modelctl.chat.tokens import TokenCount, token_report
    from modelctl.errors import (
        AuthError,
        BackendError,
        ModelctlError,
        ModelFileError,
        NotFoundError,
        OfflineError,
        RegistryError,
        TemplateError,
        UsageError,
    )
    from modelctl.gguf import GGUFFile, read_gguf
    from modelctl.refs import parse_ref
    from modelctl.registry.loader import load_registry
    from modelctl.registry.model import Model
    from modelctl.registry.query import ModelFilter, filter_models, search_models
    from modelctl.registry.registry import Registry
    from modelctl.resolver import Resolver, Target
    from modelctl.store.pull import pull
    from modelctl.tasks.select import open_task
    from modelctl.templates.resolve import resolve_template
    from modelctl.templates.types import RenderedPrompt


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'modelctl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
