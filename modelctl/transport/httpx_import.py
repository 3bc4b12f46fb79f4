"""httpx itself, imported on demand and without its command-line client (`import_httpx`): for
the HTTP client (`http`) and for the checks of an address before any request (`urls`)."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import cast


def import_httpx() -> ModuleType:
    """httpx, without its command-line client: `import httpx` also imports `httpx._main` (click,
    rich and pygments, a third of a scripted `modelctl chat`'s start-up) whenever those are
    installed, as they are here. Marked absent while httpx loads, it is replaced by httpx's own
    stub; a later `import httpx._main` still works."""

    if "httpx" not in sys.modules:
        # None is the import system's mark for a module that must not load (typeshed types the
        # values of sys.modules as modules only).
        sys.modules.setdefault("httpx._main", cast(ModuleType, None))
        try:
            import httpx  # noqa: F401, PLC0415 (without httpx._main: click, rich, pygments)
        finally:
            if sys.modules.get("httpx._main", 0) is None:
                del sys.modules["httpx._main"]
    import httpx  # noqa: PLC0415 (httpx: imported only where used)

    return httpx
