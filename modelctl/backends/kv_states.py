"""Saved KV cache states of one llama.cpp context, so that a conversation keeps its evaluated
prefix while other conversations use the context in between (a server answers several clients
from one loaded model, one request at a time).

A state is the context's sequence state (`llama_state_seq_get_data`: the KV cells of sequence 0,
no logits; 22.5 KiB a token for SmolLM2 135M, 18 KiB for Gemma 3 270M and less past its sliding
window), keyed by the tokens evaluated into it; saving or restoring one is a copy (about 1 ms for
10 MiB on a CPU), where evaluating its tokens again takes seconds. The
store is bounded by bytes and by entries; the least recently used state goes first. It belongs to
one backend instance, so a state is only ever restored into the context (model, n_ctx, options)
that saved it.

Where llama.cpp leaves cells out of a saved state (those a sliding window no longer sees) or
keeps a recurrent state, a restore is exact only when every saved token is kept: such a state
has a `floor` of all its tokens.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterator, Sequence

# What a server keeps by default: a few conversations of a small model, a few thousand tokens of
# a large one. 0 turns saving off.
DEFAULT_BYTES = 256 * 2**20
MAX_STATES = 32  # entries, whatever their size: each lookup compares the prompt with every one
_SEQ = 0  # llama-cpp-python evaluates every token into sequence 0


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share: a binary search over comparisons of tuple
    slices, which run in C (pass tuples: others are copied)."""
    a, b = tuple(a), tuple(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def usable_prefix(tokens: Sequence[int], floor: int, prompt: Sequence[int]) -> int:
    """The tokens of a cache holding `tokens` that `prompt` may keep: the shared prefix, less the
    prompt's last token (evaluated again, for fresh logits); 0 where that is under `floor`."""
    keep = min(shared_prefix(tokens, prompt), len(prompt) - 1)
    return keep if keep >= floor else 0


@dataclass(eq=False)
class SavedState:
    tokens: tuple[int, ...]
    data: Any  # a ctypes uint8 array, passed to llama.cpp as it is
    floor: int  # the fewest of `tokens` a restore may keep (see the module's note)

    @property
    def size(self) -> int:
        return len(self.data)


class KvStates:
    """Saved states of one context, least recently used first."""

    def __init__(self, max_bytes: int, max_entries: int = MAX_STATES) -> None:
        self._states: OrderedDict[int, SavedState] = OrderedDict()  # by id()
        self.nbytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"a byte bound cannot be negative: {value}")
        self._max_bytes = value
        self._shrink(0, 0)

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[SavedState]:
        return iter(list(self._states.values()))

    def clear(self) -> None:
        self._states.clear()
        self.nbytes = 0

    def best(self, prompt: Sequence[int]) -> tuple[SavedState | None, int]:
        """The state `prompt` may keep most of, and how many tokens: (None, 0) where none helps."""
        found, most = None, 0
        for state in self._states.values():
            keep = usable_prefix(state.tokens, state.floor, prompt)
            if keep > most:
                found, most = state, keep
        return found, most

    def covers(self, tokens: tuple[int, ...], floor: int) -> bool:
        """Whether a saved state serves every prompt that a state of `tokens` would serve."""
        return any(_covers(state, tokens, floor) for state in self._states.values())

    def fits(self, size: int) -> bool:
        return 0 < size <= self._max_bytes and self.max_entries > 0

    def enabled(self) -> bool:
        return self._max_bytes > 0 and self.max_entries > 0

    def add(self, state: SavedState) -> None:
        """Keep `state` as the most recent; drop those it covers, then the least recently used
        until the bounds hold."""
        if not self.fits(state.size):
            return
        for old in [s for s in self._states.values() if _covers(state, s.tokens, s.floor)]:
            self._drop(old)
        self._shrink(state.size, 1)
        self._states[id(state)] = state
        self.nbytes += state.size

    def touch(self, state: SavedState) -> None:
        """Make `state` the most recently used, where it is still kept."""
        if id(state) in self._states:
            self._states.move_to_end(id(state))

    def discard(self, state: SavedState) -> None:
        if id(state) in self._states:
            self._drop(state)

    def _drop(self, state: SavedState) -> None:
        del self._states[id(state)]
        self.nbytes -= state.size

    def _shrink(self, size: int, entries: int) -> None:
        """Drop the least recently used states until `size` more bytes in `entries` more entries
        fit."""
        while self._states and (self.nbytes + size > self._max_bytes
                                or len(self._states) + entries > self.max_entries):
            self._drop(next(iter(self._states.values())))


def _covers(state: SavedState, tokens: tuple[int, ...], floor: int) -> bool:
    """Whether `state` serves every prompt a state of `tokens` (with `floor`) serves: it extends
    them, and a restore of it may keep as few tokens as such a prompt keeps (at least the floor,
    and at least one)."""
    return state.tokens[: len(tokens)] == tokens and state.floor <= max(floor, 1)


def capture(llama_cpp: ModuleType, ctx: Any, tokens: tuple[int, ...], floor: int,
            max_size: int) -> SavedState | None:
    """The context's sequence state as it stands (it holds `tokens`), or None where it is over
    `max_size` bytes or llama.cpp cannot copy it."""
    size = llama_cpp.llama_state_seq_get_size(ctx, _SEQ)
    if not 0 < size <= max_size:
        return None
    data = (ctypes.c_uint8 * size)()
    if llama_cpp.llama_state_seq_get_data(ctx, data, size, _SEQ) != size:
        return None
    return SavedState(tokens, data, floor)


def restore(llama_cpp: ModuleType, ctx: Any, state: SavedState) -> bool:
    """Replace the context's sequence with `state`; False where llama.cpp refuses it (then the
    sequence must be evaluated again from its start)."""
    return bool(llama_cpp.llama_state_seq_set_data(ctx, state.data, state.size, _SEQ) == state.size)
