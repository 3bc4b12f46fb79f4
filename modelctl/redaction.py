"""Secrets: every credential modelctl can know of, as one set, and the one redaction that
everything it writes or prints passes through.

The set holds
- keys given or read while running (`--api-key`, a key a backend looked up, `/set api_key …`);
- the environment: every provider's key variables, `AZURE_AI_TOKEN`, each `key_env` a loaded
  registry names, any variable named like a credential (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, …)
  whose value looks like one, and the credentials written into addresses held by variables
  (`OLLAMA_HOST`, `HF_ENDPOINT`, `AZURE_OPENAI_ENDPOINT`, proxies, …);
- the keys file (every provider's key), the Hugging Face token files, and config.toml (values
  under credential names, credentials in addresses).
It is collected on first use and again only when one of its sources changed (the environment, or
one of those files), so a command that never redacts anything reads none of them.

`redact(text)` hides, in any text, the user info and the credential query parameters of every
URL, whatever characters they hold (a password may hold `(`, `'`, `<`, `@`, `#`, `/`, …: the user
info runs to the last `@` before white space), then every secret of the set. `redact_data(value)`
does the same inside JSON-like data and hides, whole, the value of any key named like a credential
(`api_key`, `Authorization`, `password`, …). Each sink (stdout, stderr, `--debug`, `--json`, the
history database, exports, the typed-line history, config listings, error messages) uses one of
the two. `refuse_credentials` keeps credentials out of config.toml, whatever route they take.

Literal secrets shorter than MIN_SECRET characters are not searched for in text (they would
hide every "abc"); short credentials written in an address are still hidden there, by position.

Standard library only: importing this costs nothing.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote, unquote_plus

from modelctl.config import get_paths, hf_token_path, user_config
from modelctl.errors import ModelctlError, UsageError
from modelctl.files import read_kept_text
from modelctl.keyfile import PROVIDERS, read_keys

REDACTED = "***"
# Shortest secret hidden wherever it appears in text; `keys set` stores nothing shorter than
# MIN_KEY, so every stored key is hidden. A value only guessed to be a key (from its variable's
# name) must also look like one, and be at least MIN_KEY long.
MIN_SECRET = 6
MIN_KEY = 8

# --- names of credentials ------------------------------------------------------------------------

# A key, option, header, parameter or variable whose name says it holds a credential (compared in
# lower case, '-' and ' ' read as '_'). A word list, not a substring test: `key_env`,
# `max_tokens`, `eos_token` and `tokenizer` are no such names.
_CREDENTIAL_NAME = re.compile(
    r"(?:.*_)?(?:key|api_?key|password|passwd|passphrase|secret|credentials?|authorization|signature|cookie"
    r"|(?:access|auth|api|bearer|session|refresh|id|hf|oauth|personal_access|security)_?token)"
    r"|token|auth|sig|pat|pass|bearer"
    r"|.*(?:api_?key|secret|passw(?:or)?d|credential|authorization).*")
_NOT_CREDENTIALS = frozenset({"key_env", "sort_key", "primary_key", "foreign_key"})
# A reference to an environment variable, `${NAME}`, read where the value is used (an MCP
# server's `env` and `headers` in config.toml): the variable holds the credential, not the file.
ENV_REFERENCE = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"


def credential_name(name: object) -> bool:
    """Whether a key, option, header, parameter or variable called `name` holds a credential."""
    if not isinstance(name, str) or not name:
        return False
    low = unquote_plus(name).strip().lower().replace("-", "_").replace(" ", "_")
    return low not in _NOT_CREDENTIALS and bool(_CREDENTIAL_NAME.fullmatch(low))


# --- URLs ----------------------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SPACE = re.compile(r"\s")
# A query or fragment parameter `name=value`; the value runs to the next `&` that starts another
# `name=` (a raw `&`, `#` or `;` inside a credential stays hidden with it).
_PARAM = re.compile(r"(?P<sep>[?&#;])(?P<name>[^=&#?;\s]+)=(?P<value>(?:[^&]|&(?![^&=]*=))*)")


def split_scheme(url: str) -> tuple[str, str]:
    """(`scheme://` or "", the address after it)."""
    m = _SCHEME.match(url)
    return (url[:m.end()], url[m.end():]) if m else ("", url)


def _split_userinfo(address: str) -> tuple[str | None, str]:
    """(user info, the rest) of an address written after `scheme://` (or without a scheme): the
    user info runs to the LAST `@`, so a password holding `@`, `/`, `?` or `#` is all of it."""
    at = address.rfind("@")
    return (address[:at], address[at + 1:]) if at >= 0 else (None, address)


def _hide_params(rest: str) -> str:
    return _PARAM.sub(lambda m: f"{m['sep']}{m['name']}={REDACTED}" if m["value"] and credential_name(m["name"])
                      else m.group(0), rest)


def redact_address(address: str) -> str:
    """An address (without its `scheme://`) with its user info and credential parameters hidden."""
    userinfo, rest = _split_userinfo(address)
    return (f"{REDACTED}@" if userinfo is not None else "") + _hide_params(rest)


def strip_credentials(url: str) -> str:
    """The URL without its user info and credential parameters: what may be written into a file."""
    scheme, address = split_scheme(url)
    rest = _split_userinfo(address)[1]
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, sep = rest[:cut], rest[cut:cut + 1]
    kept = _PARAM.sub(lambda m: "" if credential_name(m["name"]) else m.group(0), "&" + rest[cut + 1:])
    return scheme + head + (sep + kept[1:] if sep and kept[1:] else "")


_CLOSERS = {"(": ")", "[": "]", "<": ">", "{": "}", "'": "'", '"': '"', "`": "`"}


def _url_end(text: str, start: int, end: int) -> int:
    """Where the URL at text[start:end] (up to white space) ends: before the punctuation that
    ends a clause, and before the bracket or quote that closes one opened just before it."""
    end = start + len(text[start:end].rstrip(".,;:!?"))
    closer = _CLOSERS.get(text[start - 1]) if start else None
    return end - 1 if closer and end > start and text[end - 1] == closer else end


# A scheme just before "://" (at most 64 characters are looked back at).
_SCHEME_BEFORE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")


def redact_urls(text: str) -> str:
    """`text` with the credentials of every `scheme://…` URL in it hidden (a URL runs to white
    space: the user info to the last `@`); the rest as written. Long text costs a substring
    search for "://", not a regular expression tried at every letter."""
    parts, pos, find = [], 0, 0
    while (colon := text.find("://", find)) >= 0:
        find = colon + 3
        scheme = _SCHEME_BEFORE.search(text, max(pos, colon - 64), colon)
        if scheme is None:
            continue
        space = _SPACE.search(text, find)
        end = _url_end(text, scheme.start(), space.start() if space else len(text))
        parts += [text[pos:find], redact_address(text[find:end])]
        pos = find = max(end, find)
    return "".join(parts) + text[pos:] if parts else text


_QUOTED = r"""(['"])(.+?)\1"""  # a pattern used now and then: `re` compiles it on first use


def parser_detail(url: str, exc: Exception) -> str:
    """A URL parser's message about `url` as the end of a message, " (…)", with what it quotes
    from the user info hidden (`Port could not be cast to integer value as 'pw'`)."""
    userinfo = _split_userinfo(split_scheme(url)[1])[0] or ""
    detail = re.sub(_QUOTED, lambda m: f"{m[1]}{REDACTED}{m[1]}" if m[2] in userinfo else m[0], str(exc))
    return f" ({redact(detail)})"


def url_credentials(url: str) -> list[str]:
    """The secrets written into an address (with or without a scheme): the password of its user
    info (the whole user info when it has no password: a token) and the values of credential
    parameters, each as written and decoded."""
    userinfo, rest = _split_userinfo(split_scheme(url)[1])
    found = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    found += [p["value"] for p in _PARAM.finditer(rest) if credential_name(p["name"])]
    return [form for secret in found if secret for form in dict.fromkeys((secret, unquote(secret), unquote_plus(secret)))]


# --- the set -------------------------------------------------------------------------------------

_given: dict[str, str] = {}  # secret -> what replaces it, from remember_secret()
# Whose (a loaded registry) -> a function that gives the variables it reads keys from (its
# key_env names) and the addresses it holds (api_base, endpoint, host).
_sources: dict[str, Callable[[], tuple[Iterable[str], Iterable[str]]]] = {}
_collected: tuple[Any, dict[str, str]] | None = None  # (the sources' fingerprint, what they held)
# (the environment, the files it names): `_files()` costs more than the rest of a redaction.
_named: tuple[Any, dict[str, str]] | None = None
_collecting = False
# Held while the set is collected (re-entered by the collecting thread only: `_collecting`).
_collect_lock = threading.RLock()
# The replacements, longest first, for (the collected secrets, how many were given).
_ordered: tuple[dict[str, str], int, list[tuple[str, str]]] | None = None

# Variables holding keys besides the providers' own (modelctl.keyfile.PROVIDERS).
EXTRA_KEY_VARIABLES = ("OLLAMA_API_KEY", "AZURE_AI_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")
# A variable named like this holds a credential (checked on the upper-cased name).
_KEY_VARIABLE = re.compile(r"(?:.*_)?(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PAT)(?:_.*)?"
                           r"|.*(?:API_?KEY|SECRET|PASSWORD|CREDENTIAL).*")
# A variable named like this holds an address (which may carry credentials).
_ADDRESS_VARIABLE = re.compile(r".*(?:HOST|ENDPOINT|URL|URI|BASE|PROXY|ADDR|ADDRESS|SERVER)$")


def remember_secret(value: str | None) -> None:
    """Have `redact()` hide `value` from now on (a key from anywhere: flags, env, files)."""
    if value and len(value) >= MIN_SECRET:
        _given[value] = REDACTED


def remember_url_credentials(url: str) -> None:
    """Have `redact()` hide the credentials written into `url` wherever they appear later: the
    long ones anywhere, and the user info (of any length) wherever it is followed by `@`."""
    _given.update(_address_secrets(url))


def add_source(name: str, source: Callable[[], tuple[Iterable[str], Iterable[str]]]) -> None:
    """Secrets of `name` (a loaded registry): `source()` gives (the variables it reads keys from,
    the addresses it holds), asked only when something is redacted. A later call for the same
    name replaces the earlier one."""
    _sources[name] = source


def _source_secrets() -> tuple[set[str], list[tuple[str, str]]]:
    """(variables holding keys, (secret, replacement) from addresses) of the added sources."""
    variables: set[str] = set()
    found: list[tuple[str, str]] = []
    for source in list(_sources.values()):
        try:
            names, addresses = source()
            variables.update(v for v in names if v)
            found += [pair for url in addresses if url for pair in _address_secrets(url)]
        except Exception:  # a source that cannot say (a registry being replaced): guessed names still count
            pass
    return variables, found


def _looks_like_key(value: str) -> bool:
    """A value guessed to be a key from its variable's name: one word of letters and digits mixed,
    as keys are (not a path, a number, a word or a variable's name), long enough."""
    return (len(value) >= MIN_KEY and not any(c.isspace() for c in value) and value[0] not in "/~."
            and any(c.isdigit() for c in value) and any(c.isalpha() for c in value))


def _environ() -> tuple[tuple[Any, Any], ...]:
    """The environment as it stands, cheaply: compared with the last one to know it changed."""
    data = getattr(os.environ, "_data", None)
    return tuple(data.items()) if isinstance(data, dict) else tuple(os.environ.items())


def _env_secrets(named: set[str]) -> Iterator[tuple[str, str]]:
    """The keys in the environment: in the variables `named`, in any variable named like a key
    holding what looks like one, and in addresses."""

    named = named | {v for p in PROVIDERS.values() for v in p.env} | set(EXTRA_KEY_VARIABLES)
    for name, value in os.environ.items():
        value = value.strip()
        upper = name.upper()
        if name in named and len(value) >= MIN_SECRET or _KEY_VARIABLE.fullmatch(upper) and _looks_like_key(value):
            yield value, REDACTED
        if ("@" in value or "?" in value) and ("://" in value or _ADDRESS_VARIABLE.fullmatch(upper)):
            yield from _address_secrets(value)


def _address_secrets(url: str) -> Iterator[tuple[str, str]]:
    """(secret, what replaces it) for the credentials written into `url`."""
    for secret in url_credentials(url):
        if len(secret) >= MIN_SECRET:
            yield secret, REDACTED
    userinfo, _ = _split_userinfo(split_scheme(url)[1])
    if userinfo:
        yield f"{userinfo}@", f"{REDACTED}@"


def _files() -> dict[str, str]:
    """The files secrets are read from, by what they are: the keys file, config.toml, and the
    Hugging Face token files."""

    paths, token = get_paths(), hf_token_path()
    return {"keys": str(paths.keys_file), "config": str(paths.config_file),
            "token": str(token), "stored_tokens": str(token.parent / "stored_tokens")}


def _files_named_by(environ: tuple[tuple[Any, Any], ...]) -> dict[str, str]:
    """`_files()`, found again only when the environment (which names them all) changed."""
    global _named
    if _named is None or _named[0] != environ:
        _named = (environ, _files())
    return _named[1]


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _file_secrets(files: dict[str, str]) -> Iterator[tuple[str, str]]:
    try:
        for value in read_keys(quiet=True).values():
            yield value, REDACTED
    except ModelctlError:  # a broken keys file: its own command says so
        pass
    try:
        if _may_name_credentials(files["config"]):
            yield from _data_secrets(user_config())
    except ModelctlError:
        pass
    for name in ("token", "stored_tokens"):
        yield from _token_file(files[name])


# Words without which config.toml holds no credential (no name of one, no address with one).
_CREDENTIAL_HINTS = ("@", "?", "key", "token", "secret", "pass", "credential", "auth", "cookie", "sig", "bearer")


def _may_name_credentials(path: str) -> bool:
    """Whether the TOML file at `path` may hold a credential: parsed only then (most hold
    `[chat]` defaults, and parsing costs a TOML parser's import)."""

    text = read_kept_text(path, limit=1 << 25)
    return text is not None and any(hint in text.lower() for hint in _CREDENTIAL_HINTS)


def _token_file(path: str) -> Iterator[tuple[str, str]]:
    """The tokens in a Hugging Face token file (`token`: the token; `stored_tokens`: INI lines
    `hf_token = …`); nothing but a small regular file is read."""

    for line in (read_kept_text(path, limit=1 << 16) or "").splitlines():
        name, eq, value = line.partition("=")
        value = (value if eq else name).strip()
        if (not eq or credential_name(name)) and len(value) >= MIN_SECRET:
            yield value, REDACTED


def _data_secrets(data: Any, credential: bool = False) -> Iterator[tuple[str, str]]:
    """The secrets JSON-like data (config.toml) holds: values under credential names (but those
    naming variables, `${TOKEN}`), and the credentials written into addresses."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _data_secrets(value, credential or credential_name(key))
    elif isinstance(data, list):
        for value in data:
            yield from _data_secrets(value, credential)
    elif isinstance(data, str):
        if credential and len(data.strip()) >= MIN_SECRET and not re.search(ENV_REFERENCE, data):
            yield data.strip(), REDACTED
        if "@" in data or "?" in data:
            for word in data.split():
                if "://" in word:
                    yield from _address_secrets(word)


def _collect() -> dict[str, str]:
    """The secrets of the environment and the files, collected again when any changed. One
    thread collects at a time: another one redacting meanwhile (a probe's thread) waits for the
    whole set instead of taking what is known so far."""
    with _collect_lock:
        return _collect_now()


def _collect_now() -> dict[str, str]:
    global _collected, _collecting
    if _collecting:  # reading a source (in this thread) asked for redaction: what is known so far
        return _collected[1] if _collected else {}
    environ = _environ()
    files = _files_named_by(environ)
    fingerprint = (environ, tuple(_stamp(p) for p in files.values()), tuple(_sources.items()))
    if _collected is not None and _collected[0] == fingerprint:
        return _collected[1]
    _collecting = True
    try:
        variables, found_in_sources = _source_secrets()
        found = dict(_env_secrets(variables))
        found.update(found_in_sources)
        found.update(_file_secrets(files))
    finally:
        _collecting = False
    _collected = (fingerprint, found)
    return found


def known_secrets() -> set[str]:
    """Every secret modelctl knows of (those hidden wherever they appear in text)."""
    return {s for s in (*_collect(), *_given) if len(s) >= MIN_SECRET or s.endswith("@")}


def _replacements() -> list[tuple[str, str]]:
    """(secret, what replaces it), longest first (a key that holds another is replaced whole)."""
    global _ordered
    collected = _collect()
    if _ordered is None or _ordered[0] is not collected or _ordered[1] != len(_given):
        table = {**collected, **_given}
        _ordered = (collected, len(_given), sorted(table.items(), key=lambda item: len(item[0]), reverse=True))
    return _ordered[2]


# --- redaction -----------------------------------------------------------------------------------


def redactor() -> Callable[[str], str]:
    """`redact` with the secrets known now: for many strings at once (a table's cells), which
    then cost a few substring tests each."""
    replacements = _replacements()

    def hide(text: str) -> str:
        if not text:
            return text
        text = redact_urls(text)
        for secret, shown in replacements:
            if secret in text:
                text = text.replace(secret, shown)
        return text

    return hide


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it, and every secret modelctl knows, hidden."""
    return redactor()(text) if text else text


def redact_data(data: Any, *, name: object = None) -> Any:
    """JSON-like `data` (called `name`, when it is a dict's value) with every string redacted and
    the value of a key named like a credential hidden whole (a table or list under such a key is
    walked: a JSON schema may have a property called `password`); tuples become lists."""
    return _redact_data(data, name, redactor())


def _redact_data(data: Any, name: object, hide: Callable[[str], str]) -> Any:
    if isinstance(data, (str, int, float)) and not isinstance(data, bool) and data != "" and credential_name(name):
        return REDACTED
    if isinstance(data, str):
        return hide(data)
    if isinstance(data, dict):
        return {hide(k) if isinstance(k, str) else k: _redact_data(v, k, hide) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redact_data(v, None, hide) for v in data]
    return data


# A URL in JSON text that has a user info or a parameter (JSON escapes stepped over): the only
# kind that may hold a credential.
_JSON_URL = re.compile(r'://((?:[^"\\\s@=]|\\.)*[@=](?:[^"\\\s]|\\.)*)')


def may_hold_secrets(json_text: str) -> bool:
    """Whether JSON text may hold a secret `redact()` hides, so that its data is walked only
    then (most records hold none, and a 10,000-model listing would pay for the walk): a URL with
    a user info or a credential parameter, or a known secret. (Values under credential names are
    hidden by `redact_data` where data with free-form keys is shown: config, aliases, history.)"""
    for m in _JSON_URL.finditer(json_text):
        if "@" in m[1] or redact_address(m[1]) != m[1]:
            return True
    return any(secret in json_text or not secret.isprintable() or '"' in secret or "\\" in secret
               for secret in known_secrets())


def unchanged_by_redaction(texts: Iterable[str]) -> bool:
    """Whether `redact()` leaves each of many texts (a table's cells) as it is: tested on all of
    them at once, so that a table without a secret costs one pass, not one per cell."""
    joined = "\n".join(texts)
    return redact(joined) == joined


# Text shaped like a credential: a scheme and a token (`Bearer …`, `Basic …`), or a token in a
# well-known key format (OpenAI/Anthropic sk-, Hugging Face hf_, Google AIza, GitHub, Slack, AWS,
# JWTs). Patterns only needed now and then are left as text: `re` compiles (and caches) them on
# first use, not at every start-up.
_AUTH_VALUE = r"(?i)\b(?:bearer|basic|token|digest)\s+(?P<token>[A-Za-z0-9._~+/=-]{8,})"
_KEY_FORMATS = (r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{30,}"
                r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
                r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})")


def _token_like(token: str) -> bool:
    """A word after `Bearer`/`Basic` that is a token, not prose (`Basic principles`)."""
    return any(c.isdigit() or c in "=+/_" for c in token) or any(c.isupper() for c in token[1:])


def credential_in_text(text: str) -> str | None:
    """What in `text` is a credential (a known key, an address's user info or credential
    parameter, an auth header value, a key format), or None."""
    if redact_urls(text) != text:
        return "an address with a user name or password, or a key, written into it"
    if redact(text) != text:
        return "an API key modelctl knows"
    if any(_token_like(m["token"]) for m in re.finditer(_AUTH_VALUE, text)):
        return "an authorization value (a scheme and a token)"
    if re.search(_KEY_FORMATS, text):
        return "an API key"
    return None


def credential_problem(key: str, value: Any) -> str | None:
    """Why `value`, stored under the dotted `key`, would put a credential into a file, or None:
    a key named like a credential, or a value (a string, a JSON text, a table, a list) holding
    one. A value that names environment variables (`${TOKEN}`) in place of its secret holds none."""
    last = key.rsplit(".", 1)[-1].strip('"')
    if isinstance(value, str) and "${" in value and re.search(ENV_REFERENCE, value):
        # `${GITHUB_TOKEN}`, `Bearer ${TOKEN}`: the variable holds the credential, not the file;
        # what is written around the references must hold none.
        what = credential_in_text(re.sub(ENV_REFERENCE, "", value))
        return f"{key} holds {what}" if what else None
    if credential_name(last) and value not in (None, "", [], {}) and not isinstance(value, bool):
        return f"{key} names a credential"
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := credential_problem(f"{key}.{k}", v))), None)
    if isinstance(value, (list, tuple)):
        return next((p for v in value if (p := credential_problem(key, v))), None)
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "[") and len(value) < 1_000_000:
            try:
                return credential_problem(key, json.loads(value))
            except (ValueError, RecursionError):
                pass
        what = credential_in_text(value)
        return f"{key} holds {what}" if what else None
    return None


def refuse_credentials(key: str, value: Any, *, where: str = "config.toml") -> None:
    """A UsageError when storing `value` under `key` would put a credential into `where`."""
    problem = credential_problem(key, value)
    if problem:
        raise UsageError(f"{redact(problem)}; {where} keeps no credentials",
                         hint="keep keys with `modelctl keys set PROVIDER` or in an environment variable; "
                              "give addresses without passwords")


# Text that may hold a credential: a word that names one, a URL with a password, a known key or
# anything shaped like one, or any long run of letters and digits mixed, as keys are.
_SECRET_HINTS = (
    r"(?i)api[_-]?key|apikey|(?<![a-z])(token|secret)(?![a-z])|passw(or)?d|bearer|authorization|credential"
    r"|(?=[A-Za-z0-9_\-]{32,})(?=\S*\d)(?=\S*[A-Za-z])[A-Za-z0-9_\-]{32,}"
)


def looks_like_secret(text: str) -> bool:
    """Whether `text` (a line typed at the chat prompt, for one) may hold a credential: one
    modelctl knows, or anything shaped like one. Such text is kept out of files."""
    return bool(re.search(_SECRET_HINTS, text) or re.search(_KEY_FORMATS, text)) or redact(text) != text
