"""Numbers every option and setting must be: finite, and whole numbers an int of llama.cpp and
the APIs can hold. Standard library only; the CLI's flag checks and config.toml's both use it."""

from __future__ import annotations

import math

# The widest whole number an option takes where it names no bound of its own: llama.cpp's and
# the APIs' int (tokens, layers, threads, a seed).
OPTION_INT_RANGE = (-(2**31), 2**31 - 1)


def number_problem(value: object, int_range: tuple[int, int] | None = OPTION_INT_RANGE) -> str | None:
    """Why `value` is a number no option can take (not finite, or a whole number outside
    `int_range`), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number"
    if int_range and isinstance(value, int) and not isinstance(value, bool):
        low, high = int_range
        if not low <= value <= high:
            return f"expected a whole number from {low} to {high}"
    return None
