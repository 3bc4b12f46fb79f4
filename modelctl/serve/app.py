"""The HTTP side of `modelctl serve`: routes, authentication, bounded request bodies, OpenAI-shaped
errors, server-sent events. What each request asks is answered by `answer.Answerer`, in a worker
thread (`bridge.ThreadStream`); this module only moves bytes and maps outcomes to statuses.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from modelctl.chat.reasoning import Split
from modelctl.errors import (
    AuthError,
    BackendError,
    ContextFull,
    ModelctlError,
    NotFoundError,
    OfflineError,
    TemplateError,
    UsageError,
)
from modelctl.redaction import redact
from modelctl.serve import data_routes, page, wire
from modelctl.serve.answer import Answerer, Caller, Finished, Started
from modelctl.serve.auth import RequestRefused
from modelctl.serve.bridge import ThreadStream
from modelctl.serve.wire import ApiError

if TYPE_CHECKING:
    from modelctl.engines.process import EngineProcess
    from modelctl.serve.auth import Keys
    from modelctl.serve.metrics import Metrics

log = logging.getLogger("modelctl.serve")


@dataclass(frozen=True)
class Limits:
    """What one request may take: its body's bytes, and the seconds its body may take to arrive."""

    max_body: int = 16 * 2**20
    body_timeout: float = 30.0
    workers: int = 64  # requests answered at once (local ones then wait in their model's line)


