"""Images for a chat (`--image FILE|URL`, `/image FILE`): read and checked here (type by magic
bytes, 20 MB at most), refused in one clear error for a model that does not take them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from modelctl.backends.images import ImagePart
from modelctl.chat.opening import registry_mmproj
from modelctl.errors import NotFoundError, UsageError
from modelctl.transport.urls import check_url

if TYPE_CHECKING:
    from modelctl.chat.opening import Chat
    from modelctl.registry import Registry


def load_image(ref: str) -> ImagePart:
    """An image file (PNG, JPEG, WebP, GIF), or an http(s) URL the service fetches itself."""
    from modelctl.tasks.media import read_image  # noqa: PLC0415 (modelctl.tasks: not on the chat --api-base path)

    if ref.lower().startswith(("http://", "https://")):
        check_url(ref, "--image")
        return ImagePart(url=ref)
    if re.match(r"[a-z][a-z0-9+.-]*://", ref, re.IGNORECASE) and not Path(ref).exists():
        raise UsageError(f"picture '{ref}': only http(s) URLs are fetched by the service; "
                         "other images must be files here")
    data, kind = read_image(ref)
    return ImagePart(media_type=kind, data=data)


def load_images(refs: Iterable[str]) -> tuple[ImagePart, ...]:
    return tuple(load_image(ref) for ref in refs)


def find_mmproj(setup: "Chat", given: str | None) -> Path | None:
    """The vision projector of a local model: `given` (--mmproj), else the file its registry
    deployment names in `mmproj`, beside the model file (where a pull puts it)."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise NotFoundError(f"--mmproj '{given}': no such file")
        return path
    return registry_mmproj(setup.local) if setup.local is not None else None


def vision_refusal(setup: "Chat", registry: "Callable[[], Registry]") -> UsageError | None:
    """Why the chat's model cannot take images, or None. A local GGUF model needs its vision
    projector (`backend.mmproj`); a registry model on a server needs "vision" among its tasks (a
    model the registry does not know, behind --api-base, is given the benefit of the doubt)."""
    if setup.local is not None:
        if getattr(setup.backend, "mmproj", None) is not None:
            return None
        return UsageError(f"'{setup.model_id}' runs locally through llama.cpp, which sees images only through "
                          "the model's vision projector (mmproj GGUF), and none was found",
                          hint="pass --mmproj FILE, or use a vision model on a server or API "
                          "(`modelctl list --task vision`)")
    entry = registry().get(setup.model_id)
    if entry is None or "vision" in entry.tasks:
        return None
    return UsageError(f"model '{entry.id}' does not take images (its tasks: {', '.join(entry.tasks) or 'none'})",
                      hint="choose a model with vision: `modelctl list --task vision`")
