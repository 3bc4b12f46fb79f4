"""The task interfaces over OpenAI's and Azure OpenAI's documented wire formats, on a loopback
server: image generation (b64_json), speech, transcription (a real multipart upload, verbose_json
for timestamps), moderation — request bodies, answers, errors, retries and redaction."""

from __future__ import annotations

import pytest
from providers import openai_wire, task_wire
from providers.kits import FAKE_KEY

from modelctl.errors import AuthError, BackendError
from modelctl.registry import Deployment
from modelctl.tasks.openai_tasks import OpenAITasks
from modelctl.transport.retry import RetryPolicy

AZURE = "/openai/deployments/{name}"


@pytest.fixture
def open_tasks(server, provider_env, sleeps):
    """open_tasks(kind, model) -> OpenAITasks for an `openai` or `azure-openai` deployment on the server."""
    from modelctl.backends.factory import open_backend

    opened = []

    def make(kind: str, model: str, **options) -> OpenAITasks:
        if kind == "openai":
            provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
            dep = Deployment(id="openai", kind="openai", model=model, api_base=f"{server.url}/v1")
        else:
            provider_env.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
            dep = Deployment(id="azure", kind="azure-openai", model=model, deployment=f"my-{model}",
                             endpoint=server.url, api_version="2024-10-21")
        options.setdefault("retry", RetryPolicy(retries=2, sleep=sleeps.append))
        client = OpenAITasks(open_backend(None, dep, **options))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_openai_image_generation_asks_for_base64_and_returns_real_images(server, open_tasks):
    picture = task_wire.png()
    server.route("POST", "/v1/images/generations", task_wire.images(picture, picture))
    images = open_tasks("openai", "dall-e-3").text_to_image("a red square", n=2, size="1024x1024",
                                                          options={"quality": "hd"})
    [req] = server.calls("/v1/images/generations")
    assert req.body == {"model": "dall-e-3", "prompt": "a red square", "n": 2, "size": "1024x1024",
                        "response_format": "b64_json", "quality": "hd"}
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    assert [(i.data, i.media_type) for i in images] == [(picture, "image/png")] * 2
    assert images[0].revised_prompt == "A red square, flat colour."


def test_gpt_image_is_not_sent_response_format(server, open_tasks):
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png(), revised=None))
    open_tasks("openai", "gpt-image-1").text_to_image("a cat")
    assert "response_format" not in server.calls("/v1/images/generations")[0].body


def test_azure_image_generation_goes_to_the_deployment_with_its_api_version(server, open_tasks):
    path = AZURE.format(name="my-dall-e-3") + "/images/generations"
    server.route("POST", path, task_wire.images(task_wire.png()))
    [image] = open_tasks("azure-openai", "dall-e-3").text_to_image("a red square")
    [req] = server.calls(path)
    assert req.query == {"api-version": ["2024-10-21"]} and req.header("api-key") == FAKE_KEY
    assert "model" not in req.body and image.media_type == "image/png"


def test_an_image_answer_that_is_no_image_is_refused(server, open_tasks):
    server.route("POST", "/v1/images/generations", task_wire.images(b"<html>not an image</html>"))
    with pytest.raises(BackendError, match="no PNG, JPEG, WebP or GIF"):
        open_tasks("openai", "dall-e-3").text_to_image("x")


def test_content_policy_refusal_carries_openais_message(server, open_tasks):
    server.route("POST", "/v1/images/generations", openai_wire.error(
        400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"))
    with pytest.raises(BackendError, match="refused the request \\(400\\).*safety system") as exc:
        open_tasks("openai", "dall-e-3").text_to_image("x")
    assert exc.value.exit_code == 7


def test_speech_returns_the_audio_bytes(server, open_tasks):
    server.route("POST", "/v1/audio/speech", task_wire.speech())
    audio = open_tasks("openai", "tts-1").text_to_speech("Hello", voice="nova")
    [req] = server.calls("/v1/audio/speech")
    assert req.body == {"model": "tts-1", "input": "Hello", "voice": "nova", "response_format": "mp3"}
    assert audio.data == task_wire.MP3 and audio.media_type == "audio/mpeg"


def test_speech_answered_with_json_is_an_error_not_a_file(server, open_tasks):
    server.route("POST", "/v1/audio/speech", task_wire.Reply(json={"unexpected": True}))
    with pytest.raises(BackendError, match="instead of a file"):
        open_tasks("openai", "tts-1").text_to_speech("Hello")


def test_transcription_is_a_multipart_upload_with_verbose_json_for_timestamps(server, open_tasks):
    audio = task_wire.wav()
    server.route("POST", "/v1/audio/transcriptions", task_wire.verbose_transcription())
    transcript = open_tasks("openai", "whisper-1").speech_to_text(audio, "audio/wav", language="en", timestamps=True)
    [req] = server.calls("/v1/audio/transcriptions")
    assert req.header("content-type").startswith("multipart/form-data; boundary=")
    parts = task_wire.form(req)
    assert parts["file"] == ("audio.wav", audio, "audio/wav")
    assert parts["model"] == "whisper-1" and parts["language"] == "en"
    assert parts["response_format"] == "verbose_json" and parts["timestamp_granularities[]"] == "segment"
    assert transcript.text == "Hello there. General Kenobi." and transcript.language == "english"
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.0, 1.2, "Hello there."), (1.2, 2.5, "General Kenobi.")]


