"""Every code of the README's exit-code table, reached through the real `modelctl` process: one
line on stderr, nothing on stdout, no traceback. Servers are on loopback and speak OpenAI's wire
format; 130 is a real SIGINT sent to a chat while its answer streams."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hubserver import closed_port, make_gguf
from providers import openai_wire
from providers.server import FakeServer

from modelctl.errors import EXIT_CODES, EXIT_INTERRUPTED

README = Path(__file__).resolve().parent.parent / "README.md"
MESSAGES = json.dumps([{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hi again"}])
REACHED: set[int] = set()


def readme_codes() -> dict[int, str]:
    """The exit-code table of the README."""
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)}


def test_the_readme_table_is_the_one_the_code_uses():
    assert set(readme_codes()) == set(EXIT_CODES)
    assert EXIT_INTERRUPTED == 130


@pytest.fixture
def served():
    server = FakeServer().start()
    yield server
    server.stop()


def expect(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    if code:
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("modelctl: ") and "Traceback" not in result.stderr, result.stderr
        assert all(w in result.stderr for w in words), result.stderr
        assert result.stdout == ""
    REACHED.add(code)


def test_0_success(run_modelctl):
    r = run_modelctl("templates", "--json")
    expect(r, 0)
    assert json.loads(r.stdout)


def test_1_a_declined_rm(run_modelctl, tmp_path):
    expect(run_modelctl("import", str(make_gguf(tmp_path / "m.gguf")), "--name", "mine"), 0)
    expect(run_modelctl("rm", "mine", input="n\n"), 1, "nothing removed")


def test_2_usage_error(run_modelctl):
    expect(run_modelctl("list", "--no-such-flag"), 2, "--no-such-flag")


def test_3_invalid_registry(run_modelctl, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('[[models]]\nid = "x"\n')
    expect(run_modelctl("list", env={"MODELCTL_REGISTRY": str(broken)}), 3, "broken.toml")


def test_4_not_found(run_modelctl):
    expect(run_modelctl("show", "no-such-model-anywhere"), 4, "unknown model")


def test_5_unusable_model_file(run_modelctl, tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    expect(run_modelctl("chat", "-m", str(text), "Hi"), 5, "not a GGUF file")


def test_6_template_error(run_modelctl):
    expect(run_modelctl("prompt", "--template", "llama-2", input=MESSAGES), 6)


def test_7_backend_error(run_modelctl, served):
    served.route("POST", "/v1/chat/completions", openai_wire.error(400, "max_tokens is too large"))
    expect(run_modelctl("chat", "--api-base", f"{served.url}/v1", "-m", "m", "Hi"), 7, "max_tokens is too large")


def test_8_rejected_credentials(run_modelctl, served):
    served.route("POST", "/v1/chat/completions",
                 openai_wire.error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key"))
    r = run_modelctl("chat", "--api-base", f"{served.url}/v1", "-m", "m", "--api-key", "sk-wrong-0123456789", "Hi")
    expect(r, 8)
    assert "sk-wrong-0123456789" not in r.stderr


def test_9_cannot_connect(run_modelctl):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    expect(run_modelctl("chat", "--api-base", url, "-m", "m", "Hi", env={"MODELCTL_RETRIES": "0"}), 9)


class _Endless(BaseHTTPRequestHandler):
    """An OpenAI-compatible stream that sends one piece of an answer, then nothing more until
    the test ends (`release`)."""

    release = threading.Event()
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        event = f"data: {json.dumps(openai_wire.chunk('Once upon a time'))}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        self.release.wait()

    def log_message(self, *args) -> None:
        pass


def test_130_ctrl_c_while_an_answer_streams(modelctl_home):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "modelctl", "chat", "--api-base", url, "-m", "m", "Tell a story"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        out = b""
        while b"time" not in out:  # the answer is streaming
            data = os.read(proc.stdout.fileno(), 100)
            assert data, proc.stderr.read() if proc.stderr else ""
            out += data
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
        out += rest
    finally:
        if proc.poll() is None:
            proc.kill()
        _Endless.release.set()
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 130, err
    assert out.startswith(b"Once upon a time")  # what arrived stays printed
    assert err.decode().strip().splitlines()[-1] == "modelctl: interrupted" and b"Traceback" not in err
    REACHED.add(130)


def test_every_code_in_the_table_was_reached():
    """Runs last (pytest keeps the file's order): every code above was reached in this run."""
    if len(REACHED) < len(EXIT_CODES) - 1:
        pytest.skip("only part of this module ran")
    assert REACHED == set(readme_codes())
