"""The task commands end to end against loopback servers: files written (never overwritten
without --force, never named by the server), --json records, the registry's tasks deciding
which models a command takes, and one clear error line for bad input."""

from __future__ import annotations

import json
import os

import pytest
from providers import task_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry


def priced(**units: float) -> dict:
    return {"free_tier": False, "local_capable": False, "unit_prices": units}


@pytest.fixture
def registry(server, tmp_path):
    """A registry of task models served by the loopback server: OpenAI ones at /v1, Hugging Face
    ones each at its own endpoint path."""
    hf = {"kind": "hf-inference", "api_base": f"{server.url}/hf"}
    entries = [
        model("test/painter", {"kind": "openai", "model": "dall-e-3", "api_base": f"{server.url}/v1"},
              tasks=["text-to-image"], category="task", access=priced(image=0.04)),
        model("test/voice", {"kind": "openai", "model": "tts-1", "api_base": f"{server.url}/v1",
                             "unit_prices": {"million_characters": 30.0}},  # the deployment's own price wins
              tasks=["text-to-speech"], category="task", access=priced(million_characters=15.0)),
        model("test/ears", {"kind": "openai", "model": "whisper-1", "api_base": f"{server.url}/v1"},
              tasks=["speech-to-text"], category="task", access=priced(audio_minute=0.006, request=0.001)),
        model("test/guard", {"kind": "openai", "model": "omni-moderation-latest", "api_base": f"{server.url}/v1"},
              tasks=["moderation"], category="task"),
        model("test/vit", {**hf, "model": "google/vit-base-patch16-224", "task": "image-classification"}, tasks=["image-classification"],
              category="task"),
        model("test/clip", {**hf, "model": "openai/clip-vit-base-patch32", "task": "zero-shot-image-classification"},
              {"kind": "azure-ai", "model": "openai-clip-vit-base-patch32"},
              tasks=["zero-shot-image-classification"], category="task"),
        model("test/bert", {**hf, "model": "google-bert/bert-base-uncased", "task": "fill-mask"}, tasks=["fill-mask"], category="task"),
    ]
    return str(write_registry(tmp_path / "tasks.toml", *entries))


@pytest.fixture
def run(cli, registry, tmp_path, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("HF_TOKEN", FAKE_KEY)
    work = tmp_path / "work"
    work.mkdir()
    provider_env.chdir(work)

    def invoke(*args: str, input: str | None = None):
        result = cli("--registry", registry, *args, input=input)
        assert FAKE_KEY not in result.stdout + result.stderr
        return result

    invoke.work = work  # type: ignore[attr-defined]
    return invoke


def test_image_writes_files_named_here_and_prints_their_paths(server, run):
    picture = task_wire.png()
    server.route("POST", "/v1/images/generations", task_wire.images(picture, picture))
    result = run("image", "-m", "test/painter", "-n", "2", "a", "red", "square")
    assert result.exit_code == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 2 and all(os.path.basename(p).startswith("image-") and p.endswith(".png") for p in paths)
    assert all(open(p, "rb").read() == picture for p in paths)
    assert server.calls("/v1/images/generations")[0].body["prompt"] == "a red square"


def test_image_output_is_never_overwritten_without_force(server, run):
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png()))
    target = run.work / "cat.png"
    target.write_bytes(b"mine")
    refused = run("image", "-m", "test/painter", "-o", str(target), "a cat")
    assert refused.exit_code == 2 and "exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_bytes() == b"mine" and not server.calls("/v1/images/generations")
    done = run("image", "-m", "test/painter", "-o", str(target), "--force", "--json", "a cat")
    assert done.exit_code == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["images"] == [{"path": str(target), "media_type": "image/png", "bytes": len(task_wire.png()),
                                 "revised_prompt": "A red square, flat colour."}]
    assert target.read_bytes() == task_wire.png()


@pytest.mark.parametrize("args", [["--size", "big"], ["--size", "0x512"], ["--size", "512x"],
                                  ["-o", "missing-folder/cat.png"], ["-o", "note.txt/cat.png"]])
