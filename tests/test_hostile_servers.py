"""Servers that answer badly, on purpose: every provider's chat and embeddings answered with the
wrong types, JSON nested too deep, NaN and huge numbers, gzip bombs, answers that never end or
go silent, redirects, 204s and web pages where a stream belongs. Each is one line on stderr
with the documented exit code, no traceback, and never the key.

The servers are real loopback HTTP servers (`hostile_server`); the CLI runs in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hostile_server import Answer, HostileServer, body, bomb, deep, ndjson, sse
from providers import gemini_wire
from providers.kits import FAKE_KEY, KIT, registry_for
from providers.server import Reply


@pytest.fixture
def hostile(provider_env):  # noqa: F811
    server = HostileServer().start()
    yield server
    server.stop()


def run_chat(cli, hostile, tmp_path, kit_name: str, answer: Answer, *extra: str, env: dict | None = None,
             path: str | None = None):
    """`modelctl chat` with the model served by `kit_name`'s deployment at the hostile server,
    which answers the chat request with `answer`."""
    kit = KIT[kit_name]
    hostile.answer(path or kit.chat_path.split("?")[0], answer)
    registry = registry_for(kit.deployment(hostile.url), tmp_path / "registry.toml")
    return cli("--registry", registry, *(extra or ("chat", "-m", "test/served-model", "Hi")),
               env={kit.key_env: FAKE_KEY, "MODELCTL_RETRIES": "0", **(env or {})})


def assert_one_error(result, code: int, *needles: str) -> str:
    """Exit `code`, one `modelctl: error:` line on stderr saying each of `needles`, no
    traceback, no key; returns the line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), result.stderr
    for text in (result.stdout, result.stderr):
        assert "Traceback" not in text and FAKE_KEY not in text
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --- wrong types, per provider -------------------------------------------------------------------------


def oa(content=None, finish=None, **top) -> str:
    """An OpenAI-style chunk with any values at all."""
    return json.dumps({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}], **top})


def anthropic(delta_text=None, stop=None, input_tokens: object = 3) -> Answer:
    start = json.dumps({"type": "message_start", "message": {"usage": {"input_tokens": input_tokens}}})
    delta = json.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta_text}})
    end = json.dumps({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 1}})
    return sse(start, delta, end, json.dumps({"type": "message_stop"}),
               events=["message_start", "content_block_delta", "message_delta", "message_stop"])


def gemini(cand: object, **top) -> Answer:
    return sse(json.dumps({"candidates": cand, **top}))


def ollama(content: object = "hi", done: bool = False, **fields) -> str:
    return json.dumps({"model": "m", "created_at": "2024-01-01T00:00:00Z",
                       "message": {"role": "assistant", "content": content}, "done": done, **fields})


HUGE = "1" + "0" * 400  # a JSON integer no count or vector holds
OPENAI_LIKE = ("openai", "azure-openai", "openai-compatible", "mistral", "hf-inference")

BAD_STREAMS = [
    *[(kit, case, answer) for kit in OPENAI_LIKE for case, answer in [
        ("content-is-a-number", sse(oa(42))),
        ("content-is-a-list-of-numbers", sse(oa([1, 2]))),
        ("choices-is-a-number", sse('{"choices": 5}')),
        ("finish-reason-is-a-list", sse(oa("hi", ["stop"]))),
        ("usage-is-huge", sse(oa("hi", "stop"), '{"choices": [], "usage": {"prompt_tokens": %s, '
                                                  '"completion_tokens": 1}}' % HUGE, "[DONE]")),
        ("event-is-a-number", sse("5")),
        ("nested-too-deep", sse(deep())),
    ]],
    ("anthropic", "text-is-a-number", anthropic(42, "end_turn")),
    ("anthropic", "stop-reason-is-a-list", anthropic("hi", ["end_turn"])),
    ("anthropic", "input-tokens-is-infinite", anthropic("hi", "end_turn", input_tokens=1e400)),
    ("anthropic", "event-is-a-list", sse("[1]", events=["content_block_delta"])),
    ("anthropic", "nested-too-deep", sse(deep(), events=["message_start"])),
    ("gemini", "candidates-is-a-number", gemini(5)),
    ("gemini", "text-is-a-number", gemini([{"content": {"parts": [{"text": 42}]}}])),
    ("gemini", "finish-reason-is-a-list", gemini([{"content": {"parts": [{"text": "hi"}]}, "finishReason": ["STOP"]}])),
    ("gemini", "token-count-is-a-float", gemini([{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                                                 usageMetadata={"promptTokenCount": 1e30})),
    ("gemini", "nested-too-deep", sse(deep())),
    ("ollama", "content-is-a-number", ndjson(ollama(42))),
    ("ollama", "done-reason-is-a-list", ndjson(ollama("hi"), ollama("", True, done_reason=["stop"]))),
    ("ollama", "eval-count-is-huge", ndjson(ollama("hi"), ollama("", True).replace('"done": true', '"done": true, "eval_count": ' + HUGE))),
    ("ollama", "line-is-a-number", ndjson("5")),
    ("ollama", "error-is-an-object", ndjson(ollama("hi"), '{"error": {"nested": [1]}}')),
    ("ollama", "nested-too-deep", ndjson(deep())),
]


@pytest.mark.parametrize("kit,case,answer", BAD_STREAMS, ids=[f"{k}-{c}" for k, c, _ in BAD_STREAMS])
def test_a_stream_of_the_wrong_shape_is_one_backend_error(kit, case, answer, hostile, cli, tmp_path):
    assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer), 7)


