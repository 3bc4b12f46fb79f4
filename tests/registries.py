"""Small registry files for tests, written with tomli_w from plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL_KINDS = ("llama.cpp", "ollama")


def model(model_id: str, *deployments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid `[[models]]` table: test defaults for every required key, `fields` over them.
    `access.local_capable` follows the deployments unless `fields` gives `access`."""
    local = any(d["kind"] in LOCAL_KINDS for d in deployments)
    entry: dict[str, Any] = {
        "id": model_id,
        "name": model_id,
        "provider": "Test",
        "category": "foundation",
        "tasks": ["completion"],
        "license": {"name": "MIT", "open_weights": True},
        "access": {"free_tier": True, "local_capable": local},
    }
    entry.update(fields)
    entry["deployments"] = list(deployments)
    return entry


def write_registry(path: Path | str, *models: dict[str, Any]) -> Path:
    """Write `models` (tables from `model()`) as a registry file; returns its path."""
    import tomli_w

    path = Path(path)
    path.write_bytes(tomli_w.dumps({"schema_version": 1, "models": list(models)}).encode())
    return path
