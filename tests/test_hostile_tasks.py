"""Servers that answer badly, on purpose, to every command that is not `chat` or `embed`:
`complete` (OpenAI-compatible, Ollama, Hugging Face), `tokens` through a provider's count
endpoint, and the task commands (`image`, `speak`, `transcribe`, `classify`, `fill-mask`).
Wrong types, JSON nested too deep, NaN, web pages, gzip bombs, huge errors, redirects to
elsewhere, silence: each is one line on stderr with a documented exit code, no traceback,
never the key, and no file written."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hostile_server import Answer, HostileServer, body, bomb, deep, many
from providers import gemini_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry
from test_hostile_servers import assert_one_error


@pytest.fixture
def hostile(provider_env):  # noqa: F811
    server = HostileServer().start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Case:
    """One command against one deployment: the request path it makes, its arguments (MODEL
    stands for the test model), the key variable, and the deployment (URL -> fields)."""

    name: str
    path: str
    args: tuple[str, ...]
    key_env: str
    deployment: object  # callable: server URL -> deployment fields
    tasks: tuple[str, ...] = ("chat",)


HF_TASK = "/hf"  # a task posts to the endpoint itself
CASES = [
    Case("complete-openai-compatible", "/v1/completions", ("complete", "-m", "MODEL", "Once upon"), "VLLM_API_KEY",
         lambda url: {"kind": "openai-compatible", "model": "base", "api_base": f"{url}/v1", "key_env": "VLLM_API_KEY"},
         ("completion",)),
    Case("complete-ollama", "/api/generate", ("complete", "-m", "MODEL", "Once upon"), "OLLAMA_API_KEY",
         lambda url: {"kind": "ollama", "tag": "base:1b", "host": url}, ("completion",)),
    Case("complete-hf", "/hf", ("complete", "-m", "MODEL", "Once upon"), "HF_TOKEN",
         lambda url: {"kind": "hf-inference", "model": "test/base", "api_base": f"{url}/hf"}, ("completion",)),
    Case("tokens-anthropic", "/v1/messages/count_tokens", ("tokens", "-m", "MODEL", "Hello"), "ANTHROPIC_API_KEY",
         lambda url: {"kind": "anthropic", "model": "claude-test", "api_base": url}),
    Case("tokens-gemini", f"/v1beta/models/{gemini_wire.MODEL}:countTokens", ("tokens", "-m", "MODEL", "Hello"),
         "GEMINI_API_KEY", lambda url: {"kind": "gemini", "model": gemini_wire.MODEL, "api_base": f"{url}/v1beta"}),
    Case("image-openai", "/v1/images/generations", ("image", "-m", "MODEL", "a cat"), "OPENAI_API_KEY",
         lambda url: {"kind": "openai", "model": "dall-e-3", "api_base": f"{url}/v1"}, ("text-to-image",)),
    Case("image-hf", HF_TASK, ("image", "-m", "MODEL", "a cat"), "HF_TOKEN",
         lambda url: {"kind": "hf-inference", "model": "test/tasker", "api_base": f"{url}/hf", "task": "text-to-image"},
         ("text-to-image",)),
    Case("speak-openai", "/v1/audio/speech", ("speak", "-m", "MODEL", "Hello"), "OPENAI_API_KEY",
         lambda url: {"kind": "openai", "model": "tts-1", "api_base": f"{url}/v1"}, ("text-to-speech",)),
    Case("transcribe-openai", "/v1/audio/transcriptions", ("transcribe", "-m", "MODEL", "AUDIO"), "OPENAI_API_KEY",
         lambda url: {"kind": "openai", "model": "whisper-1", "api_base": f"{url}/v1"}, ("speech-to-text",)),
    Case("classify-openai", "/v1/moderations", ("classify", "-m", "MODEL", "some text"), "OPENAI_API_KEY",
         lambda url: {"kind": "openai", "model": "omni-moderation-latest", "api_base": f"{url}/v1"}, ("moderation",)),
    Case("classify-image-hf", HF_TASK, ("classify", "-m", "MODEL", "--image", "PICTURE"), "HF_TOKEN",
         lambda url: {"kind": "hf-inference", "model": "test/tasker", "api_base": f"{url}/hf",
                      "task": "image-classification"}, ("image-classification",)),
    Case("fill-mask-hf", HF_TASK, ("fill-mask", "-m", "MODEL", "Paris is the [MASK] of France."), "HF_TOKEN",
         lambda url: {"kind": "hf-inference", "model": "test/tasker", "api_base": f"{url}/hf", "task": "fill-mask"},
         ("fill-mask",)),
]

SECRET_LOCATION = "http://someone:hunter2@elsewhere.example/v1/x"
WRONG_TYPES = json.dumps({"choices": 5, "data": 5, "results": [5], "text": 5, "generated_text": [1], "response": 7,
                          "input_tokens": "many", "totalTokens": [1], "segments": 5, "token_str": 5, "score": "x"})
HOSTILE = [
    ("wrong-types", body(WRONG_TYPES)),
    ("a-list-of-numbers", body("[1, 2, 3]")),
    ("a-number", body("5")),
    ("nan-and-huge", body('{"input_tokens": NaN, "totalTokens": 1e400, "data": [{"b64_json": NaN}]}')),
    ("integer-too-big-for-a-float", body('[{"label": "cat", "token_str": "capital", "sequence": "x", "score": 1%s}]'
                                          % ("0" * 400))),
    ("nested-too-deep", body(deep())),
    ("small-to-send-huge-to-build", body(many(600_000))),  # past the values 8 MiB allows
    ("web-page", body("<!doctype html><html><body>Sign in</body></html>", ctype="text/html")),
    ("gzip-bomb", bomb()),
    ("five-megabyte-error", body(json.dumps({"error": {"message": "x" * (5 << 20)}}), 500)),
    ("control-characters", body(json.dumps({"error": {"message": "bad\x1b]0;pwned\x07 request"}}), 400)),
    ("moved-elsewhere", Answer(301, {"Location": SECRET_LOCATION})),
    ("silence", Answer(200, {"Content-Type": "application/json"}, chunks=[b'{"da'], then="hang")),
]
DOCUMENTED = {1, 7, 9}  # other error, backend error, cannot connect (a redirect to a host that is not there)


def run_case(case: Case, answer: Answer, hostile, cli, tmp_path):
    from providers.task_wire import png, wav

    hostile.answer(case.path, answer)
    dep = {"id": "served", **case.deployment(hostile.url)}
    registry = write_registry(tmp_path / "registry.toml",
                              model("test/hostile", dep, tasks=list(case.tasks), context_window=8192,
                                    access={"free_tier": True,  # a loopback server is local
                                            "local_capable": dep["kind"] in ("ollama", "openai-compatible")}))
    (tmp_path / "speech.wav").write_bytes(wav())
    (tmp_path / "picture.png").write_bytes(png())
    files = {"MODEL": "test/hostile", "AUDIO": str(tmp_path / "speech.wav"), "PICTURE": str(tmp_path / "picture.png")}
    out = tmp_path / "out"
    out.mkdir()
    args = [files.get(a, a) for a in case.args]
    if case.args[0] in ("image", "speak"):
        args += ["-o", str(out)]
    result = cli("--registry", str(registry), *args,
                 env={case.key_env: FAKE_KEY, "MODELCTL_RETRIES": "0", "MODELCTL_READ_TIMEOUT": "0.5",
                      "MODELCTL_MAX_RESPONSE_MB": "8"})
    assert any(p.startswith(case.path) for p in hostile.paths), (hostile.paths, result.output)
    assert not list(out.iterdir()), "a file was written from a bad answer"
    return result


@pytest.mark.parametrize("kind,answer", HOSTILE, ids=[k for k, _ in HOSTILE])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_answer_to_any_command_is_one_line(case, kind, answer, hostile, cli, tmp_path):
    result = run_case(case, answer, hostile, cli, tmp_path)
    if result.exit_code == 0:  # `tokens` may say the provider failed and estimate instead
        assert case.args[0] == "tokens" and "estimate" in result.stdout + result.stderr, result.output
        assert "Traceback" not in result.stderr and FAKE_KEY not in result.output
        return
    line = assert_one_error(result, result.exit_code)
    assert result.exit_code in DOCUMENTED, line
    assert "hunter2" not in line and "\x1b" not in line and "\x07" not in line and "unexpected" not in line
    assert len(line) < 2000 and not line.endswith(":")
