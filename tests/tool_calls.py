"""Calling a Toolbox's tools from the tests: one call, or many at once from threads."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from modelctl.backends.base import ToolCall
from modelctl.tools.toolbox import Toolbox, ToolResult


def call(box: Toolbox, tool: str, **arguments) -> ToolResult:
    """The result of calling `tool` with `arguments`, as a model's call would."""
    return box.call(ToolCall("call-1", tool, json.dumps(arguments)))


def call_at_once(box: Toolbox, tool: str, texts: list[str]) -> list[str]:
    """The contents of calling `tool` with each of `texts` (as its `text`), from as many threads."""
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return [r.content for r in pool.map(lambda text: call(box, tool, text=text), texts)]
