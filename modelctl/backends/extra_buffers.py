"""Whether llama.cpp may use its extra buffer types (AMX, weight repacking) on this machine.

llama-cpp-python builds llama.cpp with `-march=native`. On a CPU with AMX (Intel Sapphire
Rapids and later) that compiles ggml's AMX buffer type in, and on some of these hosts its AMX
matrix multiplication crashes the process in `decode` (llama.cpp issue 20824). Loading with the
model parameter `use_extra_bufts = false` avoids the AMX path (and weight repacking with it) and
runs everywhere, somewhat slower.

The choice, in order:

1. the user's override (`-o use_extra_bufts=true|false`, or `options` in config.toml's [chat]);
2. a build without AMX kernels, or a CPU without AMX: the fast path, nothing can go wrong;
3. an AMX build on an AMX CPU: the verdict given by `MODELCTL_CPU_VERDICT` (`ok` or `crash`,
   for machines whose answer is known), else the one remembered for this build and CPU, else a
   one-time probe — a child process loads the model and generates a few tokens on the fast
   path. If the child dies, the safe path is taken; either verdict is kept in the cache
   directory, so later runs neither probe nor crash.

The user cannot act on the verdict except by rebuilding llama-cpp-python, so a chat does not
announce it: `--debug`, `/info` and `modelctl doctor` say which path was taken and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from modelctl.backends.hardware import BuildInfo, CpuInfo
from modelctl.backends.llama_options import parse_bool
from modelctl.errors import UsageError
from modelctl.files import atomic_write, read_kept_text

if TYPE_CHECKING:
    from llama_cpp.llama_cpp import llama_model_params

OPTION = "use_extra_bufts"
# How to rebuild llama-cpp-python for a CPU with AMX: portable AVX2/AVX-512 kernels, no AMX.
REBUILD_WITHOUT_AMX = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
PROBE_TIMEOUT_S = 300.0
VERDICTS_FILE = "llama-cpu-verdicts.json"
VERDICT_ENV = "MODELCTL_CPU_VERDICT"
VERDICTS = ("ok", "crash")


@dataclass(frozen=True)
class BufferChoice:
    """The path taken: `enabled` means extra buffer types on (the fast path)."""

    enabled: bool
    reason: str

    def describe(self) -> str:
        return f"extra buffer types {'on' if self.enabled else 'off'} ({self.reason})"


def parse_override(value: Any) -> bool | None:
    """`-o use_extra_bufts=VALUE` or the config value: True, False, or None for automatic."""

    if value is None or isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("auto", ""):
        return None
    try:
        return parse_bool(str(value))
    except ValueError:
        raise UsageError(f"option {OPTION}: expected true, false or auto, got {value!r}") from None


def amx_at_risk(build: BuildInfo, cpu: CpuInfo) -> bool:
    """An AMX build on a CPU that has (or may have) AMX: the AMX path would be taken."""
    return build.amx and cpu.has_amx is not False


def decide(build: BuildInfo, cpu: CpuInfo, *, override: bool | None = None,
           verdict: str | None = None) -> BufferChoice | None:
    """The choice from what is known, or None when only a probe can tell."""
    if override is not None:
        return BufferChoice(override, f"set by {OPTION}")
    if not build.amx:
        return BufferChoice(True, "this llama.cpp build has no AMX kernels")
    if cpu.has_amx is False:
        return BufferChoice(True, "this CPU has no AMX")
    if verdict == "ok":
        return BufferChoice(True, "AMX build on an AMX CPU; a test run of the AMX path worked")
    if verdict == "crash":
        return BufferChoice(False, "AMX build on an AMX CPU; the AMX path crashed in a test run")
    return None


# --- the probe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """How a child process that generated a few tokens ended."""

    ok: bool
    crashed: bool = False  # killed by a signal (or an access violation on Windows)
    detail: str = ""
    tokens_per_second: float | None = None
    tokens: int = 0


def probe_command(model_path: str | os.PathLike[str], *, extra_buffers: bool, n_gpu_layers: int = 0,
                  tokens: int = 8) -> list[str]:
    return [sys.executable, "-m", "modelctl.backends.probe", str(model_path),
            "--extra-buffers", "on" if extra_buffers else "off",
            "--gpu-layers", str(n_gpu_layers), "--tokens", str(tokens)]


def _signal_name(returncode: int) -> str | None:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    if returncode >= 0xC0000000:  # a Windows exception code (0xC0000005: access violation)
        return f"exception 0x{returncode:08X}"
    return None


def run_probe(command: list[str], *, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run a probe child (`probe_command`) and read how it ended. Never raises for the child's
    failure: a crash, a timeout and an error are all results."""
    env = dict(os.environ, PYTHONFAULTHANDLER="")  # the crash is reported here, not dumped
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, detail=f"no answer within {timeout:.0f} s")
    except OSError as exc:
        return ProbeResult(False, detail=f"could not start: {exc.strerror or exc}")
    died = _signal_name(done.returncode)
    if died:
        return ProbeResult(False, crashed=True, detail=died)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return ProbeResult(False, detail=lines[-1] if lines else f"exit status {done.returncode}")
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        return ProbeResult(True, tokens=int(report["tokens"]),
                           tokens_per_second=float(report["tokens_per_second"]))
    except (ValueError, KeyError, IndexError, TypeError):
        return ProbeResult(False, detail="the test run printed no report")


