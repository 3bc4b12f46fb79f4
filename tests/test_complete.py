"""`modelctl complete`: text continued as it stands, with no template — locally through the real
llama.cpp and Gemma GGUF (checked against llama-cpp-python's own completion), and through the
text-completion endpoints of OpenAI-compatible servers, Azure OpenAI and Ollama on loopback
servers that follow their documented wire formats."""

from __future__ import annotations

import json

import pytest
from providers import ollama_wire, openai_wire
from providers.kits import FAKE_KEY, KIT, registry_for

from modelctl.backends.base import GenerationParams, collect
from modelctl.errors import UsageError

TEXT = "The capital of France is"
GREEDY = GenerationParams(max_tokens=10, temperature=0.0)


@pytest.fixture(scope="module")
def gemma(model_path):
    from modelctl.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(model_path, template=None, model_id="gemma-test")
    yield backend
    backend.close()


def test_local_completion_is_llama_cpps_own(gemma):
    text, final = collect(gemma.complete(TEXT, GREEDY))
    reference = gemma.load().create_completion(TEXT, max_tokens=10, temperature=0.0)["choices"][0]["text"]
    assert text == reference and text.strip()
    assert final.finish_reason == "length" and final.usage.completion_tokens == 10
    # the model's BOS, then the text as it stands: no template around it
    bos = gemma.load().token_bos()
    assert gemma.last_prompt_tokens[0] == bos and gemma.last_prompt_tokens.count(bos) == 1
    assert gemma.last_rendered is None
    assert final.usage.prompt_tokens == len(gemma.last_prompt_tokens)


def test_local_completion_honours_stop_strings_and_text_that_looks_like_control_tokens(gemma):
    full, _ = collect(gemma.complete(TEXT, GREEDY))
    word = full.split()[1]
    text, final = collect(gemma.complete(TEXT, GenerationParams(max_tokens=10, temperature=0.0, stop=(word,))))
    assert word not in text and full.startswith(text) and final.finish_reason == "stop"
    collect(gemma.complete("<start_of_turn>user", GenerationParams(max_tokens=1, temperature=0.0)))
    turn = gemma.load().tokenize(b"<start_of_turn>", add_bos=False, special=True)
    assert turn[0] not in gemma.last_prompt_tokens  # typed text, not the control token


def test_complete_command_streams_and_prints_json(run_modelctl):
    proc = run_modelctl("complete", "-n", "6", "--temperature", "0", "--json", TEXT)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["template"] is None and data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 6 and data["text"].strip()
    piped = run_modelctl("complete", "-n", "6", "--temperature", "0", "--no-log", input=TEXT)
    assert piped.returncode == 0 and piped.stdout == data["text"] + "\n"
    # logged as one turn: the text and its continuation, no template; --no-log logged nothing
    (conversation,) = json.loads(run_modelctl("history", "list", "--json").stdout)
    (turn,) = json.loads(run_modelctl("history", "show", str(data["conversation"]), "--json").stdout)["turns"]
    assert conversation["id"] == data["conversation"] and turn["id"] == data["turn"]
    assert turn["prompt"] == TEXT and turn["answer"] == data["text"] and turn["template"] is None


def test_complete_needs_text(run_modelctl):
    proc = run_modelctl("complete", input="")
    assert proc.returncode == 2 and "nothing on stdin" in proc.stderr


def test_openai_compatible_completions_stream(server, open_kit):
    kit = KIT["openai-compatible"]
    server.route("POST", "/v1/completions", openai_wire.text_stream([" Paris", "."], usage=(6, 2)))
    text, final = collect(open_kit(kit).complete(TEXT, GenerationParams(max_tokens=4, temperature=0.0, stop=("\n",))))
    assert text == " Paris." and final.usage.to_dict() == {"prompt_tokens": 6, "completion_tokens": 2}
    assert final.finish_reason == "length"
    (req,) = server.calls("/v1/completions")
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    assert req.body == {"model": "served-model", "prompt": TEXT, "max_tokens": 4, "temperature": 0.0,
                        "stop": ["\n"], "stream": True, "stream_options": {"include_usage": True}}


def test_openai_completions_take_max_tokens_and_answer_whole(server, open_kit):
    kit = KIT["openai"]
    server.route("POST", "/v1/completions", openai_wire.text_completion(" Paris."))
    params = GenerationParams(max_tokens=4, extra={"stream": "false"})
    text, final = collect(open_kit(kit).complete(TEXT, params))
    assert text == " Paris." and final.finish_reason == "stop"
    body = server.calls("/v1/completions")[0].body
    assert body["max_tokens"] == 4 and "max_completion_tokens" not in body and "stream" not in body


