"""A run builds only the command it runs: the map of command modules to their commands is what
their register() functions really add, and the module of the command named is the one chosen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelctl.cli.main import COMMAND_MODULES, command_named, make_app, modules_for


def _names(app) -> set[str]:
    return {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}


@pytest.mark.parametrize("module", list(COMMAND_MODULES))
def test_each_module_adds_exactly_the_commands_the_map_names(module):
    assert _names(make_app([module])) == set(COMMAND_MODULES[module])


@pytest.mark.parametrize("argv, expected", [
    (["list", "--json"], ["catalog"]),
    (["--registry", "r.toml", "chat", "-m", "x"], ["chat_cmd"]),
    (["--registry=r.toml", "fill-mask", "a [MASK]"], ["fill_mask_cmd"]),
    (["history", "rm", "--older-than", "30d"], ["history_cmd"]),
])
def test_the_command_named_is_the_only_one_built(argv, expected):
    assert modules_for(argv) == expected


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["no-such-command"], ["--registry"]])
def test_help_version_and_unknown_names_build_everything(argv):
    assert modules_for(argv) == list(COMMAND_MODULES)


def test_completion_builds_everything(monkeypatch):
    monkeypatch.setenv("_MODELCTL_COMPLETE", "complete_bash")
    assert modules_for(["list"]) == list(COMMAND_MODULES)


def test_an_unknown_command_is_named_in_one_line(run_modelctl):
    proc = run_modelctl("no-such-command")
    assert proc.returncode == 2 and "No such command 'no-such-command'" in proc.stderr


@pytest.mark.parametrize("argv, expected", [
    (["list", "--json"], "list"),
    (["--registry", "r.toml", "show", "x"], "show"),
    (["no-such-command"], None),
    (["--help"], None),
])
def test_the_command_named_is_known(argv, expected):
    assert command_named(argv) == expected


def test_an_app_for_one_command_has_only_that_command():
    assert _names(make_app(["catalog"], only="show")) == {"show"}
    assert _names(make_app(["history_cmd"], only="history")) == {"history"}  # a group


def _imported(modelctl_home, *args: str) -> set[str]:
    """The modules a real run of `modelctl ARGS` has imported when it ends."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
            f"sys.argv = ['modelctl', *{list(args)!r}]\n"
            "from modelctl.cli.main import run\n"
            "run()\n")
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stderr.rsplit("MODULES ", 1)[1].split())


def test_list_leaves_out_what_it_does_not_use(modelctl_home):
    # The places docs/architecture.md lists under "Where imports are lazy, and why".
    _imported(modelctl_home, "list", "--json")  # the first run parses the registry and caches it
    imported = _imported(modelctl_home, "list", "--json")
    assert "modelctl.registry.loader" in imported and "modelctl.cli.catalog" in imported
    assert not imported & {"modelctl.cli.shells", "modelctl.registry.aliases", "modelctl.registry.schema",
                           "tomllib", "httpx", "modelctl.backends.base", "modelctl.cli.store_cmd"}


def test_a_chat_with_a_server_by_url_reads_the_registry_but_not_its_sources(modelctl_home):
    # The registry (from its cache) says whether the name is a registry model's, whose defaults
    # and prices it keeps; nothing parses TOML, reads files or loads templates for that.
    _imported(modelctl_home, "list", "--json")  # the first run parses the registry and caches it
    imported = _imported(modelctl_home, "chat", "--api-base", "http://127.0.0.1:9/v1", "-m", "x", "--dry-run", "hi")
    assert "modelctl.registry.loader" in imported
    assert not imported & {"modelctl.registry.schema", "modelctl.registry.query", "tomllib", "modelctl.templates.jinja",
                           "modelctl.store.locate", "modelctl.gguf", "jinja2"}