def test_gpt4o_transcribe_is_asked_for_json(server, open_tasks):
    server.route("POST", "/v1/audio/transcriptions", task_wire.transcription())
    transcript = open_tasks("openai", "gpt-4o-transcribe").speech_to_text(task_wire.MP3, "audio/mpeg", timestamps=True)
    parts = task_wire.form(server.calls("/v1/audio/transcriptions")[0])
    assert parts["response_format"] == "json" and "timestamp_granularities[]" not in parts
    assert transcript.text == "Hello there." and transcript.segments == []


def test_transcription_upload_is_retried_whole_after_a_server_error(server, open_tasks, sleeps):
    server.route("POST", "/v1/audio/transcriptions", openai_wire.error(503, "overloaded", type="server_error"),
                 task_wire.transcription())
    transcript = open_tasks("openai", "whisper-1").speech_to_text(task_wire.wav(), "audio/wav")
    first, second = server.calls("/v1/audio/transcriptions")
    assert task_wire.form(first) == task_wire.form(second) and len(sleeps) == 1 and transcript.text == "Hello there."


def test_debug_describes_the_upload_without_its_bytes_or_the_key(server, open_tasks, capsys):
    server.route("POST", "/v1/audio/transcriptions", task_wire.transcription())
    open_tasks("openai", "whisper-1", debug=True).speech_to_text(task_wire.wav(), "audio/wav")
    err = capsys.readouterr().err
    assert "POST" in err and "/v1/audio/transcriptions" in err and "multipart/form-data" in err
    assert f"<audio.wav: {len(task_wire.wav())} bytes, audio/wav>" in err
    assert FAKE_KEY not in err and "RIFF" not in err


def test_moderation_returns_categories_by_score_with_flags(server, open_tasks):
    server.route("POST", "/v1/moderations", task_wire.moderation())
    labels = open_tasks("openai", "omni-moderation-latest").classify_text("I will hurt you")
    assert server.calls("/v1/moderations")[0].body == {"model": "omni-moderation-latest", "input": "I will hurt you"}
    assert labels[0].label == "violence" and labels[0].score == 0.91 and labels[0].flagged is True
    assert [lab.flagged for lab in labels[1:]] == [False] * 4
    assert [lab.score for lab in labels] == sorted((lab.score for lab in labels), reverse=True)


def test_a_rejected_key_is_an_auth_error_that_never_shows_the_key(server, open_tasks):
    server.route("POST", "/v1/moderations", openai_wire.error(
        401, f"Incorrect API key provided: {FAKE_KEY}.", code="invalid_api_key"))
    with pytest.raises(AuthError) as exc:
        open_tasks("openai", "omni-moderation-latest").classify_text("hi")
    assert FAKE_KEY not in str(exc.value) and "OPENAI_API_KEY" in (exc.value.hint or "")


def test_a_moderation_answer_of_the_wrong_shape_is_named(server, open_tasks):
    server.route("POST", "/v1/moderations", task_wire.Reply(json={"results": [{"category_scores": {"hate": "high"}}]}))
    with pytest.raises(BackendError, match="the score of hate is text, not a finite number"):
        open_tasks("openai", "omni-moderation-latest").classify_text("hi")


def test_azure_speech_transcription_and_moderation_use_the_deployment_urls(server, open_tasks):
    base = AZURE.format(name="my-whisper")
    server.route("POST", f"{base}/audio/transcriptions", task_wire.verbose_transcription())
    transcript = open_tasks("azure-openai", "whisper").speech_to_text(task_wire.wav(), "audio/wav", timestamps=True)
    [req] = server.calls(f"{base}/audio/transcriptions")
    assert req.query == {"api-version": ["2024-10-21"]} and req.header("api-key") == FAKE_KEY
    assert "model" not in task_wire.form(req) and len(transcript.segments) == 2
    speech = AZURE.format(name="my-tts") + "/audio/speech"
    server.route("POST", speech, task_wire.speech(task_wire.wav(), "audio/wav"))
    audio = open_tasks("azure-openai", "tts").text_to_speech("Hi", audio_format="wav")
    assert audio.media_type == "audio/wav" and server.calls(speech)[0].body == {
        "input": "Hi", "voice": "alloy", "response_format": "wav"}
