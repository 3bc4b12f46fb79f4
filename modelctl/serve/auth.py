"""The API keys `modelctl serve` accepts: from `--api-key` (labelled key-1, key-2, …) and from a
keys file, one TOML table per key whose name is the key's LABEL, the only name of a key that
history, logs and metrics ever show:

    [keys.alice]
    key_sha256 = "9f86d0…"   # or key = "…" (at least 16 characters); the digest is preferred
    budget_day = 1.00        # USD per UTC day (optional)
    budget_month = 20.00     # USD per UTC month (optional)

Once loaded, a key is held only as its sha256 digest. `Keys.check` compares the digest of the
key a request presents with every known digest in constant time, all of them every time, so
neither the time taken nor the message says how close a guess came or which key it resembled.
No message, repr or exception holds a key: a refused keys file names the file, the label and
the field, never a value.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from modelctl.config import parse_toml
from modelctl.errors import ModelctlError, UsageError
from modelctl.files import check_regular_file, read_user_text
from modelctl.redaction import remember_secret

MIN_KEY_LENGTH = 16
MAX_KEYS_FILE_BYTES = 1 << 20
# A label is what logs, metrics and the history show: a short name without spaces or markup.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_FIELDS = ("key", "key_sha256", "budget_day", "budget_month")
# The label the server logs the requests of this user's own CLI under (its local token, not a key).
LOCAL_LABEL = "local"


class RequestRefused(ModelctlError):
    """A request `serve` refuses before it reaches a model: the HTTP `status`, and the `type`
    and `code` of the OpenAI-shaped error body. The message never holds a key."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None


class KeyRejected(RequestRefused):
    """A missing, malformed or unknown API key."""

    status = 401
    code = "invalid_api_key"


@dataclass(frozen=True)
class ApiKey:
    """A key as the server knows it once checked: its label and budgets (USD; None: no cap)."""

    label: str
    budget_day: float | None = None
    budget_month: float | None = None


def key_digest(secret: str) -> bytes:
    """The sha256 digest of a key (of its UTF-8 bytes)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Keys:
    """The keys a server accepts (none: every request passes; only a loopback bind allows that)."""

    def __init__(self, keys: Sequence[tuple[bytes, ApiKey]] = ()) -> None:
        self._keys = tuple(keys)

    @classmethod
    def load(cls, flag_keys: Sequence[str], keys_file: Path | None) -> "Keys":
        """The keys given as flags (`key-1`, `key-2`, … in order) and those of `keys_file`.
        Anything wrong is one UsageError naming the flag or the file, the label and the field;
        a keys file absent is a NotFoundError."""
        loaded = [_flag_key(i, value) for i, value in enumerate(flag_keys, 1)]
        if keys_file is not None:
            loaded += _read_keys_file(keys_file)
        _refuse_twins(loaded)
        return cls([(digest, key) for digest, key, _ in loaded])

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def labels(self) -> list[str]:
        return [key.label for _, key in self._keys]

    @property
    def entries(self) -> list[ApiKey]:
        """The keys as the server knows them (labels and budgets; never a key)."""
        return [key for _, key in self._keys]

    def __repr__(self) -> str:
        return f"Keys(labels={self.labels!r})"

    def check(self, authorization: str | None, x_api_key: str | None = None) -> ApiKey | None:
        """The key a request presents (`Authorization: Bearer KEY`, else Anthropic's `x-api-key`
        header): None when the server has no keys, else its ApiKey; KeyRejected (401) when it
        is missing, malformed or not one of the keys."""
        if not self._keys:
            return None
        digest = key_digest(_presented(authorization, x_api_key))
        found: ApiKey | None = None
        for known, key in self._keys:  # every key, without stopping at a match
            if hmac.compare_digest(known, digest):
                found = key
        if found is None:
            raise KeyRejected("invalid API key")
        return found


def _presented(authorization: str | None, x_api_key: str | None) -> str:
    """The key in the request's headers (Authorization wins when both are there)."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise KeyRejected("the Authorization header is not 'Bearer KEY'")
        return token.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    raise KeyRejected("no API key: send the header 'Authorization: Bearer KEY'")


