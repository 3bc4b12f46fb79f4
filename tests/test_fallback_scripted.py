"""FallbackBackend's switching, with ScriptedBackends as the services: a retryable failure before
the first text moves on, an answer that has begun never does, the caller's own mistakes are raised
as they are, and a whole endpoint that fails is skipped for its other services. The errors are the
ones the HTTP layer makes from a status (`status_error`) or a cut stream (`interrupted`)."""

from __future__ import annotations

from typing import Callable

import pytest

from modelctl.backends.base import GenerationParams, collect
from modelctl.backends.http import ErrorContext, interrupted, status_error
from modelctl.backends.scripted import Script, ScriptedBackend
from modelctl.chat.fallback import FallbackBackend
from modelctl.chat.resolve import ChatSetup
from modelctl.errors import AuthError, BackendError, ModelctlError

HI = [{"role": "user", "content": "Hi"}]
EAST, WEST = "http://east.test:8000/v1", "http://west.test:8000/v1"


def status(code: int) -> ModelctlError:
    return status_error(ErrorContext("the server"), code, None, "failing")


def setup_of(backend: ScriptedBackend) -> ChatSetup:
    """The ChatSetup FallbackBackend switches between (the one place that builds it)."""
    return ChatSetup(backend.model_id, backend, GenerationParams(), None)


def opener(backend: ScriptedBackend) -> Callable[[], ChatSetup]:
    return lambda: setup_of(backend)


def routed(first: ScriptedBackend, *others: ScriptedBackend) -> tuple[FallbackBackend, ChatSetup, list[str]]:
    notes: list[str] = []
    setup = setup_of(first)
    fallback = FallbackBackend(setup, first.model_id, [(b.model_id, opener(b)) for b in others], notes.append)
    return fallback, setup, notes


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

    def broken() -> ChatSetup:
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
