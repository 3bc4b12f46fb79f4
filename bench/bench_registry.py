"""Start-up and scale of the catalog commands, measured side by side in one run.

1. `modelctl list --json` against `python -c "import typer, tomllib"` (the floor any Typer CLI
   reading TOML pays), runs interleaved; prints the ratios of medians, wall-clock and CPU time
   (target: <= 1.5): with the built-in registry alone, and with a user registry of 250 and of 2,500 more models
   (`--user-models`), every registry's cache warm.
2. A generated registry of 10,000 models: `list --json`, `list --free --local`, `search` as whole
   processes (target: < 0.5 s each once the registry's parse cache is warm), plus the first,
   cold run that parses and validates the TOML (`--models 0` leaves this part out).

With `--compare DIR` (a checkout of another commit, e.g. from `git archive`), the start-up runs
interleave that checkout's `python -m modelctl list --json` with each registry, and print its ratios.

Usage: python bench/bench_registry.py [--runs N] [--models N] [--user-models N,N] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    return timed_cpu(cmd, env, cwd)[0]


def timed_cpu(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds: user + system) of one run of `cmd`. On a machine shared
    with other work the CPU time is the steadier measure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _ms(runs: list[tuple[float, float]]) -> str:
    wall, cpu = _medians(runs)
    return f"{wall * 1000:4.0f} / {cpu * 1000:4.0f} ms"


def _ratios(runs: list[tuple[float, float]], base: list[tuple[float, float]]) -> str:
    (wall, cpu), (base_wall, base_cpu) = _medians(runs), _medians(base)
    return f"{wall / base_wall:.2f} / {cpu / base_cpu:.2f}"


def generate(path: Path, n: int) -> None:
    tasks = ["chat", "completion", "code", "embedding", "vision"]
    providers = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]
    with path.open("w") as fh:
        fh.write("schema_version = 1\n")
        for i in range(n):
            local = i % 3 == 0
            task_list = '["completion"]' if i % 5 == 1 else f'["{tasks[i % 5]}", "completion"]'
            fh.write(
                f'''
[[models]]
id = "bench/model-{i}"
name = "Bench Model {i}"
aliases = ["bm-{i}"]
provider = "{providers[i % 5]}"
family = "family-{i % 50}"
description = "Generated model number {i} for the scale benchmark, good at {tasks[i % 5]} work."
category = "{"foundation" if local else "industry"}"
tasks = {task_list}
parameters = {(i % 70 + 1) * 1_000_000_000}
context_window = {2048 << (i % 7)}
use_cases = ["use case {i % 20}", "benchmarking"]
template = "chatml"
license = {{ name = "{"Apache-2.0" if local else "Proprietary"}", open_weights = {str(local).lower()} }}
access = {{ free_tier = {str(local).lower()}, local_capable = {str(local).lower()}, cost_input = {i % 10}.5 }}

[[models.deployments]]
''')
            if local:
                fh.write(f'kind = "llama.cpp"\nrepo = "bench/model-{i}-GGUF"\nfiles = [{{ quant = "Q4_K_M", filename = "model-{i}.Q4_K_M.gguf" }}]\n')
            else:
                fh.write(f'kind = "openai"\nmodel = "model-{i}"\n')


def scale(args: argparse.Namespace, modelctl: list[str], env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.toml"
        generate(big, args.models)
        size_mb = big.stat().st_size / 1e6
        with_big = modelctl + ["--registry", str(big)]
        cold = timed(with_big + ["list", "--json"], env)
        print(f"scale: {args.models} models ({size_mb:.1f} MB of TOML); first run (parse + validate + cache) {cold:.2f} s")
        for label, extra in (
            ("list --json", ["list", "--json"]),
            ("list --free --local --task chat", ["list", "--free", "--local", "--task", "chat"]),
            ("search 'code work'", ["search", "code", "work", "--json"]),
            ("show bm-9999", ["show", f"bm-{args.models - 1}"]),
        ):
            times = [timed(with_big + extra, env) for _ in range(max(3, args.runs // 3))]
            m = statistics.median(times)
            print(f"scale: {label:<34} {m:.3f} s  ({'ok' if m < 0.5 else 'OVER'} against 0.5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--user-models", default="250,2500", metavar="N,N",
                        help="start-up also with a user registry of this many models (comma-separated; '' for none)")
    parser.add_argument("--compare", metavar="DIR", help="also time the modelctl of this checkout")
    args = parser.parse_args()
    compared = str(Path(args.compare).resolve()) if args.compare else None
    user_sizes = [int(n) for n in args.user_models.split(",") if n.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MODELCTL_HOME=tmp, NO_COLOR="1")
        env.pop("MODELCTL_REGISTRY", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiling every module on every run is no start-up a user sees
        py = sys.executable
        modelctl = [py, "-m", "modelctl"]

        # One home per user registry size, its config/registry.toml generated; the compared
        # checkout gets homes of its own (its cache may have another format).
        sides = {"": (None, "")} | ({"compared": (compared, "compared-")} if compared else {})
        homes: dict[tuple[str, int], dict[str, str]] = {}
        for side, (_cwd, prefix) in sides.items():
            for n in [0, *user_sizes]:
                home = Path(tmp) / f"{prefix}user-{n}"
                (home / "config").mkdir(parents=True)
                if n:
                    generate(home / "config" / "registry.toml", n)
                homes[side, n] = dict(env, MODELCTL_HOME=str(home))
        for (side, _n), home_env in homes.items():  # warm the registry caches, the bytecode and the OS page cache
            timed(modelctl + ["list", "--json"], home_env, cwd=sides[side][0])
        times: dict[tuple[str, int], list[tuple[float, float]]] = {key: [] for key in homes}
        floor = []
        for _ in range(args.runs):
            floor.append(timed_cpu([py, "-c", "import typer, tomllib"], env))
            for (side, n), home_env in homes.items():
                times[side, n].append(timed_cpu(modelctl + ["list", "--json"], home_env, cwd=sides[side][0]))
        print(f"start-up: python -c 'import typer, tomllib' {_ms(floor)} (median of {args.runs}; wall-clock / CPU)")
        for (side, n), runs in times.items():
            what = f"+ {n:,} user models" if n else "built-in registry"
            label = f"{compared}'s " if side else ""
            print(f"start-up: {label}modelctl list --json, {what:<22} {_ms(runs)}, ratio {_ratios(runs, floor)}"
                  " (target <= 1.5)" + (f"; this checkout against it {_ratios(times['', n], runs)}" if side else ""))

        if args.models:
            scale(args, modelctl, env)


if __name__ == "__main__":
    main()