BAD_WHOLE = [
    ("openai-compatible", body(json.dumps({"choices": [{"message": {"content": 42}, "finish_reason": "stop"}]}))),
    ("openai-compatible", body(json.dumps({"choices": 7}))),
    ("openai-compatible", body(deep())),
    ("anthropic", body(json.dumps({"content": [{"type": "text", "text": ["x"]}], "stop_reason": "end_turn"}))),
    ("gemini", body(json.dumps({"candidates": [{"content": {"parts": 3}}]}))),
    ("ollama", body(ollama([1], True))),
    ("hf-inference", body(json.dumps({"choices": [{"message": 5, "finish_reason": "stop"}]}))),
    ("hf-inference", body(json.dumps({"choices": [{"message": {"content": {"a": 1}}}]}))),
]


@pytest.mark.parametrize("kit,answer", BAD_WHOLE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_WHOLE)])
def test_a_whole_answer_of_the_wrong_shape_is_one_backend_error(kit, answer, hostile, cli, tmp_path):
    path = {"gemini": f"/v1beta/models/{gemini_wire.MODEL}:generateContent"}.get(kit)
    result = run_chat(cli, hostile, tmp_path, kit, answer, "chat", "-m", "test/served-model", "Hi",
                      "-o", "stream=false", path=path)
    assert_one_error(result, 7)


def as_answer(reply: Reply) -> Answer:
    """A well-formed stream from the provider wire modules, served by the hostile server."""
    if reply.events is not None:
        return sse(*[data for _, data in reply.events], events=[name for name, _ in reply.events])
    return ndjson(*[json.dumps(line) for line in reply.lines or []])


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "gemini", "ollama", "hf-inference"])
def test_lone_surrogates_in_an_answer_become_replacement_characters(kit, hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, kit, as_answer(KIT[kit].stream(["a\ud800b", " c\udfff"])))
    assert result.exit_code == 0, result.output
    assert "a\ufffdb c\ufffd" in result.stdout


# --- embeddings -------------------------------------------------------------------------------------------

EMBED_PATHS = {
    "openai-compatible": "/v1/embeddings",
    "mistral": "/v1/embeddings",
    "gemini": f"/v1beta/models/{gemini_wire.MODEL}:batchEmbedContents",
    "ollama": "/api/embed",
}


def embeddings(kit: str, vectors: list[str]) -> Answer:
    """Each provider's embeddings answer, with the vectors' JSON as given."""
    if kit == "gemini":
        return body('{"embeddings": [%s]}' % ", ".join('{"values": %s}' % v for v in vectors))
    if kit == "ollama":
        return body('{"model": "m", "embeddings": [%s]}' % ", ".join(vectors))
    items = ", ".join('{"object": "embedding", "index": %d, "embedding": %s}' % (i, v) for i, v in enumerate(vectors))
    return body('{"object": "list", "data": [%s]}' % items)