def test_image_refuses_a_bad_size_or_output_before_the_request(args, server, run):
    (run.work / "note.txt").write_text("a file, not a folder")
    result = run("image", "-m", "test/painter", *args, "a cat")
    assert result.exit_code == 2 and result.stderr.startswith("modelctl: error:"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not server.calls("/v1/images/generations")


def test_image_size_is_sent_normalised_and_auto_is_kept(server, run):
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png()))
    assert run("image", "-m", "test/painter", "--size", " 1792X1024", "a cat").exit_code == 0
    assert run("image", "-m", "test/painter", "--size", "auto", "a cat").exit_code == 0
    assert [call.body["size"] for call in server.calls("/v1/images/generations")] == ["1792x1024", "auto"]


def test_several_images_to_a_path_without_extension_are_checked_before_the_request(server, run):
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png(), task_wire.png()))
    (run.work / "pic-1.png").write_bytes(b"mine")
    refused = run("image", "-m", "test/painter", "-n", "2", "-o", str(run.work / "pic"), "two cats")
    assert refused.exit_code == 2 and "pic-1.png' exists" in refused.stderr, refused.output
    assert not server.calls("/v1/images/generations")  # refused before it was paid for
    assert (run.work / "pic-1.png").read_bytes() == b"mine"


def test_speak_writes_audio_with_the_extension_of_what_came(server, run):
    server.route("POST", "/v1/audio/speech", task_wire.speech())
    result = run("speak", "-m", "test/voice", "--voice", "nova", "--json", input="Hello there")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["path"].endswith(".mp3") and record["media_type"] == "audio/mpeg"
    assert open(record["path"], "rb").read() == task_wire.MP3
    assert server.calls("/v1/audio/speech")[0].body["input"] == "Hello there"


def test_transcribe_prints_text_and_timestamps_under_json(server, run):
    audio = run.work / "hello.wav"
    audio.write_bytes(task_wire.wav())
    server.route("POST", "/v1/audio/transcriptions", task_wire.verbose_transcription())
    result = run("transcribe", "-m", "test/ears", "--json", str(audio))
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["text"] == "Hello there. General Kenobi." and record["duration"] == 2.5
    assert record["segments"][1] == {"start": 1.2, "end": 2.5, "text": "General Kenobi."}
    server.route("POST", "/v1/audio/transcriptions", task_wire.transcription("Hi \x1b[31mred"))
    plain = run("transcribe", "-m", "test/ears", str(audio))
    assert plain.stdout == "Hi \\x1b[31mred\n"  # a server's control characters never reach the terminal


def test_json_says_what_a_task_cost_at_the_registrys_unit_prices(server, run):
    server.route("POST", "/v1/images/generations", task_wire.images(task_wire.png(), task_wire.png()))
    record = json.loads(run("image", "-m", "test/painter", "-n", "2", "--json", "two cats").stdout)
    assert record["cost_usd"] == pytest.approx(2 * 0.04)
    server.route("POST", "/v1/audio/speech", task_wire.speech())
    record = json.loads(run("speak", "-m", "test/voice", "--json", "x" * 1000).stdout)
    assert record["cost_usd"] == pytest.approx(1000 * 30.0 / 1e6)
    audio = run.work / "hello.wav"
    audio.write_bytes(task_wire.wav())
    server.route("POST", "/v1/audio/transcriptions", task_wire.verbose_transcription())
    record = json.loads(run("transcribe", "-m", "test/ears", "--json", str(audio)).stdout)
    assert record["cost_usd"] == pytest.approx(2.5 / 60 * 0.006 + 0.001)  # 2.5 s, and the per-request fee
    unpriced = run("image", "-m", "my-sdxl", "--api-base", f"{server.url}/v1", "--json", "a cat")  # not in the registry
    assert unpriced.exit_code == 0, unpriced.output
    assert json.loads(unpriced.stdout)["cost_usd"] is None


def test_transcribe_refuses_a_file_that_is_not_audio(run):
    fake = run.work / "song.mp3"
    fake.write_bytes(b"just text")
    result = run("transcribe", "-m", "test/ears", str(fake))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"modelctl: error: audio file '{fake}' is not one of wav, mp3, flac, ogg, webm, m4a, aac: "
        "its first bytes match none of them"]


def test_classify_text_is_moderation(server, run):
    server.route("POST", "/v1/moderations", task_wire.moderation())
    result = run("classify", "-m", "test/guard", "--top", "2", "I will hurt you")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["violence", "0.9100", "flagged"] and lines[1].split() == ["harassment", "0.0200"]
    record = json.loads(run("classify", "-m", "test/guard", "--json", "hi").stdout)
    assert record["flagged"] is True and record["task"] == "moderation" and len(record["labels"]) == 5


