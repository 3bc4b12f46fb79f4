"""Shell completion over a generated registry of 10,000 models, measured in one run.

A <TAB> is a whole `modelctl` process answering the completion protocol. Printed: the first
completion after the registry changed (the candidates cache is rebuilt; the registry's own parse
cache cold, then warm), the median of warm completions of a model name, the time the candidates take inside the
process, and, for scale, the
median of `python -c "import typer"` (the floor of any Typer CLI) with their ratio.

Usage: python bench/bench_completion.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_registry import generate  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stderr}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "big.toml"
        generate(registry, 10_000)
        env = dict(os.environ, MODELCTL_HOME=str(Path(tmp) / "home"), MODELCTL_REGISTRY=str(registry),
                   _MODELCTL_COMPLETE="complete_bash", _MODELCTL_COMPLETE_LINE="modelctl show bench/model-999",
                   _MODELCTL_COMPLETE_WORD="bench/model-999")
        cmd = [sys.executable, "-m", "modelctl"]
        cold, out = timed(cmd, env)
        assert "bench/model-9999" in out.split(), out[:200]
        config = Path(tmp) / "home" / "config" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text('[aliases]\nquick = "bench/model-1"\n')  # stale candidates, a warm parse cache
        rebuilt, out = timed(cmd, env)
        assert "bench/model-9999" in out.split()
        warm = [timed(cmd, env)[0] for _ in range(args.runs)]
        probe = ("import time; from modelctl.cli import complete; t = time.perf_counter(); "
                 "complete.models(None, 'bench/model-999'); print(time.perf_counter() - t)")
        inside = [float(timed([sys.executable, "-c", probe], env)[1]) for _ in range(args.runs)]
        floor = [timed([sys.executable, "-c", "import typer"], env)[0] for _ in range(args.runs)]
    print(f"first completion, registry parsed and cached: {cold:.3f} s")
    print(f"after a config.toml change (parse cache warm): {rebuilt:.3f} s")
    print(f"warm completion, median of {args.runs}:              {statistics.median(warm):.3f} s")
    print(f"of which the candidates (cache read, match): {statistics.median(inside) * 1000:.1f} ms")
    print(f"python -c 'import typer', median:             {statistics.median(floor):.3f} s "
          f"(ratio {statistics.median(warm) / statistics.median(floor):.2f})")


if __name__ == "__main__":
    main()
