"""The task interfaces over Hugging Face inference's documented task wire format on a loopback
endpoint (`api_base`, as an Inference Endpoint): `{"inputs", "parameters"}` in, images, audio,
labels, transcripts and fill-mask candidates out — errors and retries included."""

from __future__ import annotations

import base64

import pytest
from providers import hf_wire, task_wire
from providers.kits import FAKE_KEY

from modelctl.errors import AuthError, BackendError, NotFoundError, UsageError
from modelctl.registry import Deployment
from modelctl.tasks.hf_tasks import HFTasks
from modelctl.transport.retry import RetryPolicy


@pytest.fixture
def hf(server, provider_env, sleeps):
    """hf(model, **options) -> HFTasks for an hf-inference deployment whose endpoint is the server."""
    from modelctl.backends.factory import open_backend

    opened = []

    def make(model: str = "google/vit-base-patch16-224", **options) -> HFTasks:
        provider_env.setenv("HF_TOKEN", FAKE_KEY)
        options.setdefault("retry", RetryPolicy(retries=2, sleep=sleeps.append))
        dep = Deployment(id="hf", kind="hf-inference", model=model, api_base=f"{server.url}/models/x")
        client = HFTasks(open_backend(None, dep, **options))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


PATH = "/models/x"


def test_text_to_image_posts_inputs_and_size_and_reads_the_image(server, hf):
    picture = task_wire.png()
    server.route("POST", PATH, task_wire.hf_bytes(picture, "image/png"))
    [image] = hf("stabilityai/stable-diffusion-xl-base-1.0").text_to_image(
        "a red square", size="768x512", options={"num_inference_steps": 20})
    [req] = server.calls(PATH)
    assert req.body == {"inputs": "a red square",
                        "parameters": {"num_inference_steps": 20, "width": 768, "height": 512}}
    assert req.header("authorization") == f"Bearer {FAKE_KEY}"
    assert image.data == picture and image.media_type == "image/png"


def test_a_bad_size_is_a_usage_error(hf):
    with pytest.raises(UsageError, match="not WIDTHxHEIGHT"):
        hf().text_to_image("x", size="big")


def test_text_to_speech_reads_the_audio(server, hf):
    server.route("POST", PATH, task_wire.hf_bytes(task_wire.FLAC, "audio/flac"))
    audio = hf("facebook/mms-tts-eng").text_to_speech("Hello")
    assert server.calls(PATH)[0].body == {"inputs": "Hello"}
    assert audio.media_type == "audio/flac" and audio.data == task_wire.FLAC


def test_speech_recognition_sends_base64_audio_and_reads_timestamped_chunks(server, hf):
    audio = task_wire.wav()
    server.route("POST", PATH, task_wire.hf_asr())
    transcript = hf("openai/whisper-large-v3").speech_to_text(audio, "audio/wav", language="en", timestamps=True)
    body = server.calls(PATH)[0].body
    assert base64.b64decode(body["inputs"]) == audio
    assert body["parameters"] == {"return_timestamps": True, "generation_parameters": {"language": "en"}}
    assert transcript.text == "Hello there. General Kenobi."
    # the last chunk's end may be null: it ends where it starts
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.0, 1.2, "Hello there."), (1.2, 1.2, "General Kenobi.")]


def test_text_classification_reads_nested_labels_best_first(server, hf):
    server.route("POST", PATH, task_wire.hf_labels(("NEGATIVE", 0.1), ("POSITIVE", 0.9), nested=True))
    labels = hf("distilbert/distilbert-base-uncased-finetuned-sst-2-english").classify_text("great")
    assert server.calls(PATH)[0].body == {"inputs": "great"}
    assert [(lab.label, lab.score, lab.flagged) for lab in labels] == [("POSITIVE", 0.9, None), ("NEGATIVE", 0.1, None)]