BAD_VECTORS = {
    "nan": ["[NaN, 1.0]", "[1.0, 2.0]"],
    "infinity": ["[1.0, -Infinity]", "[1.0, 2.0]"],
    "float-overflow": ["[1e999, 1]", "[1, 2]"],
    "huge-integer": [f"[{HUGE}, 1]", "[1, 2]"],
    "different-lengths": ["[1, 2]", "[1, 2, 3]"],
    "text-in-a-vector": ['["a", 1]', "[1, 2]"],
    "one-vector-for-two-texts": ["[1, 2]"],
    "vector-is-a-number": ["5", "[1, 2]"],
}


@pytest.mark.parametrize("case", BAD_VECTORS)
@pytest.mark.parametrize("kit", EMBED_PATHS)
def test_bad_embeddings_are_one_backend_error_and_never_printed(kit, case, hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, kit, embeddings(kit, BAD_VECTORS[case]),
                      "embed", "-m", "test/served-model", "a", "b", path=EMBED_PATHS[kit])
    assert_one_error(result, 7)
    assert result.stdout == ""


def test_good_embeddings_still_come_through(hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, "openai-compatible", embeddings("openai-compatible", ["[1, 2]", "[3, 4.5]"]),
                      "embed", "-m", "test/served-model", "a", "b", "--json", path="/v1/embeddings")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embeddings"] == [[1.0, 2.0], [3.0, 4.5]]


# --- resources: bombs, huge errors, endless and silent streams -------------------------------------------


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "ollama", "hf-inference"])
@pytest.mark.parametrize("case", ["bomb", "double-bomb"])
def test_a_gzip_bomb_is_refused_at_the_size_limit(kit, case, hostile, cli, tmp_path):
    answer = bomb(layers=2 if case == "double-bomb" else 1, ctype="text/event-stream")
    assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer, env={"MODELCTL_MAX_RESPONSE_MB": "8"}),
                     7, "larger than 8 MiB", "MODELCTL_MAX_RESPONSE_MB")


def test_a_gzip_bomb_as_json_is_refused(hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, "openai-compatible", bomb(), "embed", "-m", "test/served-model", "a",
                      path="/v1/embeddings", env={"MODELCTL_MAX_RESPONSE_MB": "8"})
    assert_one_error(result, 7, "larger than 8 MiB")


@pytest.mark.parametrize("kit", ["openai-compatible", "gemini", "ollama", "hf-inference"])
def test_an_error_with_a_bomb_body_is_the_error(kit, hostile, cli, tmp_path):
    assert_one_error(run_chat(cli, hostile, tmp_path, kit, bomb(500)), 7, "500")


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "ollama", "hf-inference"])
@pytest.mark.parametrize("shape", ["json", "text"])
def test_a_five_megabyte_error_is_cut_in_the_message(kit, shape, hostile, cli, tmp_path):
    words = "word\x1b[31m " * 500_000
    answer = body(json.dumps({"error": {"message": words}}), 400) if shape == "json" else body(words, 502, "text/plain")
    line = assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer), 7)
    assert len(line) < 600 and "\x1b" not in line


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak memory from /proc")
def test_a_one_gib_gzip_bomb_costs_little_memory(hostile, tmp_path):
    """In a real process with the default limits: a 1 GiB gzip bomb (1 MB on the wire) costs
    at most the 64 MiB limit and some change, not gigabytes. The peak is the process's own
    (VmHWM; getrusage's maxrss would include the parent's, kept across exec)."""
    kit = KIT["openai-compatible"]
    hostile.answer(kit.chat_path, bomb(mib=1024, ctype="text/event-stream"))
    registry = registry_for(kit.deployment(hostile.url), tmp_path / "registry.toml")
    script = ("import re, runpy, sys\n"
              "sys.argv = ['modelctl', '--registry', sys.argv[1], 'chat', '-m', 'test/served-model', 'Hi']\n"
              "try:\n    runpy.run_module('modelctl', run_name='__main__')\n"
              "except SystemExit as exc:\n    code = exc.code\n"
              "peak = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read())[1]\n"
              "sys.stderr.write(f'peak {peak}\\n')\n"
              "sys.exit(code)\n")
    env = dict(os.environ, VLLM_API_KEY=FAKE_KEY, MODELCTL_RETRIES="0")
    proc = subprocess.run([sys.executable, "-c", script, registry], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 7, proc.stderr
    error, peak = proc.stderr.strip().splitlines()
    assert "larger than 64 MiB" in error and "Traceback" not in proc.stderr
    assert int(peak.split()[1]) < 250 * 1024  # KiB


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "gemini", "ollama", "hf-inference"])
def test_a_silent_stream_ends_at_the_read_timeout(kit, hostile, cli, tmp_path):
    first = as_answer(KIT[kit].stream(["Hel", "lo"]))
    answer = Answer(first.status, first.headers, chunks=first.chunks[:2], then="hang")
    line = assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer, env={"MODELCTL_READ_TIMEOUT": "0.3"}), 7)
    assert "0.3 s" in line or "in time" in line


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "gemini", "hf-inference"])
def test_a_stream_that_never_ends_stops_at_the_deadline(kit, hostile, cli, tmp_path):
    answer = sse(oa("Hel"), then="ping") if kit != "anthropic" else Answer(200, {"Content-Type": "text/event-stream"},
                                                                          chunks=[], then="ping")
    result = run_chat(cli, hostile, tmp_path, kit, answer, env={"MODELCTL_DEADLINE": "0.5"})
    assert_one_error(result, 7, "did not end within 0.5 s", "MODELCTL_DEADLINE")


