"""Fixtures shared by the store tests: an isolated Hugging Face cache and a loopback Hub.

Loaded for every test module by conftest.py; a module whose tests all need the isolated cache
says `pytestmark = pytest.mark.usefixtures("hf_env")`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hubserver import HubServer, closed_port


@pytest.fixture
def hf_env(tmp_path: Path, monkeypatch) -> Path:
    """The Hub cache, HF_HOME and the Ollama host point to places this test alone owns; returns
    the cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in ("HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    return tmp_path / "hf-cache"


@pytest.fixture
def hub_server(monkeypatch):
    """A running loopback Hub, with HF_ENDPOINT pointing at it."""
    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    yield server
    server.stop()