def test_azure_openai_completions_go_to_the_deployment(server, open_kit):
    kit = KIT["azure-openai"]
    path = "/openai/deployments/eastus-4o-mini/completions"
    server.route("POST", path, openai_wire.text_stream([" Paris"]))
    assert collect(open_kit(kit).complete(TEXT, GREEDY))[0] == " Paris"
    (req,) = server.calls(path)
    assert req.query == {"api-version": ["2024-10-21"]} and "model" not in req.body


def test_ollama_generates_raw(server, open_kit):
    server.route("POST", "/api/generate", ollama_wire.generate_stream([" Paris", ".", " It"]))
    text, final = collect(open_kit(KIT["ollama"]).complete(TEXT, GenerationParams(max_tokens=3, temperature=0.0)))
    assert text == " Paris. It" and final.finish_reason == "length"
    assert final.usage.to_dict() == {"prompt_tokens": 5, "completion_tokens": 3}
    body = server.calls("/api/generate")[0].body
    assert body["prompt"] == TEXT and body["raw"] is True and body["stream"] is True
    assert body["options"] == {"num_predict": 3, "temperature": 0.0}


@pytest.mark.parametrize("name", ["mistral", "azure-ai", "anthropic", "gemini"])
def test_services_without_text_completion_say_so(name, server, open_kit):
    with pytest.raises(UsageError, match="no text-completion endpoint"):
        open_kit(KIT[name]).complete(TEXT, GREEDY)
    assert not server.requests


def test_complete_command_through_a_registry_deployment(server, provider_env, cli, tmp_path):
    kit = KIT["openai-compatible"]
    server.route("POST", "/v1/completions", openai_wire.text_stream([" Paris", "."]))
    registry = registry_for(kit.deployment(server.url), tmp_path / "r.toml")
    result = cli("--registry", registry, "complete", "-m", "test/served-model", TEXT, env={"VLLM_API_KEY": FAKE_KEY})
    assert result.exit_code == 0, result.output
    assert result.stdout == " Paris.\n"
    refused = cli("--registry", registry, "complete", "-m", "test/served-model", "-d", "nope", TEXT)
    assert refused.exit_code == 4


def test_hugging_face_text_generation_streams_tokens(server, open_kit):
    from providers import hf_wire

    server.route("POST", "/", hf_wire.generate_stream([" Paris", ".", "</s>"], finish="eos_token", special_last=True))
    params = GenerationParams(max_tokens=3, temperature=0.5, top_k=20, repeat_penalty=1.1, stop=("\n",))
    text, final = collect(open_kit(KIT["hf-inference"]).complete(TEXT, params))
    assert text == " Paris." and final.finish_reason == "stop"  # the special token is not text
    body = server.calls("/")[0].body
    assert body["inputs"] == TEXT and body["stream"] is True
    assert {k: body["parameters"][k] for k in ("max_new_tokens", "temperature", "top_k", "repetition_penalty",
                                                "stop", "details")} == {
        "max_new_tokens": 3, "temperature": 0.5, "top_k": 20, "repetition_penalty": 1.1, "stop": ["\n"],
        "details": True}


def test_hugging_face_text_generation_whole(server, open_kit):
    from providers import hf_wire

    server.route("POST", "/", hf_wire.generated(" Paris.", finish="length"))
    text, final = collect(open_kit(KIT["hf-inference"]).complete(TEXT, GenerationParams(extra={"stream": "false"})))
    assert text == " Paris." and final.finish_reason == "length"


def test_chat_with_a_completion_only_model_points_to_complete(cli):
    result = cli("chat", "-m", "llama-2-7b", "Hello")
    assert result.exit_code == 2
    assert "base model for text completion" in result.stderr and "modelctl complete -m llama-2-7b" in result.stderr
    assert "--template NAME to chat anyway" in result.stderr  # it runs locally, where templates apply
    result = cli("chat", "-m", "gpt-3.5-turbo-instruct", "Hello")
    assert result.exit_code == 2 and "modelctl complete -m gpt-3.5-turbo-instruct" in result.stderr
    assert "--template" not in result.stderr  # an API model: no template to choose
