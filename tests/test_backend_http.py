"""The shared HTTP layer on its own: server-sent events, Retry-After, the retry policy, the
shapes of error bodies, option values, and what a debug dump hides."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from modelctl.backends.api import coerce_option, pop_stream_flag
from modelctl.errors import UsageError
from modelctl.redaction import remember_secret
from modelctl.transport.debug_log import DebugLog, redact_headers
from modelctl.transport.http_client import ErrorContext, HttpClient
from modelctl.transport.retry import RetryPolicy, parse_retry_after
from modelctl.transport.server_text import provider_message
from modelctl.transport.sse import iter_sse
from modelctl.transport.urls import redact_url


def test_sse_events_follow_the_event_stream_rules():
    lines = [": a comment", "event: message_start", "data: {\"a\":", "data: 1}", "", "id: 7", "retry: 100",
             "data:no-space", "", "", "data: [DONE]"]
    events = list(iter_sse(iter(lines)))
    assert [(e.event, e.data) for e in events] == [
        ("message_start", '{"a":\n1}'), ("message", "no-space"), ("message", "[DONE]")]
    assert events[0].json() == {"a": 1}


def test_retry_after_in_seconds_milliseconds_and_dates():
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= parse_retry_after({"retry-after": format_datetime(later, usegmt=True)}) <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retry_policy_backoff_and_limits():
    p = RetryPolicy(retries=4, backoff=0.5, max_backoff=3.0, max_wait=60)
    assert [p.delay(i, None) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, None]
    assert p.delay(0, 7.0) == 7.0 and p.delay(0, 61.0) is None and p.delay(4, 1.0) is None


def test_retries_come_from_the_environment(monkeypatch):
    from modelctl.transport.retry import default_retry

    monkeypatch.setenv("MODELCTL_RETRIES", "0")
    assert default_retry().retries == 0
    monkeypatch.setenv("MODELCTL_RETRIES", "junk")
    assert default_retry().retries == 3


@pytest.mark.parametrize("body, text, message", [
    ({"error": {"message": "Incorrect model", "type": "invalid_request_error"}}, "", "Incorrect model"),
    ({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}, "", "model: x"),
    ({"error": {"code": 400, "message": "Bad", "status": "INVALID_ARGUMENT"}}, "", "Bad"),
    ({"object": "error", "message": "Unknown model", "type": "invalid_model"}, "", "Unknown model"),
    ({"error": "Model is overloaded", "error_type": "overloaded"}, "", "Model is overloaded"),
    ({"detail": [{"loc": ["body", "messages", 0], "msg": "field required"}]}, "", "messages.0: field required"),
    (None, "<html> upstream  gateway\n timeout </html>", "<html> upstream gateway timeout </html>"),
])
def test_provider_messages_in_every_documented_shape(body, text, message):
    assert provider_message(body, text) == message


def test_option_values_become_json_where_they_parse():
    assert coerce_option("0.5") == 0.5 and coerce_option("true") is True and coerce_option("null") is None
    assert coerce_option('{"type": "json_object"}') == {"type": "json_object"}
    assert coerce_option("alice") == "alice" and coerce_option(3) == 3
    assert pop_stream_flag({"stream": "false", "n": "1"}) == (False, {"n": 1})
    assert pop_stream_flag({}) == (True, {})


def test_credentials_are_hidden_in_urls_and_headers():
    remember_secret("sk-remembered-secret-1")
    assert redact_url("https://u:p@h.example/v1?key=AIza123&alt=sse") == "https://***@h.example/v1?key=***&alt=sse"
    assert redact_url("https://h.example/x?q=sk-remembered-secret-1") == "https://h.example/x?q=***"
    shown = redact_headers({"Authorization": "Bearer abc", "api-key": "abc", "x-goog-api-key": "abc",
                            "anthropic-version": "2023-06-01", "x-note": "sk-remembered-secret-1"})
    assert shown == {"Authorization": "Bearer ***", "api-key": "***", "x-goog-api-key": "***",
                     "anthropic-version": "2023-06-01", "x-note": "***"}


@pytest.mark.parametrize("url, secret", [
    ("https://bob:pw-unused-one@h.example/v1?api_key=qk-unused-1", ["pw-unused-one", "qk-unused-1"]),
    ("https://bob:p%40ss-word-2@h/v1", ["p%40ss-word-2", "p@ss-word-2"]),  # as written and decoded
    ("https://tok-as-user-3@h/v1?alt=sse&x-goog-api-key=qk-3&client_secret=cs-3", ["tok-as-user-3", "qk-3", "cs-3"]),
])
def test_credentials_written_into_a_url(url, secret):
    from modelctl.redaction import url_credentials

    assert url_credentials(url) == secret
    assert not any(s in redact_url(url) for s in secret)


def test_a_malformed_url_is_shown_without_its_credentials():
    assert redact_url("http://bob:pw@[::1/v1?key=k1&alt=sse") == "http://***@[::1/v1?key=***&alt=sse"
    assert redact_url("bob:pw@gpu box/v1") == "***@gpu box/v1"


def test_a_url_httpx_cannot_use_is_a_clear_error_naming_it():
    client = HttpClient(ErrorContext("the server"), retry=RetryPolicy(retries=0))
    for url in ("http://bob:pw-invalid-url@exa\x01mple/v1", "http://bob:pw-invalid-url@[::1/v1"):
        with pytest.raises(UsageError) as info:
            client.request_json("GET", url)
        assert "cannot send a request to 'http://***@" in str(info.value)
        assert "pw-invalid-url" not in str(info.value)


def test_debug_log_is_silent_unless_enabled_and_follows_modelctl_debug(monkeypatch):
    out = io.StringIO()
    DebugLog(False, out).line("x", "y")
    assert out.getvalue() == ""
    monkeypatch.setenv("MODELCTL_DEBUG", "1")
    log = DebugLog(None, out)
    log.request("POST", "http://h/x", {"authorization": "Bearer sk-remembered-secret-1"}, {"a": 1})
    text = out.getvalue()
    assert text.startswith("debug: request: POST http://h/x\n") and "sk-remembered" not in text
    assert "debug:     \"a\": 1" in text
