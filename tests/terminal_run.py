"""modelctl run in a real terminal (a pty, through pexpect) as wide as a test asks: what a person
sees, for the tests of tables and help."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODELCTL = str(Path(sys.executable).with_name("modelctl"))
ROWS = 50


def terminal_env(columns: int, **extra: str) -> dict[str, str]:
    """The environment of a terminal `columns` wide: none of the variables that change what is
    shown (NO_COLOR, MODELCTL_DEBUG, TERMINAL_WIDTH) unless `extra` sets them."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "MODELCTL_DEBUG", "TERMINAL_WIDTH")}
    env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(ROWS), **extra)
    return env


def at_terminal(args: list[str], columns: int, **extra: str) -> str:
    """What `modelctl ARGS` shows (stdout and stderr, as a terminal gets them), after it exits 0."""
    import pexpect

    child = pexpect.spawn(MODELCTL, args, env=terminal_env(columns, **extra), encoding="utf-8", timeout=120,
                          dimensions=(ROWS, columns))
    try:
        child.expect(pexpect.EOF)
        shown = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, shown
    return shown
