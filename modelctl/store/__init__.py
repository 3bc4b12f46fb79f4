"""Local models: models shipped in Python packages, pulling, the local index, removal and disk
usage. GGUF headers are read by `modelctl.gguf`, below the store and the backends.

A function that looks a model name up takes the registry as the keyword argument `registry`: a
`Registry`, a function returning one (called only when a name must be looked up), or None for
`load_registry()` (`modelctl.registry.RegistrySource`). Notes and progress go to the callback
(`note`) and the `PullProgress` its caller passes; nothing here imports the CLI.
"""

from modelctl.store.default_model import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_PACKAGE,
    default_model_path,
    package_model_path,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_PACKAGE",
    "default_model_path",
    "package_model_path",
]

# The model store (pulling, the local index, removal) imports its heavy parts inside functions.
from modelctl.store.installed import InstalledModel, installed_models  # noqa: E402
from modelctl.store.locate import find_import, locate  # noqa: E402

__all__ += ["InstalledModel", "find_import", "installed_models", "locate"]
