"""Images in a conversation (`chat --image`, `/image`): a user message may carry images, and
each provider takes them its own way:

| kind | a file | a URL |
|---|---|---|
| OpenAI, Azure OpenAI, Azure AI, OpenAI-compatible, Mistral, Hugging Face | `image_url` part with a `data:` URL | `image_url` part with the URL |
| Anthropic | `image` block, `source.type: base64` | `image` block, `source.type: url` |
| Gemini | `inline_data` part (`mime_type`, base64 `data`) | refused: Gemini fetches only its own file URIs |
| Ollama | `images` (base64) on the message | refused: Ollama takes image data only |

A message is still a mapping of role and content; `ImageMessage` adds its images alongside,
so code that reads only role and content is unchanged.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Mapping

from modelctl.errors import UsageError


@dataclass(frozen=True)
class ImagePart:
    """An image file's bytes and media type, or the URL of an image for the service to fetch."""

    media_type: str | None = None
    data: bytes | None = None
    url: str | None = None

    def base64(self) -> str:
        return base64.b64encode(self.data or b"").decode("ascii")

    def data_url(self) -> str:
        return self.url or f"data:{self.media_type};base64,{self.base64()}"


class ImageMessage(dict[str, str]):
    """A message (role, content) with images."""

    def __init__(self, fields: Mapping[str, str], images: tuple[ImagePart, ...]) -> None:
        super().__init__(fields)
        self.images = images


def images_of(message: Mapping[str, Any]) -> tuple[ImagePart, ...]:
    return getattr(message, "images", ())


def carry_images(source: Mapping[str, Any], turn: dict[str, str]) -> dict[str, str]:
    """`turn` (a copy of `source`'s role and content) with `source`'s images."""
    images = images_of(source)
    return ImageMessage(turn, images) if images else turn


def files_only(images: tuple[ImagePart, ...], provider: str) -> None:
    if any(part.url for part in images):
        raise UsageError(f"{provider} takes images as files, not URLs", hint="download the image and pass the file")


def openai_content(message: Mapping[str, Any]) -> Any:
    """The `content` of a chat-completions message: its text, or text and `image_url` parts."""
    images = images_of(message)
    if not images:
        return message["content"]
    parts: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}] if message["content"] else []
    return parts + [{"type": "image_url", "image_url": {"url": part.data_url()}} for part in images]


def anthropic_content(message: Mapping[str, Any]) -> Any:
    """The `content` of a Messages API turn: its text, or image blocks then a text block."""
    images = images_of(message)
    if not images:
        return message["content"]
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "url", "url": part.url} if part.url else
         {"type": "base64", "media_type": part.media_type, "data": part.base64()}} for part in images]
    return blocks + ([{"type": "text", "text": message["content"]}] if message["content"] else [])


def gemini_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `parts` of a Gemini content: its text, then `inline_data` for each image."""
    images = images_of(message)
    files_only(images, "Gemini")
    parts: list[dict[str, Any]] = [{"text": message["content"]}] if message["content"] or not images else []
    return parts + [{"inline_data": {"mime_type": part.media_type, "data": part.base64()}} for part in images]


def ollama_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """An Ollama chat message: role, content, and base64 `images` when it has any."""
    turn: dict[str, Any] = {"role": message["role"], "content": message["content"]}
    images = images_of(message)
    if images:
        files_only(images, "Ollama")
        turn["images"] = [part.base64() for part in images]
    return turn
