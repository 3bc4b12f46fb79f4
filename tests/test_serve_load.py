"""`modelctl serve` under load, in real processes: sixteen clients streaming at once from two
local models (Gemma 3 270M and SmolLM2-135M-Instruct, one slot and one line each) and a loopback
"hosted" OpenAI service; a model whose line is full answers 429 at once."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import httpx
import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from serve_clients import (
    GEMMA_NAME,
    HANG_S,
    HOSTED,
    HOSTED_WORDS,
    Held,
    Streamed,
    history_db,
    hosted_home,
    post,
    ps,
    serve_warm,
    skip_module_without_packaged_models,
    stream,
)
from serve_process import ServeProcess

from modelctl.store.default_model import GEMMA, SMOLLM2

skip_module_without_packaged_models()
GREEDY = {"temperature": 0, "seed": 7, "max_tokens": 8, "stream_options": {"include_usage": True}}

Request = tuple[str, dict[str, Any]]


def chat(model: str, text: str, **fields: Any) -> Request:
    return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}],
                                    **GREEDY, **fields}


def completion(model: str, text: str) -> Request:
    return "/v1/completions", {"model": model, "prompt": text, **GREEDY}


# Sixteen clients: twelve local requests and four hosted ones. llama.cpp's logits for a prompt
# depend on how it is split between the KV cache and the batch evaluated, so the answers are
# compared where that split is the same: each model warmed by one request first, and no prompt
# sharing more with another than the template's start (no two begin with the same word).
WARM_UP = [chat(SMOLLM2.id, "Hi."), completion(GEMMA_NAME, "Hello")]
LOCAL = [
    *(chat(SMOLLM2.id, text) for text in ("Name a colour.", "Say hello.", "What is two plus two?",
                                          "Give me a fruit.", "Tell me a day of the week.", "Count to three.")),
    *(completion(GEMMA_NAME, text) for text in ("Once upon a time", "1, 2, 3,", "The quick brown fox",
                                                "My favourite food is", "Paris is the capital of", "In the beginning")),
]


@pytest.fixture(scope="module")
def upstream():
    server = FakeServer().start()
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(HOSTED_WORDS))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory, upstream) -> Path:
    return hosted_home(tmp_path_factory, "serve-load", upstream.url)


def serve(home: Path, *flags: str) -> ServeProcess:
    return serve_warm(home, *flags, key=FAKE_KEY)


def turns(home: Path) -> list[tuple[str, str | None]]:
    """(model, finish reason) of every turn in the home's history, oldest first."""
    path = history_db(home)
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute("SELECT model, finish_reason FROM turns ORDER BY id").fetchall()


def together(url: str, requests: list[Request], ask: Any = stream) -> list[Any]:
    """Each request from a client of its own, all let go at once; futures of what they read."""
    gate = threading.Barrier(len(requests), timeout=HANG_S)

    def one(request: Request) -> Streamed:
        path, body = request
        with httpx.Client(timeout=HANG_S) as client:
            gate.wait()
            return ask(client, url + path, body)

    pool = ThreadPoolExecutor(len(requests))
    futures = [pool.submit(one, request) for request in requests]
    pool.shutdown(wait=False)
    return futures


def test_sixteen_streams_at_once_all_complete_and_as_each_answers_alone(home, upstream):
    requests = LOCAL + [chat(HOSTED, f"Question {i}.") for i in range(4)]
    before, hosted_before = len(turns(home)), len(upstream.calls("/v1/chat/completions"))
    with serve(home) as server, httpx.Client(timeout=HANG_S) as client:
        assert all(stream(client, server.url + path, body).complete for path, body in WARM_UP)
        read = [future.result(HANG_S) for future in together(server.url, requests)]
        resident = ps(client, server.url, server.token)
        assert server.stop() == 0, server.stderr
    logged = turns(home)[before + len(WARM_UP):]
    with serve(home) as server, httpx.Client(timeout=HANG_S) as client:  # each request on its own
        alone = [stream(client, server.url + path, body) for path, body in WARM_UP + LOCAL][len(WARM_UP):]
        assert server.stop() == 0, server.stderr

    for (path, body), got in zip(requests, read):
        assert got.complete and got.usage, (path, body, got)
    assert [got.text for got in read[len(LOCAL):]] == ["".join(HOSTED_WORDS)] * 4
    assert len(upstream.calls("/v1/chat/completions")) - hosted_before == 4
    for (_, body), got, first in zip(LOCAL, read, alone):
        assert first.complete and first.text, first
        # Greedy: the same bytes, however many others were answered around it.
        assert (got.text, got.finish_reason, got.usage["completion_tokens"]) == \
               (first.text, first.finish_reason, first.usage["completion_tokens"]), (body, got.text, first.text)
    for model_id in (GEMMA.id, SMOLLM2.id):
        row = resident[model_id]
        assert (row["busy"], row["queue"], row["requests"]) == (False, 0, 7), row
    # None lost: each request logged once, whole.
    assert sorted(m for m, _ in logged) == sorted([GEMMA.id] * 6 + [SMOLLM2.id] * 6 + [HOSTED] * 4)
    assert {f for _, f in logged} <= {"stop", "length"}


def test_a_model_whose_line_is_full_answers_429_at_once_and_the_rest_complete(home):
    """`--queue 1`: while a generation holds the model, one request waits and the others are
    refused at once with an OpenAI error; once the holder goes away, the one waiting completes."""
    burst = [chat(GEMMA_NAME, f"Line {i}.", stream=i % 2 == 0) for i in range(6)]
    # Gemma, a base model, repeats itself greedily: this answer runs until its client drops it.
    path, body = chat(GEMMA_NAME, "hi", max_tokens=4000)
    before = len(turns(home))
    with serve(home, "--queue", "1") as server, httpx.Client(timeout=HANG_S) as client:
        holder = Held(server.url + path, body)
        futures = together(server.url, burst, ask=lambda c, url, b: (stream if b["stream"] else post)(c, url, b))
        done = []  # the line has room for one: the other five are answered while the model is busy
        for future in as_completed(futures, timeout=HANG_S):
            done.append(future)
            if len(done) == len(burst) - 1:
                break
        refused = [f.result() for f in done]
        dropped = holder.drop()
        waited = next(f for f in futures if f not in done).result(HANG_S)
        resident = ps(client, server.url, server.token)[GEMMA.id]
        assert server.stop() == 0, server.stderr

    for got in refused:
        assert got.status == 429 and not got.events, got
        error = got.body["error"]
        assert error["type"] == "rate_limit_error" and "busy" in error["message"], error
    assert waited.status == 200 and (waited.complete if waited.events else waited.body["choices"][0]["message"])
    assert not dropped.done and dropped.text
    assert (resident["busy"], resident["queue"]) == (False, 0)
    # The held generation was cut when its client went away, not run to its 4,000 tokens.
    assert (GEMMA.id, "interrupted") in turns(home)[before:]


# --- a request asked again ----------------------------------------------------------------------------


@pytest.mark.xfail(reason="backends/llamacpp.py keeps all of a prompt cached but its last token, and "
                          "llama.cpp's logits for that one-token batch differ from the whole prompt's "
                          "(for this prompt on this CPU); a tail of two or more gives the same logits")
def test_a_greedy_request_asked_again_answers_the_same_bytes(home):
    path, body = chat(SMOLLM2.id, "Name a colour.")
    with serve(home) as server, httpx.Client(timeout=HANG_S) as client:
        first, again = [stream(client, server.url + path, body) for _ in range(2)]
    assert first.complete and again.complete
    assert again.text == first.text
