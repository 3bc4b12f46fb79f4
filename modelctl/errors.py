"""The one exception hierarchy. The CLI maps each class to a documented exit code.

Every message is written for the person at the terminal: it says what was wrong and where.
"""

from __future__ import annotations

from typing import Any


class ModelctlError(Exception):
    """Base class. `exit_code` is what the CLI exits with; `hint` is an optional second clause."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ModelctlError):
    """Flags or arguments that do not make sense together."""

    exit_code = 2


class RegistryError(ModelctlError):
    """A registry file that cannot be read or does not validate."""

    exit_code = 3

    # `problems` are modelctl.registry.schema.Problem values (a layer above this module).
    def __init__(self, message: str, *, problems: list[Any] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class NotFoundError(ModelctlError):
    """An unknown model, template, deployment or file."""

    exit_code = 4


class ModelFileError(ModelctlError):
    """A local model file that is missing, not GGUF, truncated or unusable."""

    exit_code = 5


class TemplateError(ModelctlError):
    """A conversation that a template cannot render, or an unsafe template."""

    exit_code = 6


class BackendError(ModelctlError):
    """A provider, server or runtime that failed to answer. `status` is the HTTP status where
    there was one; `retryable` says another try (or another deployment) may succeed: a rate
    limit, a server error, a timeout, no connection."""

    exit_code = 7
    status: int | None = None
    retryable = False


class ContextFull(BackendError):
    """A prompt that leaves the model no room to answer in its context window."""


class AuthError(BackendError):
    """A missing or rejected credential. Never carries the credential itself."""

    exit_code = 8


class OfflineError(BackendError):
    """A network operation attempted while offline or unable to connect."""

    exit_code = 9
    retryable = True


# Exit code for Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    0: "success",
    1: "other error",
    2: "usage error (bad flags or arguments)",
    3: "invalid registry",
    4: "not found (model, template, deployment, file)",
    5: "unusable model file",
    6: "template error",
    7: "backend or provider error",
    8: "missing or rejected credentials",
    9: "offline / cannot connect",
    130: "interrupted (Ctrl-C)",
}
