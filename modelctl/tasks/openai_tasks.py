"""OpenAI's and Azure OpenAI's task endpoints (and an OpenAI-compatible server's, such as
LocalAI's or vLLM's): images, speech, transcription, moderation. Requests go through the chat
backend's HTTP client, so keys, addressing (Azure's deployment URL and api-version), retries,
`--debug` dumps and redaction are the chat's own.

| task | request | answer |
|---|---|---|
| text-to-image | POST `/images/generations` JSON, `response_format: b64_json` | `data[].b64_json`, `revised_prompt` |
| text-to-speech | POST `/audio/speech` JSON (`input`, `voice`, `response_format`) | the audio bytes |
| speech-to-text | POST `/audio/transcriptions` multipart (`file`, `model`, `response_format`) | `text`; `verbose_json`: `language`, `duration`, `segments[]` |
| moderation | POST `/moderations` JSON (`input`) | `results[0]`: `flagged`, `categories`, `category_scores` |
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from modelctl.errors import BackendError
from modelctl.tasks.media import EXTENSIONS, image_from_bytes, image_size, sniff
from modelctl.tasks.results import Audio, Image, Label, Segment, Transcript, at_most
from modelctl.transport.http_client import Form, error
from modelctl.transport.server_text import provider_message

if TYPE_CHECKING:
    from modelctl.backends.openai import OpenAIBackend
    from modelctl.registry import Model

DEFAULT_VOICE = "alloy"
SPEECH_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg",
                  "aac": "audio/aac"}


class OpenAITasks:
    """The task endpoints of one OpenAI, Azure OpenAI or OpenAI-compatible deployment."""

    def __init__(self, backend: "OpenAIBackend") -> None:
        self.backend = backend
        self.model: "Model | None" = None  # the registry model, where there is one
        self.label = backend.label
        self.wire = backend.wire

    def _url(self, path: str) -> str:
        return f"{self.backend.base}{path}"

    def _body(self, **fields: Any) -> dict[str, Any]:
        model = self.backend.body_model()
        body: dict[str, Any] = {"model": model} if model is not None else {}
        body.update({k: v for k, v in fields.items() if v is not None})
        return body

    def _post(self, path: str, body: Any = None, form: Form | None = None) -> Any:
        http = self.backend.http
        assert http is not None
        return http.request_json("POST", self._url(path), body, params=self.backend.query, form=form)

    def close(self) -> None:
        self.backend.close()

    # --- text to image ---------------------------------------------------------------------------------

    def text_to_image(self, prompt: str, *, n: int = 1, size: str | None = None,
                      options: dict[str, Any] | None = None) -> list[Image]:
        model = (self.backend.deployment.model or "").lower()
        # gpt-image-1 always answers in base64 and refuses the field; DALL·E answers with URLs without it.
        fmt = None if model.startswith("gpt-image") else "b64_json"
        if size:
            dimensions = image_size(size)
            size = f"{dimensions[0]}x{dimensions[1]}" if dimensions else "auto"
        body = self._body(prompt=prompt, n=n, size=size, response_format=fmt, **(options or {}))
        data = self.wire.obj(self._post("/images/generations", body), "the answer", optional=False)
        images = []
        # A server may answer with more images than asked for: only `n` are read (and written).
        for item in self.wire.items(data.get("data"), "data")[:n]:
            item = self.wire.obj(item, "an image", optional=False)
            encoded = self.wire.text(item.get("b64_json"), "an image's b64_json")
            if not encoded:
                raise error(BackendError, f"{self.label} answered without image data: {provider_message(data)}")
            images.append(image_from_bytes(decode_b64(encoded, self.label), self.label,
                                           self.wire.text(item.get("revised_prompt"), "revised_prompt")))
        if not images:
            raise error(BackendError, f"{self.label} answered with no image: {provider_message(data)}")
        return images

    # --- text to speech ----------------------------------------------------------------------------------

    def text_to_speech(self, text: str, *, voice: str | None = None, audio_format: str | None = None,
                       options: dict[str, Any] | None = None) -> Audio:
        body = self._body(input=text, voice=voice or DEFAULT_VOICE, response_format=audio_format or "mp3",
                          **(options or {}))
        http = self.backend.http
        assert http is not None
        data, _ = http.request_bytes("POST", self._url("/audio/speech"), body, params=self.backend.query)
        kind = sniff(data) or SPEECH_FORMATS.get(audio_format or "mp3")
        if audio_format == "pcm":
            kind = "audio/pcm"  # raw 24 kHz 16-bit samples: no header to recognise
        if kind is None or not kind.startswith("audio/"):
            raise error(BackendError, f"{self.label} answered with something that is not audio")
        return Audio(data, kind)

    # --- speech recognition ---------------------------------------------------------------------------

    def speech_to_text(self, audio: bytes, media_type: str, *, language: str | None = None,
                       timestamps: bool = False, options: dict[str, Any] | None = None) -> Transcript:
        model = self.backend.deployment.model or ""
        # verbose_json (language, duration, segments) is Whisper's; the gpt-4o transcribers answer json.
        verbose = timestamps and "whisper" in model.lower()
        fields = {k: str(v) for k, v in self._body(language=language, **(options or {})).items()}
        fields["response_format"] = "verbose_json" if verbose else "json"
        if verbose:
            fields["timestamp_granularities[]"] = "segment"
        form = Form(fields, {"file": (f"audio.{EXTENSIONS.get(media_type, 'bin')}", audio, media_type)})
        data = self.wire.obj(self._post("/audio/transcriptions", form=form), "the answer", optional=False)
        text = self.wire.text(data.get("text"), "the transcript's text")
        if text is None:
            raise error(BackendError, f"{self.label} answered without a transcript: {provider_message(data)}")
        segments = []
        for seg in at_most(self.wire.items(data.get("segments"), "segments"), "segments", self.label):
            seg = self.wire.obj(seg, "a segment", optional=False)
            segments.append(Segment(self.wire.number(seg.get("start"), "a segment's start") or 0.0,
                                    self.wire.number(seg.get("end"), "a segment's end") or 0.0,
                                    (self.wire.text(seg.get("text"), "a segment's text") or "").strip()))
        return Transcript(text.strip(), self.wire.text(data.get("language"), "language"),
                          self.wire.number(data.get("duration"), "duration"), segments)

    # --- moderation --------------------------------------------------------------------------------------

    def classify_text(self, text: str, *, options: dict[str, Any] | None = None) -> list[Label]:
        """The moderation categories of `text`, highest score first; `flagged` as the service says."""
        data = self.wire.obj(self._post("/moderations", self._body(input=text, **(options or {}))),
                             "the answer", optional=False)
        results = self.wire.items(data.get("results"), "results")
        if not results:
            raise error(BackendError, f"{self.label} answered with no moderation result: {provider_message(data)}")
        result = self.wire.obj(results[0], "a result", optional=False)
        flags = self.wire.obj(result.get("categories"), "categories")
        scores = self.wire.obj(result.get("category_scores"), "category_scores")
        labels = [Label(str(name), self.wire.number(score, f"the score of {name}") or 0.0, flags.get(name) is True)
                  for name, score in at_most(list(scores.items()), "categories", self.label)]
        return sorted(labels, key=lambda lab: -lab.score)


def decode_b64(encoded: str, label: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise error(BackendError, f"{label} answered with image data that is not base64") from None
