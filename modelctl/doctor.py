"""`modelctl doctor`: what this install runs on, and whether each part works.

Each check returns a `Check`: a status (ok, warn, fail, info), one line saying what was found,
and where something is wrong, the command or step that fixes it. A check never raises: what it
could not find out is its answer. Checks that could crash the process (generating with
llama.cpp) run in a child process.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modelctl.backends import extra_buffers
from modelctl.backends.hardware import host_cpu, llama_build
from modelctl.chat.availability import reach
from modelctl.config import get_paths
from modelctl.errors import ModelctlError
from modelctl.gguf import available_memory
from modelctl.keyfile import keys_path
from modelctl.keys import key_status
from modelctl.registry.loader import check_file, registry_layers
from modelctl.store.default_model import SMOLLM2, default_model_path
from modelctl.transport.ollama_server import ollama_host
from modelctl.transport.server_text import one_line
from modelctl.transport.urls import redact_url
from modelctl.units import human_bytes
from modelctl.version import __version__

if TYPE_CHECKING:
    from modelctl.backends.extra_buffers import BufferChoice

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
_REBUILD = "pip install --force-reinstall --no-cache-dir llama-cpp-python"
_GENERATE_TOKENS = 16


@dataclass
class Check:
    name: str
    status: str
    summary: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "summary": self.summary, "fix": self.fix,
                **({"details": self.details} if self.details else {})}


class _Facts:
    """What several checks share, found once: the llama.cpp module and build, the CPU."""

    def __init__(self) -> None:
        self.cpu = host_cpu()
        self.llama_cpp: Any = None
        self.build = None
        self.import_error: str | None = None
        try:
            import llama_cpp  # noqa: PLC0415 (llama_cpp: optional)

            self.llama_cpp = llama_cpp
            self.build = llama_build(llama_cpp)
        except Exception as exc:  # noqa: BLE001 - an import that fails in any way is the answer
            self.import_error = f"{type(exc).__name__}: {exc}"
        self.buffers: BufferChoice | None = None

    @property
    def gpu_offload(self) -> bool:
        return bool(self.llama_cpp is not None and self.llama_cpp.llama_supports_gpu_offload())


# --- the checks --------------------------------------------------------------------------------


def check_python(_: _Facts) -> Check:
    version = platform.python_version()
    status = OK if sys.version_info >= (3, 10) else FAIL
    return Check("python", status, f"Python {version} ({sys.executable})",
                 fix=None if status == OK else "modelctl needs Python 3.10 or newer")


def check_modelctl(_: _Facts) -> Check:
    return Check("modelctl", OK, f"modelctl {__version__} ({Path(__file__).parent})")


def check_llama_cpp(facts: _Facts) -> Check:
    if facts.llama_cpp is None:
        return Check("llama-cpp-python", FAIL, f"cannot be imported ({facts.import_error})",
                     fix="pip install llama-cpp-python")
    return Check("llama-cpp-python", OK, f"llama-cpp-python {getattr(facts.llama_cpp, '__version__', '?')}")


def check_build(facts: _Facts) -> Check:
    build = facts.build
    if build is None:
        return Check("llama.cpp build", FAIL, "unknown (llama-cpp-python is not usable)")
    parts = [f"CPU: {' '.join(build.cpu_features()) or 'generic'}"]
    parts.append(f"GPU: {', '.join(build.gpu_backends)}" if build.gpu_backends or facts.gpu_offload else "GPU: none")
    parts.append(f"AMX: {'yes' if build.amx else 'no'}")
    parts.append(f"BLAS: {'yes' if build.blas else 'no'}")
    details = {"system_info": build.text, "cpu_features": build.cpu_features(), "gpu_backends": build.gpu_backends,
               "gpu_offload": facts.gpu_offload, "amx": build.amx, "blas": build.blas}
    missing = build.missing_on(facts.cpu)
    details["missing_cpu_features"] = missing
    if missing:
        return Check("llama.cpp build", FAIL, "; ".join(parts) + f"; built for instructions this CPU lacks: "
                     f"{', '.join(missing)} (it will stop with an illegal instruction)",
                     fix=f"rebuild it on this machine: {_REBUILD}", details=details)
    return Check("llama.cpp build", OK, "; ".join(parts), details=details)


def check_cpu(facts: _Facts) -> Check:
    cpu = facts.cpu
    flags = cpu.notable_flags()
    summary = f"{cpu.model or 'unknown model'} ({cpu.arch}, {cpu.cores} cores)"
    if cpu.flags is not None:
        summary += f"; {' '.join(flags) or 'no vector extensions'}"
    return Check("cpu", OK if cpu.flags is not None or cpu.arch else INFO, summary,
                 details={"model": cpu.model, "arch": cpu.arch, "cores": cpu.cores, "flags": flags,
                          "amx": cpu.has_amx})


def check_cpu_path(facts: _Facts) -> Check:
    """Which llama.cpp path a local model takes here (AMX and repacking, or the safe path)."""

    if facts.build is None:
        return Check("cpu path", FAIL, "unknown (llama-cpp-python is not usable)")
    choice = extra_buffers.decide(facts.build, facts.cpu)
    if choice is None:  # an AMX build on an AMX CPU: a remembered verdict, or a probe now
        model, _ = _default_model()
        if model is None:
            return Check("cpu path", WARN, "AMX build on an AMX CPU, not tested yet (the first local chat tests it)")
        choice = extra_buffers.choose(model, build=facts.build, cpu=facts.cpu, cache_dir=get_paths().cache_dir,
                                      build_id=extra_buffers.build_identity(facts.llama_cpp))
    facts.buffers = choice
    details = {"extra_buffers": choice.enabled, "reason": choice.reason}
    if choice.enabled:
        return Check("cpu path", OK, choice.describe(), details=details)
    fix = f"rebuild llama-cpp-python without AMX for full speed: {extra_buffers.REBUILD_WITHOUT_AMX}"
    if not extra_buffers.supports_choice(facts.llama_cpp):
        return Check("cpu path", FAIL, choice.describe() + "; this llama-cpp-python cannot turn them off",
                     fix=fix, details=details)
    return Check("cpu path", WARN, choice.describe() + "; local models run, more slowly", fix=fix, details=details)


def _meminfo() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable") and rest.split():
                    found[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return found


def _nvidia_gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs and their memory, from nvidia-smi where it exists."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        done = subprocess.run([exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in done.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            gpus.append({"name": fields[0], "vram_total": int(fields[1]) << 20, "vram_free": int(fields[2]) << 20})
    return gpus


def check_memory(facts: _Facts) -> Check:
    info = _meminfo()
    if not info:
        total = available_memory()
        return Check("memory", INFO if total is None else OK,
                     "unknown" if total is None else f"{human_bytes(total)} RAM")
    summary = f"{human_bytes(info.get('MemTotal', 0))} RAM, {human_bytes(info.get('MemAvailable', 0))} available"
    return Check("memory", OK, summary, details={"ram_total": info.get("MemTotal"),
                                                  "ram_available": info.get("MemAvailable")})


def check_gpu(facts: _Facts) -> Check:
    gpus = _nvidia_gpus()
    details: dict[str, Any] = {"gpus": gpus, "offload": facts.gpu_offload}
    mac_arm = sys.platform == "darwin" and platform.machine() == "arm64"
    if gpus:
        names = "; ".join(f"{g['name']} ({human_bytes(g['vram_total'])} VRAM, {human_bytes(g['vram_free'])} free)"
                          for g in gpus)
        if facts.build is not None and "CUDA" not in facts.build.gpu_backends and not facts.gpu_offload:
            return Check("gpu", WARN, f"{names}; this llama.cpp build cannot use it",
                         fix=f'CMAKE_ARGS="-DGGML_CUDA=on" {_REBUILD}', details=details)
        return Check("gpu", OK, f"{names}; layers are offloaded (--gpu-layers)", details=details)
    if mac_arm:
        if facts.gpu_offload:
            return Check("gpu", OK, "Apple GPU through Metal; layers are offloaded", details=details)
        return Check("gpu", WARN, "Apple GPU, but this llama.cpp build has no Metal",
                     fix=f'CMAKE_ARGS="-DGGML_METAL=on" {_REBUILD}', details=details)
    if facts.gpu_offload:
        backends = ", ".join(facts.build.gpu_backends) if facts.build else "GPU"
        return Check("gpu", OK, f"llama.cpp can offload to {backends or 'a GPU'}", details=details)
    return Check("gpu", INFO, "none found; local models run on the CPU", details=details)


def _default_model() -> tuple[Path | None, str | None]:
    """The default chat model's file, or None and why not."""

    try:
        path = default_model_path()
    except Exception as exc:  # noqa: BLE001 - reported by the generation check
        return None, f"the default model cannot be prepared: {exc}"
    return path, None if path else f"no default model is installed ({SMOLLM2.install})"


