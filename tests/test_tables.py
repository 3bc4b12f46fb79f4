"""Tables (`list`, `services`, `templates`, `list --installed`, `du`, `alias list`, `keys list`):
at a real terminal (a pty) as wide as the terminal at 80, 120 and 200 columns; plain aligned
columns, whole, when piped or when NO_COLOR holds any non-empty value (no-color.org)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import terminal_run
from hubserver import make_gguf
from registries import model, write_registry

from modelctl.cli.format import fit_widths

pytest.importorskip("pexpect")

MODELCTL = terminal_run.MODELCTL
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BOX = re.compile("[─━│┃┏┓┗┛┡┩╇╋╭╮╰╯]")
WIDTHS = (80, 120, 200)

# A provider name of wide characters, a long task list and a long id: the cells that overflow.
LONG_ID = "test/an-unusually-long-model-identifier-that-no-terminal-column-holds-v2"
WIDE_PROVIDER = "東京大学 言語モデル研究室 Large Language Model Research Laboratory"


@pytest.fixture
def wide_registry(tmp_path):
    entry = model(LONG_ID, {"kind": "openai", "model": "m"}, provider=WIDE_PROVIDER,
                  tasks=["chat", "completion", "code", "embedding", "vision", "summarization", "translation"],
                  license={"name": "A license whose name is much longer than any column should be", "open_weights": True})
    return str(write_registry(tmp_path / "wide.toml", entry))


def at_terminal(home: Path, args: list[str], columns: int, **extra: str) -> str:
    """What `modelctl ARGS` shows in a terminal `columns` wide (stdout and stderr, as shown)."""
    return terminal_run.at_terminal(args, columns, MODELCTL_HOME=str(home), **extra)


def piped(home: Path, args: list[str]) -> str:
    proc = subprocess.run([MODELCTL, *args], env=terminal_run.terminal_env(80, MODELCTL_HOME=str(home)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def screen_lines(shown: str) -> list[str]:
    return ANSI.sub("", shown).replace("\r\n", "\n").split("\n")


def assert_fits(shown: str, columns: int) -> list[str]:
    from rich.cells import cell_len

    lines = [line for line in screen_lines(shown) if not line.startswith("modelctl: ")]  # notes on stderr
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, f"{len(too_wide)} lines wider than {columns}: {too_wide[:3]}"
    return lines


@pytest.fixture
def installed(modelctl_home, tmp_path):
    """A GGUF imported under a long name, for `list --installed` and `du`."""
    gguf = make_gguf(tmp_path / f"{'a-very-long-file-name-' * 4}.Q4_K_M.gguf")
    proc = subprocess.run([MODELCTL, "import", str(gguf), "--name", "imported-model-with-a-rather-long-name"],
                          env=terminal_run.terminal_env(80, MODELCTL_HOME=str(modelctl_home)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return gguf


TABLES = {
    "list": ["list"],
    "list, wide cells": ["--registry", "{wide}", "list", "--provider", "東京"],
    "services": ["services", "--all", "--timeout", "5"],
    "templates": ["templates"],
    "keys list": ["keys", "list"],
    "list --installed": ["list", "--installed"],
    "du": ["du"],
}


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("name", list(TABLES))
def test_a_table_fits_the_terminal(name, columns, modelctl_home, wide_registry, installed):
    args = [a.replace("{wide}", wide_registry) for a in TABLES[name]]
    shown = at_terminal(modelctl_home, args, columns)
    assert ANSI.search(shown)  # a styled table: the check below is about the rich one
    lines = assert_fits(shown, columns)
    assert any(set(line.strip()) == {"─"} for line in lines)  # the header rule


def test_narrow_tables_keep_the_names_whole_and_say_what_they_left_out(modelctl_home, wide_registry):
    def shown(columns: int) -> tuple[str, str]:
        lines = screen_lines(at_terminal(modelctl_home, ["--registry", wide_registry, "list", "--provider", "東京"],
                                         columns))
        return next(line for line in lines if line.startswith("test/")), " ".join(lines)

    row, text = shown(80)
    assert row.strip() == LONG_ID  # an id is what one copies: never cut, the rest left out
    assert "hidden at this width: PROVIDER, CATEGORY" in text
    row, text = shown(120)
    assert row.split()[0] == LONG_ID and "…" in row  # the provider and tasks cut with an ellipsis
    assert "hidden at this width: CATEGORY" in text and "PROVIDER" not in text.split("hidden")[1]
    row, text = shown(200)
    assert "hidden at this width" not in text and "A license whose" in row  # every column, some cut
    row, text = shown(400)
    assert WIDE_PROVIDER in row and "…" not in row  # room for it all


@pytest.mark.parametrize("no_color", ["1", "true", "0", " "])
def test_no_color_with_any_value_gives_the_full_plain_columns(no_color, modelctl_home, wide_registry, installed):
    """no-color.org: NO_COLOR set to any non-empty value ("0" included) turns styling off."""
    for args in (["--registry", wide_registry, "list"], ["services", "--all", "--timeout", "5"], ["list", "--installed"]):
        shown = at_terminal(modelctl_home, args, 80, NO_COLOR=no_color)
        assert not ANSI.search(shown) and not BOX.search(shown), shown[:500]
        # the same text a pipe gets: every column, no line cut to the terminal's width
        table = piped(modelctl_home, args).splitlines()
        shown_lines = [line for line in screen_lines(shown) if line and not line.startswith("modelctl: ")]
        assert shown_lines[:len(table)] == table


def test_an_empty_no_color_is_unset(modelctl_home):
    shown = at_terminal(modelctl_home, ["list", "--limit", "3"], 120, NO_COLOR="")
    assert ANSI.search(shown) and "─" in shown


def test_piped_tables_are_whole(modelctl_home, wide_registry):
    text = piped(modelctl_home, ["--registry", wide_registry, "list", "--provider", "東京"])
    header, row = text.splitlines()
    assert header.split() == ["ID", "PROVIDER", "CATEGORY", "TASKS", "CONTEXT", "PARAMS", "LICENSE", "FREE",
                              "LOCAL", "STATUS"]
    assert row.startswith(LONG_ID) and WIDE_PROVIDER in row and "chat,completion,code,embedding" in row


# --- fitting the columns ----------------------------------------------------------------------


def _total(kept: list[tuple[int, int]], gap: int) -> int:
    return sum(w for _, w in kept) + gap * (len(kept) - 1)


CASES = [
    ([45, 30, 8, 40, 7, 6, 30, 4, 5, 10], [45, 12, 8, 12, 7, 6, 12, 4, 5, 10], [2, 6, 5, 8, 7, 3]),
    ([60, 15, 30, 40, 11, 20, 90], [60, 12, 12, 12, 11, 12, 30], [4, 5, 2, 1, 3]),
    ([5, 5, 5], [5, 5, 5], []),
    ([200], [200], []),
    ([1, 1, 1, 1, 1, 1, 1, 1], [1] * 8, [7, 6]),
]


@pytest.mark.parametrize("natural, floors, drop", CASES)
def test_fit_widths_always_fits(natural, floors, drop):
    for room in range(1, 260):
        kept = fit_widths(natural, floors, room, gap=2, drop=drop)
        assert kept and _total(kept, 2) <= room, (room, kept)
        indexes = [i for i, _ in kept]
        assert indexes == sorted(indexes)  # the columns keep their order
        assert all(1 <= w <= natural[i] for i, w in kept)
        if _total([(i, natural[i]) for i in range(len(natural))], 2) <= room:
            assert kept == list(enumerate(natural))  # room for all: nothing cut, nothing left out
        left_out = [i for i in range(len(natural)) if i not in indexes]
        essential = [i for i in range(len(natural)) if i not in drop]
        if sum(floors[i] for i in essential) + 2 * (len(essential) - 1) <= room:  # the floors of all but drop fit
            assert all(w >= floors[i] for i, w in kept)  # cut no further than the floors allow
            assert sorted(left_out) == sorted(drop[:len(left_out)])  # droppable columns, first first


def test_fit_widths_cuts_the_widest_first():
    kept = fit_widths([10, 50, 30], [10, 12, 12], 70, gap=2)
    assert kept == [(0, 10), (1, 28), (2, 28)]
