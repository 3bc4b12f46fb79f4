"""Where modelctl keeps its files, and the user's config.toml.

`MODELCTL_HOME` moves everything under one directory (config/, data/, cache/); otherwise the
platform's user directories are used. Nothing is created until something is written.
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from modelctl.errors import ModelctlError, NotFoundError, UsageError
from modelctl.files import describe_mode, read_user_text, unlink_if_link

if TYPE_CHECKING:
    from filelock import FileLock

APP_NAME = "modelctl"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def user_registry(self) -> Path:
        return self.config_dir / "registry.toml"

    @property
    def generated_registry(self) -> Path:
        """The layer `modelctl registry update` writes: between the built-in registry and the user's."""
        return self.data_dir / "registry" / "generated.toml"

    @property
    def keys_file(self) -> Path:
        return self.config_dir / "keys.toml"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def home_problem() -> str | None:
    """What is wrong with MODELCTL_HOME, when it exists but is not a directory (every file under
    it then fails to be read or written); None when it is fine or unset."""

    home = os.environ.get("MODELCTL_HOME")
    if not home:
        return None
    try:
        mode = Path(home).expanduser().stat().st_mode
    except OSError:
        return None
    return None if stat.S_ISDIR(mode) else f"MODELCTL_HOME {home!r} is {describe_mode(mode)}, not a directory"


def offline_requested() -> bool:
    """Whether the user asked for no network (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE` set to
    1/true/yes/on): downloads use what is cached or stop at once (exit 9)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def get_paths() -> Paths:
    home = os.environ.get("MODELCTL_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "data", root / "cache")
    import platformdirs  # noqa: PLC0415 (platformdirs: not on the chat --api-base path)

    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_cache_dir(APP_NAME)),
    )



def hf_home() -> Path:
    """The Hugging Face home, located as `huggingface_hub` locates it but from the environment at
    call time: `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`."""
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def hf_token_path() -> Path:
    """The file `hf auth login` saves its token in: `HF_TOKEN_PATH`, else `$HF_HOME/token`. The
    other saved tokens (`stored_tokens`) lie beside it."""
    path = os.environ.get("HF_TOKEN_PATH")
    return Path(os.path.expandvars(path)).expanduser() if path else hf_home() / "token"

# The largest TOML file read (a registry, config.toml, keys.toml); the built-in registry is ~250 KB.
MAX_TOML_BYTES = 32 * 2**20


# TOML integers are 64-bit: "an integer that cannot be represented losslessly" must be refused.
TOML_INT_RANGE = (-(2**63), 2**63 - 1)
_OUT_OF_RANGE = "an integer out of range (TOML integers are 64-bit)"


class TomlError(ValueError):
    """Why a TOML text was refused: `problem`, and the place in the message; `number` when the
    syntax is right but an integer is out of range."""

    def __init__(self, message: str, problem: str | None = None, *, number: bool = False) -> None:
        super().__init__(message)
        self.problem = problem or message
        self.number = number


def loads_toml(text: str) -> dict[str, Any]:
    """Parse TOML text; every failure is a TomlError: a syntax error (with line and column),
    nesting too deep for the parser, or an integer outside TOML_INT_RANGE (also one too long for
    Python to read at all, more than 4,300 digits: a ValueError from deep inside the parser)."""
    try:
        import tomllib  # noqa: PLC0415 (tomllib: only where TOML is read; Python 3.11+)
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # noqa: PLC0415 (tomli: Python 3.10)
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(str(exc)) from None
    except RecursionError:
        raise TomlError("arrays or tables nested too deeply") from None
    except ValueError:
        raise TomlError(f"{_OUT_OF_RANGE}{_long_number_line(text)}", _OUT_OF_RANGE, number=True) from None
    key = _integer_out_of_range(doc)
    if key is not None:
        raise TomlError(f"{key}: {_OUT_OF_RANGE}", _OUT_OF_RANGE, number=True)
    return doc


def _long_number_line(text: str) -> str:
    """` (at line N)` for the first run of digits too long to be a 64-bit integer."""

    found = re.search(r"[0-9][0-9_]{19,}", text)
    return f" (at line {text.count(chr(10), 0, found.start()) + 1})" if found else ""


def _integer_out_of_range(doc: dict[str, Any]) -> str | None:
    """The dotted key of the first integer in `doc` outside TOML_INT_RANGE, or None."""
    low, high = TOML_INT_RANGE
    pending: list[tuple[str, Any]] = [("", doc)]
    while pending:
        key, value = pending.pop()
        if isinstance(value, dict):  # reversed: the first key is popped first
            pending.extend(reversed([(f"{key}.{k}" if key else k, v) for k, v in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{key}[{i}]", v) for i, v in enumerate(value)]))
        elif isinstance(value, int) and not low <= value <= high:
            return key
    return None


def parse_toml(text: str, where: str, *, error: type[ModelctlError] = ModelctlError) -> dict[str, Any]:
    """Parse TOML text (`loads_toml`); a failure is one `error` naming `where` and the line or key."""
    try:
        return loads_toml(text)
    except TomlError as exc:
        raise error(f"{where}: invalid TOML: {exc}") from None


def load_toml(path: Path, what: str = "file", *, error: type[ModelctlError] = ModelctlError) -> dict[str, Any]:
    """Read and parse a TOML file the user controls (a regular file of at most MAX_TOML_BYTES);
    every failure is one `error` (NotFoundError when it does not exist)."""

    return parse_toml(read_user_text(path, what, limit=MAX_TOML_BYTES, error=error), str(path), error=error)


@lru_cache(maxsize=1)
def _load_user_config(path: str) -> dict[str, Any]:
    try:
        return load_toml(Path(path), "config file")
    except NotFoundError:
        return {}


def user_config() -> dict[str, Any]:
    """The user's config.toml as a dict ({} when absent)."""
    return _load_user_config(str(get_paths().config_file))


def api_base_for(kind: str, given: str | None = None) -> str | None:
    """Where deployments of `kind` are reached instead of their own address: `given` (--api-base),
    else the user's `[api_base]` for that kind (config.toml), else None (the deployment's own
    `api_base`, `endpoint` or `host`; for Ollama then OLLAMA_HOST). Every command that reaches a
    server takes its address through here (`open_backend`, `ollama_host`, the probes)."""
    if given:
        return given
    data, where = user_config(), get_paths().config_file
    table = data.get("api_base", {})
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [api_base] must be a table of URLs by deployment kind")
    url = table.get(kind)
    if url is not None and not isinstance(url, str):
        raise UsageError(f"{where}: api_base.{kind} must be a URL (a string)")
    return url or None


@contextmanager
def locked_update(path: Path) -> Iterator[None]:
    """Hold the lock of `path` for a read-modify-write of it.

    Every process that changes `path` (the keys file, the user registry, the store index) takes
    this lock from before it reads the file until the new file has replaced it, so two modelctl
    commands at once never lose each other's change. The lock files live in `<data_dir>/locks/`,
    not beside the files: the config directory keeps only what its user wrote.
    """
    locks = get_paths().data_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(locks / f"{path.name}.lock"):
        yield


def file_lock(path: Path) -> FileLock:
    """A `filelock.FileLock` on `path` that is never taken through a symbolic link: one planted
    there is removed first (some filelock releases open the name, following a link, and
    truncate what it points to; newer ones refuse it)."""
    from filelock import FileLock  # noqa: PLC0415 (filelock: imported only where used)

    unlink_if_link(path)
    return FileLock(str(path))