def check_generation(facts: _Facts) -> Check:
    """A few tokens of the default model, in a child process, on the path chat would take."""

    if facts.llama_cpp is None:
        return Check("generation", FAIL, "skipped: llama-cpp-python is not usable")
    model, why = _default_model()
    if model is None:
        installed = why is not None and "pip install" in why
        return Check("generation", WARN if installed else FAIL, why or "no default model",
                     fix=SMOLLM2.install if installed else None)
    enabled = facts.buffers.enabled if facts.buffers is not None else True
    layers = -1 if facts.gpu_offload else 0
    result = extra_buffers.run_probe(extra_buffers.probe_command(
        model, extra_buffers=enabled, n_gpu_layers=layers, tokens=_GENERATE_TOKENS))
    details = {"path": str(model), "extra_buffers": enabled, "gpu_layers": layers,
               "tokens": result.tokens, "tokens_per_second": result.tokens_per_second}
    if result.ok:
        return Check("generation", OK, f"{model.name}: {result.tokens} tokens at {result.tokens_per_second:.1f} "
                     f"tokens/s ({'GPU' if layers else 'CPU'})", details=details)
    if result.crashed:
        return Check("generation", FAIL, f"llama.cpp crashed generating ({result.detail})",
                     fix=f"try -o use_extra_bufts=false, or rebuild: {extra_buffers.REBUILD_WITHOUT_AMX}",
                     details=details)
    return Check("generation", FAIL, f"could not generate: {result.detail}", details=details)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return candidate
        except OSError:
            continue
    return Path("/")