# A loaded key: its digest, the ApiKey, and where it was given (for messages: `--api-key key-1`).
_Loaded = tuple[bytes, ApiKey, str]


def _flag_key(number: int, value: str) -> _Loaded:
    label = f"key-{number}"
    where = f"--api-key {label}"
    _check_key_text(value, where)
    remember_secret(value)
    return key_digest(value), ApiKey(label), where


def _check_key_text(value: object, where: str) -> None:
    """A key given in plain: printable ASCII without spaces, at least MIN_KEY_LENGTH long (what
    an HTTP header carries as it is, and too long to guess)."""
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected the key as a string")
    if not value:
        raise UsageError(f"{where}: the key is empty")
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise UsageError(f"{where}: a key is printable ASCII without spaces; the value given is not")
    if len(value) < MIN_KEY_LENGTH:
        raise UsageError(f"{where}: the key is {len(value)} characters; a key is at least {MIN_KEY_LENGTH}")


def _refuse_twins(loaded: Sequence[_Loaded]) -> None:
    """Each label names one key, and each key has one label (its spend and its logs are one)."""
    labels: dict[str, str] = {}
    digests: dict[bytes, str] = {}
    for digest, key, where in loaded:
        if key.label in labels:
            raise UsageError(f"the label {key.label!r} is given twice ({labels[key.label]}, {where})")
        if digest in digests:
            raise UsageError(f"{digests[digest]} and {where} are the same key", hint="give each label its own key")
        labels[key.label], digests[digest] = where, where


def _read_keys_file(path: Path) -> list[_Loaded]:
    mode = check_regular_file(path, "keys file", error=UsageError).st_mode
    if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"keys file {str(path)!r} is open to other users (mode {stat.S_IMODE(mode):04o})",
                         hint=f"run: chmod 600 {path}")
    text = read_user_text(path, "keys file", limit=MAX_KEYS_FILE_BYTES, error=UsageError)
    doc = parse_toml(text, str(path), error=UsageError)  # the parser's messages quote no value
    for name in doc:
        if name != "keys":
            raise UsageError(f"{path}: unknown field {name!r}; the file holds [keys.LABEL] tables")
    tables = doc.get("keys")
    if not isinstance(tables, dict) or not tables:
        raise UsageError(f"{path}: no keys", hint="add a table [keys.LABEL] with key_sha256 = \"…\" for each key")
    return [_file_key(path, label, table) for label, table in tables.items()]


def _file_key(path: Path, label: str, table: Any) -> _Loaded:
    where = f"{path}: keys.{label}"
    if not _LABEL.fullmatch(label):
        raise UsageError(f"{path}: the label {label!r} is not a name of 1 to 64 letters, digits, '.', '_', '@', '+' or '-'")
    if label == LOCAL_LABEL:
        raise UsageError(f"{path}: the label {label!r} is the server's name for this user's own CLI; choose another")
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table ([keys.{label}] with key_sha256 or key)")
    for name in table:
        if name not in _FIELDS:
            raise UsageError(f"{where}: unknown field {name!r}; expected {', '.join(_FIELDS)}")
    key = ApiKey(label, _budget(table, "budget_day", where), _budget(table, "budget_month", where))
    return _file_digest(table, where), key, f"[keys.{label}] in {path}"


def _file_digest(table: dict[str, Any], where: str) -> bytes:
    if ("key" in table) == ("key_sha256" in table):
        raise UsageError(f"{where}: give one of key_sha256 and key")
    if "key" in table:
        _check_key_text(table["key"], f"{where}.key")
        remember_secret(table["key"])
        return key_digest(table["key"])
    value = table["key_sha256"]
    if not isinstance(value, str) or not _HEX_DIGEST.fullmatch(value):
        raise UsageError(f"{where}.key_sha256: expected the 64 hexadecimal digits of the key's sha256")
    return bytes.fromhex(value)


def _budget(table: dict[str, Any], name: str, where: str) -> float | None:
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{where}.{name}: expected a finite number of USD, 0 or more")
    return float(value)
