"""How completion answers reach zsh and fish: Typer's scripts, with two of its answers changed.

Typer's zsh answer falls back to `_files` whenever there is no candidate, and its fish answer
tells fish to complete file names then; so `modelctl show llama-9<TAB>` offered the files of the
current directory. Here file names are offered only for a value that can be a file: a parameter
whose metavar names one (FILE, PATH, .gguf) or a value typed as a path (`./`, `/`, `~`). The
help texts of candidates are used as they are, without the rich markup pass Typer would import
rich for. The shell scripts themselves stay the ones Typer generates (`completions/`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from typer._completion_classes import FishComplete, ZshComplete

try:  # typer >= 0.20 vendors click
    from typer._click import shell_completion as _click_completion
except ImportError:  # pragma: no cover
    from click import shell_completion as _click_completion  # type: ignore[no-redef]

_PATH_WORDS = ("FILE", "PATH", "GGUF", "DIR")


def _wants_files(shell: Any, args: list[str], incomplete: str) -> bool:
    """Whether the word being completed can be a file name."""
    try:
        ctx = _click_completion._resolve_context(shell.cli, shell.ctx_args, shell.prog_name, args)
        obj, incomplete = _click_completion._resolve_incomplete(ctx, args, incomplete)
    except Exception:
        return False
    if not hasattr(obj, "param_type_name"):  # a command: its subcommands and options, never files
        return False
    if getattr(obj, "is_flag", False):
        return False
    if incomplete.startswith(("/", "./", "../", "~")):
        return True
    metavar = (getattr(obj, "metavar", None) or "").upper()
    return any(word in metavar for word in _PATH_WORDS)


class ModelctlZshComplete(ZshComplete):
    def format_completion(self, item: Any) -> str:
        def escape(s: str) -> str:
            return (s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`")
                    .replace(":", r"\\:"))

        if item.help:
            return f'"{escape(item.value)}":"{escape(" ".join(item.help.split()))}"'
        return f'"{escape(item.value)}"'

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        found = [self.format_completion(item) for item in self.get_completions(args, incomplete)]
        if found:
            joined = "\n".join(found)
            return f"_arguments '*: :(({joined}))'"
        return "_files" if _wants_files(self, args, incomplete) else ""


class ModelctlFishComplete(FishComplete):
    def format_completion(self, item: Any) -> str:
        return f"{item.value}\t{' '.join(item.help.split())}" if item.help else item.value

    def complete(self) -> str:
        action = os.getenv("_TYPER_COMPLETE_FISH_ACTION", "")
        args, incomplete = self.get_completion_args()
        found = [self.format_completion(item) for item in self.get_completions(args, incomplete)]
        if action == "get-args":
            return "\n".join(found)
        if action == "is-args":
            # 0: our answer (even an empty one) replaces fish's own; 1: fish completes file names.
            sys.exit(1 if not found and _wants_files(self, args, incomplete) else 0)
        return ""


def install() -> None:
    """Answer zsh and fish completion requests with the classes above."""
    _click_completion.add_completion_class(ModelctlZshComplete, "zsh")
    _click_completion.add_completion_class(ModelctlFishComplete, "fish")
