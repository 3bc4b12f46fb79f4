"""Local models: GGUF metadata and checks, and models shipped in Python packages."""

from modelctl.store.gguf import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_PACKAGE,
    GGUFFile,
    TensorInfo,
    check_gguf,
    default_model_path,
    package_model_path,
    read_gguf,
    read_metadata,
)

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
