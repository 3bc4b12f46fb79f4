"""The model registry: entries, loading and layering of TOML files, validation and queries.

    >>> from modelctl.registry import load_registry
    >>> reg = load_registry()
    >>> reg.resolve("llama-2-7b-chat").context_window
    4096
"""

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from modelctl.registry.values import Access, Defaults, Deployment, License, RepoFile

__all__ = [
    "Access", "BUILTIN_REGISTRY", "Defaults", "Deployment", "License", "Model", "ModelFilter",
    "Registry", "RegistrySource", "RepoFile", "SearchHit", "build_model_list", "check_file",
    "filter_models", "get_registry", "load_registry", "registry_layers", "search_models",
    "sort_models", "validate_files",
]


def __getattr__(name: str) -> type:
    # The nested values are imported on first use: start-up is measured.
    if name in ("Access", "Defaults", "Deployment", "License", "RepoFile"):
        from modelctl.registry import values

        value: type = getattr(values, name)
        return value
    raise AttributeError(name)