def api_error(exc: BaseException) -> ApiError:
    """The OpenAI-shaped error for what went wrong answering a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestRefused):  # a key or a budget: said as it is
        refused = ApiError(exc.status, exc.message, type=exc.type, code=exc.code)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            refused.headers["retry-after"] = str(retry_after)
        return refused
    if isinstance(exc, ModelctlError):
        message = redact(str(exc))
        if isinstance(exc, NotFoundError):
            return ApiError(404, message, type="invalid_request_error", param="model", code="model_not_found")
        if isinstance(exc, ContextFull):
            return ApiError(400, message, code="context_length_exceeded", param="messages")
        if isinstance(exc, (UsageError, TemplateError)):
            return ApiError(400, message)
        if isinstance(exc, AuthError):  # the server's own upstream key: not the caller's to fix
            return ApiError(502, f"the upstream service refused this server's credentials: {message}",
                            type="api_error", code="upstream_auth")
        if isinstance(exc, OfflineError):
            return ApiError(502, message, type="api_error", code="upstream_unreachable")
        if isinstance(exc, BackendError):
            status = exc.status
            if status in (429, 503) and "budget" not in message:
                return ApiError(status, message, type="rate_limit_error" if status == 429 else "api_error",
                                code="rate_limit_exceeded" if status == 429 else "overloaded")
            if status in (400, 404, 413, 422):
                return ApiError(status, message)
            return ApiError(502, message, type="api_error", code="upstream_error")
        return ApiError(500, message, type="api_error", code="server_error")
    log.exception("request failed", exc_info=exc)
    return ApiError(500, "internal server error (see the server's log)", type="api_error", code="server_error")


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**(headers or {}), **error.headers})


class Server:
    """The routes, over one Answerer; `token` is the local token of this user's own CLI."""

    def __init__(self, answerer: Answerer, keys: "Keys", metrics: "Metrics", *, token: str,
                 limits: Limits = Limits(), cors: tuple[str, ...] = (), engines: tuple["EngineProcess", ...] = ()) -> None:
        self.answerer = answerer
        self.engines = engines  # engines started for this run (`serve --engine`)
        self.keys = keys
        self.metrics = metrics
        self.token = token
        self.limits = limits
        self.cors = cors
        self.executor = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="modelctl-serve")
        self.started = time.time()
        self.answering: weakref.WeakSet[ThreadStream] = weakref.WeakSet()  # what `cut` ends

    # --- the request's envelope ------------------------------------------------------------------------

    def caller(self, request: Request) -> Caller:
        """Who the request comes from, and the logged conversation it says it goes on
        (`x-modelctl-conversation`); ApiError 401 when keys are required and none fits."""
        authorization = request.headers.get("authorization")
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self.token.encode()):
            who = Caller(local=True, client_logs=request.headers.get("x-modelctl-client-logs") == "1")
        else:
            who = Caller(key=self.keys.check(authorization, request.headers.get("x-api-key")))
        return replace(who, continues=_conversation_header(request.headers.get("x-modelctl-conversation")))

    async def body(self, request: Request) -> bytes:
        """The request's body, at most `max_body` bytes, arrived within `body_timeout` seconds."""
        limit = self.limits.max_body
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request body is {int(declared)} bytes; this server takes at most {limit}",
                           code="request_too_large")

        async def read() -> bytes:
            parts, size = [], 0
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise ApiError(413, f"the request body is more than {limit} bytes", code="request_too_large")
                parts.append(part)
            return b"".join(parts)

        try:
            return await asyncio.wait_for(read(), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {self.limits.body_timeout:g} s",
                           code="request_timeout") from None

    def guarded(self, handler: Callable[[Request, Caller], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind authentication, with every failure an OpenAI-shaped error."""
        async def endpoint(request: Request) -> Response:
            try:
                caller = self.caller(request)
                return await handler(request, caller)
            except Exception as exc:  # noqa: BLE001 (every failure is an error response)
                return error_response(api_error(exc))
        return endpoint

    # --- completions ----------------------------------------------------------------------------------

    async def chat_completions(self, request: Request, caller: Caller) -> Response:
        req = wire.parse_chat(await self.body(request))
        flags = req.params
        stream = self._answer(lambda emit: self.answerer.chat(req.model, req.messages, flags, caller, emit))
        return await self._respond(request, stream, req.model, req.stream, req.include_usage, chat=True)

    async def completions(self, request: Request, caller: Caller) -> Response:
        req = wire.parse_completion(await self.body(request))
        stream = self._answer(lambda emit: self.answerer.complete(req.model, req.prompt, req.params, caller, emit))
        prefix = req.prompt if req.echo else ""
        return await self._respond(request, stream, req.model, req.stream, req.include_usage, chat=False,
                                   prefix=prefix)

    def _answer(self, work: Callable[[Callable[[Any], None]], None]) -> ThreadStream:
        stream = ThreadStream(self.executor, work)
        self.answering.add(stream)
        return stream

    def cut(self) -> None:
        """End the answers still in progress (the server is stopping, its grace is over): a 503
        error, as the response's status or as an error event before `[DONE]`."""
        error = ApiError(503, "the server is shutting down", type="api_error", code="server_shutting_down")
        for stream in list(self.answering):
            if not stream.cancel.is_set():
                stream.fail(error)

    async def _respond(self, request: Request, stream: ThreadStream, asked: str, streaming: bool,
                       include_usage: bool, *, chat: bool, prefix: str = "") -> Response:
        try:
            begun = await stream.next()
        except BaseException as exc:
            stream.stop()
            error = api_error(exc)
            self.metrics.request(asked, "", error.status)
            return error_response(error)
        assert isinstance(begun, Started)
        rid, created = wire.completion_id("chat" if chat else "text"), int(time.time())
        headers = {"x-modelctl-model": begun.model, "x-modelctl-deployment": begun.deployment or ""}
        if streaming:
            events = self._events(stream, begun, rid, created, include_usage, chat=chat, prefix=prefix)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})
        watcher = asyncio.ensure_future(_until_disconnect(request, stream))
        try:
            parts, reasoning, finished = [prefix], [], None
            async for item in stream:
                if isinstance(item, Split):
                    parts.append(item.text)
                    reasoning.append(item.reasoning)
                elif isinstance(item, Finished):
                    finished = item
        except Exception as exc:  # noqa: BLE001 (an error response)
            error = api_error(exc)
            self.metrics.request(begun.model, begun.deployment or "", error.status)
            return error_response(error, headers)
        finally:
            watcher.cancel()
        assert finished is not None
        self._counted(begun, finished, 200)
        extra = finished.extra(begun)
        if finished.cost is not None:
            headers["x-modelctl-cost"] = f"{finished.cost:.10f}"
        text, thought = "".join(parts), "".join(reasoning) or None
        body = (wire.chat_response(rid, created, begun.model, text=text, reasoning=thought,
                                   finish_reason=finished.finish_reason, usage=finished.usage, extra=extra,
                                   tool_calls=finished.tool_calls)
                if chat else
                wire.text_response(rid, created, begun.model, text=text, finish_reason=finished.finish_reason,
                                   usage=finished.usage, extra=extra))
        return JSONResponse(body, headers=headers)

    async def _events(self, stream: ThreadStream, begun: Started, rid: str, created: int, include_usage: bool, *,
                      chat: bool, prefix: str) -> AsyncIterator[bytes]:
        """The SSE stream: deltas, the finish, the usage chunk (when asked), `[DONE]`; an error
        after the answer began is one error event, then `[DONE]`."""
        def chunk(**fields: Any) -> bytes:
            made = wire.chat_chunk if chat else wire.text_chunk
            return wire.sse(made(rid, created, begun.model, **fields))

        try:
            if chat:
                yield chunk(role=True)
            if prefix:
                yield chunk(text=prefix)
            async for item in stream:
                if isinstance(item, Split) and (item.text or chat and item.reasoning):
                    yield chunk(text=item.text, reasoning=item.reasoning) if chat else chunk(text=item.text)
                elif isinstance(item, Finished):
                    self._counted(begun, item, 200)
                    extra = item.extra(begun)
                    if chat and item.tool_calls:
                        yield chunk(tool_calls=item.tool_calls)
                    yield chunk(finish_reason=item.finish_reason, extra=None if include_usage else extra)
                    if include_usage:
                        yield chunk(usage=item.usage, extra=extra)
        except Exception as exc:  # noqa: BLE001 (sent as an error event)
            error = api_error(exc)
            self.metrics.request(begun.model, begun.deployment or "", error.status)
            yield wire.sse(error.body())
        finally:
            stream.stop()
        yield wire.sse("[DONE]")

    def _counted(self, begun: Started, finished: Finished, status: int) -> None:
        self.metrics.request(begun.model, begun.deployment or "", status)
        for switch in finished.fallbacks:
            self.metrics.fallback(begun.model, str(switch.get("from")), str(switch.get("to")))

    async def embeddings(self, request: Request, caller: Caller) -> Response:
        req = wire.parse_embeddings(await self.body(request))
        loop = asyncio.get_running_loop()
        try:
            setup, vectors = await loop.run_in_executor(
                self.executor, lambda: self.answerer.embed(req.model, req.inputs, caller))
        except Exception as exc:  # noqa: BLE001 (an error response)
            error = api_error(exc)
            self.metrics.request(req.model, "", error.status)
            return error_response(error)
        dep = setup.deployment
        self.metrics.request(setup.model_id, dep.id if dep else "", 200)
        tokens = sum(len(text.split()) for text in req.inputs)  # counted by words where the backend tells none
        body = wire.embeddings_response(setup.model_id, vectors, tokens, req.encoding_format)
        return JSONResponse(body, headers={"x-modelctl-model": setup.model_id,
                                           "x-modelctl-deployment": dep.id if dep else ""})

    # --- the rest -----------------------------------------------------------------------------------------

    async def models(self, request: Request, caller: Caller) -> Response:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self.executor, self.answerer.servable)
        return JSONResponse({"object": "list", "data": data})

    async def ps(self, request: Request, caller: Caller) -> Response:
        return JSONResponse({"models": self.answerer.pool.snapshot(), "engines": [e.describe() for e in self.engines]})

    async def stop(self, request: Request, caller: Caller) -> Response:
        name = _stop_name(await self.body(request))
        loop = asyncio.get_running_loop()
        stopped = await loop.run_in_executor(self.executor, lambda: self.answerer.stop(name))
        if not stopped:
            raise ApiError(404, f"{name!r} is not loaded", param="model", code="model_not_loaded")
        return JSONResponse({"stopped": stopped})

    async def metrics_text(self, request: Request, caller: Caller) -> Response:
        return PlainTextResponse(self.metrics.render(self.answerer.pool.gauges()),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    async def health(self, request: Request) -> Response:
        loaded = sum(1 for row in self.answerer.pool.snapshot() if row["loaded_s"] is not None)
        return JSONResponse({"status": "ok", "loaded": loaded})

    def app(self) -> Starlette:
        g = self.guarded
        routes = [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", g(self.models), methods=["GET"]),
            Route("/v1/chat/completions", g(self.chat_completions), methods=["POST"]),
            Route("/v1/completions", g(self.completions), methods=["POST"]),
            Route("/v1/embeddings", g(self.embeddings), methods=["POST"]),
            Route("/metrics", g(self.metrics_text), methods=["GET"]),
            Route("/api/ps", g(self.ps), methods=["GET"]),
            Route("/api/stop", g(self.stop), methods=["POST"]),
        ]
        routes += data_routes.routes(self)
        routes += page.routes()

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return error_response(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                           code="not_found" if exc.status_code == 404 else None))

        app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
        if self.cors:
            from starlette.middleware.cors import CORSMiddleware  # noqa: PLC0415 (only when CORS is asked for)

            app.add_middleware(CORSMiddleware, allow_origins=list(self.cors), allow_methods=["GET", "POST"],
                               allow_headers=["authorization", "content-type", "x-api-key"])
        return app

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.answerer.close()


def _conversation_header(value: str | None) -> int | None:
    """The conversation id an `x-modelctl-conversation` header gives (None: no header)."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit() and 0 < len(value) <= 18):
        raise ApiError(400, "the x-modelctl-conversation header: expected a conversation id (a whole number)",
                       param="x-modelctl-conversation")
    return int(value)


async def _until_disconnect(request: Request, stream: ThreadStream) -> None:
    """Stop `stream` when the client goes away before its (non-streamed) answer is complete."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            stream.stop()
            return


def _stop_name(body: bytes) -> str:
    """The model a `/api/stop` body names: `{"model": NAME}`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not JSON") from None
    name = data.get("model") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise ApiError(400, 'give the model to stop: {"model": NAME} ("*" for all)', param="model")
    return name
