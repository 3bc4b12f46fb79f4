"""Hugging Face inference task endpoints in their documented wire format (the serverless
`hf-inference` provider through the router, or an Inference Endpoint / TGI-style server at the
deployment's `api_base`): one POST of `{"inputs": …, "parameters": {…}}` to the model's URL.

| task | inputs | answer |
|---|---|---|
| text-to-image | the prompt | the image bytes |
| text-to-speech | the text | the audio bytes |
| speech-to-text | the audio, base64 | `{"text", "chunks": [{"text", "timestamp": [start, end]}]}` |
| text classification (moderation) | the text | `[{"label", "score"}]` (some servers nest it once more) |
| image-classification | the image, base64 | `[{"label", "score"}]` |
| zero-shot-image-classification | the image, base64; `candidate_labels` | `[{"label", "score"}]` |
| fill-mask | the text with the mask token | `[{"sequence", "score", "token", "token_str"}]` |

Requests go through modelctl's HTTP client (retries, `--debug` dumps, redaction) with the key
the chat backend found (HF_TOKEN, the deployment's variable, or the saved login). Inference
Providers other than `hf-inference` each have their own formats and are not spoken here.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelctl.errors import BackendError, UsageError
from modelctl.tasks.media import image_from_bytes, image_size, sniff
from modelctl.tasks.results import Audio, Fill, Image, Label, Segment, Transcript, at_most
from modelctl.transport.http_client import ErrorContext, HttpClient, error
from modelctl.transport.server_text import provider_message

if TYPE_CHECKING:
    from modelctl.backends.huggingface import HuggingFaceBackend
    from modelctl.registry import Model

ROUTER_MODELS = "https://router.huggingface.co/hf-inference/models"


class HFTasks:
    """The task endpoint of one `hf-inference` deployment."""

    def __init__(self, backend: "HuggingFaceBackend") -> None:
        self.backend = backend
        self.model: "Model | None" = None  # the registry model, where there is one
        dep = backend.deployment
        if backend.api_base:
            self.url = backend.use_base(backend.api_base)  # a dedicated endpoint serves one model at its root
        elif dep.provider and dep.provider != "hf-inference":
            raise UsageError(f"tasks through the Hugging Face inference provider '{dep.provider}' are not supported",
                             hint="use an hf-inference deployment or an Inference Endpoint (--api-base URL)")
        else:
            self.url = f"{ROUTER_MODELS}/{quote(dep.model or '', safe='/')}"
        self.label = backend.label
        self.wire = backend.wire
        headers = {"authorization": f"Bearer {backend.key.value}"} if backend.key.value else {}
        ctx = ErrorContext(self.label, not_found=backend.ctx.not_found, key_hint=backend.ctx.key_hint,
                           endpoint=backend.endpoint)
        self.http: HttpClient = backend.make_client(ctx, headers)

    def close(self) -> None:
        self.http.close()
        self.backend.close()

    def _json(self, inputs: Any, parameters: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {"inputs": inputs}
        if parameters:
            body["parameters"] = parameters
        return self.http.request_json("POST", self.url, body)

    def _bytes(self, inputs: str, parameters: dict[str, Any] | None) -> bytes:
        body: dict[str, Any] = {"inputs": inputs}
        if parameters:
            body["parameters"] = parameters
        data, _ = self.http.request_bytes("POST", self.url, body)
        return data

    def _labels(self, data: Any) -> list[Label]:
        rows = self.wire.items(data, "the answer")
        if len(rows) == 1 and isinstance(rows[0], list):  # text-classification answers [[…]] for one input
            rows = rows[0]
        labels = []
        for row in at_most(rows, "labels", self.label):
            row = self.wire.obj(row, "a label", optional=False)
            name = self.wire.text(row.get("label"), "a label's name")
            if name is None:
                raise error(BackendError, f"{self.label} answered with a result without a label: "
                            f"{provider_message(row)}")
            labels.append(Label(name, self.wire.number(row.get("score"), f"the score of {name}") or 0.0))
        if not labels:
            raise error(BackendError, f"{self.label} answered with no labels")
        return sorted(labels, key=lambda lab: -lab.score)

    # --- the tasks ------------------------------------------------------------------------------------

    def text_to_image(self, prompt: str, *, n: int = 1, size: str | None = None,
                      options: dict[str, Any] | None = None) -> list[Image]:
        parameters = dict(options or {})
        dimensions = image_size(size) if size else None
        if dimensions:
            parameters.update(width=dimensions[0], height=dimensions[1])
        # The task makes one image per request.
        return [image_from_bytes(self._bytes(prompt, parameters), self.label) for _ in range(n)]

    def text_to_speech(self, text: str, *, voice: str | None = None, audio_format: str | None = None,
                       options: dict[str, Any] | None = None) -> Audio:
        if voice or audio_format:
            self.backend.debug.line("ignored", f"voice and format ({self.label} chooses them for the model)")
        data = self._bytes(text, dict(options or {}))
        kind = sniff(data)
        if kind is None or not kind.startswith("audio/"):
            raise error(BackendError, f"{self.label} answered with data that is not audio modelctl recognises")
        return Audio(data, kind)

    def speech_to_text(self, audio: bytes, media_type: str, *, language: str | None = None,
                       timestamps: bool = False, options: dict[str, Any] | None = None) -> Transcript:
        parameters: dict[str, Any] = dict(options or {})
        if timestamps:
            parameters["return_timestamps"] = True
        if language:
            parameters.setdefault("generation_parameters", {})["language"] = language
        data = self.wire.obj(self._json(base64.b64encode(audio).decode("ascii"), parameters), "the answer",
                             optional=False)
        text = self.wire.text(data.get("text"), "the transcript's text")
        if text is None:
            raise error(BackendError, f"{self.label} answered without a transcript: {provider_message(data)}")
        segments = []
        for chunk in at_most(self.wire.items(data.get("chunks"), "chunks"), "chunks", self.label):
            chunk = self.wire.obj(chunk, "a chunk", optional=False)
            stamp = self.wire.items(chunk.get("timestamp"), "a chunk's timestamp")
            if len(stamp) != 2:
                raise self.wire.error("a chunk's timestamp is not [start, end]")
            start = self.wire.number(stamp[0], "a chunk's start") or 0.0
            end = self.wire.number(stamp[1], "a chunk's end")  # the last chunk may have none
            segments.append(Segment(start, start if end is None else end,
                                    (self.wire.text(chunk.get("text"), "a chunk's text") or "").strip()))
        return Transcript(text.strip(), segments=segments)

    def classify_text(self, text: str, *, options: dict[str, Any] | None = None) -> list[Label]:
        return self._labels(self._json(text, dict(options or {})))

    def classify_image(self, image: bytes, media_type: str, *, options: dict[str, Any] | None = None) -> list[Label]:
        return self._labels(self._json(base64.b64encode(image).decode("ascii"), dict(options or {})))

    def zero_shot_image(self, image: bytes, media_type: str, labels: list[str], *,
                        options: dict[str, Any] | None = None) -> list[Label]:
        parameters = {**(options or {}), "candidate_labels": labels}
        return self._labels(self._json(base64.b64encode(image).decode("ascii"), parameters))

    def fill_mask(self, text: str, *, top_k: int | None = None, options: dict[str, Any] | None = None) -> list[Fill]:
        parameters = dict(options or {})
        if top_k:
            parameters["top_k"] = top_k
        fills = []
        for row in at_most(self.wire.items(self._json(text, parameters), "the answer"), "candidates", self.label):
            row = self.wire.obj(row, "a candidate", optional=False)
            token = self.wire.text(row.get("token_str"), "a candidate's token_str")
            sequence = self.wire.text(row.get("sequence"), "a candidate's sequence")
            if token is None or sequence is None:
                raise error(BackendError, f"{self.label} answered with a candidate without token_str or sequence")
            fills.append(Fill(token, sequence, self.wire.number(row.get("score"), "a candidate's score") or 0.0))
        if not fills:
            raise error(BackendError, f"{self.label} answered with no candidates")
        return sorted(fills, key=lambda f: -f.score)[:top_k or None]  # no more than asked for
