"""MCP servers as tool sources: real servers written with the `mcp` SDK (tests/mcp_demo_server.py),
in-process, as child processes over stdio, and over streamable HTTP on loopback; listed, called,
failing in every way a server fails; the [mcp.servers] config and `modelctl mcp add|list|rm|import`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp_demo_server import BIG, build  # noqa: E402
from tool_calls import call, call_at_once  # noqa: E402

from modelctl.backends.base import ToolCall  # noqa: E402
from modelctl.errors import BackendError, NotFoundError, UsageError  # noqa: E402
from modelctl.tools.mcp_client import CHILD_VARIABLES, MAX_RESTARTS  # noqa: E402
from modelctl.tools.mcp_config import ServerConfig, check_server  # noqa: E402
from modelctl.tools.toolbox import MAX_RESULT_BYTES, Toolbox, available_tools  # noqa: E402

SCRIPT = Path(__file__).resolve().with_name("mcp_demo_server.py")
DEMO_TOOLS = ["echo", "environment", "fail", "crash", "hang", "big"]
# What the SDK passes to every child besides modelctl's own choice, and what Python sets itself.
SDK_VARIABLES = {"USER", "LOGNAME", "SHELL", "TERM", "LC_CTYPE"}


def stdio(name: str = "demo", **table) -> ServerConfig:
    return check_server(name, {"command": sys.executable, "args": [str(SCRIPT)], **table}, "test")


def in_memory(*servers: MCPServer) -> dict[str, ServerConfig]:
    return {s.name: ServerConfig.in_process(s.name, s) for s in servers}


# -- in process ---------------------------------------------------------------------------------------


def test_an_in_process_server_is_listed_and_called():
    with Toolbox.open(["mem"], servers=in_memory(build("mem"))) as box:
        assert [t.name for t in box.tools] == [f"mem_{n}" for n in DEMO_TOOLS]
        echo = box.get("mem_echo")
        assert echo is not None and echo.origin == "mcp:mem" and echo.server == "mem" and echo.remote_name == "echo"
        assert echo.read_only and not box.get("mem_crash").read_only
        assert echo.spec.description == "Say the text back."
        assert echo.spec.parameters["properties"]["text"]["type"] == "string"
        result = call(box, "mem_echo", text="héllo")
        assert (result.content, result.is_error) == ("héllo", False) and result.seconds >= 0


def test_a_tool_that_raises_at_its_server_is_an_error_result():
    with Toolbox.open(["mem_fail"], servers=in_memory(build("mem"))) as box:
        result = call(box, "mem_fail", message="no such file: notes.md")
        assert result.is_error and "no such file: notes.md" in result.content


def test_one_tool_of_a_server_is_picked_by_its_name():
    with Toolbox.open(["mem_echo", "builtin"], servers=in_memory(build("mem"))) as box:
        assert [t.name for t in box.tools] == ["now", "modelctl_version", "mem_echo"]


def test_a_name_nothing_offers_is_not_found():
    servers = in_memory(build("mem"))
    with pytest.raises(NotFoundError, match="no MCP tool named 'mem_ecko'.*mem_echo"):
        Toolbox.open(["mem_ecko"], servers=servers)
    with pytest.raises(NotFoundError, match="no tool or MCP server named 'men'.*mem"):
        Toolbox.open(["men"], servers=servers)


def test_calls_from_several_threads_at_once_each_get_their_own_answer():
    with Toolbox.open(["mem"], servers=in_memory(build("mem"))) as box:
        texts = [f"n{i}" for i in range(16)]
        assert call_at_once(box, "mem_echo", texts) == texts


def test_tool_names_are_server_underscore_tool_made_safe_and_cut_to_64():
    server = MCPServer("odd")
    server.add_tool(lambda: "1", name="read file")
    server.add_tool(lambda: "2", name="t" * 100)
    with Toolbox.open(["my.docs"], servers={"my.docs": ServerConfig.in_process("my.docs", server)}) as box:
        assert [t.name for t in box.tools] == ["my_docs_read_file", "my_docs_" + "t" * 56]
        assert [t.remote_name for t in box.tools] == ["read file", "t" * 100]
        assert call(box, "my_docs_read_file").content == "1"


def test_two_servers_whose_names_make_one_tool_name_are_a_clash_naming_both():
    first, second = MCPServer("a_b"), MCPServer("a")
    first.add_tool(lambda: "first", name="c")
    second.add_tool(lambda: "second", name="b_c")
    with pytest.raises(UsageError) as raised:
        Toolbox.open(["a_b", "a"], servers=in_memory(first, second))
    assert "a_b_c" in raised.value.message and "'a_b'" in raised.value.message and "'a'" in raised.value.message


def test_a_built_in_name_taken_by_a_server_tool_is_a_clash():
    server = MCPServer("x")
    server.add_tool(lambda: "late", name="now")  # x_now: no clash; a server named "" cannot exist
    with Toolbox.open(["x", "now"], servers=in_memory(server)) as box:
        assert {t.name for t in box.tools} == {"x_now", "now"}


# -- stdio: a child process ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_box():
    with Toolbox.open(["demo"], servers={"demo": stdio(timeout=20)}) as box:
        yield box


def test_a_child_process_server_is_listed_and_called(demo_box):
    assert [t.name for t in demo_box.tools] == [f"demo_{n}" for n in DEMO_TOOLS]
    assert call(demo_box, "demo_echo", text="over stdio").content == "over stdio"


def test_a_ten_megabyte_result_is_cut_to_the_bound_with_a_note(demo_box):
    result = call(demo_box, "demo_big")
    assert not result.is_error
    assert len(result.content.encode()) <= MAX_RESULT_BYTES
    assert result.content.startswith("x" * 1000) and f"{BIG:,} bytes" in result.content.splitlines()[-1]
    assert call(demo_box, "demo_echo", text="still here").content == "still here"


def test_arguments_that_are_not_a_json_object_are_an_error_result(demo_box):
    result = demo_box.call(ToolCall("c", "demo_echo", "[1, 2"))
    assert result.is_error and "not JSON" in result.content


def test_the_child_gets_a_minimal_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefghij")
    monkeypatch.setenv("MY_SERVER_TOKEN", "tok-0123456789")
    monkeypatch.setenv("UNRELATED_SETTING", "1")
    config = stdio(env={"SERVER_TOKEN": "${MY_SERVER_TOKEN}", "PLAIN": "yes"})
    with Toolbox.open(["demo_environment"], servers={"demo": config}) as box:
        seen = json.loads(call(box, "demo_environment", name="SERVER_TOKEN").content)
    names = set(seen["names"])
    assert "OPENAI_API_KEY" not in names and "MY_SERVER_TOKEN" not in names and "UNRELATED_SETTING" not in names
    assert {"SERVER_TOKEN", "PLAIN", "PATH"} <= names
    assert names <= set(CHILD_VARIABLES) | SDK_VARIABLES | {"SERVER_TOKEN", "PLAIN"}
    assert seen["value"] == "tok-0123456789"


def test_a_variable_the_config_names_but_the_environment_lacks_is_an_error_naming_it(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(UsageError, match=r"mcp.servers.demo.env.KEY names \$\{NOT_SET_ANYWHERE\}"):
        Toolbox.open(["demo"], servers={"demo": stdio(env={"KEY": "${NOT_SET_ANYWHERE}"})})


def test_a_server_that_crashes_mid_call_is_an_error_result_and_is_started_again_for_the_next():
    with Toolbox.open(["demo"], servers={"demo": stdio()}) as box:
        first_pid = json.loads(call(box, "demo_environment", name="PATH").content)["pid"]
        result = call(box, "demo_crash")
        assert result.is_error
        assert "MCP server 'demo'" in result.content and "giving up: the disk is on fire" in result.content
        after = call(box, "demo_echo", text="anyone?")  # a new child answers
        assert not after.is_error and after.content == "anyone?"
        assert json.loads(call(box, "demo_environment", name="PATH").content)["pid"] != first_pid
        for _ in range(MAX_RESTARTS - 1):  # it crashes again: started again, MAX_RESTARTS times in all
            assert call(box, "demo_crash").is_error
            assert call(box, "demo_echo", text="again").content == "again"
        assert call(box, "demo_crash").is_error
        gone = call(box, "demo_echo", text="and now?")
        assert gone.is_error and f"is not running (started again {MAX_RESTARTS} times)" in gone.content
        assert "the disk is on fire" in gone.content


def test_a_call_that_hangs_is_an_error_result_after_the_timeout_and_the_server_goes_on():
    with Toolbox.open(["demo"], servers={"demo": stdio(timeout=1)}) as box:
        result = call(box, "demo_hang")
        assert result.is_error and "did not answer the call of hang within 1 s" in result.content
        assert call(box, "demo_echo", text="after").content == "after"


def test_closing_the_toolbox_ends_the_child():
    box = Toolbox.open(["demo"], servers={"demo": stdio()})
    pid = json.loads(call(box, "demo_environment").content)["pid"]
    box.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert call(box, "demo_echo", text="x").is_error


def test_a_child_does_not_outlive_a_process_that_never_closed_its_toolbox():
    code = ("import json, sys\n"
            "from modelctl.tools.mcp_config import check_server\n"
            "from modelctl.tools.toolbox import Toolbox\n"
            "from modelctl.backends.base import ToolCall\n"
            f"config = check_server('demo', {{'command': sys.executable, 'args': [{str(SCRIPT)!r}]}}, 'test')\n"
            "box = Toolbox.open(['demo'], servers={'demo': config})\n"
            "print(json.loads(box.call(ToolCall('1', 'demo_environment', '{}')).content)['pid'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(done.stdout), 0)


def test_a_command_that_does_not_exist_is_one_error_naming_the_server():
    config = check_server("ghost", {"command": "no-such-mcp-server-here"}, "test")
    with pytest.raises(BackendError, match="MCP server 'ghost' could not be started: command 'no-such-mcp-server-here' not found"):
        Toolbox.open(["ghost"], servers={"ghost": config})


def test_a_server_that_exits_at_start_is_named_with_what_it_said():
    with pytest.raises(BackendError) as raised:
        Toolbox.open(["broken"], servers={"broken": stdio("broken", args=[str(SCRIPT), "--fail"])})
    assert "MCP server 'broken'" in str(raised.value) and "cannot start: no configuration file" in str(raised.value)


def test_available_tools_reports_a_server_it_cannot_list_and_lists_the_rest():
    told: list[str] = []
    servers = {"mem": ServerConfig.in_process("mem", build("mem")),
               "ghost": check_server("ghost", {"command": "no-such-mcp-server-here"}, "test")}
    names = [t.name for t in available_tools(servers=servers, notify=told.append)]
    assert names == ["now", "modelctl_version", *(f"mem_{n}" for n in DEMO_TOOLS)]
    assert len(told) == 1 and "'ghost'" in told[0]
    with pytest.raises(BackendError, match="'ghost'"):
        available_tools(servers=servers)


# -- streamable HTTP on loopback ----------------------------------------------------------------------


def serve(app):
    """`app` on loopback (uvicorn in a thread, on a port of its own, its socket bound before it
    starts: no wait for it to listen); yields the base URL and the headers of the requests it got."""
    uvicorn = pytest.importorskip("uvicorn")
    seen: list[dict[bytes, bytes]] = []

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]))
        await app(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(recording, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def http_server():
    """The demo server over streamable HTTP: its URL and the headers it got."""
    for base, seen in serve(build("web").streamable_http_app()):
        yield f"{base}/mcp", seen


def test_a_server_over_http_is_listed_and_called_with_its_headers(http_server, monkeypatch):
    url, seen = http_server
    monkeypatch.setenv("WEB_TOKEN", "web-token-0123456789")
    config = check_server("web", {"url": url, "headers": {"Authorization": "Bearer ${WEB_TOKEN}", "X-Client": "tests"}},
                          "test")
    with Toolbox.open(["web"], servers={"web": config}) as box:
        assert [t.name for t in box.tools] == [f"web_{n}" for n in DEMO_TOOLS]
        assert call(box, "web_echo", text="over http").content == "over http"
        big = call(box, "web_big")
        assert not big.is_error and len(big.content.encode()) <= MAX_RESULT_BYTES and f"{BIG:,}" in big.content
    assert seen and all(h.get(b"authorization") == b"Bearer web-token-0123456789" for h in seen)
    assert all(h.get(b"x-client") == b"tests" for h in seen)


def test_a_server_on_the_older_sse_transport_is_listed_and_called():
    for base, _ in serve(build("old").sse_app()):
        config = check_server("old", {"url": f"{base}/sse", "transport": "sse"}, "test")
        with Toolbox.open(["old_echo"], servers={"old": config}) as box:
            assert call(box, "old_echo", text="over sse").content == "over sse"


def test_an_http_server_that_is_not_there_is_one_error_naming_it():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        config = check_server("gone", {"url": f"http://127.0.0.1:{port}/mcp"}, "test")
        with pytest.raises(BackendError, match=f"MCP server 'gone' could not be started: cannot connect to http://127.0.0.1:{port}/mcp"):
            Toolbox.open(["gone"], servers={"gone": config})


# -- config.toml --------------------------------------------------------------------------------------


@pytest.fixture
def config_file(modelctl_home):
    path = modelctl_home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# my settings\n[chat]\ntemperature = 0.5  # warm\n")
    return path


def one_error_line(result, code: int, *words: str) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelctl: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("table, words", [
    ('command = "x"\nurl = "http://127.0.0.1:1/mcp"', ["either command", "or url"]),
    ('args = ["x"]', ["either command"]),
    ('command = "x"\napprove = "maybe"', ["mcp.servers.s.approve must be one of allow, ask, deny"]),
    ('command = "x"\ntimeout = -1', ["mcp.servers.s.timeout must be more than 0"]),
    ('command = "x"\nenv = { A = 1 }', ["mcp.servers.s.env.A must be a string"]),
    ('command = "x"\nheaders = { A = "b" }', ["mcp.servers.s.headers is for remote servers only"]),
    ('url = "http://127.0.0.1:1/mcp"\ntransport = "stdio"', ['transport = "stdio" does not go with url']),
    ('command = "x"\nprot = 1', ["unknown key mcp.servers.s.prot"]),
    ('command = "x"\n[mcp.servers.s.tools.t]\napprove = "never"', ["mcp.servers.s.tools.t.approve must be one of"]),
])
def test_a_bad_server_table_is_one_error_naming_the_file_and_key(cli, config_file, table, words):
    config_file.write_text(config_file.read_text() + f"\n[mcp.servers.s]\n{table}\n")
    one_error_line(cli("mcp", "list"), 2, str(config_file), *words)


def test_config_set_knows_the_server_keys(cli, config_file):
    assert cli("config", "set", "mcp.servers.files.command", "npx").exit_code == 0
    assert cli("config", "set", "mcp.servers.files.args", '["-y", "server-filesystem"]').exit_code == 0
    assert cli("config", "set", "mcp.servers.files.approve", "allow").exit_code == 0
    assert cli("config", "set", "mcp.servers.files.tools.write_file.approve", "deny").exit_code == 0
    assert cli("config", "set", "mcp.servers.files.env.TOKEN", "${FILES_TOKEN}").exit_code == 0
    one_error_line(cli("config", "set", "mcp.servers.files.approve", "sometimes"), 2, "allow, ask, deny")
    one_error_line(cli("config", "set", "mcp.servers.files.colour", "red"), 2, "unknown config key", "mcp.servers.NAME.command")
    one_error_line(cli("config", "set", "mcp.servers.files.env.TOKEN", "sk-abcdefghijklmnopqrstuvwxyz"), 2,
                   "config.toml keeps no credentials")
    (server,) = json.loads(cli("mcp", "list", "--json").stdout)
    assert server["command"] == "npx" and server["args"] == ["-y", "server-filesystem"]
    assert server["approve"] == "allow" and server["tools"] == {"write_file": "deny"}


# -- modelctl mcp add|list|rm|import ------------------------------------------------------------------


def test_add_list_and_remove_a_local_server(cli, config_file):
    added = cli("mcp", "add", "demo", "--", sys.executable, str(SCRIPT))
    assert added.exit_code == 0, added.stderr
    text = config_file.read_text()
    assert text.startswith("# my settings\n[chat]\ntemperature = 0.5  # warm\n")
    assert "[mcp.servers.demo]\n" in text and "[mcp.servers]\n" not in text
    listed = cli("mcp", "list", "--tools", "--json")
    (record,) = json.loads(listed.stdout)
    assert record["transport"] == "stdio" and record["command"] == sys.executable and record["args"] == [str(SCRIPT)]
    assert record["tools"] == [f"demo_{n}" for n in DEMO_TOOLS] and record["error"] is None
    assert "demo" in cli("mcp", "list").stdout
    tools = json.loads(cli("tools", "list", "--json").stdout)
    assert [t["name"] for t in tools] == ["now", "modelctl_version", *(f"demo_{n}" for n in DEMO_TOOLS)]
    assert tools[2]["origin"] == "mcp:demo" and tools[2]["read_only"] is True
    one_error_line(cli("mcp", "add", "demo", "--", "other"), 2, "already has the MCP server demo", "--replace")
    assert cli("mcp", "rm", "demo").exit_code == 0
    assert config_file.read_text().rstrip("\n") == "# my settings\n[chat]\ntemperature = 0.5  # warm"
    one_error_line(cli("mcp", "rm", "demo"), 4, "no MCP server 'demo'")


def test_add_a_remote_server_its_headers_never_shown(cli, config_file):
    added = cli("mcp", "add", "search", "--url", "https://mcp.example.com/mcp",
                "--header", "Authorization=Bearer ${SEARCH_TOKEN}", "--header", "X-Team: blue")
    assert added.exit_code == 0, added.stderr
    assert 'headers = {Authorization = "Bearer ${SEARCH_TOKEN}", X-Team = "blue"}' in config_file.read_text()
    (record,) = json.loads(cli("mcp", "list", "--json").stdout)
    assert record["url"] == "https://mcp.example.com/mcp" and record["headers"]["Authorization"] == "***"
    refused = cli("mcp", "add", "leaky", "--url", "https://mcp.example.com/mcp",
                  "--header", "Authorization=Bearer sk-abcdefghijklmnopqrstuvwxyz")
    line = one_error_line(refused, 2, "config.toml keeps no credentials", "${VARIABLE}")
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in line and "leaky" not in config_file.read_text()


@pytest.mark.parametrize("args, words", [
    (["x"], ["either the command of a local server"]),
    (["x", "--url", "https://a.example/mcp", "--", "cmd"], ["either the command"]),
    (["bad name", "--", "cmd"], ["'bad name' is not a usable MCP server name"]),
    (["x", "--env", "NOEQUALS", "--", "cmd"], ["--env takes KEY=VALUE"]),
    (["x", "--approve", "sometimes", "--", "cmd"], ["approve must be one of"]),
    (["x", "--url", "ftp://a.example/mcp"], ["not a usable URL"]),
])
def test_add_refuses_what_cannot_work(cli, config_file, args, words):
    one_error_line(cli("mcp", "add", *args), 2, *words)


CLAUDE_DESKTOP = {"mcpServers": {
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
               "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_0123456789abcdefghijklmnopqrstuvwxyz", "LOG": "1"}},
    "brave search": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-brave-search"],
                     "autoApprove": ["brave_web_search"]},
    "remote": {"url": "https://mcp.example.com/mcp", "headers": {"X-Team": "blue"}},
    "legacy": {"type": "sse", "url": "https://mcp.example.com/sse"},
    "off": {"command": "unused", "disabled": True},
}}


def test_import_writes_each_server_and_keeps_credentials_out(cli, config_file, tmp_path):
    source = tmp_path / "claude_desktop_config.json"
    source.write_text(json.dumps(CLAUDE_DESKTOP))
    imported = cli("mcp", "import", str(source))
    assert imported.exit_code == 0, imported.stderr
    assert "ghp_0123456789" not in config_file.read_text() + imported.stderr
    assert "GITHUB_PERSONAL_ACCESS_TOKEN is read from your environment" in imported.stderr
    assert "named brave-search" in imported.stderr and "left out: autoApprove" in imported.stderr
    assert "off: disabled there: not imported" in imported.stderr
    servers = {s["name"]: s for s in json.loads(cli("mcp", "list", "--json").stdout)}
    assert list(servers) == ["github", "brave-search", "remote", "legacy"]
    assert servers["github"]["env"]["LOG"] == "1" and servers["legacy"]["transport"] == "sse"
    assert 'GITHUB_PERSONAL_ACCESS_TOKEN = "${GITHUB_PERSONAL_ACCESS_TOKEN}"' in config_file.read_text()
    one_error_line(cli("mcp", "import", str(source)), 2, "already has the MCP servers github, brave-search")
    assert cli("mcp", "import", str(source), "--replace").exit_code == 0


def test_import_dry_run_prints_the_toml_and_writes_nothing(cli, config_file, tmp_path):
    source = tmp_path / "mcp.json"
    source.write_text(json.dumps(CLAUDE_DESKTOP))
    before = config_file.read_text()
    shown = cli("mcp", "import", str(source), "--dry-run")
    assert shown.exit_code == 0 and config_file.read_text() == before
    assert "[mcp.servers.github]" in shown.stdout and "[mcp.servers.legacy]" in shown.stdout
    assert "ghp_0123456789" not in shown.stdout and "off" not in shown.stdout.replace("off:", "")


@pytest.mark.parametrize("document, words", [
    ({"servers": []}, ["no \"mcpServers\" object"]),
    ({"mcpServers": {"x": {"type": "websocket", "url": "wss://a.example"}}}, ["transport 'websocket'"]),
    ({"mcpServers": {"x": {"url": "https://a.example/mcp", "headers": {"Authorization": "Bearer abcdef0123456789"}}}},
     ["config.toml keeps no credentials"]),
    ({"mcpServers": {"x": "npx server"}}, ["is not a JSON object"]),
    ({"mcpServers": {"a b": {"command": "x"}, "a-b": {"command": "y"}}}, ["several servers would be called a-b"]),
])
def test_import_refuses_a_document_it_cannot_take_whole(cli, config_file, tmp_path, document, words):
    source = tmp_path / "mcp.json"
    source.write_text(json.dumps(document))
    before = config_file.read_text()
    one_error_line(cli("mcp", "import", str(source)), 2, *words)
    assert config_file.read_text() == before


def test_import_of_a_missing_file_or_bad_json_is_one_line(cli, config_file, tmp_path):
    one_error_line(cli("mcp", "import", str(tmp_path / "nope.json")), 4, "no such file")
    (tmp_path / "bad.json").write_text("{")
    one_error_line(cli("mcp", "import", str(tmp_path / "bad.json")), 2, "invalid JSON")


def test_tools_list_names_a_server_it_cannot_start_and_lists_the_rest(cli, config_file):
    assert cli("mcp", "add", "demo", "--", sys.executable, str(SCRIPT)).exit_code == 0
    assert cli("mcp", "add", "ghost", "--", "no-such-mcp-server-here").exit_code == 0
    listed = cli("tools", "list", "--json")
    assert listed.exit_code == 7
    assert [t["name"] for t in json.loads(listed.stdout)][2:] == [f"demo_{n}" for n in DEMO_TOOLS]
    assert "'ghost' could not be started" in listed.stderr and "1 MCP server could not be listed" in listed.stderr
    one_error_line(cli("tools", "list", "-T", "ghost"), 7, "'ghost' could not be started")
    (record,) = [r for r in json.loads(cli("mcp", "list", "--tools", "--json").stdout) if r["name"] == "ghost"]
    assert record["tools"] is None and "not found" in record["error"]
