"""The page of `modelctl serve` in a real browser: headless Chromium (tests/browser.py) against a
real server process.

Answers of the "hosted" gpt-4o-mini come from a loopback server speaking OpenAI's wire format
(tests/providers), so a test scripts exactly what the page receives; the local answers come from
the real Gemma 3 270M. Every test also checks that the page made no request off the server's
origin (each one would be failed and recorded), logged no error and hit no CSP violation.
Skipped where no Chromium is installed (`apt-get install chromium`)."""

from __future__ import annotations

import json
import threading
from typing import Iterator

import httpx
import pytest
from browser import Browser, chromium_path, png_colours, png_pixels
from providers import openai_wire
from providers.kits import FAKE_KEY
from providers.server import FakeServer
from serve_clients import hosted_home
from serve_process import ServeProcess

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium on PATH (Debian: apt-get install chromium)")

HOSTED = "gpt-4o-mini"
LOCAL = "google/gemma-3-270m"  # its id in /v1/models
KEY = "web-page-test-key-0123456789"
WAIT_S = 120.0  # a guard against a page that never gets there, not a measurement

# The last answer in the chat, its text and its stats.
LAST = "[...document.querySelectorAll('#messages .message.assistant')].at(-1)"
LAST_TEXT = f"({LAST}?.querySelector('.content')?.textContent ?? '')"
LAST_STATS = f"({LAST}?.querySelector('.stats')?.textContent ?? '')"
IDLE = "document.getElementById('send').disabled === false && document.getElementById('stop').disabled === true"

# What a hostile answer would have done had it run: a global set, a dialog opened.
PWNED = "window.__pwned"
HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert(1)\">",
    "[click me](javascript:window.__pwned='link')",
    "[also me](JaVaScRiPt:alert(2))",
    "![pic](javascript:window.__pwned='image')",
    "<a href=\"javascript:window.__pwned='a'\">a tag</a>",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "<iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>",
    "<style>body { display: none }</style>",
    "`<b>in code</b>` and **<i>bold</i>**",
    "[fine](https://example.com/page)",
]

# Elements and attributes that no answer may put in the chat, whatever its Markdown says.
DOM_CHECK = """(() => {
  const root = document.getElementById('messages');
  const tags = [...root.querySelectorAll(
      'script, img, iframe, object, embed, svg, style, link, meta, form, input, video, audio, base')]
    .map(e => e.tagName);
  const attrs = [...root.querySelectorAll('*')].flatMap(e => [...e.attributes]
    .filter(a => /^on/i.test(a.name) || /^\\s*(javascript|data|vbscript):/i.test(a.value) || a.name === 'style')
    .map(a => e.tagName + ' ' + a.name + '=' + a.value));
  const links = [...root.querySelectorAll('a')].map(a => ({href: a.getAttribute('href'), rel: a.rel, target: a.target}));
  return {tags, attrs, links};
})()"""


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream, model_path) -> Iterator[ServeProcess]:
    """One keyless loopback server for the module: the hosted model at `upstream`, Gemma local."""
    home = hosted_home(tmp_path_factory, "web-home", upstream.url)
    with ServeProcess(home, "--keep-alive", "10m", env={"OPENAI_API_KEY": FAKE_KEY}).serving() as proc:
        yield proc


@pytest.fixture
def page(served) -> Iterator[Browser]:
    """A browser on the server's page, loaded; afterwards, nothing left the origin and nothing failed."""
    with Browser(served.url) as browser:
        browser.navigate(served.url + "/")
        yield browser
        assert browser.foreign_requests() == [], browser.log.blocked
        assert browser.csp_violations() == []
        assert browser.log.dialogs == []


def clean(browser: Browser) -> None:
    """No errors in the console, no uncaught exceptions, no failed loads, no CSP reports."""
    assert browser.log.errors == []
    assert browser.csp_violations() == []


