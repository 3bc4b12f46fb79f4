"""`modelctl serve`'s API keys and per-key budgets: the keys file and its refusals, the check of a
request's key, and budgets against a real history database."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from datetime import datetime, timezone

import pytest

from modelctl.errors import NotFoundError, UsageError
from modelctl.history import History, HistoryError, Turn
from modelctl.redaction import redact
from modelctl.serve.auth import ApiKey, KeyRejected, Keys, key_digest
from modelctl.serve.budgets import Budgets, OverBudget, day_of, month_of, usd

ALICE = "alice-0123456789-secret"
BOB = "bob-abcdefghijklmnop-secret"
CAROL = "carol-zyxwvutsrqponm-secret"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "keys.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


GOOD = f"""
[keys.alice]
key_sha256 = "{sha(ALICE)}"
budget_day = 1.00
budget_month = 20

[keys.bob]
key = "{BOB}"
"""


# --- loading --------------------------------------------------------------------------------


def test_flag_keys_and_a_keys_file_give_labelled_keys(tmp_path):
    keys = Keys.load([CAROL], keys_file(tmp_path, GOOD))
    assert keys and len(keys) == 3 and keys.labels == ["key-1", "alice", "bob"]
    assert keys.check(f"Bearer {ALICE}") == ApiKey("alice", budget_day=1.0, budget_month=20.0)
    assert keys.check(f"Bearer {BOB}") == ApiKey("bob")
    assert keys.check(f"Bearer {CAROL}") == ApiKey("key-1")
    assert Keys.load([CAROL, ALICE], None).labels == ["key-1", "key-2"]


def test_no_keys_let_every_request_pass():
    keys = Keys.load([], None)
    assert not keys and keys.check(None) is None and keys.check("Bearer anything") is None


@pytest.mark.parametrize("header", [f"Bearer {ALICE}", f"bearer {ALICE}", f"BEARER   {ALICE}  ", f"  Bearer {ALICE}"])
def test_the_bearer_scheme_is_read_in_any_case(tmp_path, header):
    assert Keys.load([ALICE], None).check(header) == ApiKey("key-1")


def test_an_x_api_key_header_is_taken_when_there_is_no_authorization():
    keys = Keys.load([ALICE, BOB], None)
    assert keys.check(None, ALICE) == ApiKey("key-1")
    assert keys.check("", BOB) == ApiKey("key-2")
    assert keys.check(f"Bearer {BOB}", ALICE) == ApiKey("key-2")  # Authorization wins
    with pytest.raises(KeyRejected):
        keys.check(f"Bearer {CAROL}", ALICE)


@pytest.mark.parametrize("authorization, x_api_key, said", [
    (None, None, "no API key"),
    ("", "  ", "no API key"),
    (f"Basic {ALICE}", None, "not 'Bearer KEY'"),
    ("Bearer", None, "not 'Bearer KEY'"),
    ("Bearer    ", None, "not 'Bearer KEY'"),
    (f"Bearer {CAROL}", None, "invalid API key"),
    (f"Bearer {ALICE}x", None, "invalid API key"),
    (f"Bearer {ALICE[:-1]}", None, "invalid API key"),
    ("Bearer \udcff\u00e9", None, "invalid API key"),
    (None, CAROL, "invalid API key"),
])
def test_a_missing_malformed_or_unknown_key_is_a_401(authorization, x_api_key, said):
    with pytest.raises(KeyRejected) as caught:
        Keys.load([ALICE], None).check(authorization, x_api_key)
    err = caught.value
    assert (err.status, err.code, err.type) == (401, "invalid_api_key", "invalid_request_error")
    assert said in str(err) and ALICE not in str(err) and CAROL not in str(err)


def test_every_key_is_compared_whichever_matches(monkeypatch):
    """The check takes the same steps for the first key, the last or none: it never stops at a
    match (the comparison itself is hmac.compare_digest, in constant time)."""
    calls = []
    real = hmac.compare_digest

    def counted(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counted)
    keys = Keys.load([ALICE, BOB, CAROL], None)
    for presented in (ALICE, CAROL, "nobody-0123456789-x"):
        calls.clear()
        try:
            keys.check(f"Bearer {presented}")
        except KeyRejected:
            pass
        assert len(calls) == 3


# --- refusals -------------------------------------------------------------------------------

REFUSED = [
    ("bad toml", f'[keys.alice]\nkey = "{ALICE}\n', "invalid TOML"),
    ("short key", '[keys.alice]\nkey = "short-key-15chr"\n', "keys.alice.key: the key is 15 characters; a key is at least 16"),
    ("key with a space", '[keys.alice]\nkey = "a key with spaces inside"\n', "keys.alice.key: a key is printable ASCII without spaces"),
    ("key not text", "[keys.alice]\nkey = 1234567890123456789\n", "keys.alice.key: expected the key as a string"),
    ("empty key", '[keys.alice]\nkey = ""\n', "keys.alice.key: the key is empty"),
    ("one key two labels", f'[keys.alice]\nkey = "{ALICE}"\n[keys.bob]\nkey_sha256 = "{sha(ALICE)}"\n',
     "[keys.alice] in {path} and [keys.bob] in {path} are the same key (give each label its own key)"),
    ("unknown field", f'[keys.alice]\nkey = "{ALICE}"\nbudget_week = 3\n',
     "keys.alice: unknown field 'budget_week'; expected key, key_sha256, budget_day, budget_month"),
    ("unknown top-level field", f'owner = "{ALICE}"\n[keys.alice]\nkey = "{ALICE}"\n', "unknown field 'owner'"),
    ("both key forms", f'[keys.alice]\nkey = "{ALICE}"\nkey_sha256 = "{sha(ALICE)}"\n', "keys.alice: give one of key_sha256 and key"),
    ("no key", "[keys.alice]\nbudget_day = 1\n", "keys.alice: give one of key_sha256 and key"),
    ("bad digest", f'[keys.alice]\nkey_sha256 = "{ALICE}"\n', "keys.alice.key_sha256: expected the 64 hexadecimal digits"),
    ("negative budget", f'[keys.alice]\nkey = "{ALICE}"\nbudget_day = -1\n', "keys.alice.budget_day: expected a finite number of USD, 0 or more"),
    ("infinite budget", f'[keys.alice]\nkey = "{ALICE}"\nbudget_month = inf\n', "keys.alice.budget_month: expected a finite"),
    ("nan budget", f'[keys.alice]\nkey = "{ALICE}"\nbudget_day = nan\n', "keys.alice.budget_day: expected a finite"),
    ("text budget", f'[keys.alice]\nkey = "{ALICE}"\nbudget_day = "{BOB}"\n', "keys.alice.budget_day: expected a finite"),
    ("boolean budget", f'[keys.alice]\nkey = "{ALICE}"\nbudget_day = true\n', "keys.alice.budget_day: expected a finite"),
    ("not a table", f'[keys]\nalice = "{ALICE}"\n', "keys.alice must be a table"),
    ("no keys", "", "no keys"),
    ("keys not a table", f'keys = "{ALICE}"\n', "no keys"),
    ("a label with spaces", f'[keys."alice smith"]\nkey = "{ALICE}"\n', "the label 'alice smith' is not a name"),
    ("a label with a newline", f'[keys."a\\nb"]\nkey = "{ALICE}"\n', "is not a name"),
    ("the CLI's label", f'[keys.local]\nkey = "{ALICE}"\n', "the label 'local' is the server's name for this user's own CLI"),
]


@pytest.mark.parametrize("text, said", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_bad_keys_file_is_one_usage_error_naming_file_and_field_never_a_key(tmp_path, text, said):
    path = keys_file(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        Keys.load([], path)
    message = str(caught.value)
    assert str(path) in message and said.format(path=path) in message
    for secret in (ALICE, BOB):
        assert secret not in message and secret not in repr(caught.value)
    assert "\n" not in message


def test_a_keys_file_others_can_read_is_refused_as_ssh_does(tmp_path):
    if os.name == "nt":
        pytest.skip("file modes are not POSIX here")
    path = keys_file(tmp_path, GOOD, mode=0o644)
    with pytest.raises(UsageError) as caught:
        Keys.load([], path)
    assert str(caught.value) == (f"keys file {str(path)!r} is open to other users (mode 0644) "
                                 f"(run: chmod 600 {path})")
    path.chmod(0o620)
    with pytest.raises(UsageError, match="mode 0620"):
        Keys.load([], path)
    path.chmod(0o400)
    assert Keys.load([], path).labels == ["alice", "bob"]


def test_a_keys_file_that_is_absent_or_not_a_file(tmp_path):
    with pytest.raises(NotFoundError, match="no such file"):
        Keys.load([], tmp_path / "absent.toml")
    with pytest.raises(UsageError, match="is a directory, not a regular file"):
        Keys.load([], tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(UsageError, match=r"FIFO \(named pipe\), not a regular file"):
        Keys.load([], fifo)


@pytest.mark.parametrize("flags, said", [
    (["short"], "--api-key key-1: the key is 5 characters; a key is at least 16"),
    ([ALICE, ""], "--api-key key-2: the key is empty"),
    ([ALICE, f" {BOB}"], "--api-key key-2: a key is printable ASCII without spaces"),
    ([ALICE, BOB, ALICE], "--api-key key-1 and --api-key key-3 are the same key"),
])
def test_bad_flag_keys_are_refused_without_showing_them(flags, said):
    with pytest.raises(UsageError) as caught:
        Keys.load(flags, None)
    assert said in str(caught.value) and ALICE not in str(caught.value) and BOB not in str(caught.value)


def test_a_flag_key_that_is_also_in_the_file_or_a_label_given_twice(tmp_path):
    with pytest.raises(UsageError, match=r"--api-key key-1 and \[keys.bob\] in .* are the same key"):
        Keys.load([BOB], keys_file(tmp_path, GOOD))
    taken = keys_file(tmp_path, f'[keys.key-1]\nkey = "{BOB}"\n')
    with pytest.raises(UsageError, match=r"the label 'key-1' is given twice \(--api-key key-1, \[keys.key-1\] in .*\)"):
        Keys.load([ALICE], taken)


def test_no_key_shows_in_reprs_and_plain_keys_are_redacted_everywhere(tmp_path):
    keys = Keys.load([CAROL], keys_file(tmp_path, GOOD))
    shown = repr(keys) + repr(keys.check(f"Bearer {BOB}")) + repr(keys.__dict__)
    assert shown.startswith("Keys(labels=['key-1', 'alice', 'bob'])")
    for secret in (ALICE, BOB, CAROL):
        assert secret not in shown and sha(secret) not in shown
    # Keys given in plain (a flag, `key =`) are hidden by the redaction every log and output uses.
    assert redact(f"sent {BOB} and {CAROL}") == "sent *** and ***"
    assert key_digest(BOB) == hashlib.sha256(BOB.encode()).digest()


# --- budgets --------------------------------------------------------------------------------

# 2026-03-15 12:00 UTC: a day and a month with room on both sides.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0


@pytest.fixture
def history(tmp_path):
    path = tmp_path / "history.sqlite3"
    with History(path) as h:
        yield h


def spend(history: History, label: str | None, cost: float | None, at: float) -> None:
    """A logged request with `label` that cost `cost`, dated `at` (turns are dated when written)."""
    _, turn_id = history.add_turn(Turn(messages=[{"role": "user", "content": "q"}], answer="a",
                                       cost=cost, key_label=label))
    history.conn.execute("UPDATE turns SET created = ? WHERE id = ?", (at, turn_id))


def budgets(history: History, now: float = NOW) -> Budgets:
    return Budgets(history.path, clock=lambda: now)


ALICE_KEY = ApiKey("alice", budget_day=1.00, budget_month=20.00)


def test_a_request_over_the_daily_budget_is_a_429_naming_cap_and_period(history):
    spend(history, "alice", 0.5, NOW - HOUR)
    spend(history, "alice", 0.48, NOW - 11 * HOUR)
    spend(history, "alice", 5.0, NOW - 13 * HOUR)  # yesterday: only the month counts it
    spend(history, "bob", 9.0, NOW)  # another key
    spend(history, None, 9.0, NOW)  # the CLI's own
    check = budgets(history)
    check.check(ALICE_KEY, 0.02)  # $0.98 + $0.02 is the cap, not over it
    with pytest.raises(OverBudget) as caught:
        check.check(ALICE_KEY, 0.05)
    err = caught.value
    assert (err.status, err.code, err.type) == (429, "budget_exceeded", "insufficient_quota")
    assert str(err) == ("key 'alice' has spent $0.98 of its $1.00 daily budget, and this request may cost up to "
                        "$0.05; the budget starts again at 2026-03-16 00:00 UTC")
    assert err.retry_after == 12 * 3600


def test_the_monthly_budget_counts_the_month_only(history):
    key = ApiKey("alice", budget_month=10.0)
    spend(history, "alice", 100.0, datetime(2026, 2, 28, 23, 59, tzinfo=timezone.utc).timestamp())
    spend(history, "alice", 9.5, datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc).timestamp())
    check = budgets(history)
    check.check(key, 0.5)
    with pytest.raises(OverBudget, match=r"has spent \$9.50 of its \$10.00 monthly budget, and this request "
                                         r"may cost up to \$0.51; the budget starts again at 2026-04-01 00:00 UTC"):
        check.check(key, 0.51)
    # Both over: the month is named, since the next day would not help.
    with pytest.raises(OverBudget, match="monthly") as caught:
        check.check(ApiKey("alice", budget_day=1.0, budget_month=10.0), 2.0)
    assert caught.value.retry_after == int(datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp() - NOW)


def test_a_used_up_budget_refuses_a_request_of_unknown_cost_but_not_a_free_one(history):
    spend(history, "alice", 1.0, NOW)
    check = budgets(history)
    for unknown in (None, float("nan"), float("inf"), -1.0):
        with pytest.raises(OverBudget, match=r"has spent \$1.00 of its \$1.00 daily budget; the budget starts"):
            check.check(ALICE_KEY, unknown)
    check.check(ALICE_KEY, 0.0)  # a free model: a budget is of money
    check.check(ApiKey("alice", budget_day=0.5), 0.0)  # even once over it
    check.check(ApiKey("carol", budget_day=0.0), 0.0)
    with pytest.raises(OverBudget, match=r"has spent \$0.00 of its \$0.00 daily budget"):
        check.check(ApiKey("carol", budget_day=0.0), None)
    # Under the cap, a request of unknown cost passes: what it costs is counted once it is logged.
    check.check(ApiKey("alice", budget_day=1.5), None)


def test_no_key_or_a_key_without_budgets_never_reads_the_history(tmp_path):
    check = Budgets(tmp_path)  # a directory: reading it as the history would fail
    check.check(None, 100.0)
    check.check(ApiKey("key-1"), 100.0)
    with check.hold(ApiKey("key-1"), 100.0):
        pass


def test_requests_under_way_count_until_their_turns_are_logged(history):
    check = budgets(history)
    spend(history, "alice", 0.25, NOW)
    with check.hold(ALICE_KEY, 0.5):
        with pytest.raises(OverBudget, match=r"has spent \$0.75 of its \$1.00 daily budget, and this request may "
                                             r"cost up to \$0.30"):
            check.check(ALICE_KEY, 0.3)
        check.check(ApiKey("bob", budget_day=1.0), 0.3)  # another key is not held
        spend(history, "alice", 0.4, NOW)  # its turn logged, at what it cost
    check.check(ALICE_KEY, 0.3)  # $0.65 + $0.30
    with pytest.raises(RuntimeError):
        with check.hold(ALICE_KEY, 0.3):
            raise RuntimeError("the request failed")
    check.check(ALICE_KEY, 0.35)  # the failed request's hold is gone too


def test_the_spend_is_read_afresh_each_time(history):
    check = budgets(history)
    check.check(ALICE_KEY, 0.5)
    spend(history, "alice", 0.75, NOW)  # logged by another request meanwhile
    with pytest.raises(OverBudget):
        check.check(ALICE_KEY, 0.5)


def test_periods_and_amounts():
    day = day_of(NOW)
    assert (day.start, day.end) == (NOW - 12 * HOUR, NOW + 12 * HOUR)
    december = month_of(datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
    assert datetime.fromtimestamp(december.start, timezone.utc) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert datetime.fromtimestamp(december.end, timezone.utc) == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert [usd(v) for v in (0, 0.98, 1, 1234.5, 0.005, 0.00042, 1e-9)] == [
        "$0.00", "$0.98", "$1.00", "$1,234.50", "$0.005", "$0.00042", "under $0.000001"]


def test_a_history_that_cannot_be_read_is_a_history_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(HistoryError, match="not a SQLite database"):
        Budgets(path, clock=time.time).check(ALICE_KEY, 0.1)
