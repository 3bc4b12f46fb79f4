"""`parse_ref`: every spelling of a model name, read without the network, the registry or the file
system into one closed set of forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelctl.errors import UsageError
from modelctl.refs import Auto, Default, Endpoint, FileRef, HubRef, Name, is_auto, parse_ref

HOME = Path("~").expanduser()


@pytest.mark.parametrize("text, expected", [
    (None, Default()),
    ("auto", Auto()),
    ("AUTO", Auto()),
    (" auto ", Auto()),
    ("/models/x.gguf", FileRef("/models/x.gguf", Path("/models/x.gguf"))),
    ("./x.gguf", FileRef("./x.gguf", Path("x.gguf"))),
    ("../x.gguf", FileRef("../x.gguf", Path("../x.gguf"))),
    ("~/m/x.gguf", FileRef("~/m/x.gguf", HOME / "m" / "x.gguf")),
    ("/no/suffix/at/all", FileRef("/no/suffix/at/all", Path("/no/suffix/at/all"))),
    ("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", HubRef("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", "Qwen/Qwen2.5-0.5B-Instruct-GGUF")),
    ("hf:Qwen/Q-GGUF:Q4_K_M", HubRef("hf:Qwen/Q-GGUF:Q4_K_M", "Qwen/Q-GGUF", "Q4_K_M")),
    ("hf.co/Qwen/Q-GGUF:Q8_0", HubRef("hf.co/Qwen/Q-GGUF:Q8_0", "Qwen/Q-GGUF", "Q8_0")),
    ("huggingface.co/Qwen/Q-GGUF", HubRef("huggingface.co/Qwen/Q-GGUF", "Qwen/Q-GGUF")),
    ("https://huggingface.co/Qwen/Q-GGUF/", HubRef("https://huggingface.co/Qwen/Q-GGUF/", "Qwen/Q-GGUF")),
    ("gemma-3-270m", Name("gemma-3-270m")),
    ("google/gemma-3-270m", Name("google/gemma-3-270m")),
    ("  gemma-3-270m\t", Name("gemma-3-270m")),
    ("x.gguf", Name("x.gguf")),
    ("models/x.gguf", Name("models/x.gguf")),
    ("owner/repo/file.gguf", Name("owner/repo/file.gguf")),
    ("llama3.2:1b", Name("llama3.2:1b")),
    ("autonomous", Name("autonomous")),
])
def test_every_spelling_parses_to_one_form(text, expected):
    assert parse_ref(text) == expected


@pytest.mark.parametrize("text, could_be_file, repo_like, ollama_tag", [
    ("gemma-3-270m", False, False, False),
    ("x.gguf", True, False, False),
    ("X.GGUF", True, False, False),
    ("models/sub/x.bin", True, False, False),
    ("google/gemma-3-270m", False, True, False),
    ("owner/repo:Q4_K_M", False, True, True),  # a cached repository's quant, or an Ollama model's tag
    ("owner/repo/file.gguf", True, False, False),
    ("llama3.2:1b", False, False, True),
    ("library/llama3.2:latest", False, True, True),
    ("llama3.2", False, False, False),  # no tag: never asked of a server
    ("Llama3:8b", False, False, False),  # Ollama names are lower case
])
def test_what_a_name_could_be(text, could_be_file, repo_like, ollama_tag):
    ref = parse_ref(text)
    assert isinstance(ref, Name)
    assert (ref.could_be_file, ref.repo_like, ref.ollama_tag) == (could_be_file, repo_like, ollama_tag)


def test_an_api_base_makes_any_name_a_servers_model():
    assert parse_ref("gpt-4o", api_base="http://127.0.0.1:8080/v1") == Endpoint("http://127.0.0.1:8080/v1", "gpt-4o")
    assert parse_ref("./x.gguf", api_base="http://h/v1") == Endpoint("http://h/v1", "./x.gguf")  # the server's name
    with pytest.raises(UsageError, match="--api-base needs --model"):
        parse_ref(None, api_base="http://h/v1")


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_an_empty_name_is_a_usage_error_not_the_default(text):
    with pytest.raises(UsageError, match="empty model name"):
        parse_ref(text)


@pytest.mark.parametrize("text", ["hf:", "hf:justone", "hf:a/b/c", "hf:../x", "hf:a/b:Q4:Q8", "hf.co/", "hf:a/b."])
def test_a_malformed_hub_reference_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_ref(text)


def test_is_auto():
    assert is_auto("auto") and is_auto(" Auto ") and not is_auto(None) and not is_auto("autos")
