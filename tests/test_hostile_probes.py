"""Servers that answer a probe badly, on purpose: `services` (and `-m auto`, which uses it) and
`doctor`'s Ollama check ask each server whether it is there. Whatever the server does (sends
its headers a byte at a time, drips its body, stops halfway, answers 300 MB, JSON nested too
deep or a small answer that is huge to build), the probe ends within its timeout with a
reason, and the command answers.

Each command runs in a real process with a bound on its time: a probe that hangs fails the
test instead of hanging it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hostile_server import Answer, HostileServer, body, bomb, deep, many
from registries import model, write_registry

LOCAL = {"free_tier": True, "local_capable": True}
OPENAI_PROBE = "/v1/models"
OLLAMA_PROBE = "/api/tags"


@pytest.fixture
def hostile():
    server = HostileServer().start()
    yield server
    server.stop()


def run(args: list[str], home, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=timeout)


def services(hostile, tmp_path, *, timeout: str = "0.5") -> dict[str, dict]:
    """`modelctl services --all --json` over one OpenAI-compatible and one Ollama deployment at
    the hostile server: the records by service id."""
    registry = write_registry(
        tmp_path / "registry.toml",
        model("test/both", {"kind": "openai-compatible", "model": "m", "api_base": f"{hostile.url}/v1"},
              {"kind": "ollama", "tag": "llama3", "host": hostile.url}, access=LOCAL),
    )
    proc = run(["-m", "modelctl", "--registry", str(registry), "services", "-m", "test/both", "--all", "--json",
                "--timeout", timeout], tmp_path / "home")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return {r["service"]: r for r in json.loads(proc.stdout)}


def both(hostile, answer: Answer) -> None:
    hostile.answer(OPENAI_PROBE, answer)
    hostile.answer(OLLAMA_PROBE, answer)


SERVED, PULLED = "test/both@openai-compatible", "test/both@ollama"

NO_ANSWER = [
    ("headers-a-byte-at-a-time", Answer(drip_head=True)),
    ("body-a-byte-at-a-time", Answer(200, {"Content-Type": "application/json"}, chunks=[b'{"data": ['], then="drip")),
    ("silent-after-the-headers", Answer(200, {"Content-Type": "application/json"}, chunks=[b"{"], then="hang")),
]


@pytest.mark.parametrize("case,answer", NO_ANSWER, ids=[c for c, _ in NO_ANSWER])
def test_a_server_that_never_finishes_its_answer_is_not_usable(case, answer, hostile, tmp_path):
    both(hostile, answer)
    found = services(hostile, tmp_path)
    for service in (SERVED, PULLED):
        assert not found[service]["usable"]
        assert "within 0.5 s" in found[service]["reason"], found[service]


TOO_MUCH = [
    ("300-mb-gzipped", bomb(mib=300), "larger than 4 MiB"),
    ("5-mb-plain", body(b'"' + b"a" * (5 << 20) + b'"'), "larger than 4 MiB"),
    ("three-bytes-a-value", body(many(300_000)), "JSON values"),
    ("nested-lists", body("[" * 300_000 + "]" * 300_000), "JSON values"),
]


@pytest.mark.parametrize("case,answer,why", TOO_MUCH, ids=[c for c, _, _ in TOO_MUCH])
def test_an_answer_too_large_to_read_or_build_is_no_usable_answer(case, answer, why, hostile, tmp_path):
    both(hostile, answer)
    found = services(hostile, tmp_path, timeout="10")
    for service in (SERVED, PULLED):
        assert not found[service]["usable"] and "no usable answer" in found[service]["reason"]
        assert why in found[service]["reason"], found[service]


@pytest.mark.parametrize("text", [deep(100_000), deep(1000), "{" * 10, "NaN", '{"models": 5}'])
def test_json_a_probe_cannot_use_still_means_the_server_is_there(text, hostile, tmp_path):
    """Any HTTP answer shows the server is up; JSON too deep or of the wrong shape only means
    its models cannot be listed (an Ollama deployment is then taken as present)."""
    both(hostile, body(text))
    found = services(hostile, tmp_path)
    assert found[SERVED]["usable"] and "HTTP 200" in found[SERVED]["reason"]
    assert found[PULLED]["usable"]


def test_a_probe_answered_in_time_is_read(hostile, tmp_path):
    hostile.answer(OPENAI_PROBE, body('{"data": [{"id": "m"}]}'))
    hostile.answer(OLLAMA_PROBE, body('{"models": [{"name": "qwen9:400b"}]}'))
    found = services(hostile, tmp_path)
    assert found[SERVED]["usable"]
    assert not found[PULLED]["usable"] and "ollama pull llama3" in found[PULLED]["reason"]


DOCTOR = "from modelctl.doctor import check_ollama; c = check_ollama(None); print(c.status, c.summary, sep='|')"


@pytest.mark.parametrize("case,answer", [*NO_ANSWER, ("300-mb-gzipped", bomb(mib=300)),
                                         ("three-bytes-a-value", body(many(300_000))),
                                         ("nested-too-deep", body(deep())), ("version-is-a-list", body('{"version": [1]}'))],
                         ids=lambda v: v if isinstance(v, str) else "answer")
def test_doctor_s_ollama_check_ends_whatever_the_server_does(case, answer, hostile, tmp_path):
    hostile.answer("/api/version", answer)
    proc = run(["-c", DOCTOR], tmp_path / "home", env={"OLLAMA_HOST": hostile.url})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    status, detail = proc.stdout.strip().split("|")
    assert status == "info" and "no Ollama server answers" in detail


def test_doctor_shows_an_ollama_version_safely(hostile, tmp_path):
    hostile.answer("/api/version", body(json.dumps({"version": "0.5.1\x1b]0;pwned\x07" + "x" * 500})))
    proc = run(["-c", DOCTOR], tmp_path / "home", env={"OLLAMA_HOST": hostile.url})
    status, detail = proc.stdout.strip().split("|")
    assert status == "ok" and detail.startswith("Ollama 0.5.1\\x1b]0;pwned\\x07") and len(detail) < 200


@pytest.mark.parametrize("url", ["http://xn--zz.example/v1/models", "http://a\x00b.example/v1", "http://[::1/v1",
                                 "http://" + "a" * 64 + ".example/v1", "http://ex ample.example/v1"])
def test_an_address_that_cannot_be_probed_is_a_reason_not_a_crash(url):
    from modelctl.chat.availability import reach

    answered, reason, body = reach(url, 1.0)
    assert not answered and body is None and "\x00" not in reason
    assert reason.startswith(("cannot probe", "no answer from")), reason
