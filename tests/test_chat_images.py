"""Images in a chat (`--image`, `/image`): each provider's documented image format in the
request a loopback server receives, URLs where the provider takes them, type and size checks,
and one clear error for a model without vision or a local GGUF model."""

from __future__ import annotations

import base64

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY, KIT, KITS
from providers.task_wire import png, wav
from registries import model, write_registry

from modelctl.backends.base import GenerationParams
from modelctl.backends.images import ImagePart
from modelctl.chat.session import ChatSession
from modelctl.errors import UsageError

PICTURE = png()
B64 = base64.b64encode(PICTURE).decode()
DATA_URL = f"data:image/png;base64,{B64}"


def _openai_style(body):
    return body["messages"][-1]["content"]


# kit -> (what the last user turn of the request looks like with one PNG and the text "What is this?")
EXPECTED = {
    "openai": (_openai_style, [{"type": "text", "text": "What is this?"},
                               {"type": "image_url", "image_url": {"url": DATA_URL}}]),
    "anthropic": (_openai_style, [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
                                  {"type": "text", "text": "What is this?"}]),
    "gemini": (lambda body: body["contents"][-1]["parts"],
               [{"text": "What is this?"}, {"inline_data": {"mime_type": "image/png", "data": B64}}]),
    "ollama": (lambda body: body["messages"][-1], {"role": "user", "content": "What is this?", "images": [B64]}),
}
for _name in ("azure-openai", "azure-ai", "openai-compatible", "mistral", "hf-inference"):
    EXPECTED[_name] = EXPECTED["openai"]


@pytest.mark.parametrize("kit", KITS, ids=repr)
def test_each_provider_gets_the_image_in_its_own_format(kit, server, open_kit):
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world"]))
    session = ChatSession(open_kit(kit), GenerationParams(max_tokens=20))
    reply = session.ask("What is this?", (ImagePart("image/png", PICTURE),))
    assert "".join(reply) == kit.text
    read, expected = EXPECTED[kit.name]
    assert read(server.calls(kit.chat_path)[0].body) == expected
    # the image stays with its question for the rest of the conversation
    session.ask("And now?")
    second = server.calls(kit.chat_path)[1].body
    assert (B64 in str(second)) and "And now?" in str(second)


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_urls_go_to_providers_that_fetch_them(name, server, open_kit):
    kit = KIT[name]
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world"]))
    url = "https://upload.wikimedia.org/cat.png"
    assert "".join(ChatSession(open_kit(kit)).ask("Describe", (ImagePart(url=url),))) == kit.text
    content = server.calls(kit.chat_path)[0].body["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": url}} in content or \
        {"type": "image", "source": {"type": "url", "url": url}} in content


@pytest.mark.parametrize("name", ["gemini", "ollama"])
def test_providers_that_take_only_data_refuse_urls(name, server, open_kit):
    kit = KIT[name]
    with pytest.raises(UsageError, match="takes images as files, not URLs"):
        ChatSession(open_kit(kit)).ask("Describe", (ImagePart(url="https://example.com/a.png"),))
    assert not server.calls(kit.chat_path)


@pytest.fixture
def vision_registry(server, tmp_path):
    dep = {"kind": "openai", "model": "gpt-4o-mini", "api_base": f"{server.url}/v1"}
    return str(write_registry(tmp_path / "r.toml",
                              model("test/seer", dep, tasks=["chat", "vision"]),
                              model("test/blind", dep, tasks=["chat"])))


