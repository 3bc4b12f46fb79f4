"""Images for a chat (`--image FILE|URL`, `/image FILE`): read and checked here (type by magic
bytes, 20 MB at most), refused in one clear error for a model that does not take them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from modelctl.backends.images import ImagePart
from modelctl.errors import UsageError

if TYPE_CHECKING:
    from modelctl.chat.resolve import ChatSetup
    from modelctl.registry import Registry


def load_image(ref: str) -> ImagePart:
    """An image file (PNG, JPEG, WebP, GIF), or an http(s) URL the service fetches itself."""
    from modelctl.tasks.media import read_image

    if ref.lower().startswith(("http://", "https://")):
        from modelctl.backends.urls import check_url

        check_url(ref, "--image")
        return ImagePart(url=ref)
    data, kind = read_image(ref)
    return ImagePart(media_type=kind, data=data)


def load_images(refs: Iterable[str]) -> tuple[ImagePart, ...]:
    return tuple(load_image(ref) for ref in refs)


def vision_refusal(setup: "ChatSetup", registry: "Callable[[], Registry]") -> UsageError | None:
    """Why the chat's model cannot take images, or None. A local GGUF model would need llama.cpp's
    multimodal handler and its mmproj file; a registry model needs "vision" among its tasks (a
    model the registry does not know, behind --api-base, is given the benefit of the doubt)."""
    if setup.local is not None:
        return UsageError(f"'{setup.model_id}' runs locally through llama.cpp, where modelctl does not take "
                          "images yet (that needs the model's mmproj vision projector)",
                          hint="use a vision model on a server or API (`modelctl list --task vision`)")
    entry = registry().get(setup.model_id)
    if entry is None or "vision" in entry.tasks:
        return None
    return UsageError(f"model '{entry.id}' does not take images (its tasks: {', '.join(entry.tasks) or 'none'})",
                      hint="choose a model with vision: `modelctl list --task vision`")
