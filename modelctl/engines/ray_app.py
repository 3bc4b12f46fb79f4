"""A Ray Serve application hosting replicas of a local GGUF (llama-cpp-python) behind
OpenAI-compatible routes, and the command line that launches it.

    ray_serve_command(model_id, gguf_path, port, replicas) -> list[str]
    python -m modelctl.engines.ray_app --model GGUF --model-id ID --port P --replicas N

The launched process starts a one-node Ray cluster of its own (`ray.init(address="local")`),
Serve's HTTP proxy on HOST:PORT, and one application of two deployments:

- `LlamaReplica` x N: each loads the GGUF once and answers one request at a time
  (`max_ongoing_requests=1`: llama.cpp's context is not shared between threads); Serve queues
  the rest and spreads them over the replicas, and replaces a replica that dies.
- `OpenAIRouter`, the ingress: `GET /v1/models`, `POST /v1/chat/completions` (streamed as
  server-sent events, or not), `GET /health` (200 once the application's routes are deployed;
  Serve's own `/-/healthz` answers 503 while Serve starts, then 200), `GET /metrics` (Prometheus
  text: the chat requests being answered and those waiting for a replica, from the router's
  own count; `METRICS` names the series; open without the key, as health is).

A request that fails before its answer begins, streamed or not, gets an HTTP status: 400 where
llama-cpp-python refuses it (a prompt over the context window), 503 where the replica failed
or died (a client's fallback may move on). One that fails mid-stream ends the stream with an
`error` event (OpenAI's error object) and no `[DONE]`. A stream whose client leaves is
cancelled; its generation stops at the next token. The process prints one line
`modelctl-ray-serve: ready http://HOST:PORT/v1` when it can be used and stops Serve and the
cluster on SIGTERM or SIGINT (exit 0). What keeps it from starting is one line on stderr,
`modelctl-ray-serve: error: ...`: exit 2 for bad arguments (no such file), 1 otherwise (the port
in use, checked before Ray starts; Ray not installed; Serve failing to start).

Ray is optional (`pip install 'modelctl[ray]'`): this module imports it only in the launched
process, so that `ray_serve_command` can be called where Ray is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator, Sequence, cast

from modelctl.engines.ports import listen_error

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

MODULE = "modelctl.engines.ray_app"
READY_LINE = "modelctl-ray-serve: ready"
HEALTH_PATH = "/health"
MAX_BODY = 4 * 1024 * 1024  # a chat request larger than this is refused (413)
# What a request may pass on to llama-cpp-python's create_chat_completion; the rest is ignored.
# The series of GET /metrics: requests a replica is answering, requests queued for one, replicas.
METRICS = ("modelctl_ray:requests_running", "modelctl_ray:requests_waiting", "modelctl_ray:replicas")
CHAT_PARAMETERS = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
                   "frequency_penalty", "response_format", "tools", "tool_choice")


def ray_serve_command(model_id: str, gguf_path: str | Path, port: int, replicas: int = 1, *,
                      host: str = "127.0.0.1", n_ctx: int | None = None, api_key_env: str | None = None,
                      num_cpus: int | None = None, temp_dir: str | Path | None = None,
                      python: str = sys.executable) -> list[str]:
    """The command line that serves `gguf_path` as `model_id` with `replicas` Ray Serve replicas
    on http://HOST:PORT/v1. `api_key_env` names the variable holding the key clients must send
    (the key itself never appears on a command line); `num_cpus` is the CPUs the Ray cluster
    offers (default: the machine's); `temp_dir` is Ray's session directory (default: Ray's)."""
    cmd = [python, "-m", MODULE, "--model", str(gguf_path), "--model-id", model_id,
           "--host", host, "--port", str(port), "--replicas", str(replicas)]
    for flag, value in (("--n-ctx", n_ctx), ("--api-key-env", api_key_env), ("--num-cpus", num_cpus),
                        ("--temp-dir", temp_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


# --- the replicas ---------------------------------------------------------------------------------


class LlamaReplica:
    """One copy of the model: chat completions, whole or chunk by chunk.

    One generation at a time (llama.cpp aborts the process when two threads decode in one
    context): each holds the lock in a thread of its own. A stream whose client has gone is
    cancelled by Serve, which takes the replica's next request at once; the cancelled
    generation stops at its next token and only then lets the next one start."""

    def __init__(self, gguf_path: str, model_id: str, n_ctx: int) -> None:
        self.model_id = model_id
        self.llm = _load_llama(gguf_path, n_ctx)
        self.lock = threading.Lock()

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:  # Serve runs this method in a thread of its pool
            answer = self.llm.create_chat_completion(**_chat_arguments(body), stream=False)
        return dict(answer, model=self.model_id)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def generate() -> None:
            with self.lock:
                try:
                    for chunk in self.llm.create_chat_completion(**_chat_arguments(body), stream=True):
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(chunks.put_nowait, dict(chunk, model=self.model_id))
                    loop.call_soon_threadsafe(chunks.put_nowait, None)
                except Exception as exc:  # noqa: BLE001 - handed to the stream, which raises it
                    loop.call_soon_threadsafe(chunks.put_nowait, exc)

        threading.Thread(target=generate, name="generate", daemon=True).start()
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # cancelled, or done: the thread ends at its next token


def _load_llama(gguf_path: str, n_ctx: int) -> Any:
    """llama-cpp-python's Llama for the file, on the buffer path modelctl chooses for this CPU
    (llama.cpp's AMX path crashes on some hosts: see backends/extra_buffers)."""
    import llama_cpp  # noqa: PLC0415 (in the replica's process only)

    from modelctl.backends import extra_buffers  # noqa: PLC0415 (in the replica's process only)
    from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: PLC0415 (in the replica's process only)

    choice = LlamaCppBackend(Path(gguf_path)).buffer_choice()
    with extra_buffers.model_params(llama_cpp, use_extra_bufts=choice.enabled):
        return llama_cpp.Llama(gguf_path, n_ctx=n_ctx, verbose=False)


def _chat_arguments(body: dict[str, Any]) -> dict[str, Any]:
    args = {name: body[name] for name in CHAT_PARAMETERS if body.get(name) is not None}
    return dict(args, messages=body["messages"])


# --- the OpenAI-compatible routes -----------------------------------------------------------------


class OpenAIRouter:
    """The application's HTTP face: checks the request, hands it to a replica, writes the answer."""

    def __init__(self, replicas: Any, model_id: str, api_key_env: str | None, replica_count: int) -> None:
        self.replicas = replicas  # a DeploymentHandle of LlamaReplica
        self.replica_count = replica_count
        self.in_flight = 0  # chat requests received and not yet answered (one router: an exact count)
        self.model_id = model_id
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.created = int(time.time())

    async def __call__(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, PlainTextResponse  # noqa: PLC0415 (Serve's process)

        route = (request.method, request.url.path.rstrip("/"))
        if route == ("GET", HEALTH_PATH):
            return PlainTextResponse("ok")
        if route == ("GET", "/metrics"):  # counts only, open without the key as vLLM's are
            return PlainTextResponse(self._metrics(), media_type="text/plain; version=0.0.4")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "a valid API key is required (Authorization: Bearer KEY)", "invalid_api_key")
        if route == ("GET", "/v1/models"):
            return JSONResponse({"object": "list", "data": [
                {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "modelctl"}]})
        if route == ("POST", "/v1/chat/completions"):
            return await self._chat(request)
        return _error(404, f"no route {request.method} {request.url.path}", "not_found")

    async def _chat(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, StreamingResponse  # noqa: PLC0415 (Serve's process)

        body, problem = await _read_chat_body(request)
        if problem is not None:
            return problem
        assert body is not None
        if body.get("model") not in (None, self.model_id):
            return _error(404, f"the model {body['model']!r} does not exist; this server serves {self.model_id!r}",
                          "model_not_found")
        if body.get("stream"):
            events = self._events(self.replicas.options(stream=True).chat_stream.remote(body))
            head = await anext(events)  # None once the answer has begun
            if head is not None and not isinstance(head, str):
                await events.aclose()
                return head
            # After its head the generator yields only the events' text.
            return StreamingResponse(cast("AsyncIterator[str]", events), media_type="text/event-stream")
        self.in_flight += 1
        try:
            answer = await self.replicas.chat.remote(body)
        except Exception as exc:  # noqa: BLE001 - the replica refused, failed or died: an error, not a hang
            return _error(*_failure(exc))
        finally:
            self.in_flight -= 1
        return JSONResponse(answer)

    async def _events(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[Response | str | None, None]:
        """First the error response of a request that fails before its answer begins, or None;
        then the answer's server-sent events, `[DONE]` at the end, or an error event where the
        replica fails mid-stream. The request counts as in flight until the stream ends, fails,
        or its client leaves (Serve cancels it)."""
        self.in_flight += 1
        try:
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = None
            except Exception as exc:  # noqa: BLE001 - before the answer: an HTTP status a client can act on
                yield _error(*_failure(exc))
                return
            yield None
            try:
                if first is not None:
                    yield f"data: {json.dumps(first)}\n\n"
                async for chunk in chunks:
                    yield f"data: {json.dumps(chunk)}\n\n"
            except Exception as exc:  # noqa: BLE001 - mid-stream: say so in the stream and end it
                code, message, kind = _failure(exc, " mid-stream")
                error = {"message": message, "type": kind, "code": code}
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            yield "data: [DONE]\n\n"
        finally:
            self.in_flight -= 1

    def _metrics(self) -> str:
        """Prometheus text of the load: each replica answers one request at a time, the rest wait."""
        running = min(self.in_flight, self.replica_count)
        label = '{model_name="%s"}' % self.model_id.replace("\\", "\\\\").replace('"', '\\"')
        values = (running, self.in_flight - running, self.replica_count)
        return "".join(f"# TYPE {name} gauge\n{name}{label} {value}\n" for name, value in zip(METRICS, values))


async def _read_chat_body(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return None, _error(413, f"the request is over {MAX_BODY} bytes", "request_too_large")
    try:
        body = json.loads(raw)
    except ValueError:
        return None, _error(400, "the request body is not JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return None, _error(400, "'messages' must be a non-empty list", "invalid_request_error")
    return body, None


def _failure(exc: BaseException, when: str = "") -> tuple[int, str, str]:
    """Status, message and type of a replica's failure: llama-cpp-python's ValueError is the
    request's fault (a prompt over the context window, a bad parameter); anything else, the
    replica's (it died, or failed)."""
    if isinstance(exc, ValueError):  # Ray's error for a task's exception is an instance of its type
        return 400, f"the request was refused{when}: {_reason(exc)}", "invalid_request_error"
    return 503, f"the replica failed{when}: {_reason(exc)}", "replica_failed"


def _reason(exc: BaseException) -> str:
    """`Type: first line` of what went wrong: for a task's exception that Ray wraps (its text
    starts with where the task ran), the exception the task raised."""
    cause = getattr(exc, "cause", None)
    exc = cause if isinstance(cause, BaseException) else exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def _error(status: int, message: str, kind: str) -> Response:
    from starlette.responses import JSONResponse  # noqa: PLC0415 (Serve's process)

    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


# --- the launched process -------------------------------------------------------------------------


def build_app(gguf_path: str, model_id: str, replicas: int, n_ctx: int, api_key_env: str | None) -> Any:
    """The Serve application: `replicas` LlamaReplicas behind one OpenAIRouter."""
    from ray import serve  # noqa: PLC0415 (Ray is optional)

    # num_cpus=0: the replicas and the router are placed whatever the cluster's CPU count (llama.cpp
    # uses its own threads); Serve's scheduler would otherwise refuse a second replica on 2 cores.
    llama = serve.deployment(name="LlamaReplica", num_replicas=replicas, max_ongoing_requests=1,
                             ray_actor_options={"num_cpus": 0})(LlamaReplica)
    router = serve.deployment(name="OpenAIRouter", ray_actor_options={"num_cpus": 0})(OpenAIRouter)
    return router.bind(llama.bind(gguf_path, model_id, n_ctx), model_id, api_key_env, replicas)


class _Refused(Exception):
    """Why the engine cannot start: one line on stderr, exit 2 (bad input) or 1 (what it met)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="Serve a GGUF with Ray Serve behind OpenAI-compatible routes.")
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--model-id", required=True, help="the name it is served under")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--api-key-env", help="the variable holding the key clients must send")
    parser.add_argument("--num-cpus", type=int, help="CPUs the Ray cluster offers (default: all)")
    parser.add_argument("--temp-dir", help="Ray's session directory")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        raise _Refused(f"no such file: {args.model}", 2)
    if not 1 <= args.replicas <= 64 or not 0 < args.port < 65536:
        raise _Refused("--replicas takes 1 to 64, --port 1 to 65535", 2)
    return args


def _check_port(host: str, port: int) -> None:
    """Refuse a port in use before starting a cluster (whose proxy would fail after seconds)."""
    exc = listen_error(host, port)
    if exc is not None:
        raise _Refused(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parse(argv)
        _check_port(args.host, args.port)
        return _serve(args)
    except _Refused as exc:
        print(f"modelctl-ray-serve: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _serve(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: PLC0415 (Ray is optional)
        from ray import serve  # noqa: PLC0415 (Ray is optional)
    except ImportError:
        raise _Refused("Ray Serve is not installed: pip install 'ray[serve]'", 1) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report sent from a local cluster
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
             _temp_dir=args.temp_dir or os.path.join(tempfile.gettempdir(), "ray"))
    for stop in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which sets its own
        signal.signal(stop, _stop)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_app(os.path.abspath(args.model), args.model_id, args.replicas, args.n_ctx,
                            args.api_key_env), route_prefix="/")
        print(f"{READY_LINE} http://{args.host}:{args.port}/v1", flush=True)
        while True:
            signal.pause()
    except _Stopped:
        pass
    except Exception as exc:  # noqa: BLE001 - Serve failed to start (its log above says more): one line, exit 1
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()  # Ray colours its tracebacks
        raise _Refused(f"Ray Serve did not start: {lines[-1][:300] if lines else type(exc).__name__}", 1) from None
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


class _Stopped(Exception):
    """SIGTERM or SIGINT: stop Serve and the cluster, whether starting or serving."""


def _stop(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time: the cleanup is not interrupted
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stopped


if __name__ == "__main__":
    sys.exit(main())
