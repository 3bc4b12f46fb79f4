"""FallbackBackend's switching, with ScriptedBackends as the services: a retryable failure before
the first text moves on, an answer that has begun never does, the caller's own mistakes are raised
as they are, and a whole endpoint that fails is skipped for its other services. The errors are the
ones the HTTP layer makes from a status (`status_error`) or a cut stream (`interrupted`)."""

from __future__ import annotations

from typing import Callable

import pytest

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.scripted import Script, ScriptedBackend
from modelctl.chat.opening import Chat
from modelctl.chat.routing import FallbackBackend
from modelctl.errors import AuthError, BackendError, ModelctlError
from modelctl.refs import Name
from modelctl.resolver import Target
from modelctl.transport.http_client import ErrorContext, interrupted, status_error

HI = [{"role": "user", "content": "Hi"}]
EAST, WEST = "http://east.test:8000/v1", "http://west.test:8000/v1"


def status(code: int) -> ModelctlError:
    return status_error(ErrorContext("the server"), code, None, "failing")


def setup_of(backend: ScriptedBackend, params: GenerationParams | None = None) -> Chat:
    """The Chat FallbackBackend switches between (the one place that builds it)."""
    target = Target(Name(backend.model_id), backend.model_id, "endpoint", "a scripted service")
    return Chat(target, backend, params or GenerationParams())


def opener(backend: ScriptedBackend, params: GenerationParams | None = None) -> Callable[[], Chat]:
    return lambda: setup_of(backend, params)


def routed(first: ScriptedBackend, *others: ScriptedBackend) -> tuple[FallbackBackend, Chat, list[str]]:
    notes: list[str] = []
    setup = setup_of(first)
    fallback = FallbackBackend(setup, first.model_id, [(b.model_id, opener(b)) for b in others], notes.append)
    return fallback, setup.with_backend(fallback), notes


def answer(backend: FallbackBackend) -> str:
    return collect(backend.chat(HI, GenerationParams()))[0]


@pytest.mark.parametrize("failure", [status(429), status(503), status(408),
                                     interrupted("the server", 0, "connection reset")])
def test_a_retryable_failure_before_the_first_text_switches(failure):
    first = ScriptedBackend([failure], model_id="a", endpoint=EAST)
    second = ScriptedBackend(["from b"], model_id="b", endpoint=WEST)
    fallback, setup, notes = routed(first, second)
    assert answer(fallback) == "from b"
    assert second.requests[0].messages == tuple(HI) and first.closed
    assert fallback.current is second and fallback.describe()["service"] == "b"
    (switch,) = setup.route["fallbacks"]
    assert (switch["from"], switch["to"], switch["status"]) == ("a", "b", getattr(failure, "status", None))
    assert setup.route["service"] == "b" and setup.model_id == "b"
    assert notes == [f"a failed ({failure.message}); falling back to b"]


def test_a_failure_after_the_text_began_is_never_switched():
    first = ScriptedBackend([Script.fail(interrupted("the server", 5, "connection reset"), "Hello")], model_id="a")
    second = ScriptedBackend(["from b"], model_id="b")
    fallback, setup, notes = routed(first, second)
    chunks = fallback.chat(HI, GenerationParams())
    assert next(chunks).text == "Hello"
    with pytest.raises(BackendError, match="cut off after 5 characters"):
        next(chunks)
    assert second.requests == [] and notes == [] and setup.route["fallbacks"] == []
    assert first.streams_open == 0


@pytest.mark.parametrize("code, kind", [(401, AuthError), (400, BackendError)])
def test_the_callers_own_mistakes_are_raised_as_they_are(code, kind):
    first = ScriptedBackend([status(code)], model_id="a")
    second = ScriptedBackend(["from b"], model_id="b")
    fallback, setup, notes = routed(first, second)
    with pytest.raises(kind) as raised:
        answer(fallback)
    assert getattr(raised.value, "status", None) == code
    assert second.requests == [] and fallback.current is first and notes == []


def test_a_failing_endpoint_is_skipped_for_its_other_services():
    first = ScriptedBackend([status(429)], model_id="a", endpoint=EAST)
    same_place = ScriptedBackend(["never"], model_id="b", endpoint=EAST + "/other")
    elsewhere = ScriptedBackend(["from c"], model_id="c", endpoint=WEST)
    fallback, setup, notes = routed(first, same_place, elsewhere)
    assert answer(fallback) == "from c"
    assert same_place.requests == [] and same_place.closed
    assert setup.route["skipped"] == ["b"] and setup.route["service"] == "c"
    assert "http://east.test:8000 fails for every model" in notes[0] and notes[1].endswith("falling back to c")


def test_a_failure_of_one_model_does_not_skip_its_neighbours():
    """A stream cut before any text may be the request's own: the endpoint's other services stay."""
    first = ScriptedBackend([interrupted("the server", 0, "reset")], model_id="a", endpoint=EAST)
    neighbour = ScriptedBackend(["from b"], model_id="b", endpoint=EAST)
    fallback, setup, _ = routed(first, neighbour)
    assert answer(fallback) == "from b" and "skipped" not in setup.route


def test_when_every_service_fails_the_last_error_is_raised():
    first = ScriptedBackend([status(503)], model_id="a", endpoint=EAST)
    second = ScriptedBackend([status(502)], model_id="b", endpoint=WEST)
    fallback, setup, _ = routed(first, second)
    with pytest.raises(BackendError) as raised:
        answer(fallback)
    assert raised.value.status == 502
    assert [f["to"] for f in setup.route["fallbacks"]] == ["b"]


def test_a_service_that_cannot_be_opened_is_passed_over():
    first = ScriptedBackend([status(503)], model_id="a")
    last = ScriptedBackend(["from c"], model_id="c")
    notes: list[str] = []

    def broken() -> Chat:
        raise ModelctlError("no key for b")

    fallback = FallbackBackend(setup_of(first), "a", [("b", broken), ("c", opener(last))], notes.append)
    assert answer(fallback) == "from c"
    assert notes[0] == "b cannot be used (no key for b); skipping it"


def test_debug_follows_the_switch():
    first = ScriptedBackend([status(503)], model_id="a")
    second = ScriptedBackend(["from b"], model_id="b")
    fallback, _, _ = routed(first, second)
    fallback.set_debug(True)
    answer(fallback)
    assert first.debug and second.debug


def test_after_a_switch_the_next_chats_own_parameters_are_used_with_the_callers_changes():
    """The session passes the first chat's parameters; the new service gets its own model's,
    with whatever the caller changed (a `/set`) carried over."""
    from dataclasses import replace

    a_params = GenerationParams(temperature=0.1, max_tokens=100, stop=("A:",))
    b_params = GenerationParams(temperature=0.9, max_tokens=300, top_p=0.5, stop=("B:",))
    first = ScriptedBackend([status(503)], model_id="a")
    second = ScriptedBackend(["one", "two"], model_id="b")
    setup = setup_of(first, a_params)
    fallback = FallbackBackend(setup, "a", [("b", opener(second, b_params))], lambda _: None)
    chat = setup.with_backend(fallback)
    collect(fallback.chat(HI, a_params))
    assert first.requests[0].params == a_params and second.requests[0].params == b_params
    collect(fallback.chat(HI, replace(a_params, seed=7, temperature=0.4)))
    assert second.requests[1].params == replace(b_params, seed=7, temperature=0.4)
    assert chat.model_id == "b" and chat.current.params == b_params and setup.model_id == "a"