def test_classify_image_and_zero_shot_labels(server, run):
    picture = run.work / "cat.png"
    picture.write_bytes(task_wire.png())
    server.route("POST", "/hf", task_wire.hf_labels(("tabby cat", 0.8), ("tiger cat", 0.1)))
    result = run("classify", "-m", "test/vit", "--image", str(picture), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["labels"][0] == {"label": "tabby cat", "score": 0.8}
    server.route("POST", "/hf", task_wire.hf_labels(("a cat", 0.9), ("a dog", 0.1)))
    zero = run("classify", "-m", "test/clip", "--image", str(picture), "--labels", "a cat, a dog")
    assert zero.exit_code == 0, zero.stderr
    assert server.calls("/hf")[-1].body["parameters"] == {"candidate_labels": ["a cat", "a dog"]}
    assert zero.stdout.splitlines()[0].split() == ["a", "cat", "0.9000"]


def test_classify_image_checks_type_by_bytes_and_the_labels_flag(run):
    fake = run.work / "photo.png"
    fake.write_bytes(task_wire.wav())
    result = run("classify", "-m", "test/vit", "--image", str(fake))
    assert result.exit_code == 2 and "it looks like audio/wav" in result.stderr
    alone = run("classify", "-m", "test/guard", "--labels", "a,b", "text")
    assert alone.exit_code == 2 and "--labels goes with --image" in alone.stderr


def test_fill_mask_prints_candidates(server, run):
    server.route("POST", "/hf", task_wire.hf_fill_mask())
    result = run("fill-mask", "-m", "test/bert", "the capital of france is [MASK].")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["lyon", "0.4100"]
    no_mask = run("fill-mask", "-m", "test/bert", "no mask here")
    assert no_mask.exit_code == 2 and "no mask token" in no_mask.stderr


def test_a_model_without_the_task_names_those_that_have_it(run):
    result = run("image", "-m", "test/bert", "a cat")
    assert result.exit_code == 2
    assert "model 'test/bert' does not do text-to-image (its tasks: fill-mask)" in result.stderr
    assert "did you mean 'test/painter'" in result.stderr
    unknown = run("fill-mask", "-m", "test/bart", "a [MASK]")
    assert unknown.exit_code == 4 and "unknown model 'test/bart'" in unknown.stderr and "'test/bert'" in unknown.stderr
    missing = run("speak", "hello")
    assert missing.exit_code == 2 and "needs --model" in missing.stderr
    assert "models that do: 'tts-1'" in missing.stderr


def test_an_azure_ai_catalog_deployment_says_what_is_not_spoken(run):
    picture = run.work / "cat.png"
    picture.write_bytes(task_wire.png())
    result = run("classify", "-m", "test/clip", "-d", "azure-ai", "--image", str(picture), "--labels", "a,b")
    assert result.exit_code == 2
    assert "served by hf-inference deployments" in result.stderr and "/score" in result.stderr


def test_an_hf_deployment_for_text_generation_is_not_used_for_a_task(run):
    result = run("classify", "-m", "meta-llama/Llama-Guard-3-8B", "-d", "hf-inference", "some text")
    assert result.exit_code == 2
    assert 'hf-inference ones with task = "text-classification"' in result.stderr


def test_debug_dumps_requests_with_the_key_hidden(server, run):
    server.route("POST", "/v1/moderations", task_wire.moderation(flagged=False))
    result = run("classify", "-m", "test/guard", "--debug", "hello")
    assert result.exit_code == 0, result.stderr
    assert "/v1/moderations" in result.stderr and '"input": "hello"' in result.stderr


def test_an_unknown_model_behind_api_base_is_an_openai_compatible_server(server, run):
    server.route("POST", "/v1/audio/transcriptions", task_wire.transcription("Hello from LocalAI."))
    audio = run.work / "hello.wav"
    audio.write_bytes(task_wire.wav())
    result = run("transcribe", "--api-base", f"{server.url}/v1", "-m", "local-whisper", str(audio))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello from LocalAI.\n"
    assert task_wire.form(server.calls("/v1/audio/transcriptions")[0])["model"] == "local-whisper"
    picture = run.work / "cat.png"
    picture.write_bytes(task_wire.png())
    refused = run("classify", "--api-base", f"{server.url}/v1", "-m", "local-resnet", "--image", str(picture))
    assert refused.exit_code == 2 and "has no image-classification endpoint" in refused.stderr
