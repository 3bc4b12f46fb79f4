"""Using a model its provider is shutting down, end to end: a deprecated model warns once on
stderr (naming where its replacements lead), a retired one is refused (exit 2) unless
--allow-retired, for every command that opens a model through a service; `tokens` and `show`
still work on it, `-m auto` never picks it, `search` ranks it after models in service, and a
replacement chain that loops or ends in a retired model is an invalid registry.

The services are loopback servers; the lifecycle dates are computed from today, so the tests
mean the same whatever day they run."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest
from providers import openai_wire, task_wire
from providers.kits import FAKE_KEY
from registries import model, write_registry

TODAY = datetime.date.today()


def day(offset: int) -> str:
    return (TODAY + datetime.timedelta(days=offset)).isoformat()


RETIRED_ON = day(-30)
RETIRES_ON = day(90)
PAID = {"free_tier": False, "local_capable": False}
ON_LOOPBACK = {"free_tier": False, "local_capable": True}  # a loopback OpenAI-compatible server runs here


def family(name: str, deployment: dict, tasks: list[str]) -> list[dict]:
    """t/NAME-old (retired), t/NAME-mid (deprecated, retiring), t/NAME-new (in service): old
    points to mid, mid to new."""
    access = {**PAID, "local_capable": deployment["kind"] == "openai-compatible"}  # a loopback server is local
    common = {"tasks": tasks, "access": access, "license": {"name": "Proprietary", "open_weights": False}}
    return [
        model(f"t/{name}-old", deployment, deprecated=day(-400), retires=RETIRED_ON, replacement=f"t/{name}-mid", **common),
        model(f"t/{name}-mid", deployment, deprecated=day(-10), retires=RETIRES_ON, replacement=f"t/{name}-new", **common),
        model(f"t/{name}-new", deployment, **common),
    ]


# command -> (deployment kind and task, the route it answers on, its reply, the arguments after -m MODEL)
COMMANDS = {
    "chat": ("openai-compatible", "chat", "/v1/chat/completions", lambda: openai_wire.chat_stream(["fine"]), ["--json", "Hi"]),
    "complete": ("openai-compatible", "completion", "/v1/completions", lambda: openai_wire.text_completion(" fine"),
                 ["--json", "Once upon"]),
    "embed": ("openai-compatible", "embedding", "/v1/embeddings", lambda: openai_wire.embeddings([[0.5, 0.5]]),
              ["--json", "text"]),
    "image": ("openai", "text-to-image", "/v1/images/generations", lambda: task_wire.images(task_wire.png()),
              ["--json", "a red square"]),
    "speak": ("openai", "text-to-speech", "/v1/audio/speech", lambda: task_wire.speech(), ["--json", "Hello"]),
    "transcribe": ("openai", "speech-to-text", "/v1/audio/transcriptions", lambda: task_wire.transcription(),
                   ["--json", "AUDIO"]),
    "classify": ("openai", "moderation", "/v1/moderations", lambda: task_wire.moderation(), ["--json", "some text"]),
    "fill-mask": ("hf-inference", "fill-mask", "/hf", lambda: task_wire.hf_fill_mask(), ["--json", "Paris is [MASK]."]),
}


def deployment_for(command: str, url: str) -> dict:
    kind, task = COMMANDS[command][:2]
    if kind == "hf-inference":
        return {"kind": kind, "model": "bert", "api_base": f"{url}/hf", "task": task}
    return {"kind": kind, "model": "m", "api_base": f"{url}/v1"}


@pytest.fixture
def registry(server, tmp_path):
    entries = [m for command, spec in COMMANDS.items()
               for m in family(command, deployment_for(command, server.url), [spec[1]])]
    return str(write_registry(tmp_path / "lifecycle.toml", *entries))


@pytest.fixture
def run(cli, registry, server, tmp_path, provider_env):
    provider_env.setenv("OPENAI_API_KEY", FAKE_KEY)
    provider_env.setenv("HF_TOKEN", FAKE_KEY)
    work = tmp_path / "work"
    work.mkdir()
    provider_env.chdir(work)
    audio = work / "hello.wav"
    audio.write_bytes(task_wire.wav())

    def invoke(command: str, stage: str, *extra: str):
        kind, task, path, reply, args = COMMANDS[command]
        server.route("POST", path, reply())
        args = [str(audio) if a == "AUDIO" else a for a in args]
        return cli("--registry", registry, command, "-m", f"t/{command}-{stage}", *extra, *args)

    return invoke


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("modelctl: warning:")]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_deprecated_model_warns_once_on_stderr_with_its_replacement(run, command):
    result = run(command, "mid")
    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == [
        f"modelctl: warning: t/{command}-mid is deprecated (retires {RETIRES_ON}); use t/{command}-new instead"]
    assert "is deprecated" not in result.stdout and "warning" not in result.stdout
    json.loads(result.stdout)  # --json stdout is the record alone


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_retired_model_is_refused_with_its_replacement(run, server, command):
    result = run(command, "old")
    assert result.exit_code == 2, result.output
    # The replacement named is where the chain leads: old -> mid (deprecated) -> new.
    assert result.stderr == (f"modelctl: error: t/{command}-old was retired on {RETIRED_ON}; use t/{command}-new "
                             "instead (--allow-retired uses it anyway)\n")
    assert result.stdout == "" and server.requests == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_allow_retired_uses_it_with_a_warning(run, server, command):
    result = run(command, "old", "--allow-retired")
    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == [f"modelctl: warning: t/{command}-old was retired on {RETIRED_ON} "
                                       f"(used because of --allow-retired); use t/{command}-new instead"]
    assert len(server.requests) == 1


@pytest.mark.parametrize("command", ["chat", "embed", "image", "fill-mask"])
def test_a_model_in_service_says_nothing(run, command):
    result = run(command, "new")
    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == []
    assert run(command, "new", "--allow-retired").exit_code == 0  # the flag changes nothing for it


def test_the_warning_is_given_once_when_a_fallback_opens_the_model_again(cli, tmp_path, server, second_server,
                                                                         provider_env):
    provider_env.setenv("MODELCTL_RETRIES", "0")
    server.route("POST", "/v1/chat/completions", openai_wire.error(503, "busy"))
    second_server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["from backup"]))
    deps = [{"id": name, "kind": "openai-compatible", "model": "m", "api_base": f"{url}/v1"}
            for name, url in (("primary", server.url), ("backup", second_server.url))]
    path = write_registry(tmp_path / "two.toml",
                          model("t/fading", *deps, tasks=["chat"], deprecated=day(-5), access=ON_LOOPBACK),
                          model("t/other", deps[0], tasks=["chat"], access=ON_LOOPBACK))
    result = cli("--registry", str(path), "chat", "-m", "t/fading", "-d", "primary", "--fallback", "--json", "Hi")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "from backup"
    # No retirement date, no replacement: the deprecation date is what there is to say.
    assert warnings(result.stderr) == [f"modelctl: warning: t/fading is deprecated (since {day(-5)})"]


def test_a_real_process_warns_on_stderr_only(run_modelctl, registry, server):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["fine"]))
    proc = run_modelctl("--registry", registry, "chat", "-m", "t/chat-mid", "--json", "Hi")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["text"] == "fine"
    assert proc.stderr.count("is deprecated") == 1
    refused = run_modelctl("--registry", registry, "chat", "-m", "t/chat-old", "Hi")
    assert refused.returncode == 2 and refused.stderr.startswith("modelctl: error: t/chat-old was retired on")
    assert "Traceback" not in refused.stderr


def test_the_interactive_chat_warns_once_before_its_first_prompt(registry, server, modelctl_home):
    import os
    import re
    from pathlib import Path

    import pexpect

    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["fine"]))
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), TERM="xterm-256color", COLUMNS="100", LINES="30")
    child = pexpect.spawn(str(Path(sys.executable).with_name("modelctl")),
                          ["--registry", registry, "chat", "-m", "t/chat-mid"], env=env, encoding="utf-8",
                          timeout=60, dimensions=(30, 100))
    try:
        child.expect_exact(">>> ")
        before = child.before
        for question in ("Hi", "Hi again"):
            child.sendline(question)
            child.expect_exact(">>> ")
            before += child.before
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", before)
    assert shown.count("is deprecated") == 1 and "use t/chat-new instead" in shown
    assert shown.count("fine") == 2 and len(server.calls("/v1/chat/completions")) == 2


def test_an_adhoc_server_model_has_no_lifecycle(cli, server):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["fine"]))
    for name in ("served-model", "o4-mini"):  # a name the registry does not know; one it knows as retired
        result = cli("chat", "--api-base", f"{server.url}/v1", "-m", name, "--json", "Hi")
        assert result.exit_code == 0, result.stderr
        assert warnings(result.stderr) == [] and json.loads(result.stdout)["text"] == "fine"


def test_tokens_and_show_still_work_on_a_retired_model(cli, registry):
    counted = cli("--registry", registry, "tokens", "-m", "t/chat-old", "--json", "Hello there")
    assert counted.exit_code == 0, counted.stderr
    assert json.loads(counted.stdout)["tokens"] > 0 and "retired" not in counted.stderr
    shown = cli("--registry", registry, "show", "t/chat-old", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["retired"] is True


# --- -m auto ------------------------------------------------------------------------------------


HUGE = 100_000_000  # tokens of context: more than any built-in model has


def test_auto_never_picks_a_retired_or_deprecated_model(cli, tmp_path, server):
    dep = {"kind": "openai-compatible", "model": "m", "api_base": f"{server.url}/v1"}

    def priced(cost: float) -> dict:
        return {**ON_LOOPBACK, "cost_input": cost, "cost_output": cost, "prices_as_of": day(-1)}

    def chat(model_id: str, cost: float, **lifecycle: str) -> dict:
        return model(model_id, dep, tasks=["chat"], access=priced(cost), context_window=HUGE, **lifecycle)

    path = write_registry(
        tmp_path / "auto.toml",
        # The cheapest three are retired (a deprecated one, and one whose declared status is not
        # "deprecated" but whose retirement date has passed) or deprecated.
        chat("t/cheap-retired", 0.01, retires=day(-3)),
        chat("t/cheap-legacy-retired", 0.01, status="legacy", retires=day(-1)),
        chat("t/cheap-deprecated", 0.02, deprecated=day(-1)),
        chat("t/dear", 5.0),
    )
    # --min-context leaves the built-in models out (the free local ones would win).
    result = cli("--registry", str(path), "chat", "-m", "auto", "--min-context", str(HUGE), "--dry-run", "--json", "Hi")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "t/dear"
    assert warnings(result.stderr) == []


# --- search -------------------------------------------------------------------------------------


def test_search_ranks_models_in_service_first_keeping_relevance_within_each_group(cli, tmp_path):
    dep = {"kind": "openai", "model": "m"}
    path = write_registry(
        tmp_path / "search.toml",
        model("widget", dep, tasks=["chat"], access=PAID, retires=day(-2)),  # exact id: the best match
        model("widget-pro", dep, tasks=["chat"], access=PAID, deprecated=day(-2)),
        model("acme/widget", dep, tasks=["chat"], access=PAID),
        model("gadget", dep, tasks=["chat"], access=PAID, description="a widget of sorts", status="preview"),
        model("old-gadget", dep, tasks=["chat"], access=PAID, description="a widget", status="legacy"),
    )
    hits = json.loads(cli("--registry", str(path), "search", "widget", "--json").stdout)
    ids = [h["id"] for h in hits]
    assert ids == ["acme/widget", "gadget", "old-gadget", "widget", "widget-pro"]
    # The whole-registry listing keeps its order.
    listed = json.loads(cli("--registry", str(path), "list", "--all", "-p", "test", "--json").stdout)
    assert [m["id"] for m in listed] == ["widget", "widget-pro", "acme/widget", "gadget", "old-gadget"]


def test_search_of_the_shipped_registry_puts_retired_claude_models_last(cli):
    hits = json.loads(cli("search", "claude", "--json").stdout)
    fading = [h["status"] == "deprecated" or h["retired"] for h in hits]
    assert fading == sorted(fading) and not fading[0] and fading[-1]


# --- replacement chains -------------------------------------------------------------------------


def chain_registry(tmp_path, *links: tuple[str, str | None, dict]) -> str:
    dep = {"kind": "openai", "model": "m"}
    entries = [model(mid, dep, tasks=["chat"], access=PAID, **({"replacement": to} if to else {}), **extra)
               for mid, to, extra in links]
    return str(write_registry(tmp_path / "chains.toml", *entries))


RETIRED = {"deprecated": day(-100), "retires": day(-1)}
DEPRECATED = {"deprecated": day(-100), "retires": day(100)}
STILL = " (point it at a model still served)"


@pytest.mark.parametrize("links, model_id, message", [
    ([("t/a", "t/b", RETIRED), ("t/b", "t/a", RETIRED)], "t/a", "the chain t/a → t/b → t/a loops"),
    ([("t/a", "t/b", RETIRED), ("t/b", "t/c", DEPRECATED), ("t/c", "t/b", DEPRECATED)], "t/a",
     "the chain t/a → t/b → t/c → t/b loops"),
    ([("t/a", "t/b", RETIRED), ("t/b", None, RETIRED)], "t/a",
     f"the chain t/a → t/b ends in a model retired {day(-1)}" + STILL),
    ([("t/a", "t/b", RETIRED), ("t/b", "t/c", DEPRECATED), ("t/c", None, {"retires": day(0)})], "t/a",
     f"the chain t/a → t/b → t/c ends in a model retired {day(0)}" + STILL),
    ([("t/a", "t/nowhere", RETIRED)], "t/a", "the chain t/a ends in 't/nowhere', which is not a model in the registry"),
    ([("t/a", "t/b", RETIRED), ("t/b", "t/gone", DEPRECATED)], "t/a",
     "the chain t/a → t/b ends in 't/gone', which is not a model in the registry"),
    ([("t/a", "text-embedding-004", RETIRED)], "t/a",
     "the chain t/a → text-embedding-004 ends in a model retired 2026-01-14" + STILL),
], ids=["A-B-A", "loop further on", "retired end", "retires today", "unknown", "unknown further on",
        "built-in retired"])
def test_a_bad_replacement_chain_is_an_invalid_registry(cli, tmp_path, links, model_id, message):
    path = chain_registry(tmp_path, *links)
    result = cli("registry", "validate", path, "--json")
    assert result.exit_code == 3
    problems = json.loads(result.stdout)
    assert {"file": path, "model": model_id, "key": "replacement", "message": message} in problems
    listed = cli("--registry", path, "list")
    if "retired" in message:
        # A chain that was fine until its target retired: validate says so, but the registry
        # still loads, or every command would stop working on the day the target retires.
        assert listed.exit_code == 0, listed.stderr
        return
    # A chain of the wrong shape fails loading too, for every command, in one line.
    assert listed.exit_code == 3 and listed.stderr.startswith("modelctl: error: invalid registry: ")
    assert message in listed.stderr and len(listed.stderr.splitlines()) == 1


def test_a_replacement_that_names_itself_is_refused(cli, tmp_path):
    path = chain_registry(tmp_path, ("t/a", "t/a", RETIRED))
    result = cli("registry", "validate", path)
    assert result.exit_code == 3 and "'t/a' is this model itself" in result.stdout


def test_good_chains_validate_and_may_lead_into_the_built_in_registry(cli, tmp_path):
    path = chain_registry(tmp_path, ("t/a", "t/b", RETIRED), ("t/b", "t/c", DEPRECATED), ("t/c", None, {}),
                          ("t/d", "claude-haiku-4-5", RETIRED), ("t/e", "t/b", {"status": "legacy"}))
    result = cli("registry", "validate", path)
    assert result.exit_code == 0, result.output
    shown = cli("--registry", path, "show", "t/a")
    assert shown.exit_code == 0 and "use t/b instead" in shown.stdout


def test_the_shipped_registry_validates_and_no_chain_ends_in_a_retiring_model(cli):
    """No replacement leads to a model with a retirement date, passed or announced: the shipped
    registry stays valid on every future day."""
    from modelctl.registry import BUILTIN_REGISTRY, Registry, validate_files

    assert cli("registry", "validate", str(BUILTIN_REGISTRY)).exit_code == 0
    models, problems = validate_files([BUILTIN_REGISTRY], today="2999-12-31")
    assert problems == []
    registry = Registry(models, check_replacements=False)
    ends = {m.id: registry.replacement_chain(m)[-1] for m in models if m.replacement}
    assert len(ends) >= 5
    assert {mid: end.id for mid, end in ends.items() if end.retires or end.status == "deprecated"} == {}


# --- start-up -----------------------------------------------------------------------------------


def modules_after(argv: list[str], home) -> set[str]:
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules))))\n"
             f"sys.argv = ['modelctl', *{argv!r}]\n"
             "from modelctl.cli.main import run\n"
             "run()\n")
    env = {"MODELCTL_HOME": str(home), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.rpartition("MODULES ")[2].split())


def test_the_lifecycle_check_costs_nothing_where_it_does_not_apply(modelctl_home, server):
    server.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["fine"]))
    listed = modules_after(["list", "--json"], modelctl_home)
    adhoc = modules_after(["chat", "--api-base", f"{server.url}/v1", "-m", "served", "--no-log", "Hi"], modelctl_home)
    for loaded in (listed, adhoc):
        assert "modelctl.registry.lifecycle" not in loaded
