"""A test run of llama.cpp, meant to run in a child process: load a GGUF, evaluate a short
prompt, generate a few tokens, print one JSON line with the speed.

    python -m modelctl.backends.probe MODEL.gguf [--extra-buffers on|off] [--gpu-layers N] [--tokens N]

If the native library crashes, only this child dies; the parent (`extra_buffers.run_probe`)
reads the signal and decides. Exit status 0 with the JSON line means it worked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from modelctl.backends.extra_buffers import model_params

# Long enough that the prompt is evaluated as a batch (the matrix-matrix kernels run), as a
# chat's first turn is.
_PROMPT = ("The sea is wide and deep. Ships cross it from one harbour to the next, carrying "
           "grain, wood and letters. Sailors read the stars and the wind, and they write down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelctl.backends.probe")
    parser.add_argument("model")
    parser.add_argument("--extra-buffers", choices=("on", "off"), default="on")
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args(argv)

    import llama_cpp  # noqa: PLC0415 (llama_cpp: imported only where used)

    quiet = llama_cpp.llama_log_callback(lambda *_: None)  # kept alive while llama.cpp logs
    llama_cpp.llama_log_set(quiet, None)
    with model_params(llama_cpp, use_extra_bufts=args.extra_buffers == "on"):
        llm = llama_cpp.Llama(args.model, n_ctx=256, n_batch=256, n_gpu_layers=args.gpu_layers,
                              verbose=False)
    prompt = llm.tokenize(_PROMPT.encode(), add_bos=True)
    started = time.perf_counter()
    first = None
    count = 0
    for _token in llm.generate(prompt, temp=0.0, top_k=1):
        count += 1
        if first is None:
            first = time.perf_counter()
        if count >= args.tokens:
            break
    end = time.perf_counter()
    rate = (count - 1) / (end - first) if first is not None and count > 1 and end > first else 0.0
    print(json.dumps({"tokens": count, "tokens_per_second": round(rate, 2),
                      "prompt_tokens": len(prompt), "prompt_s": round((first or end) - started, 4)}))
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
