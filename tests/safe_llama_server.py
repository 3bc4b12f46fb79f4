"""`python tests/safe_llama_server.py --model M ...`: llama-cpp-python's OpenAI-compatible server
(`python -m llama_cpp.server`, same arguments) loading M on the extra-buffer path modelctl
chooses for this machine, so that it does not crash where llama.cpp's AMX path does."""

from __future__ import annotations

import runpy
import sys

import llama_cpp

from modelctl.backends import extra_buffers
from modelctl.backends.llamacpp import LlamaCppBackend

if __name__ == "__main__":
    model = sys.argv[sys.argv.index("--model") + 1]
    choice = LlamaCppBackend(model).buffer_choice()
    with extra_buffers.model_params(llama_cpp, use_extra_bufts=choice.enabled):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
