"""The smallest real llama.cpp vision projector for the test model: a Gemma 3 style `mmproj`
GGUF (SigLIP-shaped encoder, one block, 64x64 images in 4x4 patches, the Gemma 3 projection into
the text model's 640-wide embeddings), written with the `gguf` package and seeded weights.

No vision model's weights can be fetched here (the Hub is out of reach, and no PyPI package
ships an mmproj file), so this one is built: llama.cpp's multimodal loader, image preprocessing,
encoder and projection run on it for real; what it "sees" is noise, which the tests do not ask."""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE, PATCH, WIDTH, FFN, TEXT_WIDTH = 64, 4, 32, 64, 640


def build_mmproj(path: Path, *, seed: int = 0) -> Path:
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    n_patches = (IMAGE_SIZE // PATCH) ** 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.vision.projector_type", "gemma3")
    w.add_string("clip.projector_type", "gemma3")
    w.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    w.add_uint32("clip.vision.patch_size", PATCH)
    w.add_uint32("clip.vision.embedding_length", WIDTH)
    w.add_uint32("clip.vision.feed_forward_length", FFN)
    w.add_uint32("clip.vision.projection_dim", TEXT_WIDTH)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)

    def t(name: str, *shape: int, one: bool = False) -> None:
        data = np.ones(shape, np.float32) if one else (rng.standard_normal(shape) * 0.02).astype(np.float32)
        w.add_tensor(name, data)

    t("v.patch_embd.weight", WIDTH, 3, PATCH, PATCH)
    t("v.patch_embd.bias", WIDTH)
    t("v.position_embd.weight", n_patches, WIDTH)
    for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
        t(f"v.blk.0.{part}.weight", WIDTH, WIDTH)
        t(f"v.blk.0.{part}.bias", WIDTH)
    for norm in ("ln1", "ln2"):
        t(f"v.blk.0.{norm}.weight", WIDTH, one=True)
        t(f"v.blk.0.{norm}.bias", WIDTH)
    t("v.blk.0.ffn_up.weight", FFN, WIDTH)
    t("v.blk.0.ffn_up.bias", FFN)
    t("v.blk.0.ffn_down.weight", WIDTH, FFN)
    t("v.blk.0.ffn_down.bias", WIDTH)
    t("v.post_ln.weight", WIDTH, one=True)
    t("v.post_ln.bias", WIDTH)
    t("mm.soft_emb_norm.weight", WIDTH, one=True)
    t("mm.input_projection.weight", WIDTH, TEXT_WIDTH)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
