"""Per-invocation state shared by commands: the registry, loaded once and only when needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelctl.registry import Registry

_registry_path: str | None = None
_registry: "Registry | None" = None


def set_registry_path(path: str | None) -> None:
    global _registry_path, _registry
    _registry_path = path
    _registry = None


def registry_path() -> str | None:
    """The extra registry file named by --registry / MODELCTL_REGISTRY, if any."""
    return _registry_path


def get_registry() -> "Registry":
    """The merged registry (built-in < user < --registry), loaded on first use."""
    global _registry
    if _registry is None:
        from modelctl.registry import load_registry  # noqa: PLC0415 (modelctl.registry: not on the --help path)

        _registry = load_registry(_registry_path)
    return _registry
