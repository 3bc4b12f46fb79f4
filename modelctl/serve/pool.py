"""Local models kept loaded between requests.

A llama.cpp context answers one request at a time, so each resident model has one slot and a
bounded line of requests waiting for it (more get `Busy`, a 429). A model is loaded on its first
request and stays until it has been idle for `keep_alive` seconds, until room is needed for
another (at most `max_models` resident, their files at most `max_bytes` together; the least
recently used idle one goes first), or until `modelctl stop` unloads it.

Requests reach a resident model through `PooledBackend`, which looks like the model's own
backend to a chat (it is a LocalBackend: template, rendered prompt, tokens), takes the slot for
the span of one generation, and leaves the model loaded when the chat is closed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from modelctl.backends.base import BaseBackend, Chunk, GenerationParams, Message
from modelctl.errors import BackendError
from modelctl.serve.bridge import CANCEL, Cancelled
from modelctl.units import human_bytes

if TYPE_CHECKING:
    from modelctl.backends.llamacpp import LlamaCppBackend
    from modelctl.chat.opening import Chat
    from modelctl.templates.types import ChatTemplate, RenderedPrompt

_WAIT_STEP_S = 0.1  # how often a waiting request looks whether its client has gone


class Busy(BackendError):
    """A request the server will not queue: the model's line is full, or no room can be made."""

    retryable = True  # another deployment (a fallback) may answer

    def __init__(self, message: str, status: int = 429) -> None:
        super().__init__(message)
        self.status = status


Key = tuple[Any, ...]


def backend_key(backend: "LlamaCppBackend") -> Key:
    """What makes two opened backends the same loaded model: the file and everything that
    changes how it is loaded. (The template and the default sampling options are each
    request's own: they are set on the model while the request holds it.)"""
    return (str(backend.path), backend.n_ctx, backend.n_gpu_layers, backend.n_threads,
            tuple(sorted((k, repr(v)) for k, v in backend.load_options.items())),
            backend.extra_buffers_override)


@dataclass(eq=False)
class Resident:
    """A local model the server holds (loaded or about to be)."""

    key: Key
    backend: "LlamaCppBackend"
    model_id: str
    size: int
    last_used: float
    loaded_at: float | None = None
    busy: bool = False
    waiting: int = 0
    requests: int = 0
    names: set[str] = field(default_factory=set)

    @property
    def loaded(self) -> bool:
        return self.backend.loaded