@pytest.mark.parametrize("var,value", [("MODELCTL_READ_TIMEOUT", "abc"), ("MODELCTL_DEADLINE", "nan"),
                                       ("MODELCTL_MAX_RESPONSE_MB", "-1")])
def test_a_bad_limit_setting_is_a_usage_error(var, value, hostile, cli, tmp_path):
    assert_one_error(run_chat(cli, hostile, tmp_path, "openai-compatible", sse(oa("hi", "stop")), env={var: value}),
                     2, var)


@pytest.mark.parametrize("kit", ["openai-compatible", "anthropic", "ollama", "hf-inference"])
def test_a_charset_a_server_names_does_not_change_how_utf8_is_read(kit, hostile, cli, tmp_path):
    answer = as_answer(KIT[kit].stream(["h\u00e9", "llo"]))
    answer.headers["Content-Type"] += "; charset=utf-16"
    result = run_chat(cli, hostile, tmp_path, kit, answer)
    assert result.exit_code == 0 and "h\u00e9llo" in result.stdout, result.output
    error = body(json.dumps({"error": {"message": "nope"}}), 400, ctype="application/json; charset=utf-16")
    assert_one_error(run_chat(cli, hostile, tmp_path, kit, error), 7, "nope")


def test_an_encoding_modelctl_does_not_read_is_refused(hostile, cli, tmp_path):
    answer = Answer(200, {"Content-Type": "text/event-stream", "Content-Encoding": "br"}, b"\x8b\x02\x80hello\x03")
    assert_one_error(run_chat(cli, hostile, tmp_path, "openai-compatible", answer), 7, "content encoding")


# --- what came back instead of a stream -----------------------------------------------------------------

SECRET_LOCATION = "http://someone:hunter2@elsewhere.example/v1/chat"
NOT_A_STREAM = [
    (kit, case, answer, needle)
    for kit in ("openai-compatible", "anthropic", "gemini", "ollama", "hf-inference")
    for case, answer, needle in [
        ("moved-permanently", Answer(301, {"Location": SECRET_LOCATION}), "301"),
        ("temporary-redirect", Answer(307, {"Location": "/elsewhere"}), "307"),
        ("no-content", Answer(204), "204"),
        ("web-page", body("<!doctype html><html><body>Sign in</body></html>", ctype="text/html"), "text/html"),
        ("plain-text", body("hello there", ctype="text/plain"), "text/plain"),
    ]
    # huggingface_hub follows redirects itself (to a host that does not exist here: a connection error)
    if not (kit == "hf-inference" and case in ("moved-permanently", "temporary-redirect"))
]


@pytest.mark.parametrize("kit,case,answer,needle", NOT_A_STREAM, ids=[f"{k}-{c}" for k, c, _, _ in NOT_A_STREAM])
def test_what_came_back_instead_of_a_stream_is_said(kit, case, answer, needle, hostile, cli, tmp_path):
    line = assert_one_error(run_chat(cli, hostile, tmp_path, kit, answer), 7, needle)
    assert "hunter2" not in line


