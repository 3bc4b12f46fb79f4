"""Every secret modelctl can know of is one set, hidden wherever modelctl writes or prints.

Sources: keys given (`--api-key`), the keys file (every provider's), provider variables,
`AZURE_AI_TOKEN`, a registry's `key_env` variables (of any entry), Hugging Face token files,
config.toml, passwords and credential parameters written into addresses (registry, config,
`OLLAMA_HOST`, `HF_ENDPOINT`, …) whatever characters they hold. Sinks: stdout and stderr of
`show`, `registry export`, `config`, `alias`, chat (`--debug`, `--json`), the history database
(every column, the WAL too), its exports, and the typed-line history of the interactive chat.

Redaction remembers what it saw for the rest of a process, so every test makes its own secrets.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from providers import openai_wire
from providers.kits import FAKE_KEY, KIT, registry_for
from registries import model, write_registry

from modelctl.redaction import credential_name, redact, redact_data, strip_credentials, url_credentials


def new_secret(prefix: str = "Zq") -> str:
    """A key-like secret no other test uses: letters and digits, shorter than the 32 characters
    at which any run of them counts as key-shaped (so that only the set can hide it)."""
    return f"{prefix}{uuid.uuid4().hex[:14]}"


# --- URL credentials, whatever they hold -----------------------------------------------------------

# Characters a password may hold, raw or percent-encoded: the URL finder once stopped at some of
# them before the "@" and printed the rest.
SPECIALS = ["(", ")", "'", "<", ">", '"', "@", "#", "/", "?", "&", ";", ",", "[", "]", "{", "}", "`", "!", "$",
            "*", "+", "=", ":", "|", "\\", "^", "~", "%28", "%40", "%2F", "é", "密码", "🔑"]


def password_with(special: str) -> str:
    return f"pw{special}{uuid.uuid4().hex[:10]}{special}x"


def _hidden(shown: str, secret: str) -> bool:
    """`secret` (and every piece of it longer than 3 characters, split at its special characters)
    is absent from `shown`."""
    import re

    return secret not in shown and not any(len(p) > 3 and p in shown for p in re.split(r"[^A-Za-z0-9]+", secret))


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("context", ["{}", "at {} now", "({})", "'{}'", '"{}"', "<{}>", "[{}].", "url={}, next",
                                     '{{"api_base": "{}"}}'])
def test_a_password_in_an_address_is_hidden_in_any_text(special, context):
    password = password_with(special)
    url = f"http://bob:{password}@gpu-box.example:8000/v1"
    shown = redact(context.format(url))
    assert _hidden(shown, password), shown
    assert "gpu-box.example:8000/v1" in shown  # the rest stays readable


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("name", ["key", "api_key", "api-key", "apikey", "token", "access_token", "sig",
                                  "client_secret", "x-goog-api-key", "X-Amz-Signature", "password", "%6Bey"])
def test_a_credential_parameter_is_hidden_whatever_it_holds(special, name):
    value = password_with(special)
    for url in (f"https://h.example/v1?alt=sse&{name}={value}&model=m", f"https://h.example/v1#{name}={value}",
                f"see (https://h.example/v1?{name}={value})."):
        shown = redact(url)
        assert _hidden(shown, value), shown
        assert "h.example/v1" in shown or "@" in value  # a raw "@" reads as the end of a user info
        assert value not in strip_credentials(url.removeprefix("see (").removesuffix(")."))


@pytest.mark.parametrize("special", SPECIALS)
def test_the_credentials_of_an_address_are_found_as_written_and_decoded(special):
    password = password_with(special)
    assert password in url_credentials(f"http://bob:{password}@h:1/v1?key=k1")
    if special != "@":  # a raw "@" after the host reads as the end of a user info: all of it is hidden
        assert f"k{special}1" in url_credentials(f"http://h:1/v1?alt=sse&key=k{special}1")


@pytest.mark.parametrize("text", [
    "see http://h/" + "." * 200_000 + "x", "http://h/?" + "a=b&" * 50_000, "http://h/?k=" + "&" * 200_000,
    "://" * 100_000, "http://u:p@" * 50_000, "http://h/?key=" + "=&" * 100_000, "x" * 200_000 + "://",
    "(" * 100_000 + "http://u:p@h" + ")" * 100_000,
])
def test_long_hostile_text_is_redacted_in_one_pass(text):
    """Text a server or a registry wrote: redaction does not backtrack over it (these took
    minutes with a pattern that did)."""
    shown = redact(text)
    assert ":p@" not in shown and "key=&" not in shown


def test_the_rest_of_the_text_is_kept():
    assert redact("see https://example.com/docs, then ask me@example.org") == \
        "see https://example.com/docs, then ask me@example.org"
    assert redact("https://h/v1?model=x&stream=true") == "https://h/v1?model=x&stream=true"
    assert redact("a plain sentence with a password word") == "a plain sentence with a password word"


@pytest.mark.parametrize("name, is_credential", [
    ("api_key", True), ("x-api-key", True), ("Authorization", True), ("Proxy-Authorization", True),
    ("password", True), ("client_secret", True), ("HF_TOKEN", True), ("access_token", True), ("token", True),
    ("cookie", True), ("X-Amz-Credential", True), ("subscription-key", True), ("key", True),
    ("key_env", False), ("max_tokens", False), ("eos_token", False), ("bos_token", False), ("tokenizer", False),
    ("monkey", False), ("keywords", False), ("model", False), ("temperature", False), ("prompt_tokens", False),
])
def test_credential_names(name, is_credential):
    assert credential_name(name) is is_credential


def test_data_hides_values_under_credential_names_and_walks_the_rest():
    schema = {"type": "object", "properties": {"password": {"type": "string"}}}
    data = {"options": {"api_key": "abc", "Authorization": "Bearer x", "temperature": 0.2, "token": 7},
            "schema": schema, "stop": ["x"], "ok": True}
    shown = redact_data(data)
    assert shown["options"] == {"api_key": "***", "Authorization": "***", "temperature": 0.2, "token": "***"}
    assert shown["schema"] == schema  # a schema's property called password is not a password


# --- the set: every source ---------------------------------------------------------------------------


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    return home


def _source_keys_file(tmp_path, monkeypatch, secret):
    from modelctl.keys import store_key

    store_key("anthropic", secret)  # another provider's key than the one in use


def _source_custom_keys_file(tmp_path, monkeypatch, secret):
    from modelctl.keys import store_key

    store_key("TOGETHER_API_KEY", secret)


def _source_provider_variable(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("MISTRAL_API_KEY", secret)


def _source_azure_ai_token(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("AZURE_AI_TOKEN", secret)


def _source_named_like_a_key(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("ACME_SERVICE_TOKEN", secret)


def _user_registry_with(**deployment):
    """The user's registry holds an entry (not the one a chat uses) with `deployment`; loaded."""
    from modelctl.config import get_paths
    from modelctl.registry import load_registry

    path = get_paths().user_registry
    path.parent.mkdir(parents=True, exist_ok=True)
    write_registry(path, model("test/other-model", {"kind": "openai-compatible", "model": "m", **deployment},
                               tasks=["chat"], access={"free_tier": True, "local_capable": True}))
    load_registry()


