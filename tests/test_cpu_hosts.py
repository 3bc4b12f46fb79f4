"""llama.cpp builds against the CPUs they run on, on recorded hosts (tests/data/hosts/).

ggml names instruction sets one way (`AVX512_VBMI`, `NEON`, `SSE3`), the kernel another
(`avx512vbmi`, `asimd`, `pni`): `doctor` must never call a build broken for a feature the CPU
has under another spelling. Each recorded host comes with the CPU features a native build of
llama.cpp on it compiles in; such a build lacks nothing there. The whole `doctor` runs on some
of them through MODELCTL_CPUINFO and MODELCTL_LLAMA_SYSTEM_INFO, with a real generation.
"""

from __future__ import annotations

import json

import pytest
from hosts import HOSTS, NATIVE_BUILDS, system_info

from modelctl.backends.hardware import FEATURE_FLAGS, parse_cpuinfo, parse_sysctl, parse_system_info

_SPR = NATIVE_BUILDS["sapphire-rapids.cpuinfo"]


def host(name: str):
    text = (HOSTS / name).read_text()
    return parse_sysctl(text, arch="arm64") if name.endswith(".sysctl") else parse_cpuinfo(text)


@pytest.mark.parametrize("name", sorted(NATIVE_BUILDS))
def test_a_native_build_lacks_nothing_on_its_own_host(name):
    cpu = host(name)
    build = parse_system_info(system_info(NATIVE_BUILDS[name]))
    assert cpu.flags, name
    assert build.missing_on(cpu) == []
    assert set(NATIVE_BUILDS[name].split()) <= set(build.cpu_features())


@pytest.mark.parametrize("name", sorted(NATIVE_BUILDS))
def test_doctor_s_cpu_line_names_every_instruction_set_of_a_native_build(name):
    """The flags `doctor` shows are read in the kernel's spellings too (Linux's `pni`,
    `avx512vbmi`): each instruction set the host's own build uses is among them."""
    from modelctl.backends.hardware import FEATURE_FLAGS

    shown = host(name).notable_flags()
    for feature in NATIVE_BUILDS[name].split():
        assert set(FEATURE_FLAGS[feature]) & set(shown), (feature, shown)


def test_every_instruction_set_ggml_names_is_checked_on_some_host():
    """The table of spellings is exercised: each ggml feature it knows appears in some native
    build above, so a wrong spelling would make that host fail."""
    used = {feature for features in NATIVE_BUILDS.values() for feature in features.split()}
    assert set(FEATURE_FLAGS) <= used


@pytest.mark.parametrize("build_on, run_on, missing", [
    ("sapphire-rapids.cpuinfo", "zen4-epyc-9r14.cpuinfo", ["AVX_VNNI", "AMX_INT8"]),
    ("zen4-epyc-9r14.cpuinfo", "zen3-epyc-7r13.cpuinfo", ["AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"]),
    ("ice-lake-sp.cpuinfo", "skylake-sp.cpuinfo", ["AVX512_VBMI", "AVX512_VNNI"]),
    ("skylake-sp.cpuinfo", "zen2-epyc-7r32.cpuinfo", ["AVX512"]),
    ("graviton3.cpuinfo", "graviton2.cpuinfo", ["MATMUL_INT8", "SVE"]),
    ("apple-m4.sysctl", "apple-m1.sysctl", ["MATMUL_INT8", "SME"]),
])
def test_a_build_copied_to_an_older_cpu_lacks_what_it_lacks(build_on, run_on, missing):
    build = parse_system_info(system_info(NATIVE_BUILDS[build_on]))
    assert build.missing_on(host(run_on)) == missing


def test_features_that_are_not_instruction_sets_or_unknown_flags_are_not_judged():
    build = parse_system_info(system_info("AVX2 KLEIDIAI SVE_CNT NEW_THING", extra="ACCELERATE = 1"))
    assert build.missing_on(host("zen2-epyc-7r32.cpuinfo")) == []
    unknown = parse_cpuinfo("model name : something\n")  # no flags line: nothing is known
    assert parse_system_info(system_info(_SPR)).missing_on(unknown) == []


def test_apple_sysctl_reads_as_linux_spellings():
    m4 = host("apple-m4.sysctl")
    assert m4.model == "Apple M4 Max"
    assert {"asimd", "asimdhp", "asimddp", "i8mm", "sme"} <= m4.flags
    assert "i8mm" not in host("apple-m1.sysctl").flags


# --- doctor, whole ----------------------------------------------------------------------------


def _doctor(run_modelctl, cpuinfo: str, features: str, *args: str):
    done = run_modelctl("doctor", "--json", *args, env={
        "MODELCTL_CPUINFO": str(HOSTS / cpuinfo),
        "MODELCTL_LLAMA_SYSTEM_INFO": system_info(features),
        # The real verdict of this host where it has one; a recorded AMX host needs one too.
        "MODELCTL_CPU_VERDICT": "crash",
    }, timeout=300)
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    return done, checks


@pytest.mark.parametrize("name", ["sapphire-rapids.cpuinfo", "zen4-epyc-9r14.cpuinfo", "graviton3.cpuinfo"])
def test_doctor_is_green_for_a_native_build(run_modelctl, name):
    done, checks = _doctor(run_modelctl, name, NATIVE_BUILDS[name], "--quick")
    assert checks["llama.cpp build"]["status"] == "ok", checks["llama.cpp build"]
    assert done.returncode == 0, done.stdout


def test_a_generation_that_works_outweighs_the_flags(run_modelctl, model_path):
    """A build that seems compiled for instructions the CPU lacks, while it generates here: a
    warning, never a FAIL that contradicts the working generation. Without the generation
    (--quick) nothing contradicts the flags, and the FAIL stands."""
    done, checks = _doctor(run_modelctl, "zen2-epyc-7r32.cpuinfo", _SPR)
    assert checks["generation"]["status"] == "ok", checks["generation"]
    build = checks["llama.cpp build"]
    assert build["status"] == "warn" and "AMX_INT8" in build["summary"] and "generates here" in build["summary"]
    assert done.returncode == 0
    quick, checks = _doctor(run_modelctl, "zen2-epyc-7r32.cpuinfo", _SPR, "--quick")
    assert checks["llama.cpp build"]["status"] == "fail" and quick.returncode == 1
    assert "AVX_VNNI" in checks["llama.cpp build"]["summary"]


def test_plain_doctor_shows_the_build_line_once_settled(run_modelctl, model_path):
    done = run_modelctl("doctor", env={"MODELCTL_CPUINFO": str(HOSTS / "zen2-epyc-7r32.cpuinfo"),
                                       "MODELCTL_LLAMA_SYSTEM_INFO": system_info(_SPR),
                                       "MODELCTL_CPU_VERDICT": "crash"}, timeout=300)
    lines = done.stdout.splitlines()
    build = [line for line in lines if line.split()[1:2] == ["llama.cpp"]]
    assert len(build) == 1 and build[0].startswith("WARN"), lines
    assert not [line for line in lines if line.startswith("FAIL")], lines


def test_a_recorded_cpuinfo_that_cannot_be_read_is_one_line(run_modelctl, tmp_path):
    done = run_modelctl("doctor", "--quick", env={"MODELCTL_CPUINFO": str(tmp_path / "missing")})
    assert done.returncode == 4
    assert done.stderr.splitlines() == [f"modelctl: error: the MODELCTL_CPUINFO file '{tmp_path / 'missing'}': "
                                        "no such file"]