def check_paths(_: _Facts) -> Iterator[Check]:
    paths = get_paths()
    for label, path in (("config dir", paths.config_dir), ("data dir", paths.data_dir), ("cache dir", paths.cache_dir)):
        yield _check_dir(label, path)


def _check_dir(label: str, path: Path) -> Check:
    where = _nearest_existing(path)
    details: dict[str, Any] = {"path": str(path)}
    if not where.is_dir():
        return Check(label, FAIL, f"{path}: {where} is not a directory", fix=f"move {where} away, "
                     "or point MODELCTL_HOME elsewhere", details=details)
    if not os.access(where, os.W_OK | os.X_OK):
        return Check(label, FAIL, f"{path}: {where} cannot be written", fix=f"fix the permissions of {where}, "
                     "or point MODELCTL_HOME elsewhere", details=details)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None
    details["free_bytes"] = free
    state = "" if where == path else " (not created yet)"
    room = f", {human_bytes(free)} free" if free is not None else ""
    return Check(label, OK, f"{path}{state}{room}", details=details)


def check_registry(_: _Facts, extra: str | None = None) -> Iterator[Check]:
    for path in registry_layers(extra):
        try:
            models, problems = check_file(Path(path))
        except Exception as exc:  # noqa: BLE001 - a file that cannot be checked is a failing check
            yield Check("registry", FAIL, f"{path}: {exc}", fix="fix or remove the file")
            continue
        if problems:
            yield Check("registry", FAIL, f"{path}: {len(problems)} problem(s), first: {problems[0]}",
                        fix=f"modelctl registry validate {path}")
        else:
            yield Check("registry", OK, f"{path}: {len(models)} models")


