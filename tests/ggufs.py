"""Small real GGUF files for tests, written with the `gguf` package."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

TOKENS = ("<unk>", "<s>", "</s>", "hi")


def write_gguf(
    path: Path | str,
    arch: str = "llama",
    *,
    name: str | None = "Tiny Test Model",
    file_type: int | None = 15,
    context: int = 256,
    template: str | None = None,
    kv: Mapping[str, str] | None = None,
    tensors: Mapping[str, Any] | None = None,
    n_floats: int = 32,
    tokens: Sequence[str] = TOKENS,
) -> Path:
    """A valid GGUF file: a one-block `arch` model with a four-token vocabulary (BOS 1, EOS 2),
    an optional chat template and extra string keys, and `tensors` — by default one f32 tensor of
    `n_floats` values that depend on `n_floats`, so files of different sizes differ in content."""
    import gguf
    import numpy as np

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(context)
    if name:
        writer.add_name(name)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(tokens))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if template is not None:
        writer.add_chat_template(template)
    for key, value in (kv or {}).items():
        writer.add_string(key, value)
    if tensors is None:
        tensors = {"w": np.random.default_rng(n_floats).random(n_floats, dtype=np.float32)}
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
