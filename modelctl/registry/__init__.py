"""The model registry: entries, loading and layering of TOML files, validation and queries.

    >>> from modelctl.registry import load_registry
    >>> reg = load_registry()
    >>> reg.resolve("llama-2-7b-chat").context_window
    4096

Each name below is imported from its module on first use: a command that needs one module of the
package (a backend building a `Deployment` for `chat --api-base`) does not pay for the loader, the
queries and the Registry (about 2 ms of start-up, measured; see docs/architecture.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Public name -> the module under modelctl.registry that defines it.
_NAMES = {
    "BUILTIN_REGISTRY": "loader",
    "RegistrySource": "loader",
    "build_model_list": "loader",
    "check_file": "loader",
    "get_registry": "loader",
    "load_registry": "loader",
    "registry_layers": "loader",
    "validate_files": "loader",
    "Model": "model",
    "ModelFilter": "query",
    "SearchHit": "query",
    "filter_models": "query",
    "search_models": "query",
    "sort_models": "query",
    "Registry": "registry",
    "Access": "values",
    "Defaults": "values",
    "Deployment": "values",
    "License": "values",
    "RepoFile": "values",
}

__all__ = [
    "Access", "BUILTIN_REGISTRY", "Defaults", "Deployment", "License", "Model", "ModelFilter",
    "Registry", "RegistrySource", "RepoFile", "SearchHit", "build_model_list", "check_file",
    "filter_models", "get_registry", "load_registry", "registry_layers", "search_models",
    "sort_models", "validate_files",
]

if TYPE_CHECKING:
    from modelctl.registry.loader import (
        BUILTIN_REGISTRY,
        RegistrySource,
        build_model_list,
        check_file,
        get_registry,
        load_registry,
        registry_layers,
        validate_files,
    )
    from modelctl.registry.model import Model
    from modelctl.registry.query import ModelFilter, SearchHit, filter_models, search_models, sort_models
    from modelctl.registry.registry import Registry
    from modelctl.registry.values import Access, Defaults, Deployment, License, RepoFile


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(_NAMES)