# --- remembered verdicts -----------------------------------------------------------------------


def verdict_key(build_id: str, cpu: CpuInfo) -> str:
    """One key per llama.cpp build and CPU model."""
    text = "\n".join([build_id, cpu.arch, cpu.model or "", " ".join(sorted(cpu.flags or ()))])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def read_verdicts(path: Path) -> dict[str, Any]:
    """The remembered verdicts; a missing or unreadable file is no verdicts (they are re-probed)."""

    text = read_kept_text(path)
    try:
        data = json.loads(text) if text is not None else {}
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_verdict(path: Path, key: str, verdict: str, detail: str) -> None:
    """Keep a verdict; a cache that cannot be written only means probing again next time."""

    verdicts = read_verdicts(path)
    verdicts[key] = {"verdict": verdict, "detail": detail}
    try:
        atomic_write(path, json.dumps(verdicts, indent=1).encode())
    except Exception:  # noqa: BLE001 - a read-only cache dir must not stop a chat
        pass


def given_verdict() -> str | None:
    """The verdict `MODELCTL_CPU_VERDICT` gives (None: unset or `probe`, find out here)."""
    value = os.environ.get(VERDICT_ENV, "").strip().lower()
    if value in ("", "probe"):
        return None
    if value not in VERDICTS:
        raise UsageError(f"{VERDICT_ENV}: expected ok, crash or probe, got {os.environ[VERDICT_ENV]!r}")
    return value


def choose(model_path: str | os.PathLike[str], *, build: BuildInfo, cpu: CpuInfo, build_id: str,
           cache_dir: Path, override: bool | None = None,
           probe: Callable[[list[str]], ProbeResult] = run_probe) -> BufferChoice:
    """The path for loading `model_path` here: decided from the facts, a given or remembered
    verdict, or a probe with this model (whose verdict is then remembered)."""
    path = cache_dir / VERDICTS_FILE
    key = verdict_key(build_id, cpu)
    verdict = given_verdict()
    if verdict is None:
        known = read_verdicts(path).get(key)
        verdict = known.get("verdict") if isinstance(known, Mapping) else None
    choice = decide(build, cpu, override=override, verdict=verdict)
    if choice is not None:
        return choice
    result = probe(probe_command(model_path, extra_buffers=True))
    if result.ok:
        remember_verdict(path, key, "ok", f"{result.tokens_per_second:.1f} tokens/s")
        return BufferChoice(True, "AMX build on an AMX CPU; a test run of the AMX path worked")
    if result.crashed:
        remember_verdict(path, key, "crash", result.detail)
        return BufferChoice(False, f"AMX build on an AMX CPU; the AMX path crashed in a test run ({result.detail})")
    return BufferChoice(False, f"AMX build on an AMX CPU; the test run failed ({result.detail}), not remembered")


# --- applying the choice -----------------------------------------------------------------------

_PATCH_LOCK = threading.Lock()


def supports_choice(llama_cpp: ModuleType) -> bool:
    """Whether this llama-cpp-python has the `use_extra_bufts` model parameter."""
    return any(name == OPTION for name, *_ in getattr(llama_cpp.llama_model_params, "_fields_", ()))


@contextmanager
def model_params(llama_cpp: ModuleType, *, use_extra_bufts: bool) -> Iterator[None]:
    """Within the block, `Llama(...)` loads with `use_extra_bufts` as given.

    llama-cpp-python's `Llama` takes no such argument: it builds its model parameters from
    `llama_model_default_params()`, so the block wraps that function (under a lock: it is
    module state). With the default (True) nothing is changed."""
    if use_extra_bufts:
        yield
        return
    module = llama_cpp.llama_cpp
    with _PATCH_LOCK:
        original = module.llama_model_default_params

        def defaults() -> llama_model_params:
            params: llama_model_params = original()
            params.use_extra_bufts = False
            return params

        module.llama_model_default_params = defaults
        try:
            yield
        finally:
            module.llama_model_default_params = original


def build_identity(llama_cpp: ModuleType) -> str:
    """What makes one llama.cpp build differ from another: version, features, library file."""
    lib = getattr(getattr(llama_cpp.llama_cpp, "_lib", None), "_name", "") or ""
    try:
        st = os.stat(lib)
        stamp = f"{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        stamp = ""
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "\n".join([getattr(llama_cpp, "__version__", "?"), lib, stamp, info])
