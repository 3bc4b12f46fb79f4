"""Quantization names, their order, and the choice of the file that fits this machine."""

from __future__ import annotations

import pytest

from modelctl.store.quant import (
    Budget,
    Candidate,
    choose_quant,
    file_type_name,
    memory_budget,
    needed_memory,
    quant_from_filename,
    rank,
)

GiB = 1024**3


@pytest.mark.parametrize(
    "name, quant",
    [
        ("llama-2-7b-chat.Q4_K_M.gguf", "Q4_K_M"),
        ("gemma-3-270m-q4_k_m.gguf", "Q4_K_M"),
        ("Qwen3-8B-IQ4_XS.gguf", "IQ4_XS"),
        ("a-IQ2_XXS.gguf", "IQ2_XXS"),
        ("Meta-Llama-3-70B-Instruct-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),
        ("model-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("phi-2.Q8_0.gguf", "Q8_0"),
        ("mmproj-model-f16.gguf", "F16"),
        ("m-BF16.gguf", "BF16"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("tiny.gguf", None),
        ("q4km.gguf", None),
    ],
)
def test_quant_from_filename(name, quant):
    assert quant_from_filename(name) == quant


def test_file_types_and_order():
    assert file_type_name(15) == "Q4_K_M" and file_type_name(7) == "Q8_0" and file_type_name(32) == "BF16"
    assert file_type_name(999) is None and file_type_name("15") is None
    assert rank("F16") < rank("Q8_0") < rank("Q6_K") < rank("Q5_K_M") < rank("Q4_K_M") < rank("Q3_K_M") < rank("Q2_K")
    assert rank("q4_k_m") == rank("Q4_K_M") and rank("made-up") > rank("IQ1_S")


def files(**sizes_gib: float) -> list[Candidate]:
    return [Candidate(q, int(s * GiB)) for q, s in sizes_gib.items()]


def test_the_best_that_fits_and_why():
    cands = files(Q4_K_M=4.1, Q5_K_M=4.8, Q6_K=5.5, Q8_0=7.2, F16=13.5)
    choice = choose_quant(cands, Budget(7 * GiB, "RAM", "available now"))
    assert choice.quant == "Q6_K" and choice.fits  # needs 5.5 GiB + 10% + 256 MiB
    assert "highest-quality file that fits the 7.0 GiB of RAM available now" in choice.reason
    assert "Q8_0 would need about 8.2 GiB" in choice.reason  # the next better one, and what it needs
    assert choose_quant(cands, Budget(6 * GiB, "RAM")).quant == "Q5_K_M"


def test_full_precision_only_when_nothing_else():
    big = Budget(64 * GiB, "RAM")
    assert choose_quant(files(Q8_0=7.2, F16=13.5), big).quant == "Q8_0"
    assert "full-precision files were passed over" in choose_quant(files(Q8_0=7.2, F16=13.5), big).reason
    assert choose_quant(files(F16=13.5, F32=27), big).quant == "F16"


def test_nothing_fits_picks_the_smallest_and_says_so():
    choice = choose_quant(files(Q4_K_M=40, Q2_K=25), Budget(8 * GiB, "VRAM", "free on the GPU"))
    assert choice.quant == "Q2_K" and not choice.fits
    assert "no file fits the 8.0 GiB of VRAM" in choice.reason and "may not load" in choice.reason


def test_unknown_sizes_fall_back_to_the_default():
    choice = choose_quant([Candidate("Q4_K_M", None), Candidate("Q8_0", None)], Budget(8 * GiB, "RAM"), default="Q8_0")
    assert choice.quant == "Q8_0" and "sizes are unknown" in choice.reason
    choice = choose_quant(files(Q4_K_M=4), Budget(None, "RAM"), default="Q4_K_M")
    assert choice.quant == "Q4_K_M" and "memory is unknown" in choice.reason


def test_headroom():
    assert needed_memory(GiB) > GiB
    fits_exactly = Budget(needed_memory(4 * GiB), "RAM")
    assert choose_quant(files(Q4_K_M=4, Q8_0=4.01), fits_exactly).quant == "Q4_K_M"


def test_memory_budget_here():
    budget = memory_budget()
    assert budget.kind in ("RAM", "VRAM", "unified memory")
    assert budget.bytes is None or budget.bytes > 0


def test_registry_file_choice_uses_sizes_from_the_registry():
    from modelctl.registry import build_model_list
    from modelctl.store.pull import choose_file

    raw = {
        "id": "t/m", "name": "m", "provider": "t", "category": "foundation", "tasks": ["completion"],
        "license": {"name": "MIT", "open_weights": True}, "access": {"free_tier": True, "local_capable": True},
        "deployments": [{"kind": "llama.cpp", "repo": "t/m-GGUF", "default_quant": "Q4_K_M", "files": [
            {"quant": "Q4_K_M", "filename": "m-Q4_K_M.gguf", "size_bytes": 4 * GiB},
            {"quant": "Q8_0", "filename": "m-Q8_0.gguf", "size_bytes": 8 * GiB},
        ]}],
    }
    [model] = build_model_list([raw], "test")
    dep = model.deployment("llama.cpp")
    f, choice = choose_file(dep, None, budget=Budget(6 * GiB, "RAM", "available now"))
    assert f.quant == "Q4_K_M" and "Q8_0 would need" in choice.reason
    f, choice = choose_file(dep, None, budget=Budget(16 * GiB, "RAM"))
    assert f.quant == "Q8_0"
    f, choice = choose_file(dep, "q8_0")
    assert f.quant == "Q8_0" and choice is None
