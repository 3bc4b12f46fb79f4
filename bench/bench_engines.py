"""A serving engine started by modelctl, measured side by side in one run.

    .venv/bin/python bench/bench_engines.py [--engine llama-cpp-python|ray-serve] [--model smollm2-135m]
                                            [--runs 9] [--tokens 16]

`modelctl serve --engine ENGINE MODEL` (llama-cpp-python's own server, or modelctl's Ray Serve
application on a one-node Ray cluster; a child of modelctl's server) on loopback, in a home of
its own:

1. start     from the `serve --engine` command to: the engine healthy (as modelctl's server says),
             modelctl's server listening, and the first token of a streamed chat through it;
2. overhead  the same chat (greedy, MODEL, --tokens tokens), streamed, through modelctl's server
             (which routes MODEL to the engine) and straight to the engine, alternated request by
             request: median time to the first token and to the whole answer on each path, the
             time modelctl adds, and the ratio.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-engine-key-0123456789"
READY = re.compile(r"is ready at (http://\S+/v1) \(pid \d+, ([\d.]+) s\)")
LISTENING = re.compile(r"listening on (http://\S+) \(pid")
START_GUARD_S = 300.0


class Served:
    """`modelctl serve --engine …` running; the moments its lines arrived."""

    def __init__(self, home: Path, model: str, engine: str) -> None:
        env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1", PYTHONPATH=str(ROOT))
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "modelctl", "serve", "--port", "0", "--engine",
                                      engine, model, "--api-key", KEY],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.engine_url = self.url = ""
        self.engine_ready = self.listening = 0.0
        self.seen = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.seen.wait(START_GUARD_S) or not self.url:
            self.proc.kill()
            raise SystemExit("serve --engine did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if (ready := READY.search(line)) and not self.engine_url:
                self.engine_url, self.engine_ready = ready.group(1), time.perf_counter() - self.t0
            if (found := LISTENING.search(line)) and not self.url:
                self.url, self.listening = found.group(1) + "/v1", time.perf_counter() - self.t0
                self.seen.set()
        self.seen.set()

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def stream(client: httpx.Client, base: str, model: str, tokens: int) -> tuple[float, float, str]:
    """A streamed chat: seconds to the first content, to the end; the text."""
    body = {"model": model, "messages": [{"role": "user", "content": "Name three colours."}],
            "max_tokens": tokens, "temperature": 0, "seed": 1, "stream": True}
    t0 = time.perf_counter()
    first, text = None, []
    with client.stream("POST", f"{base}/chat/completions", json=body,
                       headers={"authorization": f"Bearer {KEY}"}) as response:
        if response.status_code != 200:
            raise SystemExit(f"{base}: {response.status_code} {response.read()!r}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            piece = choices[0].get("delta", {}).get("content") or ""
            if piece and first is None:
                first = time.perf_counter() - t0
            text.append(piece)
    return (first if first is not None else float("nan")), time.perf_counter() - t0, "".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="llama-cpp-python", choices=("llama-cpp-python", "ray-serve"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as home:
        served = Served(Path(home), args.model, args.engine)
        try:
            with httpx.Client(timeout=120) as client:
                first, _, _ = stream(client, served.url, args.model, args.tokens)
                to_first_token = time.perf_counter() - served.t0
                model_id = client.get(f"{served.engine_url}/models",
                                      headers={"authorization": f"Bearer {KEY}"}).json()["data"][0]["id"]
                via: dict[str, list[tuple[float, float]]] = {"modelctl": [], "engine": []}
                texts: dict[str, set[str]] = {"modelctl": set(), "engine": set()}
                for _ in range(args.runs):  # alternated, so that both paths see the same machine
                    for path, base, name in (("modelctl", served.url, args.model),
                                             ("engine", served.engine_url, model_id)):
                        ttft, total, text = stream(client, base, name, args.tokens)
                        via[path].append((ttft, total))
                        texts[path].add(text)
        finally:
            status = served.stop()

    print(f"serve --engine {args.engine} {args.model}  (exit {status} on SIGTERM)")
    print(f"  engine healthy         {served.engine_ready:7.2f} s")
    print(f"  modelctl listening     {served.listening:7.2f} s")
    print(f"  first token via serve  {to_first_token:7.2f} s   (that request's own first token: {first * 1000:.0f} ms)")
    print(f"\nstreamed chat, {args.tokens} tokens, greedy, {args.runs} runs each, alternated (median ms):")
    print(f"  {'path':<10}{'first token':>12}{'whole':>10}")
    medians = {}
    for path, rows in via.items():
        medians[path] = (statistics.median(r[0] for r in rows) * 1000, statistics.median(r[1] for r in rows) * 1000)
        print(f"  {path:<10}{medians[path][0]:>12.1f}{medians[path][1]:>10.1f}")
    (mf, mw), (ef, ew) = medians["modelctl"], medians["engine"]
    print(f"  modelctl adds {mf - ef:+.1f} ms to the first token (x{mf / ef:.2f}), {mw - ew:+.1f} ms to the whole "
          f"answer (x{mw / ew:.2f})")
    print(f"  same text on both paths: {texts['modelctl'] == texts['engine'] and len(texts['engine']) == 1}")


if __name__ == "__main__":
    main()
