"""The shipped completion scripts match what the CLI generates, and completion answers."""

from __future__ import annotations

import pytest
from conftest import REPO


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(run_modelctl, shell):
    proc = run_modelctl("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert proc.returncode == 0
    shipped = (REPO / "completions" / f"modelctl.{shell}").read_text()
    assert proc.stdout == shipped, f"regenerate completions/modelctl.{shell}"


def test_bash_completion_completes_commands_and_options(run_modelctl):
    env = {"_MODELCTL_COMPLETE": "complete_bash", "COMP_WORDS": "modelctl li", "COMP_CWORD": "1"}
    proc = run_modelctl(env=env)
    assert proc.stdout.split() == ["list"]
    env.update(COMP_WORDS="modelctl list --fr", COMP_CWORD="2")
    assert run_modelctl(env=env).stdout.split() == ["--free"]
