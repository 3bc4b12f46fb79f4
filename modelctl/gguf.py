"""GGUF files: a small pure-Python header reader and a pre-load check.

The model shipped as a Python package (the default model) is in `modelctl.store.default_model`.

The reader parses the header (key/values and tensor infos) through a read-only memory map, so it
touches only the pages it reads: a few milliseconds even for a multi-gigabyte model. Large arrays
(the tokenizer's vocabulary, scores, merges) are skipped rather than decoded; the BOS and EOS
token *texts* are looked up in the vocabulary by id, because templates need them.

Layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all little-endian:

    magic "GGUF" · u32 version · u64 tensor_count · u64 kv_count
    kv_count × (string key · u32 value_type · value)
    tensor_count × (string name · u32 n_dims · n_dims × u64 dim · u32 ggml_type · u64 offset)
    padding to `general.alignment` (default 32) · tensor data

A string is a u64 byte length and UTF-8 bytes; an array is a u32 item type, a u64 count and the
items. Version 1 (u32 counts) is gone from llama.cpp, so it is refused here too.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import ModelFileError
from modelctl.files import check_regular_file
from modelctl.units import human_bytes as _human

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Arrays longer than this are skipped (only their item type and length are kept in `arrays`).
MAX_ARRAY_ITEMS = 256

# GGUF value types: id -> struct format of one item (None: string, array).
_SCALAR_FORMATS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING, _ARRAY = 8, 9

# ggml tensor types: id -> (name, elements per block, bytes per block). From ggml.h / ggml.c.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# Architectures (`general.architecture`) that llama.cpp loads as models (llama-arch.cpp), as of
# the llama.cpp in llama-cpp-python 0.3.36; "clip" (a multimodal projector) is refused apart.
KNOWN_ARCHITECTURES = frozenset(
    """
    afmoe apertus arcee arctic arwkv7 baichuan bailingmoe bailingmoe2 bert bitnet bloom
    chameleon chatglm codeshell cogvlm cohere2 command-r dbrx deci deepseek deepseek2
    deepseek2-ocr dots1 dream ernie4_5 ernie4_5-moe eurobert exaone exaone-moe exaone4 falcon
    falcon-h1 gemma gemma-embedding gemma2 gemma3 gemma3n gemma4 glm-dsa glm4 glm4moe gpt-oss
    gpt2 gptj gptneox granite granitehybrid granitemoe grok grovemoe hunyuan-dense hunyuan-moe
    hunyuan_vl internlm2 jais jais2 jamba jina-bert-v2 jina-bert-v3 kimi-linear lfm2 lfm2moe
    llada llada-moe llama llama-embed llama4 maincoder mamba mamba2 mimo2 minicpm minicpm3
    minimax-m2 mistral3 mistral4 modern-bert mpt nemotron nemotron_h nemotron_h_moe neo-bert
    nomic-bert nomic-bert-moe olmo olmo2 olmoe openelm orion paddleocr pangu-embedded phi2 phi3
    phimoe plamo plamo2 plamo3 plm qwen qwen2 qwen2moe qwen2vl qwen3 qwen35 qwen35moe qwen3moe
    qwen3next qwen3vl qwen3vlmoe refact rnd1 rwkv6 rwkv6qwen2 rwkv7 seed_oss smallthinker
    smollm3 stablelm starcoder starcoder2 step35 t5 t5encoder wavtokenizer-dec xverse
    """.split()
)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # relative to the start of the tensor data

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"type {self.type_id}", 0, 0))[0]

    @property
    def nbytes(self) -> int | None:
        """Bytes of data, or None for a ggml type this reader does not know."""
        if self.type_id not in GGML_TYPES:
            return None
        _, block, size = GGML_TYPES[self.type_id]
        n = 1
        for d in self.shape:
            n *= d
        return n // block * size


@dataclass
class GGUFFile:
    """What the header of a GGUF file says."""

    path: Path
    file_size: int
    version: int
    metadata: dict[str, Any]
    arrays: dict[str, tuple[str, int]] = field(default_factory=dict)  # skipped: key -> (type, len)
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0  # where the tensor data starts

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    @property
    def required_size(self) -> int | None:
        """The file size the tensor infos require, or None when a tensor type is unknown."""
        end = self.data_offset
        for t in self.tensors:
            if t.nbytes is None:
                return None
            end = max(end, self.data_offset + t.offset + t.nbytes)
        return end


class _Truncated(Exception):
    pass


class _Parser:
    """A cursor over the memory-mapped header."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)

    def need(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _Truncated

    def unpack(self, st: struct.Struct) -> Any:
        self.need(st.size)
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def u32(self) -> int:
        value: int = self.unpack(_U32)
        return value

    def u64(self) -> int:
        value: int = self.unpack(_U64)
        return value

    def string(self) -> str:
        n = self.u64()
        self.need(n)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is None:
            raise ValueError(f"unknown GGUF value type {vtype}")
        return self.unpack(struct.Struct(fmt))

    def skip_array(self, itype: int, count: int, depth: int = 1) -> None:
        _check_depth(depth)
        if itype == _STRING:
            buf, pos, u64 = self.buf, self.pos, _U64.unpack_from
            try:
                for _ in range(count):
                    pos += 8 + u64(buf, pos)[0]
            except struct.error:
                raise _Truncated from None
            self.pos = pos
            self.need(0)
        elif itype == _ARRAY:
            for _ in range(count):
                self.skip_array(self.u32(), self.u64(), depth + 1)
        else:
            fmt = _SCALAR_FORMATS.get(itype)
            if fmt is None:
                raise ValueError(f"unknown GGUF array item type {itype}")
            n = struct.calcsize(fmt) * count
            self.need(n)
            self.pos += n

    def array(self, itype: int, count: int, depth: int = 1) -> list[Any]:
        _check_depth(depth)
        return [self.value(itype) if itype != _ARRAY else self.array(self.u32(), self.u64(), depth + 1)
                for _ in range(count)]

    def nth_string(self, start: int, index: int) -> str | None:
        """The `index`-th string of a string array whose items begin at `start`."""
        buf, pos, u64 = self.buf, start, _U64.unpack_from
        try:
            for _ in range(index):
                pos += 8 + u64(buf, pos)[0]
            n = u64(buf, pos)[0]
        except struct.error:
            return None
        if pos + 8 + n > self.size:
            return None
        return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", errors="replace")


# Arrays of arrays deeper than this are refused: no model needs them, and a few KB of nesting
# would otherwise exhaust Python's recursion limit.
MAX_ARRAY_DEPTH = 16


def _check_depth(depth: int) -> None:
    if depth > MAX_ARRAY_DEPTH:
        raise ValueError(f"metadata arrays nested more than {MAX_ARRAY_DEPTH} levels deep")


_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32",
               6: "float32", 7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64",
               12: "float64"}