def pick(browser: Browser, model: str) -> None:
    """Choose `model` in the picker once the page has listed it."""
    browser.wait_for(f"[...document.querySelectorAll('#model-select option')].some(o => o.value === {json.dumps(model)})",
                     timeout=WAIT_S, what=f"{model} in the model picker")
    browser.select("#model-select", model)


def ask(browser: Browser, prompt: str) -> int:
    """Send `prompt`; the number of answers in the chat before it."""
    before = browser.evaluate("document.querySelectorAll('#messages .message.assistant').length")
    browser.fill("#prompt", prompt)
    browser.click("#send")
    browser.wait_for(f"document.querySelectorAll('#messages .message.assistant').length > {before}",
                     timeout=WAIT_S, what="the answer's message")
    return before


def finished(browser: Browser) -> None:
    """Wait until the last answer has ended (its stats shown, the page ready for the next)."""
    browser.wait_for(f"{LAST_STATS}.trim() !== '' && {IDLE}", timeout=WAIT_S, what="the answer to end")


def open_tab(browser: Browser, view: str) -> None:
    browser.click(f"#tab-{view}")
    browser.wait_for(f"!document.getElementById('view-{view}').hidden", what=f"the {view} view")


def pieces(text: str, size: int) -> list[str]:
    """`text` in deltas of `size` characters: markup cut anywhere, as a stream cuts it."""
    return [text[i:i + size] for i in range(0, len(text), size)]


# --- chat, spending, screenshot --------------------------------------------------------------------


def test_a_streamed_answer_appears_and_the_spending_chart_shows_the_turn(page, upstream):
    answer = "Hello **world**, here is `code` and a list:\n\n- one\n- two\n"
    upstream.route("POST", "/v1/chat/completions",
                   openai_wire.chat_stream(pieces(answer, 4), usage=(1200, 30), reasoning=("Thinking it over.",)))
    pick(page, HOSTED)
    ask(page, "Say hello")
    finished(page)
    assert page.evaluate(f"{LAST}.querySelector('.content strong')?.textContent") == "world"
    assert page.evaluate(f"{LAST}.querySelectorAll('.content li').length") == 2
    assert "Hello world, here is code and a list" in page.evaluate(LAST_TEXT)
    assert page.evaluate(f"{LAST}.querySelector('details')?.textContent ?? ''").count("Thinking it over.") == 1
    assert page.evaluate(f"{LAST}.querySelector('details')?.open") is False  # reasoning comes folded
    stats = page.evaluate(LAST_STATS)
    assert "30" in stats and "$" in stats  # completion tokens and a cost
    sent = upstream.calls("/v1/chat/completions")[-1].body
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"} and sent["stream"] is True

    open_tab(page, "spending")
    # one bar per day, oldest first: today's, the last, holds the turn just made
    page.wait_for("(() => { const bars = document.querySelectorAll('#chart-days rect.bar');"
                  " return bars.length >= 7 && bars[bars.length - 1].getBBox().height > 0; })()",
                  timeout=WAIT_S, what="today's bar in the chart by day")
    page.wait_for(f"document.getElementById('chart-models').textContent.includes({json.dumps(HOSTED)})",
                  what="the model in the chart by model")
    shot = page.screenshot()
    width, height, _ = png_pixels(shot)
    assert (width, height) == (page.width, page.height)
    assert png_colours(shot) > 2  # a page drawn, not a blank one
    clean(page)


def test_the_local_model_streams_into_the_page_and_stop_ends_it(page):
    pick(page, LOCAL)
    ask(page, "Count from one to one hundred in words.")
    page.wait_for(f"{LAST_TEXT}.trim().length > 0", timeout=WAIT_S, what="Gemma's first words")
    page.click("#stop")
    page.wait_for(IDLE, timeout=WAIT_S, what="the page ready again after Stop")
    said = page.evaluate(LAST_TEXT)
    assert said.strip()
    assert page.evaluate(LAST_TEXT) == said  # nothing more arrives once stopped
    clean(page)


