"""The task endpoints' wire formats: OpenAI's (also Azure OpenAI's) images, audio and
moderation answers, Hugging Face inference's task answers, and tiny real media files to send
and receive. A multipart upload is read back with the standard library's MIME parser."""

from __future__ import annotations

import base64
import struct
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from providers.server import Reply, Request


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PNG image (what Pillow would write, made here with zlib)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def wav(samples: int = 1600, rate: int = 16000) -> bytes:
    """A real WAV file of silence (16-bit mono)."""
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * samples)
    return buf.getvalue()


MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 400  # an ID3 tag, then a frame
FLAC = b"fLaC\x00\x00\x00\x22" + b"\x00" * 200


def form(req: Request) -> dict[str, Any]:
    """A multipart/form-data request's parts: field name -> text, or (file name, bytes, type)."""
    head = f"content-type: {req.header('content-type')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + req.raw)
    assert message.is_multipart(), req.header("content-type")
    parts: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        filename = part.get_filename()
        parts[name] = (filename, payload, part.get_content_type()) if filename else payload.decode()
    return parts


# --- OpenAI / Azure OpenAI ---------------------------------------------------------------------------


def images(*datas: bytes, revised: str | None = "A red square, flat colour.") -> Reply:
    return Reply(json={"created": 1_730_000_000, "data": [
        {"b64_json": base64.b64encode(d).decode(), "revised_prompt": revised} for d in datas]})


def speech(data: bytes = MP3, content_type: str = "audio/mpeg") -> Reply:
    return Reply(data=data, headers={"content-type": content_type})


def transcription(text: str = "Hello there.") -> Reply:
    return Reply(json={"text": text})


def verbose_transcription() -> Reply:
    return Reply(json={
        "task": "transcribe", "language": "english", "duration": 2.5, "text": "Hello there. General Kenobi.",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 1.2, "text": " Hello there.", "tokens": [50364, 2425],
             "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 0.9, "no_speech_prob": 0.01},
            {"id": 1, "seek": 0, "start": 1.2, "end": 2.5, "text": " General Kenobi.", "tokens": [50424, 6996],
             "temperature": 0.0, "avg_logprob": -0.3, "compression_ratio": 0.9, "no_speech_prob": 0.02},
        ]})


def moderation(flagged: bool = True) -> Reply:
    names = ["harassment", "hate", "self-harm", "sexual", "violence"]
    scores = {"harassment": 0.02, "hate": 0.001, "self-harm": 0.0005, "sexual": 0.0001, "violence": 0.91}
    return Reply(json={"id": "modr-970d409ef3bef3b70c73d8232df86e7d", "model": "omni-moderation-latest",
                       "results": [{"flagged": flagged,
                                    "categories": {n: flagged and n == "violence" for n in names},
                                    "category_scores": scores,
                                    "category_applied_input_types": {n: ["text"] for n in names}}]})


# --- Hugging Face inference ----------------------------------------------------------------------------


def hf_bytes(data: bytes, content_type: str) -> Reply:
    return Reply(data=data, headers={"content-type": content_type})


def hf_labels(*pairs: tuple[str, float], nested: bool = False) -> Reply:
    rows = [{"label": label, "score": score} for label, score in pairs]
    return Reply(json=[rows] if nested else rows)


def hf_asr(timestamps: bool = True) -> Reply:
    body: dict[str, Any] = {"text": " Hello there. General Kenobi."}
    if timestamps:
        body["chunks"] = [{"text": " Hello there.", "timestamp": [0.0, 1.2]},
                          {"text": " General Kenobi.", "timestamp": [1.2, None]}]
    return Reply(json=body)


def hf_fill_mask() -> Reply:
    return Reply(json=[
        {"score": 0.32, "token": 2364, "token_str": "paris", "sequence": "the capital of france is paris."},
        {"score": 0.41, "token": 3000, "token_str": "lyon", "sequence": "the capital of france is lyon."},
    ])


def hf_loading(estimated: float = 20.0) -> Reply:
    """The serverless API while a model loads: 503 with an estimated time."""
    return Reply(503, json={"error": "Model google/vit-base-patch16-224 is currently loading",
                            "estimated_time": estimated})
