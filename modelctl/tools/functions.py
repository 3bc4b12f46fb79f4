"""Python functions as tools: the built-ins and `--functions FILE.py`.

A functions file is the user's own code, run because they asked for it: it is executed as a
module, and its public top-level functions (those it defines, not those it imports, and whose
names do not start with `_`) become tools. A call runs the function with the model's arguments in
a thread of its own, bounded by the call's timeout (a function that never returns is left behind,
not waited for); what it returns is the result: a string as it is, anything else as JSON. An
exception it raises is an error result carrying the exception's message.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from modelctl.backends.base import ToolSpec
from modelctl.errors import UsageError
from modelctl.files import read_user_text
from modelctl.tools.schema import call_arguments, function_spec

MAX_FILE_BYTES = 4 << 20


@dataclass(frozen=True)
class LocalFunction:
    """A function offered as a tool: its spec, the function, and where it came from."""

    spec: ToolSpec
    fn: Callable[..., Any]
    origin: str  # "builtin" or "functions:PATH"

    def run(self, arguments: dict[str, Any]) -> str:
        """The function's result as text; the function's own exception, or ValueError for
        arguments it does not take, propagates."""
        positional, keywords = call_arguments(self.fn, arguments)
        value = self.fn(*positional, **keywords)
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
        return result_text(value)


def result_text(value: Any) -> str:
    """What a function returned, as the text a model reads: a string as it is, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return str(value)


class FunctionFailure(Exception):
    """A function that did not return: it ran out of time, or exited."""


def run_bounded(run: Callable[[], str], timeout: float, what: str) -> str:
    """`run()` in a daemon thread: its result, its exception, or FunctionFailure after `timeout`
    seconds (the thread is left to finish on its own) or when it raised SystemExit and the like."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run()
        except BaseException as exc:  # the user's code may raise anything, SystemExit included
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"modelctl tool {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise FunctionFailure(f"{what} did not return within {timeout:g} s")
    error = outcome.get("error")
    if isinstance(error, Exception):
        raise error
    if error is not None:
        raise FunctionFailure(f"{what} stopped: {type(error).__name__} {error}".rstrip())
    value: str = outcome["value"]
    return value


def local_functions(functions: Iterable[Callable[..., Any]], origin: str) -> list[LocalFunction]:
    """`functions` as tools from `origin`."""
    return [LocalFunction(function_spec(fn), fn, origin) for fn in functions]


def public_functions(module: types.ModuleType) -> list[Callable[..., Any]]:
    """The public functions `module` defines itself (not those it imports), in its order."""
    return [fn for name, fn in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == module.__name__]


def load_functions(path: Path) -> list[LocalFunction]:
    """The tools of a functions file; a file that cannot be read, compiled or run, or that
    defines no public function, is a UsageError naming it (NotFoundError when it is missing)."""
    text = read_user_text(path, "functions file", limit=MAX_FILE_BYTES)
    shown = str(path)
    try:
        code = compile(text, shown, "exec")
    except SyntaxError as exc:
        raise UsageError(f"functions file {shown}: line {exc.lineno}: {exc.msg}") from None
    module = types.ModuleType(_module_name(path))
    module.__file__ = str(path.resolve())
    sys.modules[module.__name__] = module  # dataclasses and typing look modules up by name
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module.__name__, None)
        raise UsageError(f"functions file {shown}: running it raised {type(exc).__name__}: {exc}") from None
    functions = local_functions(public_functions(module), f"functions:{path}")
    if not functions:
        raise UsageError(f"functions file {shown} defines no public function",
                         hint="define functions at the top level, with names that do not start with '_'")
    return functions


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"_modelctl_functions_{digest}"