def _source_key_env_of_a_registry(tmp_path, monkeypatch, secret):
    """A variable named like no key, read by a registry entry other than the one in use."""
    monkeypatch.setenv("ZZ_CRED_VAR", secret)
    _user_registry_with(api_base="http://127.0.0.1:1/v1", key_env="ZZ_CRED_VAR")


def _source_address_of_a_registry(tmp_path, monkeypatch, secret):
    _user_registry_with(api_base=f"http://bob:{secret}@127.0.0.1:1/v1")


def _source_hf_token_file(tmp_path, monkeypatch, secret):
    home = tmp_path / "hf"
    home.mkdir(exist_ok=True)
    (home / "token").write_text(secret + "\n")
    monkeypatch.setenv("HF_HOME", str(home))


def _source_hf_stored_tokens(tmp_path, monkeypatch, secret):
    home = tmp_path / "hf"
    home.mkdir(exist_ok=True)
    (home / "stored_tokens").write_text(f"[work]\nhf_token = {secret}\n")
    monkeypatch.setenv("HF_HOME", str(home))


def _source_hf_token_path_written_with_a_variable(tmp_path, monkeypatch, secret):
    login = tmp_path / "login"
    login.mkdir(exist_ok=True)
    (login / "token").write_text(secret + "\n")
    monkeypatch.setenv("LOGIN_DIR", str(login))
    monkeypatch.setenv("HF_TOKEN_PATH", "$LOGIN_DIR/token")  # expanded, as huggingface_hub does


