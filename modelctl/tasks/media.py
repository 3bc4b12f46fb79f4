"""Files that go to a service (images, audio): read with a size limit and recognised by their
first bytes, never by their name — a `.png` that is not a PNG is refused here, not by the
service after the upload."""

from __future__ import annotations

import os
import re

from modelctl.errors import BackendError, UsageError
from modelctl.files import read_user_file
from modelctl.tasks.results import Image
from modelctl.transport.http_client import error

IMAGE_LIMIT = 20 * 1024 * 1024  # what OpenAI, Azure OpenAI and Anthropic accept per image
AUDIO_LIMIT = 25 * 1024 * 1024  # OpenAI's and Azure OpenAI's upload limit for transcription

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
AUDIO_TYPES = ("audio/wav", "audio/mpeg", "audio/flac", "audio/ogg", "audio/webm", "audio/mp4", "audio/aac")

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif",
              "audio/wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/ogg": "ogg",
              "audio/webm": "webm", "audio/mp4": "m4a", "audio/aac": "aac"}


def sniff(data: bytes) -> str | None:
    """The media type of `data` from its magic bytes, among IMAGE_TYPES and AUDIO_TYPES."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"  # an ID3 tag, or an MPEG audio frame sync of layer III
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # an ADTS frame
    return None


def image_size(size: str) -> tuple[int, int] | None:
    """(width, height) of a `--size` such as 1024x1024; None for `auto` (the service chooses)."""
    text = size.strip().lower()
    if text == "auto":
        return None
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise UsageError(f"--size '{size}' is not WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    return int(width), int(height)


# A URL's scheme (`data:`, `file:`, `s3://`): two letters at least, so that `C:\\x.png` is a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def _read(path: str, what: str, limit: int, accepted: tuple[str, ...]) -> tuple[bytes, str]:
    scheme = _SCHEME.match(path)
    if scheme and not os.path.lexists(path):  # "no such file" would not say what went wrong
        shown = path if len(path) <= 60 else path[:40] + "…"
        raise UsageError(f"{what} '{shown}' is a {scheme.group(1)}: URL, which modelctl does not read",
                         hint="give the path of a file instead")
    data = read_user_file(path, what, limit=limit)
    if not data:
        raise UsageError(f"{what} '{path}' is empty")
    kind = sniff(data)
    if kind not in accepted:
        names = ", ".join(EXTENSIONS[t] for t in accepted)
        found = f"it looks like {kind}" if kind else "its first bytes match none of them"
        raise UsageError(f"{what} '{path}' is not one of {names}: {found}")
    return data, kind


def read_image(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """(bytes, media type) of an image file: PNG, JPEG, WebP or GIF, at most 20 MB."""
    return _read(os.fspath(path), "picture", IMAGE_LIMIT, IMAGE_TYPES)  # "more than a picture can be"


def read_audio(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """(bytes, media type) of an audio file: WAV, MP3, FLAC, Ogg, WebM, M4A or AAC, at most 25 MB."""
    return _read(os.fspath(path), "audio file", AUDIO_LIMIT, AUDIO_TYPES)


def image_from_bytes(data: bytes, label: str, revised_prompt: str | None = None) -> "Image":
    """An Image of the bytes a service (`label`) sent, its type read from them: what is no
    image is a BackendError."""

    kind = sniff(data)
    if kind is None or not kind.startswith("image/"):
        raise error(BackendError, f"{label} answered with data that is no PNG, JPEG, WebP or GIF image")
    return Image(data, kind, revised_prompt)