def test_a_web_page_instead_of_json_is_said(hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, "openai-compatible", body("<html>login</html>", ctype="text/html"),
                      "chat", "-m", "test/served-model", "Hi", "-o", "stream=false")
    assert_one_error(result, 7, "not JSON", "text/html")


def test_control_characters_from_a_server_are_escaped(hostile, cli, tmp_path):
    answer = body(json.dumps({"error": {"message": "bad\x1b]0;pwned\x07 request\nsecond line"}}), 400)
    line = assert_one_error(run_chat(cli, hostile, tmp_path, "anthropic", answer), 7, "bad")
    assert "\x1b" not in line and "\x07" not in line


def test_model_metadata_from_a_server_is_made_printable(hostile, provider_env):  # noqa: F811
    """describe() (`/info`, --debug) shows what the server says about a model: NaN and huge
    numbers in it do not reach the output; JSON nested too deep is an error there."""
    from modelctl.backends.factory import open_backend

    kit = KIT["openai-compatible"]
    hostile.answer("/v1/models", body('{"data": [{"id": "served-model", "created": NaN, "max_model_len": %s, '
                                     '"owned_by": "a\\ud800"}]}' % HUGE))
    info = open_backend(None, kit.deployment(hostile.url)).describe()["service"]
    json.dumps(info, allow_nan=False).encode()  # no NaN, no lone surrogate
    assert info["created"] is None and isinstance(info["max_model_len"], str) and info["owned_by"] == "a\ufffd"
    hostile.answer("/v1/models", body(deep(100)))
    assert "nested too deep" in open_backend(None, kit.deployment(hostile.url)).describe()["service"]["error"]


LONG_LABEL = "a" * 64
BAD_ADDRESSES = [
    ("chat", "--api-base", f"http://{LONG_LABEL}.example/v1"),
    ("chat", "--api-base", "http://[::1/v1"),
    ("chat", "--api-base", "ftp://example.com/v1"),
    ("embed", "--api-base", f"https://{'.'.join(['abcdefgh'] * 40)}/v1"),
]


@pytest.mark.parametrize("command,flag,url", BAD_ADDRESSES, ids=["long-label", "open-bracket", "ftp", "long-host"])
def test_an_unusable_server_address_is_a_usage_error(command, flag, url, cli, provider_env):  # noqa: F811
    assert_one_error(cli(command, flag, url, "-m", "m", "Hi"), 2, "not a usable URL")


def test_an_unusable_ollama_host_is_a_usage_error(cli, provider_env):  # noqa: F811
    result = cli("chat", "--deployment", "ollama", "-m", "llama-3-8b-instruct", "Hi",
                 env={"OLLAMA_HOST": f"http://{LONG_LABEL}.example:11434"})
    assert_one_error(result, 2, "not a usable Ollama host")


OLLAMA_PULLS = [
    ("web-page", body("<html>maintenance</html>", ctype="text/html"), 7, "did not answer like Ollama"),
    ("nested-too-deep", ndjson(deep()), 7, "nested too deeply"),
    ("status-is-a-number", ndjson('{"status": 5}'), 7, "did not answer like Ollama"),
    ("error-is-an-object", ndjson('{"error": {"a": [1]}}'), 7, "did not answer like Ollama"),
    ("bomb", bomb(ctype="application/x-ndjson"), 7, "larger than 8 MiB"),
    ("error-bomb", bomb(500), 7, "HTTP 500"),
    ("redirect", Answer(301, {"Location": SECRET_LOCATION}), 7, "redirect (301)"),
    ("unknown-model", ndjson('{"error": "pull model manifest: file does not exist"}'), 4, "no model"),
]


@pytest.mark.parametrize("case,answer,code,needle", OLLAMA_PULLS, ids=[c for c, *_ in OLLAMA_PULLS])
def test_an_ollama_pull_answered_badly_is_one_line(case, answer, code, needle, hostile, cli, tmp_path):
    result = run_chat(cli, hostile, tmp_path, "ollama", answer, "pull", "test/served-model", "--deployment", "ollama",
                      "--quiet", path="/api/pull", env={"MODELCTL_MAX_RESPONSE_MB": "8"})
    line = assert_one_error(result, code, needle)
    assert "hunter2" not in line
