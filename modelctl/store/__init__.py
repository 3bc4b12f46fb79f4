"""Local models: GGUF metadata and checks, and models shipped in Python packages."""

from modelctl.store.default_model import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_PACKAGE,
    default_model_path,
    package_model_path,
)
from modelctl.store.gguf import GGUFFile, TensorInfo, check_gguf, read_gguf, read_metadata

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_PACKAGE",
    "GGUFFile",
    "TensorInfo",
    "check_gguf",
    "default_model_path",
    "package_model_path",
    "read_gguf",
    "read_metadata",
]

# The model store (pulling, the local index, removal) imports its heavy parts inside functions.
from modelctl.store.installed import InstalledModel, installed_models  # noqa: E402
from modelctl.store.locate import find_import, locate  # noqa: E402

__all__ += ["InstalledModel", "find_import", "installed_models", "locate"]
