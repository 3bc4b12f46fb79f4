"""Backends: one module per deployment kind, all behind the small protocol in `base`.

Backend modules import their provider's package lazily; importing this package costs nothing.
"""

from modelctl.backends.base import (
    FINISH_INTERRUPTED,
    FINISH_LENGTH,
    FINISH_STOP,
    NUMBER_PARAMS,
    PARAM_NAMES,
    Backend,
    BaseBackend,
    Chunk,
    GenerationParams,
    LocalBackend,
    Message,
    ResponseFormat,
    Timings,
    Usage,
    collect,
    is_local,
    template_name,
)

__all__ = [
    "FINISH_INTERRUPTED",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "NUMBER_PARAMS",
    "PARAM_NAMES",
    "Backend",
    "BaseBackend",
    "Chunk",
    "GenerationParams",
    "LocalBackend",
    "Message",
    "ResponseFormat",
    "Timings",
    "Usage",
    "collect",
    "is_local",
    "template_name",
]
