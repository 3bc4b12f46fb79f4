"""A run builds only the command it runs: the map of command modules to their commands is what
their register() functions really add, and the module of the command named is the one chosen."""

from __future__ import annotations

import pytest

from modelctl.cli.main import COMMAND_MODULES, make_app, modules_for


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
