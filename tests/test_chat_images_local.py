"""Images for a local GGUF model: the real Gemma 3 270M through llama.cpp's multimodal library
with a real (built) Gemma 3 vision projector — see tests/mmproj.py for why it is built. What the
model says about the noise it sees is not asked; that the image reaches the model as image
tokens, that the cache stays right around them, and the CLI wiring are."""

from __future__ import annotations

import pytest
from mmproj import build_mmproj
from providers.task_wire import png

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.images import ImagePart
from modelctl.backends.llama_vision import NO_TOKEN
from modelctl.chat.session import ChatSession
from modelctl.errors import UsageError

pytest.importorskip("llama_cpp.mtmd_cpp", reason="this llama-cpp-python has no multimodal library (mtmd)")
GREEDY = GenerationParams(max_tokens=6, temperature=0.0)
IMAGE_TOKENS = 16  # 64x64 pixels in 4x4 patches, pooled by the Gemma 3 projector to 16 tokens


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory):
    return build_mmproj(tmp_path_factory.mktemp("vision") / "mmproj-test.gguf")


@pytest.fixture(scope="module")
def seeing(model_path, mmproj):
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.templates.resolve import resolve_template

    backend = LlamaCppBackend(model_path, template=resolve_template(template="gemma"), model_id="gemma-test")
    backend.mmproj = mmproj
    yield backend
    backend.close()


def test_an_image_becomes_image_tokens_in_the_prompt(seeing):
    text_only, _ = collect(seeing.chat([{"role": "user", "content": "Describe it."}], GREEDY))
    plain = list(seeing.last_prompt_tokens)
    session = ChatSession(seeing, GREEDY)
    reply = session.ask("Describe it.", (ImagePart("image/png", png(64, 64)),))
    "".join(reply)
    assert reply.finish_reason in ("stop", "length")
    prompt = seeing.last_prompt_tokens
    assert prompt.count(NO_TOKEN) == IMAGE_TOKENS
    assert "<__media__>" in seeing.last_rendered.text
    # the image sits inside the user turn: the same text around it, plus the image and its markers
    assert len(prompt) > len(plain) + IMAGE_TOKENS and prompt[0] == plain[0]
    assert reply.usage.prompt_tokens == len(prompt)
    # a later text-only conversation reuses the cache only up to the image: same answer as before
    again, _ = collect(seeing.chat([{"role": "user", "content": "Describe it."}], GREEDY))
    assert again == text_only


def test_two_images_and_a_follow_up_question(seeing):
    session = ChatSession(seeing, GREEDY)
    "".join(session.ask("Compare.", (ImagePart("image/png", png(64, 64)), ImagePart("image/png", png(32, 48)))))
    assert seeing.last_prompt_tokens.count(NO_TOKEN) == 2 * IMAGE_TOKENS
    "".join(session.ask("And the first one?"))  # the images stay with their question
    assert seeing.last_prompt_tokens.count(NO_TOKEN) == 2 * IMAGE_TOKENS


def test_urls_are_refused_locally(seeing):
    with pytest.raises(UsageError, match="takes images as files"):
        ChatSession(seeing, GREEDY).ask("x", (ImagePart(url="https://example.com/cat.png"),))


def test_chat_command_with_mmproj_and_image(cli, model_path, mmproj, tmp_path):
    picture = tmp_path / "cat.png"
    picture.write_bytes(png(64, 64))
    result = cli("chat", "-m", str(model_path), "--mmproj", str(mmproj), "--image", str(picture),
                 "-n", "4", "--temperature", "0", "--json", "What is this?")
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["finish_reason"] in ("stop", "length") and data["usage"]["prompt_tokens"] > IMAGE_TOKENS
    missing = cli("chat", "-m", str(model_path), "--image", str(picture), "What is this?")
    assert missing.exit_code == 2 and "--mmproj FILE" in missing.stderr