class ModelPool:
    def __init__(self, *, keep_alive: float | None = 300.0, max_models: int = 2, max_bytes: int | None = None,
                 queue: int = 8, kv_cache: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_alive = keep_alive  # None: never unloaded for idleness; 0: after each request
        self.max_models = max(1, max_models)
        self.max_bytes = max_bytes
        self.queue = max(0, queue)
        self.kv_cache = kv_cache  # bytes of saved conversation states each resident model keeps
        self.clock = clock
        self._cond = threading.Condition()
        self._models: OrderedDict[Key, Resident] = OrderedDict()  # least recently used first

    # --- taking a model ----------------------------------------------------------------------------

    def lease(self, chat: "Chat", name: str | None = None) -> "Chat":
        """`chat` (a local model's, not loaded) on the resident model it names: the one already
        held, or this one, which becomes resident."""
        fresh: Any = chat.backend
        key = backend_key(fresh)
        with self._cond:
            resident = self._models.get(key)
            if resident is None:
                size = fresh.path.stat().st_size
                if self.max_bytes is not None and size > self.max_bytes:
                    raise Busy(f"{chat.model_id} takes {human_bytes(size)}, more than this server's "
                               f"memory cap of {human_bytes(self.max_bytes)}", status=503)
                # clients take turns on the model: each conversation's evaluated prefix is kept
                fresh.keep_states = self.kv_cache
                resident = self._models[key] = Resident(key, fresh, chat.model_id, size, self.clock())
                fresh = None
            resident.names.update(n for n in (name, chat.model_id) if n)
        pooled = PooledBackend(self, resident, template=chat.backend.template,  # type: ignore[attr-defined]
                               sample_options=chat.backend.sample_options)  # type: ignore[attr-defined]
        if fresh is not None:
            fresh.close()
        return chat.with_backend(pooled)

    def _acquire(self, resident: Resident) -> None:
        """Take `resident`'s slot (in a worker thread), waiting in its line; load it when needed,
        making room first."""
        cancel = CANCEL.get()
        with self._cond:
            if resident.busy and resident.waiting >= self.queue:
                raise Busy(f"{resident.model_id} is busy and {resident.waiting} requests are waiting for it; "
                           "try again later")
            resident.waiting += 1
            try:
                while resident.busy or not self._room_for(resident):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled
                    self._cond.wait(_WAIT_STEP_S)
            finally:
                resident.waiting -= 1
            resident.busy = True
            if resident.key not in self._models:  # unloaded (stop, idle) while it waited: back in
                self._models[resident.key] = resident
            self._models.move_to_end(resident.key)
        if not resident.loaded:
            try:
                resident.backend.load()
            except BaseException:
                self._release(resident)
                raise
            resident.loaded_at = self.clock()

    def _room_for(self, resident: Resident) -> bool:
        """Whether `resident` may be loaded now, unloading idle models (least recently used
        first) to make room. Called with the lock held."""
        if resident.loaded:
            return True
        while True:
            loaded = [r for r in self._models.values() if r.loaded and r is not resident]
            used = sum(r.size for r in loaded)
            if len(loaded) < self.max_models and (self.max_bytes is None or used + resident.size <= self.max_bytes):
                return True
            idle = [r for r in loaded if not r.busy and not r.waiting]
            if not idle:
                return False
            self._unload(idle[0])

    def _release(self, resident: Resident) -> None:
        with self._cond:
            resident.busy = False
            resident.requests += 1
            resident.last_used = self.clock()
            if self.keep_alive == 0 and not resident.waiting:
                self._unload(resident)
            self._cond.notify_all()

    def _unload(self, resident: Resident) -> None:
        """Free `resident`'s memory (lock held; it is not busy). Its backend loads again on the
        next request that names it."""
        resident.backend.close()
        resident.loaded_at = None
        if not resident.waiting:
            self._models.pop(resident.key, None)

    # --- what the server does with its models -------------------------------------------------------

    def sweep(self) -> list[str]:
        """Unload the models idle for longer than `keep_alive`; their ids."""
        if self.keep_alive is None:
            return []
        now = self.clock()
        with self._cond:
            idle = [r for r in self._models.values()
                    if r.loaded and not r.busy and not r.waiting and now - r.last_used >= self.keep_alive]
            for resident in idle:
                self._unload(resident)
            return [r.model_id for r in idle]

    def stop(self, matches: Callable[[Resident], bool]) -> list[str]:
        """Unload the loaded models `matches` picks (a busy one after its request); their ids."""
        stopped: list[str] = []
        with self._cond:
            for resident in [r for r in self._models.values() if r.loaded and matches(r)]:
                while resident.busy:
                    self._cond.wait(_WAIT_STEP_S)
                if resident.loaded:
                    self._unload(resident)
                    stopped.append(resident.model_id)
            self._cond.notify_all()
        return stopped

    def snapshot(self) -> list[dict[str, Any]]:
        """The resident models, for `modelctl ps`."""
        now = self.clock()
        with self._cond:
            rows = []
            for r in self._models.values():
                if not (r.loaded or r.busy or r.waiting):
                    continue
                idle = 0.0 if r.busy else now - r.last_used
                expires = None if self.keep_alive is None or r.busy else max(0.0, self.keep_alive - idle)
                rows.append({"model": r.model_id, "path": str(r.backend.path), "size_bytes": r.size,
                             "loaded_s": None if r.loaded_at is None else round(now - r.loaded_at, 3),
                             "idle_s": round(idle, 3), "expires_in_s": None if expires is None else round(expires, 3),
                             "busy": r.busy, "queue": r.waiting, "requests": r.requests})
            return rows

    def gauges(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Queue depth and residency, as metrics gauges."""
        with self._cond:
            loaded = [r for r in self._models.values() if r.loaded]
            return {
                "modelctl_queue_depth": {(("model", r.model_id),): float(r.waiting) for r in self._models.values()},
                "modelctl_loaded_models": {(): float(len(loaded))},
                "modelctl_loaded_bytes": {(): float(sum(r.size for r in loaded))},
            }

    def close(self) -> None:
        with self._cond:
            for resident in list(self._models.values()):
                resident.backend.close()
            self._models.clear()


class PooledBackend(BaseBackend):
    """A resident model as one request's chat sees it: its slot is held while a generation
    runs (from `chat()` to the stream's end or close), and closing it leaves the model loaded."""

    kind = "llama.cpp"

    def __init__(self, pool: ModelPool, resident: Resident, *, template: "ChatTemplate | None",
                 sample_options: Mapping[str, Any]) -> None:
        self.pool = pool
        self.resident = resident
        self.model = resident.backend
        self.template = template  # this request's: set on the model while it holds it
        self.sample_options = dict(sample_options)

    @property
    def last_rendered(self) -> "RenderedPrompt | None":
        return self.model.last_rendered

    @property
    def last_prompt_tokens(self) -> list[int]:
        return self.model.last_prompt_tokens

    @property
    def loaded(self) -> bool:
        return self.model.loaded

    @property
    def context_window(self) -> int:
        return self.model.context_window

    @property
    def endpoint(self) -> None:
        return None

    def load(self) -> object:
        return self.model.load()

    def compute_description(self) -> str:
        return self.model.compute_description()

    def render(self, messages: Sequence[Message], variables: Mapping[str, Any] | None = None) -> "RenderedPrompt":
        return self.model.render(messages, variables)

    def tokenize_rendered(self, rendered: "RenderedPrompt") -> list[int]:
        return self.model.tokenize_rendered(rendered)

    def forget(self) -> None:
        self.model.forget()

    def describe(self) -> dict[str, Any]:
        return self.model.describe()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return self.model.count_tokens(messages)

    def chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        return self._held(lambda: self.model.chat(messages, params))

    def complete(self, text: str, params: GenerationParams) -> Iterator[Chunk]:
        return self._held(lambda: self.model.complete(text, params))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.pool._acquire(self.resident)
        try:
            return self.model.embed(texts)
        finally:
            self.pool._release(self.resident)

    def _own(self) -> None:
        """Put this request's template and sampling defaults on the model."""
        self.model.template = self.template
        self.model.sample_options = dict(self.sample_options)

    def _held(self, start: Callable[[], Iterator[Chunk]]) -> Iterator[Chunk]:
        """The stream `start` begins, with the model's slot taken now (so the prompt renders
        and errors before the answer, as the model's own `chat` does) and given back when the
        stream ends or is closed."""
        self.pool._acquire(self.resident)
        try:
            self._own()
            chunks = start()
        except BaseException:
            self.pool._release(self.resident)
            raise
        return _Held(chunks, lambda: self.pool._release(self.resident))

    def close(self) -> None:
        """The chat is done; the model stays resident."""


class _Held:
    """A stream that gives its model's slot back once: at its end, on an error, or when closed
    (also before its first chunk, where a generator's `finally` would never run)."""

    def __init__(self, chunks: Iterator[Chunk], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> "_Held":
        return self

    def __next__(self) -> Chunk:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            release()

    def __del__(self) -> None:
        self.close()
