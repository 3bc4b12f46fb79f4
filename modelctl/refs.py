"""What a model name says, read once: `-m TEXT` (and any other place a model is named) becomes one
`ModelRef`, without the network, the registry or the file system.

    parse_ref("auto")                    -> Auto()
    parse_ref(None)                      -> Default()            the [chat] model, else the task's default
    parse_ref("./x.gguf"), "~/m.gguf"    -> FileRef(path)        a path written as one
    parse_ref("hf:Qwen/Q-GGUF:Q4_K_M")   -> HubRef(repo, quant)  also hf.co/…, huggingface.co/…
    parse_ref("m", api_base=URL)         -> Endpoint(URL, "m")   a name the server at URL knows
    parse_ref("gemma-3-270m")            -> Name(text)           everything else

A `Name` is looked up by the resolver (`modelctl.resolver`) through one ordered list: a user
alias, a file in the working directory, the registry, an imported file, the Hugging Face cache,
the models directory, and last an Ollama server, only for a name that carries an Ollama tag
(`llama3.2:1b`). This module only says what a name could be (`Name.could_be_file`,
`Name.ollama_tag`); it never decides what it is.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from modelctl.errors import UsageError

AUTO = "auto"
# What starts a path as written on a command line; a name never starts so.
_PATH_STARTS = ("/", "./", "../", "~", ".\\", "..\\")
_HUB_PREFIXES = ("hf:", "hf.co/", "huggingface.co/", "https://huggingface.co/")
_HUB_REF = re.compile(r"(?:hf:|hf\.co/|huggingface\.co/|https://huggingface\.co/)([^:\s]+?)(?::([^:/\s]+))?")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Ollama's model names: [namespace/]name:tag (a name without a tag is never sent to a server).
_OLLAMA_TAG = re.compile(r"[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)?:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Auto:
    """`-m auto`: the selector chooses a service for the prompt."""

    text: str = AUTO


@dataclass(frozen=True)
class Default:
    """No `-m`: the user's `[chat] model`, else the default model of the task."""

    text: str = ""


@dataclass(frozen=True)
class FileRef:
    """A GGUF file named by a path (`/…`, `./…`, `../…`, `~/…`), `~` expanded."""

    text: str
    path: Path


@dataclass(frozen=True)
class HubRef:
    """`hf:OWNER/REPO[:QUANT]` (or `hf.co/…`, `huggingface.co/…`): a Hub repository's GGUF."""

    text: str
    repo: str
    quant: str | None = None

    @property
    def spec(self) -> str:
        return f"hf:{self.repo}" + (f":{self.quant}" if self.quant else "")


@dataclass(frozen=True)
class Endpoint:
    """`--api-base URL -m NAME`: a model an OpenAI-compatible server knows by NAME."""

    api_base: str
    name: str

    @property
    def text(self) -> str:
        return self.name


@dataclass(frozen=True)
class Name:
    """Any other name: an alias, a registry id, an import, a cached file, an Ollama tag."""

    text: str

    @property
    def could_be_file(self) -> bool:
        """Whether the name is spelled like a relative path to a GGUF (`x.gguf`, `models/x.gguf`)."""
        return self.text.lower().endswith(".gguf") or os.sep in self.text and not self.repo_like

    @property
    def repo_like(self) -> bool:
        """Whether the name is spelled like a Hub repository id (`OWNER/REPO`)."""
        return bool(_REPO_ID.fullmatch(self.text.partition(":")[0]))

    @property
    def ollama_tag(self) -> bool:
        """Whether the name is an Ollama model with its tag (`llama3.2:1b`, `user/model:latest`)."""
        return bool(_OLLAMA_TAG.fullmatch(self.text))


ModelRef = Union[Auto, Default, FileRef, HubRef, Endpoint, Name]


def check_repo_id(repo: str) -> str:
    """A Hub repository id `OWNER/NAME`, or UsageError."""
    if not _REPO_ID.fullmatch(repo or "") or ".." in repo or repo.endswith((".", "-")):
        raise UsageError(f"'{repo}' is not a Hugging Face repository id (expected OWNER/NAME)")
    return repo


def is_hub_spec(text: str) -> bool:
    return text.strip().startswith(_HUB_PREFIXES)


def parse_hub(text: str) -> HubRef:
    """`hf:OWNER/REPO[:QUANT]` (any of its spellings) as a HubRef, or UsageError."""
    m = _HUB_REF.fullmatch(text.strip())
    if not m:
        raise UsageError(f"'{text.strip()}' is not hf:OWNER/REPO[:QUANT]")
    return HubRef(text.strip(), check_repo_id(m.group(1).rstrip("/")), m.group(2))


def parse_ref(text: str | None, *, api_base: str | None = None) -> ModelRef:
    """What `text` names (see the module docstring). An empty name is a UsageError: a script
    that meant a model but lost it must not get the default one."""
    if text is None:
        if api_base:
            raise UsageError("--api-base needs --model NAME (the model name the server knows)")
        return Default()
    name = text.strip()
    if not name:
        raise UsageError("an empty model name: give one, or leave --model out for the default model")
    if api_base:
        return Endpoint(api_base, name)
    if name.lower() == AUTO:
        return Auto()
    if is_hub_spec(name):
        return parse_hub(name)
    if name.startswith(_PATH_STARTS):
        return FileRef(name, _expand(name))
    return Name(name)


def _expand(text: str) -> Path:
    """`~` and `~user` expanded where they can be (an unknown user is left as written)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def is_auto(text: str | None) -> bool:
    """Whether `text` is `auto` (the selector chooses)."""
    return text is not None and text.strip().lower() == AUTO


def ref_kind(ref: ModelRef) -> str:
    """The form's name, as `--debug` and errors say it."""
    return {Auto: "auto", Default: "the default", FileRef: "a file path", HubRef: "a Hub repository",
            Endpoint: "a server's model", Name: "a name"}[type(ref)]