def test_chat_image_flag_sends_the_file(cli, server, vision_registry, tmp_path, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    picture = tmp_path / "cat.png"
    picture.write_bytes(PICTURE)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["A red", " square."]))
    result = cli("--registry", vision_registry, "chat", "-m", "test/seer", "--image", str(picture),
                 "--image", str(picture), "What is this?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "A red square."
    content = server.calls("/v1/chat/completions")[0].body["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "image_url"]


def test_a_model_without_vision_gets_one_clear_error(cli, server, vision_registry, tmp_path, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    picture = tmp_path / "cat.png"
    picture.write_bytes(PICTURE)
    result = cli("--registry", vision_registry, "chat", "-m", "test/blind", "--image", str(picture), "Hi")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "modelctl: error: model 'test/blind' does not take images (its tasks: chat) "
        "(choose a model with vision: `modelctl list --task vision`)"]
    assert not server.calls("/v1/chat/completions")


def test_image_type_is_checked_by_its_bytes(cli, server, vision_registry, tmp_path, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    fake = tmp_path / "cat.png"
    fake.write_bytes(wav())
    result = cli("--registry", vision_registry, "chat", "-m", "test/seer", "--image", str(fake), "Hi")
    assert result.exit_code == 2 and "is not one of png, jpg, webp, gif: it looks like audio/wav" in result.stderr
    big = tmp_path / "big.png"
    big.write_bytes(PICTURE + b"\0" * (20 * 1024 * 1024))
    result = cli("--registry", vision_registry, "chat", "-m", "test/seer", "--image", str(big), "Hi")
    assert result.exit_code == 2 and "more than a picture can be (20 MiB)" in result.stderr
    assert not server.calls("/v1/chat/completions")


@pytest.mark.parametrize("ref", ["ftp://example.com/cat.png", "file:///tmp/cat.png", "s3://bucket/cat.png"])
def test_a_url_the_service_cannot_fetch_is_refused_as_such(ref, cli, server, vision_registry, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    result = cli("--registry", vision_registry, "chat", "-m", "test/seer", "--image", ref, "Hi")
    assert result.exit_code == 2 and result.stderr.startswith("modelctl: error:")
    assert "only http(s) URLs" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not server.calls("/v1/chat/completions")


def test_a_local_gguf_model_says_what_it_would_need(cli, tmp_path):
    picture = tmp_path / "cat.png"
    picture.write_bytes(PICTURE)
    result = cli("chat", "--image", str(picture), "Hi")  # the embedded Gemma 3 270M: text only
    assert result.exit_code == 2
    assert "runs locally through llama.cpp" in result.stderr and "mmproj" in result.stderr


def test_the_repl_image_command_attaches_to_the_next_question(server, vision_registry, tmp_path, modelctl_home):
    import os
    import sys
    from pathlib import Path

    pexpect = pytest.importorskip("pexpect")
    picture = tmp_path / "cat.png"
    picture.write_bytes(PICTURE)
    server.route("GET", "/v1/models/gpt-4o-mini", openai_wire.model("gpt-4o-mini"))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["A red", " square."]))
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), OPENAI_API_KEY=FAKE_KEY, NO_COLOR="1", TERM="dumb")
    child = pexpect.spawn(str(Path(sys.executable).with_name("modelctl")),
                          ["--registry", vision_registry, "chat", "-m", "test/seer"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(30, 200))
    try:
        child.expect_exact(">>> ")
        child.sendline(f"/image {tmp_path / 'missing.png'}")
        child.expect_exact("error:")
        child.expect_exact(">>> ")
        child.sendline(f"/image {picture}")
        child.expect_exact("1 image will go with your next question")
        child.expect_exact(">>> ")
        child.sendline("What is this?")
        child.expect_exact("A red square.")
        child.expect_exact(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    [req] = server.calls("/v1/chat/completions")
    assert req.body["messages"][-1]["content"][1] == {"type": "image_url", "image_url": {"url": DATA_URL}}


def test_debug_shows_images_by_size_not_their_base64(server, open_kit, capsys):
    kit = KIT["openai"]
    server.route("POST", kit.chat_path, kit.stream(["Hello", " world"]))
    big = png(64, 64)
    "".join(ChatSession(open_kit(kit, debug=True)).ask("What is this?", (ImagePart("image/png", big),)))
    err = capsys.readouterr().err
    encoded = base64.b64encode(big).decode()
    assert encoded not in err and f"<data:image/png;base64,{len(encoded) + 22} characters of base64>" in err
    assert "What is this?" in err