def test_image_classification_sends_the_image_in_base64(server, hf):
    picture = task_wire.png()
    server.route("POST", PATH, task_wire.hf_labels(("tabby, tabby cat", 0.7), ("Egyptian cat", 0.2)))
    labels = hf().classify_image(picture, "image/png")
    assert base64.b64decode(server.calls(PATH)[0].body["inputs"]) == picture
    assert labels[0].label == "tabby, tabby cat"


def test_zero_shot_image_classification_sends_candidate_labels(server, hf):
    server.route("POST", PATH, task_wire.hf_labels(("a dog", 0.05), ("a cat", 0.95)))
    labels = hf("openai/clip-vit-base-patch32").zero_shot_image(task_wire.png(), "image/png", ["a cat", "a dog"])
    assert server.calls(PATH)[0].body["parameters"] == {"candidate_labels": ["a cat", "a dog"]}
    assert [lab.label for lab in labels] == ["a cat", "a dog"]


def test_fill_mask_sends_top_k_and_orders_candidates(server, hf):
    server.route("POST", PATH, task_wire.hf_fill_mask())
    fills = hf("google-bert/bert-base-uncased").fill_mask("the capital of france is [MASK].", top_k=2)
    assert server.calls(PATH)[0].body == {"inputs": "the capital of france is [MASK].", "parameters": {"top_k": 2}}
    assert [(f.token, f.score) for f in fills] == [("lyon", 0.41), ("paris", 0.32)]
    assert fills[1].sequence == "the capital of france is paris."


def test_a_loading_model_is_retried(server, hf, sleeps):
    server.route("POST", PATH, task_wire.hf_loading(), task_wire.hf_labels(("cat", 1.0)))
    assert hf().classify_image(task_wire.png(), "image/png")[0].label == "cat"
    assert len(server.calls(PATH)) == 2 and len(sleeps) == 1


def test_errors_carry_the_services_message(server, hf):
    server.route("POST", PATH, hf_wire.error(422, "Input validation error: `inputs` must be non-empty"))
    with pytest.raises(BackendError, match="refused the request \\(422\\).*must be non-empty"):
        hf().classify_text("")
    server.route("POST", PATH, hf_wire.error(401, "Invalid credentials in Authorization header"))
    with pytest.raises(AuthError) as exc:
        hf().classify_text("x")
    assert FAKE_KEY not in str(exc.value)
    server.route("POST", PATH, hf_wire.error(404, "Model not found"))
    with pytest.raises(NotFoundError):
        hf().classify_text("x")


def test_labels_without_names_are_refused(server, hf):
    server.route("POST", PATH, task_wire.Reply(json=[{"score": 0.5}]))
    with pytest.raises(BackendError, match="without a label"):
        hf().classify_text("x")


def test_other_inference_providers_are_refused_clearly(provider_env):
    from modelctl.backends.factory import open_backend

    provider_env.setenv("HF_TOKEN", FAKE_KEY)
    dep = Deployment(id="hf", kind="hf-inference", model="black-forest-labs/FLUX.1-dev", provider="fal-ai")
    backend = open_backend(None, dep)
    with pytest.raises(UsageError, match="provider 'fal-ai' are not supported"):
        HFTasks(backend)
    backend.close()


def test_without_an_endpoint_requests_go_to_the_router(provider_env):
    from modelctl.backends.factory import open_backend

    provider_env.setenv("HF_TOKEN", FAKE_KEY)
    client = HFTasks(open_backend(None, Deployment(id="hf", kind="hf-inference", model="google/vit-base-patch16-224")))
    assert client.url == "https://router.huggingface.co/hf-inference/models/google/vit-base-patch16-224"
    client.close()


def test_debug_shows_uploads_by_size_and_hides_the_key(server, hf, capsys):
    audio = task_wire.wav()
    server.route("POST", PATH, task_wire.hf_asr(timestamps=False))
    hf("openai/whisper-large-v3", debug=True).speech_to_text(audio, "audio/wav")
    err = capsys.readouterr().err
    encoded = base64.b64encode(audio).decode()
    assert f"<{len(encoded)} characters of base64>" in err and encoded not in err
    assert PATH in err and FAKE_KEY not in err
