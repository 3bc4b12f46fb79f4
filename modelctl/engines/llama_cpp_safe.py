"""llama-cpp-python's own server, `python -m llama_cpp.server ARGS`, with its models loaded
without llama.cpp's extra buffer types (AMX, weight repacking).

`serve --engine llama-cpp-python` runs this instead of `llama_cpp.server` where modelctl's CPU
check chose the safe path for this llama-cpp-python build: an AMX build on a CPU whose AMX path
crashes (see backends/extra_buffers). The arguments are the server's own, passed through.

    python -m modelctl.engines.llama_cpp_safe --model FILE.gguf --port 8000 …
"""

from __future__ import annotations


def main() -> None:
    import llama_cpp  # noqa: PLC0415 (the engine's process only)
    from llama_cpp.server.__main__ import main as server_main  # noqa: PLC0415 (the engine's process only)

    from modelctl.backends import extra_buffers  # noqa: PLC0415 (the engine's process only)

    # The server loads its models once, at start: the patched defaults last as long as it does.
    with extra_buffers.model_params(llama_cpp, use_extra_bufts=False):
        server_main()


if __name__ == "__main__":
    main()
