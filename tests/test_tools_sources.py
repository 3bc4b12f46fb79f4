"""Tools that run in modelctl's own process: the built-ins, and `--functions FILE.py` (a file's
public functions, their type hints and docstrings as the schema); the toolbox that holds them,
its names and bounds; `modelctl tools list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pytest
from tool_calls import call, call_at_once

from modelctl.errors import NotFoundError, UsageError
from modelctl.tools.toolbox import MAX_RESULT_BYTES, Toolbox, bounded, tool_name
from modelctl.version import __version__

FUNCTIONS = '''
import enum
import os
from os.path import join                  # imported: not a tool
from typing import Literal, Optional


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def weather(city: str, units: Literal["c", "f"] = "c", days: int = 1, hourly: bool = False) -> dict:
    """The weather in a city.

    Longer words that are not the summary.

    Args:
        city: The city's name,
            in English.
        units: Celsius or Fahrenheit.

    Returns:
        A forecast.
    """
    return {"city": city, "units": units, "days": days, "hourly": hourly}


def shapes(ratio: float, tags: list[str], counts: dict[str, int], colour: Colour,
           note: Optional[str] = None, anything=None, *rest, **more) -> list:
    """Every kind of hint.

    :param ratio: A number.
    """
    return [ratio, tags, counts, colour, note]


def nothing() -> None:
    """Return nothing."""


def broken(path: str) -> str:
    raise FileNotFoundError(f"no such file: {path}")


async def later(text: str) -> str:
    return text.upper()


def _private() -> str:
    return "hidden"
'''


@pytest.fixture
def functions_file(tmp_path):
    path = tmp_path / "my_tools.py"
    path.write_text(FUNCTIONS)
    return path


# -- built-ins ----------------------------------------------------------------------------------------


def test_the_built_ins_tell_the_time_and_the_version():
    with Toolbox.open(["builtin"]) as box:
        assert [t.name for t in box.tools] == ["now", "modelctl_version"]
        assert all(t.origin == "builtin" and t.read_only and t.server is None for t in box.tools)
        local = datetime.fromisoformat(call(box, "now").content)
        assert local.tzinfo is not None and abs(local - datetime.now().astimezone()) < timedelta(hours=1)
        assert datetime.fromisoformat(call(box, "now", timezone="UTC").content).utcoffset() == timedelta(0)
        assert call(box, "modelctl_version").content == __version__


def test_an_unknown_time_zone_is_an_error_result_saying_so():
    with Toolbox.open(["now"]) as box:
        result = call(box, "now", timezone="Mars/Olympus_Mons")
        assert result.is_error and "unknown time zone 'Mars/Olympus_Mons'" in result.content


def test_a_built_in_is_picked_by_name_and_a_typo_is_not_found():
    with Toolbox.open(["now", "now"]) as box:
        assert [t.name for t in box.tools] == ["now"]
    with pytest.raises(NotFoundError, match="did you mean now"):
        Toolbox.open(["nwo"])


def test_no_names_and_no_files_is_an_empty_toolbox():
    with Toolbox.open([]) as box:
        assert box.tools == () and box.specs() == ()


# -- --functions FILE.py ------------------------------------------------------------------------------


def test_a_files_public_functions_are_its_tools_with_schemas_from_their_hints(functions_file):
    with Toolbox.open([], [functions_file]) as box:
        assert [t.name for t in box.tools] == ["weather", "shapes", "nothing", "broken", "later"]
        weather = box.get("weather")
        assert weather.origin == f"functions:{functions_file}" and not weather.read_only
        assert weather.spec.description == "The weather in a city."
        assert weather.spec.parameters == {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name, in English."},
                "units": {"type": "string", "enum": ["c", "f"], "description": "Celsius or Fahrenheit."},
                "days": {"type": "integer"},
                "hourly": {"type": "boolean"},
            },
            "required": ["city"],
        }
        shapes = box.get("shapes").spec
        assert shapes.description == "Every kind of hint."
        assert shapes.parameters["properties"] == {
            "ratio": {"type": "number", "description": "A number."},
            "tags": {"type": "array", "items": {"type": "string"}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "colour": {"type": "string", "enum": ["red", "blue"]},
            "note": {"type": "string"},
            "anything": {"type": "string"},
        }
        assert shapes.parameters["required"] == ["ratio", "tags", "counts", "colour"]


def test_a_function_runs_with_the_models_arguments_and_its_result_is_text(functions_file):
    with Toolbox.open([], [functions_file]) as box:
        assert json.loads(call(box, "weather", city="Oslo", days=3).content) == \
            {"city": "Oslo", "units": "c", "days": 3, "hourly": False}
        assert call(box, "nothing").content == "null"
        assert call(box, "later", text="async too").content == "ASYNC TOO"


def test_a_function_that_raises_is_an_error_result_with_its_message(functions_file):
    with Toolbox.open([], [functions_file]) as box:
        result = call(box, "broken", path="notes.md")
        assert result.is_error and result.content == "FileNotFoundError: no such file: notes.md"


@pytest.mark.parametrize("arguments, words", [
    ({"town": "Oslo"}, "unknown argument town (it takes city, units, days, hourly)"),
    ({}, "missing argument city"),
])
def test_arguments_a_function_does_not_take_are_an_error_result(functions_file, arguments, words):
    with Toolbox.open([], [functions_file]) as box:
        result = call(box, "weather", **arguments)
        assert result.is_error and words in result.content


def test_a_call_of_a_tool_that_is_not_there_is_an_error_result():
    with Toolbox.open(["now"]) as box:
        result = call(box, "rm_rf")
        assert result.is_error and "there is no tool 'rm_rf'" in result.content


def test_a_function_that_never_returns_is_an_error_result_after_the_timeout(tmp_path):
    path = tmp_path / "stuck.py"
    path.write_text("import threading\n_GATE = threading.Event()\n\n"
                    "def wait() -> str:\n    _GATE.wait()\n    return 'late'\n\n"
                    "def release() -> str:\n    _GATE.set()\n    return 'released'\n")
    with Toolbox.open([], [path], timeout=0.5) as box:
        result = call(box, "wait")
        assert call(box, "release").content == "released"  # the thread left behind ends
        assert result.is_error and result.content == "wait did not return within 0.5 s"


def test_calls_from_several_threads_at_once(functions_file):
    with Toolbox.open([], [functions_file]) as box:
        texts = [f"t{i}" for i in range(12)]
        assert call_at_once(box, "later", texts) == [t.upper() for t in texts]


@pytest.mark.parametrize("source, error, words", [
    ("def f(:\n", UsageError, ["bad_tools.py: line 1"]),
    ("raise RuntimeError('needs a database')\n", UsageError, ["bad_tools.py: running it raised RuntimeError: needs a database"]),
    ("import sys\nsys.exit(3)\n", UsageError, ["bad_tools.py: running it raised SystemExit"]),
    ("from os.path import join\nx = 1\n", UsageError, ["bad_tools.py defines no public function"]),
    ("class Thing: pass\n\ndef make(t: Thing) -> str:\n    return ''\n", UsageError, ["make(t)", "type Thing has no JSON Schema"]),
    ("def f(x: 'Missing') -> str:\n    return ''\n", UsageError, ["function f: its type hints cannot be read"]),
])
def test_a_file_that_cannot_be_used_is_one_error_naming_it(tmp_path, source, error, words):
    path = tmp_path / "bad_tools.py"
    path.write_text(source)
    with pytest.raises(error) as raised:
        Toolbox.open([], [path])
    for word in words:
        assert word in str(raised.value)


def test_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no such file"):
        Toolbox.open([], [tmp_path / "nowhere.py"])


def test_a_function_named_like_a_built_in_clashes_only_when_both_are_in(tmp_path):
    path = tmp_path / "clock.py"
    path.write_text("def now() -> str:\n    return 'teatime'\n")
    with Toolbox.open([], [path]) as box:
        assert call(box, "now").content == "teatime"
    with pytest.raises(UsageError, match=f"two tools are named now: the built-in and the function in {path}"):
        Toolbox.open(["builtin"], [path])


def test_two_files_defining_one_name_clash(tmp_path):
    (tmp_path / "a.py").write_text("def lookup(q: str) -> str:\n    return 'a'\n")
    (tmp_path / "b.py").write_text("def lookup(q: str) -> str:\n    return 'b'\n")
    with pytest.raises(UsageError, match="two tools are named lookup"):
        Toolbox.open([], [tmp_path / "a.py", tmp_path / "b.py"])


# -- names and bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server, tool, name", [
    ("github", "create_issue", "github_create_issue"),
    ("my.docs", "read file", "my_docs_read_file"),
    ("a-b", "c/d:e", "a-b_c_d_e"),
    ("s", "t" * 80, "s_" + "t" * 62),
])
def test_tool_names(server, tool, name):
    assert tool_name(server, tool) == name and len(name) <= 64


def test_a_long_result_is_cut_at_a_character_boundary_with_a_note():
    assert bounded("short") == "short"
    exact = "é" * (MAX_RESULT_BYTES // 2)
    assert bounded(exact) == exact
    cut = bounded("é" * MAX_RESULT_BYTES)
    assert len(cut.encode()) <= MAX_RESULT_BYTES and cut.startswith("é" * 1000)
    assert cut.splitlines()[-1] == (f"[modelctl: the result was cut here: it was {2 * MAX_RESULT_BYTES:,} bytes, "
                                    f"more than the {MAX_RESULT_BYTES:,} a result may be]")


def test_a_functions_long_result_is_bounded(tmp_path):
    path = tmp_path / "big.py"
    path.write_text("def big() -> str:\n    return 'y' * 5_000_000\n")
    with Toolbox.open([], [path]) as box:
        result = call(box, "big")
        assert not result.is_error and len(result.content.encode()) <= MAX_RESULT_BYTES
        assert "5,000,000 bytes" in result.content


# -- modelctl tools list ------------------------------------------------------------------------------


def test_tools_list_shows_the_built_ins_and_a_files_functions(cli, functions_file):
    listed = cli("tools", "list", "--functions", str(functions_file), "--json")
    assert listed.exit_code == 0, listed.stderr
    tools = json.loads(listed.stdout)
    assert [t["name"] for t in tools] == ["now", "modelctl_version", "weather", "shapes", "nothing", "broken", "later"]
    assert tools[2] == {"name": "weather", "description": "The weather in a city.",
                        "parameters": tools[2]["parameters"], "origin": f"functions:{functions_file}",
                        "server": None, "remote_name": "weather", "read_only": False}
    table = cli("tools", "list", "--functions", str(functions_file)).stdout
    assert "weather" in table and "city, units?, days?, hourly?" in table and "The weather in a city." in table


def test_tools_list_of_a_missing_file_is_one_line_exit_4(cli, tmp_path):
    listed = cli("tools", "list", "--functions", str(tmp_path / "nope.py"))
    assert listed.exit_code == 4 and listed.stderr.startswith("modelctl: error: ")
    assert len(listed.stderr.strip().splitlines()) == 1


def test_tools_list_without_mcp_servers_does_not_import_the_sdk(modelctl_home):
    code = textwrap.dedent("""
        import atexit, sys
        atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sys.modules) + "\\n"))
        sys.argv = ["modelctl", "tools", "list", "--json"]
        from modelctl.cli.main import run
        run()
    """)
    env = dict(os.environ, MODELCTL_HOME=str(modelctl_home), NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [t["name"] for t in json.loads(proc.stdout)] == ["now", "modelctl_version"]
    modules = set(proc.stderr.rsplit("MODULES ", 1)[1].split())
    assert "modelctl.tools.toolbox" in modules
    assert not {m for m in modules if m == "mcp" or m.startswith(("mcp.", "httpx2", "uvicorn", "starlette"))}