def check_keys(_: _Facts) -> Check:
    try:
        rows = key_status()
    except (ModelctlError, OSError) as exc:
        return Check("api keys", FAIL, f"the keys file cannot be read: {exc}",
                     fix=f"check {keys_path()} (a TOML file readable by you), or remove it and set the keys again")
    present = [f"{row['label']} ({row['source']})" for row in rows if row["set"]]
    details = {"present": [row["provider"] for row in rows if row["set"]]}
    return Check("api keys", OK if present else INFO,
                 "present: " + ", ".join(present) if present else "none (only local models and keyless servers)",
                 details=details)


def check_hub(_: _Facts) -> Check:
    home = os.environ.get("HF_HOME")
    endpoint = os.environ.get("HF_ENDPOINT")
    offline = os.environ.get("HF_HUB_OFFLINE", "")
    parts = [f"HF_HOME={home}" if home else "HF_HOME unset",
             f"HF_ENDPOINT={redact_url(endpoint)}" if endpoint else "HF_ENDPOINT unset (huggingface.co)",
             "offline (HF_HUB_OFFLINE)" if offline not in ("", "0") else "online"]
    if endpoint and not endpoint.strip().lower().startswith(("http://", "https://")):
        return Check("hugging face", WARN, "; ".join(parts), fix="HF_ENDPOINT must be an http(s) URL")
    return Check("hugging face", INFO, "; ".join(parts))


def check_ollama(_: _Facts) -> Check:
    try:
        host = ollama_host()
    except ModelctlError as exc:
        return Check("ollama", WARN, str(exc), fix="set OLLAMA_HOST or api_base.ollama to host:port")

    body = reach(f"{host}/api/version")[2]  # bounded in time, bytes and JSON
    version = body.get("version") if isinstance(body, dict) else None
    shown = redact_url(host)
    if isinstance(version, str) and version.strip():
        return Check("ollama", OK, f"Ollama {one_line(version, 40)} answers at {shown}")
    return Check("ollama", INFO, f"no Ollama server answers at {shown} (needed only for ollama deployments)",
                 fix="start it with `ollama serve`, or set OLLAMA_HOST or api_base.ollama")


# --- running them ------------------------------------------------------------------------------

_CHECKS: list[tuple[str, Callable[..., Any]]] = [
    ("python", check_python), ("modelctl", check_modelctl), ("llama-cpp-python", check_llama_cpp),
    ("llama.cpp build", check_build), ("cpu", check_cpu), ("cpu path", check_cpu_path),
    ("memory", check_memory), ("gpu", check_gpu), ("generation", check_generation),
    ("paths", check_paths), ("registry", check_registry), ("api keys", check_keys),
    ("hugging face", check_hub), ("ollama", check_ollama),
]


def run_checks(*, generate: bool = True, registry: str | None = None,
               on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Every check, in order; `on_check` sees each as it is done (for live output).

    A build that seems compiled for instructions this CPU lacks is shown after the generation
    check, which settles it: a build that generates here does run on this CPU."""
    facts = _Facts()
    checks: list[Check] = []
    held: list[Check] = []
    for name, fn in _CHECKS:
        if name == "generation" and not generate:
            continue
        try:
            found = fn(facts, registry) if fn is check_registry else fn(facts)
            results = [found] if isinstance(found, Check) else list(found)
        except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
            results = [Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}")]
        for check in results:
            checks.append(check)
            if generate and check.status == FAIL and check.details.get("missing_cpu_features"):
                held.append(check)
                continue
            if check.name == "generation" and check.status == OK:
                for suspect in held:
                    _generation_works(suspect)
            if on_check is not None:
                on_check(check)
                if check.name == "generation":
                    for suspect in held:
                        on_check(suspect)
    return checks


def _generation_works(check: Check) -> None:
    """The build check, once the build has generated here: a feature the CPU's flags do not list
    is a flag this check cannot read, not an instruction the CPU lacks."""
    missing = ", ".join(check.details["missing_cpu_features"])
    check.status = WARN
    check.summary = check.summary.split("; built for instructions")[0] + (
        f"; built for {missing}, which this CPU's flags do not list, but it generates here")
    check.fix = None
