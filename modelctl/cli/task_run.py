"""What the task commands share: opening the task client from their flags, and writing what
comes back. Imported inside the commands, so start-up stays light."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, List, Optional

from modelctl.backends.api import coerce_option
from modelctl.cli import output, state
from modelctl.cli.chat_cmd import parse_options, prompt_text
from modelctl.cli.output import cell
from modelctl.errors import UsageError
from modelctl.tasks import open_task
from modelctl.tasks.media import EXTENSIONS
from modelctl.tasks.outputs import output_paths, write_file


def open_client(task: str, model: Optional[str], deployment: Optional[str], api_base: Optional[str],
                api_key: Optional[str], debug: bool, allow_retired: bool = False) -> Any:
    return open_task(task, model, registry=state.get_registry, deployment=deployment, api_base=api_base,
                     api_key=api_key, debug=debug or None, notify=output.warn, allow_retired=allow_retired)


def request_options(pairs: Optional[List[str]]) -> dict[str, Any]:
    """`--option KEY=VALUE` pairs, values as JSON where they parse (numbers, true, lists)."""

    return {k: coerce_option(v) for k, v in parse_options(pairs or []).items()}


def given_text(words: Optional[List[str]], what: str) -> str:
    text = prompt_text(words)
    if text is None or not text.strip():
        raise UsageError(f"no {what}: give it as an argument or on stdin")
    return text


def save(files: Iterable[tuple[bytes, str]], output: Optional[str], stem: str, *, force: bool) -> list[Path]:
    """Write each (bytes, media type) to `output` or a fresh name; returns the paths written."""

    files = list(files)
    ext = EXTENSIONS.get(files[0][1], files[0][1].rpartition("/")[2] or "bin") if files else "bin"
    paths = output_paths(output, len(files), stem, ext, force=force)
    for path, (data, _) in zip(paths, files):
        write_file(path, data, force=force)
    return paths


def check_output(output: Optional[str], count: int, *, force: bool) -> None:
    """Refuse an existing -o file before the request is made (and paid for)."""

    if output is not None:
        output_paths(output, count, "output", "bin", force=force)


def print_labels(labels: list[Any], top: Optional[int]) -> None:
    shown = labels[:top] if top else labels
    width = max((len(cell(lab.label)) for lab in shown), default=0)
    for lab in shown:
        mark = "  flagged" if getattr(lab, "flagged", None) else ""
        print(f"{cell(lab.label):<{width}}  {lab.score:.4f}{mark}")