def _parse(path: Path, buf: mmap.mmap | bytes, file_size: int) -> GGUFFile:
    p = _Parser(buf)
    p.need(4)
    if bytes(buf[:4]) != MAGIC:
        raise ModelFileError(f"{path}: not a GGUF file (it starts with {bytes(buf[:4])!r}, not b'GGUF')")
    p.pos = 4
    version = p.u32()
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and version >> 16:
            detail = "a big-endian GGUF file, which llama.cpp cannot load here"
        elif version == 1:
            detail = "GGUF version 1, which llama.cpp no longer loads; convert it again"
        else:
            detail = f"GGUF version {version}; versions {', '.join(map(str, SUPPORTED_VERSIONS))} are supported"
        raise ModelFileError(f"{path}: {detail}")
    n_tensors, n_kv = p.u64(), p.u64()
    info = GGUFFile(path=path, file_size=file_size, version=version, metadata={})
    md = info.metadata
    tokens: tuple[int, int] | None = None  # (offset of the first item, count) of the vocabulary
    for _ in range(n_kv):
        key = p.string()
        vtype = p.u32()
        if vtype != _ARRAY:
            md[key] = p.value(vtype)
            continue
        itype, count = p.u32(), p.u64()
        if key == "tokenizer.ggml.tokens" and itype == _STRING:
            tokens = (p.pos, count)
        if count <= MAX_ARRAY_ITEMS:
            md[key] = p.array(itype, count)
        else:
            info.arrays[key] = (_TYPE_NAMES.get(itype, str(itype)), count)
            p.skip_array(itype, count)
    for _ in range(n_tensors):
        name = p.string()
        n_dims = p.u32()
        if n_dims > 4:  # GGML_MAX_DIMS
            raise ModelFileError(f"{path}: tensor {name!r} has {n_dims} dimensions: the header is corrupt")
        shape = tuple(p.u64() for _ in range(n_dims))
        info.tensors.append(TensorInfo(name, shape, p.u32(), p.u64()))
    alignment = md.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = DEFAULT_ALIGNMENT
    info.data_offset = -(-p.pos // alignment) * alignment
    if tokens is not None:
        for which in ("bos", "eos"):
            token_id = md.get(f"tokenizer.ggml.{which}_token_id")
            if isinstance(token_id, int) and 0 <= token_id < tokens[1]:
                text = p.nth_string(tokens[0], token_id)
                if text is not None:
                    md[f"tokenizer.ggml.{which}_token"] = text
    return info


# Headers parsed lately, by the file's identity: a server opens the same model for every request,
# and a large vocabulary takes milliseconds to skip. A file replaced or rewritten has another key.
_PARSED: "OrderedDict[tuple[str, int, int, int, int], GGUFFile]" = OrderedDict()
_PARSED_MAX = 8
_PARSED_LOCK = threading.Lock()


def _open(path: Path) -> GGUFFile:
    path = Path(path)
    # Only a regular file: a FIFO would block, and /dev/zero never ends.
    st = check_regular_file(path, "GGUF file", error=ModelFileError, missing=ModelFileError)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _PARSED_LOCK:
        parsed = _PARSED.get(key)
        if parsed is not None:
            _PARSED.move_to_end(key)
            return parsed
    parsed = _read(path, st.st_size)
    with _PARSED_LOCK:
        _PARSED[key] = parsed
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return parsed


def _read(path: Path, size: int) -> GGUFFile:
    try:
        with open(path, "rb") as fh:
            if size < 24:
                buf: mmap.mmap | bytes = fh.read()
                return _parse_or_truncated(path, buf, size)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse_or_truncated(path, mm, size)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _parse_or_truncated(path: Path, buf: mmap.mmap | bytes, size: int) -> GGUFFile:
    try:
        return _parse(path, buf, size)
    except _Truncated:
        if size < 4:
            raise ModelFileError(f"{path}: not a GGUF file ({size} bytes)") from None
        raise ModelFileError(f"{path}: truncated GGUF file: the header ends early ({size:,} bytes)") from None
    except (ValueError, OverflowError) as exc:
        raise ModelFileError(f"{path}: corrupt GGUF header ({exc})") from None


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Parse the header of a GGUF file. Raises ModelFileError when it is not a readable GGUF."""
    return _open(Path(path))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The GGUF key/values of `path`, without the large tokenizer arrays.

    Adds `tokenizer.ggml.bos_token` and `tokenizer.ggml.eos_token`: the texts of the BOS and EOS
    tokens, looked up in the vocabulary by their ids.
    """
    return read_gguf(path).metadata


# --- the check before loading --------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes of memory a new process can use without swapping, or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # macOS and other POSIX systems: physical memory (unified memory on Apple silicon)
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_gguf(path: str | os.PathLike[str], *, memory: int | None = None) -> GGUFFile:
    """Check that llama.cpp can load `path`, before it tries to; return the parsed header.

    Raises ModelFileError (exit code 5) for: a missing file, a directory, not GGUF, an unsupported
    GGUF version, a truncated header or tensor data, an architecture llama.cpp does not know, a
    context length or block count that is not a whole number, a tensor type it does not know, and
    a model larger than `memory` (default: the memory available).
    """
    info = read_gguf(path)
    p = info.path
    arch = info.architecture
    if not arch:
        raise ModelFileError(f"{p}: GGUF metadata has no general.architecture: not a model file")
    if arch == "clip":
        raise ModelFileError(
            f"{p}: a multimodal projector (mmproj, architecture 'clip'), not a language model"
        )
    if arch not in KNOWN_ARCHITECTURES:
        raise ModelFileError(f"{p}: architecture {arch!r} is not one llama.cpp knows")
    for key in (f"{arch}.context_length", f"{arch}.block_count"):  # read before llama.cpp loads
        value = info.metadata.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ModelFileError(f"{p}: GGUF metadata {key} is {value!r}, not a whole number of 0 or more")
    if not info.tensors:
        raise ModelFileError(f"{p}: GGUF file has no tensors (a vocabulary-only file?)")
    unknown = [t for t in info.tensors if t.nbytes is None]
    if unknown:
        raise ModelFileError(
            f"{p}: tensor {unknown[0].name!r} has ggml type {unknown[0].type_id}, unknown to this version"
        )
    required = info.required_size or 0
    if info.file_size < required:
        raise ModelFileError(
            f"{p}: truncated GGUF file: the tensors need {required:,} bytes, the file has "
            f"{info.file_size:,} (an interrupted download?)"
        )
    limit = available_memory() if memory is None else memory
    weights = required - info.data_offset
    if limit is not None and weights > limit:
        raise ModelFileError(
            f"{p}: the model needs {_human(weights)} of memory for its weights, "
            f"more than the {_human(limit)} available"
        )
    return info