def _source_hf_stored_tokens_beside_the_token_path(tmp_path, monkeypatch, secret):
    login = tmp_path / "login"
    login.mkdir(exist_ok=True)
    (login / "stored_tokens").write_text(f"[work]\nhf_token = {secret}\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(login / "token"))  # not written: only the stored tokens


def _source_ollama_host(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("OLLAMA_HOST", f"bob:{secret}@127.0.0.1:11434")  # no scheme


def _source_hf_endpoint(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("HF_ENDPOINT", f"https://hub.example/mirror?token={secret}")


def _source_azure_endpoint(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", f"https://bob:{secret}@res.example")


def _source_config_by_hand(tmp_path, monkeypatch, secret):
    from modelctl.config import _load_user_config, get_paths

    path = get_paths().config_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[aliases]\nfast = {{ model = "x", options = {{ api_key = "{secret}" }} }}\n')
    _load_user_config.cache_clear()


SOURCES = {name.removeprefix("_source_"): fn for name, fn in dict(globals()).items() if name.startswith("_source_")}


@pytest.fixture(params=list(SOURCES))
def known(request, tmp_path, monkeypatch, provider_env):
    """A secret from one source (set up), for a sink to prove it hides."""
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    secret = new_secret()
    SOURCES[request.param](tmp_path, monkeypatch, secret)
    return secret


def test_every_source_is_in_the_one_set(known):
    from modelctl.redaction import known_secrets, looks_like_secret

    assert redact(f"the key {known} leaked") == "the key *** leaked"
    assert any(known in s for s in known_secrets())
    assert looks_like_secret(f"remember {known}")


def test_a_thread_redacting_while_another_collects_gets_the_whole_set(monkeypatch):
    """Probes redact in threads of their own: a thread that redacts while another one collects
    the set (reading the keys file, config.toml, a registry's addresses) waits for the whole set
    instead of taking the part known so far, with which the key was printed."""
    import threading

    from modelctl.redaction import add_source

    key = new_secret()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    collecting, release = threading.Event(), threading.Event()

    def slow_source():
        if not collecting.is_set():  # the first collection only; later ones go straight on
            collecting.set()
            release.wait(10)
        return (), ()

    add_source("a registry that is slow to say", slow_source)
    shown: dict[str, str] = {}

    def run(name: str) -> None:
        shown[name] = redact(f"the key {key}")

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert collecting.wait(10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    second.join(0.5)  # a thread that does not wait for the set is done by now
    release.set()
    first.join(10)
    second.join(10)
    assert shown == {"first": "the key ***", "second": "the key ***"}


def test_short_and_ordinary_values_are_not_taken_for_keys(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "a")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("MY_KEY_ENV", "OPENAI_API_KEY")  # a variable's name, not a key
    monkeypatch.setenv("SSH_KEY_PATH", "/home/me/.ssh/id_ed25519")
    text = "a false OPENAI_API_KEY in /home/me/.ssh/id_ed25519"
    assert redact(text) == text


# --- sinks: registry and config listings ----------------------------------------------------------


@pytest.mark.parametrize("special", ["(", ")", "'", "<", ">", '"', "@", "#", "/", "%29", "密"])
def test_show_and_export_never_print_a_password_in_an_address(special, cli, tmp_path):
    password = password_with(special)
    deps = [{"id": "srv", "kind": "openai-compatible", "model": "m", "api_base": f"http://bob:{password}@127.0.0.1:9/v1",
             "notes": f"mirror: https://alice:{password}@mirror.example/v1 (backup)"},
            {"id": "srv2", "kind": "openai-compatible", "model": "m",
             "api_base": f"http://127.0.0.1:9/v1?api_key={password}&x=1"}]
    registry = str(write_registry(tmp_path / "r.toml", model("test/pw-model", *deps, tasks=["chat"],
                                                                access={"free_tier": True, "local_capable": True})))
    for args in (["show", "test/pw-model"], ["show", "test/pw-model", "--json"], ["registry", "export"],
                 ["list", "--json"], ["list"]):
        result = cli("--registry", registry, *args)
        if special in "#/":  # no parser reads such an address: refused, without a piece of it
            assert result.exit_code == 3 and "valid host and port" in result.output, result.output
        else:
            assert result.exit_code == 0, result.output
        assert _hidden(result.output, password), (args, result.output)


@pytest.mark.parametrize("special", ["(", "'", "<", ">", "@", "#", "/", "&"])
def test_config_listings_never_print_credentials_written_by_hand(special, cli, modelctl_home):
    password, key = password_with(special), new_secret()
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"[api_base]\nopenai = {json.dumps(f'http://bob:{password}@127.0.0.1:9/v1')}\n"
        f"[chat.options]\nAuthorization = \"Bearer {key}\"\n"
        f"[aliases]\nfast = {{ model = \"gemma-3-270m\", options = {{ api_key = \"{key}\", headers = {{ x-api-key = \"{key}\" }} }} }}\n")
    for args in (["config", "list"], ["config", "list", "--json"], ["config", "get", "api_base.openai"],
                 ["config", "get", "api_base"], ["config", "get", "api_base", "--json"],
                 ["config", "get", "chat.options.Authorization"], ["config", "get", "aliases.fast", "--json"],
                 ["config", "get", "aliases.fast.options.api_key"], ["alias", "list"], ["alias", "list", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
        assert _hidden(result.output, password) and key not in result.output, (args, result.output)
        assert "***" in result.output


# --- config.toml and alias options take no credential -------------------------------------------


CREDENTIAL_OPTIONS = [
    "api_key={key}", "key={key}", "token={key}", "password={key}", "secret={key}", "Authorization=Bearer {key}",
    "x-api-key={key}", "access_token={key}", "client_secret={key}", "note=Bearer {key}",
    "headers={{ Authorization = \"Bearer {key}\" }}", "headers={{ X-Custom = \"Basic {key}==\" }}",
    "extra_headers='{{\"X-Token-Thing\": \"Bearer {key}\"}}'", "base_url=http://bob:{key}@127.0.0.1:1/v1",
    "base_url=https://h.example/v1?api_key={key}", "note=sk-{key}{key}", "note=my key is {known}",
]


@pytest.mark.parametrize("option", CREDENTIAL_OPTIONS)
def test_alias_options_take_no_credential(option, cli, modelctl_home, provider_env):
    known = new_secret()
    provider_env.setenv("OPENAI_API_KEY", known)
    key = new_secret("Kq")
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# mine\n")
    result = cli("alias", "set", "fast", "gemma-3-270m", "-o", option.format(key=key, known=known))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("modelctl: error: ") and "keeps no credentials" in line
    assert key not in result.output and known not in result.output
    assert config.read_text() == "# mine\n"


@pytest.mark.parametrize("key, value", [
    ("chat.options.api_key", "{key}"), ("chat.options.token", "{key}"), ("models.gemma-3-270m.options.password", "{key}"),
    ("chat.options.headers", '{{ Authorization = "Bearer {key}" }}'), ("chat.options.note", "Bearer {key}"),
    ("api_base.openai", "https://h.example/v1?key={key}"), ("api_base.ollama", "http://bob:{key}(x)@127.0.0.1:1"),
    ("chat.system", "use sk-{key}{key}"),
])
def test_config_set_takes_no_credential(key, value, cli, modelctl_home):
    secret = new_secret("Kq")
    result = cli("config", "set", key, value.format(key=secret))
    assert result.exit_code == 2, result.output
    assert secret not in result.output
    assert not (modelctl_home / "config" / "config.toml").exists()


def test_ordinary_options_and_prose_are_still_taken(cli, modelctl_home):
    assert cli("alias", "set", "fast", "gemma-3-270m", "-o", "temperature=0.2", "-o",
               "system=Never reveal a password or a token.", "-o", "max_tokens=64").exit_code == 0
    assert cli("config", "set", "chat.system", "Basic principles first.").exit_code == 0
    listed = cli("alias", "list", "--json").stdout
    assert "Never reveal a password or a token." in listed


def test_a_credential_put_there_by_hand_does_not_block_other_changes(cli, modelctl_home):
    key = new_secret()
    config = modelctl_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[chat.options]\napi_key = "{key}"\n')
    assert cli("config", "set", "chat.temperature", "0.5").exit_code == 0
    assert key in config.read_text()  # left as it was; shown as *** (above)


# --- sinks: a chat, its history database and exports --------------------------------------------


def _chat_registry(tmp_path, server_url):
    dep = KIT["openai-compatible"].deployment(server_url)
    return registry_for(dep, tmp_path / "served.toml")


def _database_bytes(home: Path) -> bytes:
    data = home / "data"
    return b"".join(p.read_bytes() for p in sorted(data.glob("history.sqlite3*")))


def _every_cell(home: Path) -> str:
    """Every value of every column of every table of the history, through real SQLite."""
    conn = sqlite3.connect(home / "data" / "history.sqlite3")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(str(v) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"') for v in row)
    finally:
        conn.close()


def test_no_known_secret_reaches_the_history_or_any_output(known, server, cli, modelctl_home, tmp_path, provider_env):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(['{"a": 1}']))
    provider_env.setenv("VLLM_API_KEY", FAKE_KEY)
    registry = _chat_registry(tmp_path, server.url)
    schema = json.dumps({"type": "object", "description": f"not {known}"})
    result = cli("--registry", registry, "chat", "-m", "test/served-model", f"Is {known} a key?", "--system",
                 f"You know {known}.", "--stop", f"<{known}>", "--schema", schema, "--debug", "--json",
                 env={"MODELCTL_RETRIES": "0"})
    assert result.exit_code == 0, result.output
    assert known not in result.output
    assert "debug: request: POST" in result.output
    (request,) = server.calls("/v1/chat/completions")
    assert known in json.dumps(request.body)  # the service got what was asked
    assert known.encode() not in _database_bytes(modelctl_home)
    cells = _every_cell(modelctl_home)
    assert "***" in cells and known not in cells
    for args in (["history", "show", "1", "--json"], ["history", "export"], ["history", "export", "-f", "markdown"],
                 ["history", "list", "--json"], ["history", "search", "key"]):
        shown = cli(*args)
        assert shown.exit_code == 0, shown.output
        assert known not in shown.output


@pytest.mark.parametrize("name", ["{known}", "trip-{known}", "http://bob:{known}@h/x"])
def test_a_session_name_holding_a_secret_is_refused(name, server, cli, modelctl_home, tmp_path, provider_env):
    known = new_secret()
    provider_env.setenv("AZURE_AI_TOKEN", known)
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hello"]))
    registry = _chat_registry(tmp_path, server.url)
    result = cli("--registry", registry, "chat", "-m", "test/served-model", "hi", "--session", name.format(known=known),
                 env={"VLLM_API_KEY": FAKE_KEY})
    assert result.exit_code == 2, result.output
    assert known not in result.output
    assert "session name" in result.stderr and "credential" in result.stderr
    assert not (modelctl_home / "data" / "history.sqlite3").exists() or known.encode() not in _database_bytes(modelctl_home)


def test_a_key_given_on_the_command_line_in_a_real_process(server, run_modelctl, modelctl_home, tmp_path):
    key = new_secret()
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Hello"]))
    registry = _chat_registry(tmp_path, server.url)
    result = run_modelctl("--registry", registry, "chat", "-m", "test/served-model", f"echo {key}", "--api-key", key,
                          "--stop", key, "--debug")
    assert result.returncode == 0, result.stderr
    assert key not in result.stdout + result.stderr
    assert key.encode() not in _database_bytes(modelctl_home)
    (request,) = server.calls("/v1/chat/completions")
    assert request.header("authorization") == f"Bearer {key}"


# --- the typed-line history of the interactive chat ----------------------------------------------


def test_typed_lines_holding_a_known_secret_are_not_saved(server, modelctl_home, tmp_path, provider_env):
    """A real interactive chat in a terminal: lines holding a key modelctl knows (of any source)
    are neither kept in the history file nor recalled; other lines are."""
    pexpect = pytest.importorskip("pexpect")
    from modelctl.keys import store_key

    stored, token, custom, password = new_secret(), new_secret(), new_secret(), password_with("(")
    store_key("gemini", stored)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "token").write_text(new_secret("Hf"))
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Fine."]))
    registry = _chat_registry(tmp_path, server.url)
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), TERM="dumb", AZURE_AI_TOKEN=token, ZZ_OTHER_CRED=custom,
               VLLM_API_KEY=FAKE_KEY, HF_HOME=str(hf), NO_COLOR="1")
    (modelctl_home / "config").mkdir(parents=True, exist_ok=True)  # the user's registry: another entry's key_env
    write_registry(modelctl_home / "config" / "registry.toml", model(
        "test/other", {"kind": "openai-compatible", "model": "m", "api_base": "http://127.0.0.1:1/v1",
                       "key_env": "ZZ_OTHER_CRED"}, tasks=["chat"], access={"free_tier": True, "local_capable": True}))
    exe = Path(sys.executable).with_name("modelctl")
    lines = [f"the gemini key is {stored}", f"and {token}", f"also {custom}",
             f"http://bob:{password}@127.0.0.1:1/v1", f"the hub token is {(hf / 'token').read_text()}"]
    child = pexpect.spawn(str(exe), ["--registry", registry, "chat", "-m", "test/served-model", "--no-log"], env=env,
                          encoding="utf-8", timeout=60)
    try:
        child.expect_exact(">>> ")
        for line in [*lines, "a plain line to keep"]:
            child.sendline(line)
            child.expect_exact(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    saved = (modelctl_home / "data" / "chat_history").read_text()
    assert "a plain line to keep" in saved
    for secret in (stored, token, custom, password, (hf / "token").read_text()):
        assert _hidden(saved, secret), saved


def test_the_history_file_forgets_a_line_whose_key_became_known_later(modelctl_home, monkeypatch):
    """The store the interactive chat uses: a line typed before its key was known is dropped when
    the history is written."""
    readline = pytest.importorskip("readline")
    from modelctl.chat.repl import LineReader
    from modelctl.redaction import remember_secret

    key = new_secret()
    history = modelctl_home / "data" / "chat_history"
    readline.clear_history()
    reader = LineReader(history)
    inputs = iter([f"it is {key}", "keep me"])

    def typed(prompt: str = "") -> str:
        line = next(inputs)
        readline.add_history(line)  # what input() does at a terminal
        return line

    monkeypatch.setattr("builtins.input", typed)
    try:
        assert [reader.read(">>> ") for _ in range(2)] == [f"it is {key}", "keep me"]
        assert key in history.read_text()  # not known yet: saved as typed
        remember_secret(key)  # `/set api_key …` later in the chat
        reader.close()
    finally:
        readline.clear_history()
    assert history.read_text().splitlines() == ["keep me"]


def test_history_output_hides_a_key_an_older_version_logged(cli, modelctl_home, tmp_path, provider_env):
    """Turns written before modelctl knew a key: `history show`, `export` (stdout and a file) hide it."""
    from modelctl.history import History, Turn

    key = new_secret()
    with History() as history:
        history.add_turn(Turn(messages=[{"role": "user", "content": f"my key {key}"}], answer=f"noted {key}",
                              params={"stop": [key], "extra": {"api_key": "short"}}, error=f"failed with {key}"))
    provider_env.setenv("GEMINI_API_KEY", key)  # known now
    export = tmp_path / "out.jsonl"
    for args in (["history", "show", "1"], ["history", "show", "1", "--json"], ["history", "export"],
                 ["history", "export", "-f", "markdown"], ["history", "export", "--json"], ["history", "list", "--json"],
                 ["history", "search", "noted", "--json"], ["history", "export", "-o", str(export)]):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
        assert key not in result.output and '"short"' not in result.output, (args, result.output)
    assert key not in export.read_text() and "***" in export.read_text()
    json.loads(export.read_text().splitlines()[0])  # still JSON


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_sources_that_are_not_regular_files_are_not_read(kind, tmp_path, monkeypatch, modelctl_home):
    """Redaction reads its files on behalf of any command: a FIFO (which would block), a device
    (which never ends) or a directory in place of a token file, config.toml or the keys file is
    passed over, and redaction goes on."""
    hf = tmp_path / "hf"
    hf.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    (modelctl_home / "config").mkdir(parents=True, exist_ok=True)
    for path in (hf / "token", hf / "stored_tokens", modelctl_home / "config" / "config.toml",
                 modelctl_home / "config" / "keys.toml"):
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            path.symlink_to("/dev/zero")
        else:
            path.mkdir()
    key = new_secret()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    assert redact(f"a {key} b") == "a *** b"