def test_a_past_conversation_opens_from_the_history_and_goes_on(page, upstream, served):
    upstream.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Blue ", "whales."], usage=(20, 2)))
    pick(page, HOSTED)
    ask(page, "Name the largest animal, kestrel-7.")
    finished(page)
    page.click("#new-chat")
    assert page.evaluate("document.querySelectorAll('#messages .message').length") == 0
    open_tab(page, "models")
    open_tab(page, "chat")  # the chat view lists the history again when shown
    button = "[...document.querySelectorAll('#sessions button')].find(b => b.textContent.includes('kestrel-7'))"
    page.wait_for(f"!!{button}", timeout=WAIT_S, what="the conversation in the history list")
    page.evaluate(f"{button}.click()")
    page.wait_for(f"{LAST_TEXT}.includes('Blue whales.')", timeout=WAIT_S, what="the past answer shown again")

    upstream.route("POST", "/v1/chat/completions", openai_wire.chat_stream(["Yes."], usage=(30, 1)))
    ask(page, "Are they mammals?")
    finished(page)
    sent = upstream.calls("/v1/chat/completions")[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent[-3:]] == [
        ("user", "Name the largest animal, kestrel-7."), ("assistant", "Blue whales."), ("user", "Are they mammals?")]
    # the history has one conversation of two turns, not a second one
    listed = httpx.get(f"{served.url}/api/history", params={"q": "kestrel"}, timeout=WAIT_S,
                       headers={"authorization": f"Bearer {served.token}"}).json()["conversations"]
    assert [c["turns"] for c in listed] == [2]
    clean(page)


def test_the_models_view_filters_the_registry_and_unloads_a_loaded_model(page):
    pick(page, LOCAL)
    ask(page, "Hi")
    page.wait_for(f"{LAST_TEXT}.trim().length > 0 || {IDLE}", timeout=WAIT_S, what="Gemma answering")
    page.click("#stop")
    page.wait_for(IDLE, timeout=WAIT_S, what="the page ready again")

    open_tab(page, "models")
    loaded = "document.getElementById('loaded-table').tBodies[0].textContent"
    page.wait_for(f"{loaded}.includes({json.dumps(LOCAL)})", timeout=WAIT_S, what="Gemma among the loaded models")
    rows = "[...document.querySelectorAll('#models-table tbody tr')]"
    page.wait_for(f"{rows}.length > 1", timeout=WAIT_S, what="the registry's models")
    page.click("#filter-local")
    page.wait_for(f"{rows}.length > 0 && {rows}.every(r => r.cells[5]?.textContent === 'yes')",
                  timeout=WAIT_S, what="only local models once 'local' is ticked")
    page.evaluate(f"document.querySelector('#loaded-table button.unload[data-model=\"' + {json.dumps(LOCAL)} + '\"]').click()")
    page.wait_for(f"{loaded}.includes('no local model is loaded')", timeout=WAIT_S, what="the table empty after Unload")
    clean(page)


# --- hostile answers ---------------------------------------------------------------------------------


def test_hostile_markup_in_answers_reasoning_and_prompts_renders_as_text_and_runs_nothing(page, upstream):
    answer = "\n\n".join(HOSTILE)
    upstream.route("POST", "/v1/chat/completions",
                   openai_wire.chat_stream(pieces(answer, 5), usage=(50, 50), reasoning=tuple(HOSTILE[:2])))
    pick(page, HOSTED)
    ask(page, "<img src=x onerror=\"window.__pwned='prompt'\"> <script>window.__pwned='prompt'</script>")
    finished(page)
    shown = page.evaluate(LAST_TEXT)
    assert "<script>window.__pwned = 'script'</script>" in shown  # the markup, as text
    assert "onerror=" in shown and "<iframe srcdoc=" in shown
    assert "<b>in code</b>" in shown
    assert page.evaluate(f"{LAST}.querySelector('.content code')?.textContent") == "<b>in code</b>"
    found = page.evaluate(DOM_CHECK)
    assert found["tags"] == [] and found["attrs"] == []
    # only the http(s) link is a link, opened apart from the page
    assert found["links"] == [{"href": "https://example.com/page", "rel": "noopener noreferrer", "target": "_blank"}]
    assert page.evaluate(f"typeof {PWNED}") == "undefined"
    assert page.evaluate("getComputedStyle(document.body).display") != "none"
    assert not any(url.rstrip("/").endswith("/x") for url in page.log.requests)  # no <img src=x> was made
    clean(page)


