"""TLS is set up only for a request that needs it (`transport.http_client`), and then it verifies: an
https server whose certificate is not trusted is refused; trusted (SSL_CERT_FILE), it answers.
The server is a loopback one with a certificate made for this test by the `openssl` command."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from providers import openai_wire
from providers.server import FakeServer


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_server(certificate):
    """FakeServer's OpenAI-compatible answers, over TLS."""
    fake = FakeServer()
    fake.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Over ", "TLS."]))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake._make_handler())
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_an_untrusted_certificate_is_refused(run_modelctl, https_server):
    r = run_modelctl("chat", "--api-base", https_server, "-m", "m", "Hi", env={"MODELCTL_RETRIES": "0"})
    assert r.returncode in (7, 9) and "certificate" in r.stderr.lower(), r.stderr
    assert r.stdout == ""


def test_a_trusted_certificate_answers(run_modelctl, https_server, certificate):
    r = run_modelctl("chat", "--api-base", https_server, "-m", "m", "Hi", env={"SSL_CERT_FILE": str(certificate[0])})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Over TLS.\n"
