"""Warm against cold, the whole client process included: `modelctl chat -m MODEL "hi" -n 1` through a
running `modelctl serve` (the model stays loaded there) against the same command in-process
(`MODELCTL_NO_SERVER=1`: load, prompt, one token), side by side in one run, with the floor of any
such client beside them (`python -c "import typer, httpx"`).

    .venv/bin/python bench/bench_warm_chat.py [--model PATH.gguf] [--runs N]

Starts `modelctl serve --port 0` in a fresh modelctl home (the Gemma 3 270M file linked into its
models directory, so that `-m gemma-3-270m` is the registry model; `--model PATH` names a file by
its path instead), asks once to load the model, then times N runs of each side, interleaved, so
that all see the same machine load. Prints the medians, the ratio in-process / served and checks
that both answered the same text (greedy). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_chat import model_path  # the embedded Gemma 3 270M, or --model

LISTENING = re.compile(r"listening on (http://\S+)")


def start_server(env: dict[str, str]) -> subprocess.Popen[str]:
    """`modelctl serve` on a free loopback port, returned once it says it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "modelctl", "serve", "--port", "0", "--keep-alive", "-1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if LISTENING.search(line):
            return proc
    proc.kill()
    raise SystemExit("modelctl serve did not start")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}… failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a GGUF file (default: the registry's Gemma 3 270M)")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, MODELCTL_HOME=home, NO_COLOR="1")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-compiled modules, as an install has them
        name = args.model
        if name is None:
            models = Path(home) / "data" / "models"
            models.mkdir(parents=True)
            source = model_path(None)
            try:
                os.link(source, models / source.name)
            except OSError:
                os.symlink(source, models / source.name)
            name = "gemma-3-270m"
        chat = [sys.executable, "-m", "modelctl", "chat", "-m", name, "hi", "-n", "1", "--temperature", "0",
                "--no-log"]
        sides = {
            "served": (chat, env),
            "in-process": (chat, {**env, "MODELCTL_NO_SERVER": "1"}),
            "floor": ([sys.executable, "-c", "import typer, httpx"], env),
        }
        server = start_server(env)
        try:
            for cmd, side_env in sides.values():  # warm-up: the server loads the model, the page cache
                timed(cmd, side_env)
            walls: dict[str, list[float]] = {side: [] for side in sides}
            answers: dict[str, str] = {}
            for _ in range(args.runs):
                for side, (cmd, side_env) in sides.items():
                    wall, out = timed(cmd, side_env)
                    walls[side].append(wall)
                    answers[side] = out
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    if answers["served"] != answers["in-process"]:
        print(f"warning: the answers differ: served {answers['served']!r}, in-process {answers['in-process']!r}")
    median = {side: statistics.median(w) for side, w in walls.items()}
    print(f"{args.runs} runs each, interleaved: modelctl chat -m {name} \"hi\" -n 1")
    for side in sides:
        print(f"  {side:10} median wall {median[side] * 1000:7.1f} ms   (min {min(walls[side]) * 1000:.1f})")
    print(f"  in-process / served: {median['in-process'] / median['served']:.2f}   "
          f"served - floor: {(median['served'] - median['floor']) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