def test_a_megabyte_of_markdown_streams_in_and_the_page_stays_responsive(page, upstream):
    block = ("## Part {i}\n\nSome **bold**, _emphasis_, `code <i>` and a [link](https://example.com/{i}).\n\n"
             "- one <img src=x onerror=alert(1)>\n- two\n\n```\n<script>window.__pwned = {i}</script>\n```\n\n")
    blocks: list[str] = []
    while sum(map(len, blocks)) < 1_000_000:
        blocks.append(block.format(i=len(blocks)))
    answer = "".join(blocks)
    deltas = pieces(answer, 1000)
    release = threading.Event()
    upstream.route("POST", "/v1/chat/completions",
                   openai_wire.chat_stream(deltas, usage=(10, len(deltas)), hold=(len(deltas) // 2, release)))
    pick(page, HOSTED)
    try:
        ask(page, "Write a lot.")
        page.wait_for(f"{LAST_TEXT}.includes('Part {len(blocks) // 4}')", timeout=WAIT_S, what="half the answer")
        assert page.evaluate("1 + 1", timeout=WAIT_S) == 2  # the page answers while the stream runs
    finally:
        release.set()
    finished(page)
    assert page.evaluate("1 + 1", timeout=WAIT_S) == 2
    assert page.evaluate(f"{LAST_TEXT}.includes('Part {len(blocks) - 1}')")
    assert page.evaluate(f"{LAST}.querySelectorAll('.content h2').length") == len(blocks)
    assert page.evaluate(f"typeof {PWNED}") == "undefined"
    found = page.evaluate(DOM_CHECK)
    assert found["tags"] == [] and found["attrs"] == []
    assert all(link["href"].startswith("https://example.com/") for link in found["links"])
    # the page scrolls and takes input after it
    page.fill("#prompt", "still here")
    assert page.evaluate("document.getElementById('prompt').value") == "still here"
    clean(page)


# --- keys --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, upstream) -> Iterator[ServeProcess]:
    home = hosted_home(tmp_path_factory, "web-keyed", upstream.url)
    with ServeProcess(home, "--api-key", KEY, env={"OPENAI_API_KEY": FAKE_KEY}).serving() as proc:
        yield proc


def test_a_server_with_keys_asks_for_one_and_the_page_keeps_it_for_the_tab(keyed):
    with Browser(keyed.url) as browser:
        browser.navigate(keyed.url + "/")
        browser.wait_for("!document.getElementById('key-form').hidden", timeout=WAIT_S, what="the key form")
        assert browser.evaluate("document.querySelectorAll('#model-select option').length") == 0
        browser.fill("#key", "wrong-key-0123456789abcdef")
        browser.evaluate("document.getElementById('key-form').requestSubmit()")
        browser.wait_for("document.getElementById('key-note').textContent.trim() !== ''"
                         " && !document.getElementById('key-form').hidden", timeout=WAIT_S, what="the wrong key refused")
        browser.fill("#key", KEY)
        browser.evaluate("document.getElementById('key-form').requestSubmit()")
        pick(browser, HOSTED)
        assert browser.evaluate("document.getElementById('key-form').hidden") is True
        browser.navigate(keyed.url + "/")  # the same tab: the key is still there
        pick(browser, HOSTED)
        assert browser.evaluate("document.getElementById('key-form').hidden") is True
        assert KEY not in browser.evaluate("document.documentElement.outerHTML")
        assert browser.foreign_requests() == []
        # the 401s the page met before it had the key are the only errors it logged
        assert all("401" in error for error in browser.log.errors), browser.log.errors
        assert browser.csp_violations() == []

