"""A whole `modelctl chat --api-base URL -m NAME "..."` process against `curl` sending the same
streamed request to the same OpenAI-compatible server, side by side in one run.

    .venv/bin/python bench/bench_script.py [--model PATH.gguf] [--runs N] [--max-tokens N] [--compare DIR]

Starts llama-cpp-python's own server (`python -m llama_cpp.server`, through
tests/safe_llama_server.py so that it takes the extra-buffer path modelctl chooses here) with the
Gemma 3 270M GGUF on loopback, then times N runs of each side, interleaved (curl, modelctl,
curl, …) so that both see the same machine load:

- curl:     `curl -sN URL/chat/completions -d '{"model":…,"messages":[…],"max_tokens":…,
            "temperature":0,"stream":true}'` (the raw SSE stream to a pipe);
- modelctl: `modelctl chat --api-base URL -m NAME --max-tokens N --temperature 0 "PROMPT"` (the
            streamed text to a pipe), with the console script of this virtual environment.

With `--compare DIR` (a checkout of another commit, e.g. from `git archive`), a third side runs
that checkout's modelctl (`python -m modelctl` from DIR) the same way: before and after a change,
in one run.

Prints the median wall time of each side, the ratio (target: <= 1.5) and modelctl's median CPU
time. Both answers are checked to be the same text, so that both sides did the same work.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_chat import model_path  # the embedded Gemma 3 270M, or --model

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Name three colours."
SERVED_NAME = "gemma-3-270m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, port: int) -> subprocess.Popen:
    """The real llama_cpp.server, returned once uvicorn says it is listening."""
    cmd = [sys.executable, str(ROOT / "tests" / "safe_llama_server.py"), "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--chat_format", "gemma",
           "--model_alias", SERVED_NAME]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    watchdog = threading.Timer(300, proc.kill)  # a server that never says it listens
    watchdog.start()
    log: list[str] = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            log.append(line)
            if "Uvicorn running on" in line:
                threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
                return proc
    finally:
        watchdog.cancel()
    proc.kill()
    raise SystemExit("llama_cpp.server did not start:\n" + "".join(log[-30:]))


def timed(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def sse_text(stream: str) -> str:
    """The answer text in an OpenAI SSE stream."""
    parts = []
    for line in stream.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF file to serve (default: the embedded Gemma 3 270M)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--compare", metavar="DIR", help="also time the modelctl of this checkout")
    args = ap.parse_args()
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed")
    modelctl = Path(sys.executable).with_name("modelctl")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    body = json.dumps({"model": SERVED_NAME, "messages": [{"role": "user", "content": PROMPT}],
                       "max_tokens": args.max_tokens, "temperature": 0, "stream": True})
    with tempfile.TemporaryDirectory() as home:
        # An empty modelctl home: no user config or registry changes what is measured.
        env = dict(os.environ, MODELCTL_HOME=home, NO_COLOR="1")
        env.pop("OPENAI_API_KEY", None)
        # Byte-compiled modules, as an installed package has them (pip compiles at install time).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        chat = ["chat", "--api-base", url, "-m", SERVED_NAME, "--max-tokens", str(args.max_tokens),
                "--temperature", "0", PROMPT]
        sides = {
            "curl": [curl, "-sN", f"{url}/chat/completions", "-H", "Content-Type: application/json", "-d", body],
            "modelctl": [str(modelctl), *chat],
        }
        cwd: dict[str, str | None] = {side: None for side in sides}
        if args.compare:
            sides["compared"] = [sys.executable, "-m", "modelctl", *chat]
            cwd["compared"] = str(Path(args.compare).resolve())
        server = start_server(model_path(args.model), port)
        try:
            for side, cmd in sides.items():  # warm-up: the server's first answer, the page cache
                timed(cmd, env, cwd[side])
            walls: dict[str, list[float]] = {side: [] for side in sides}
            cpus: dict[str, list[float]] = {side: [] for side in sides}
            answers: dict[str, str] = {}
            for _ in range(args.runs):
                for side, cmd in sides.items():
                    wall, cpu, out = timed(cmd, env, cwd[side])
                    walls[side].append(wall)
                    cpus[side].append(cpu)
                    answers[side] = sse_text(out) if side == "curl" else out
        finally:
            server.terminate()
            server.wait(timeout=30)
    for side in sides:
        if answers[side].strip() != answers["curl"].strip():
            print(f"warning: the answers differ: curl {answers['curl']!r}, {side} {answers[side]!r}")
    print(f"{args.runs} runs each, interleaved; {args.max_tokens} tokens at temperature 0 from llama_cpp.server")
    for side in sides:
        print(f"  {side:9} median wall {statistics.median(walls[side]) * 1000:7.1f} ms   "
              f"median CPU {statistics.median(cpus[side]) * 1000:7.1f} ms")
    for side in sides:
        if side != "curl":
            ratio = statistics.median(walls[side]) / statistics.median(walls["curl"])
            print(f"  ratio {side} / curl (wall): {ratio:.2f}" + ("  (target <= 1.5)" if side == "modelctl" else ""))


if __name__ == "__main__":
    main()
