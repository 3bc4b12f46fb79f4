"""The page of `modelctl serve` over HTTP, from a real server process with a key: `/` and the
files under `/static/` need no key and carry the security headers; every file the page names is
served with its type; nothing but the page's own files can be reached under `/static/`; the whole
page stays small; the files are in the package data. (The page in a browser: test_web_page.py.)"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import httpx
import pytest
from serve_clients import connect, read_until_closed, response_of
from serve_process import ServeProcess

from modelctl.config import loads_toml
from modelctl.serve import page

KEY = "web-page-test-key-0123456789"
WEB = Path(page.__file__).with_name("web")
ROOT = Path(__file__).resolve().parents[1]
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
PAGE_BUDGET = 200 * 1024  # HTML + JS + CSS, the target


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with ServeProcess(tmp_path_factory.mktemp("web-home"), "--api-key", KEY).serving() as proc:
        yield proc


@pytest.fixture(scope="module")
def client(served):
    with httpx.Client(base_url=served.url, timeout=60) as http:
        yield http


def linked(text: str) -> set[str]:
    """The files an HTML or JS file names: `/static/NAME` in attributes, `./NAME` in imports."""
    return set(re.findall(r'"/static/([^"]+)"', text)) | set(re.findall(r'from "\./([^"]+)"', text))


def the_page(client: httpx.Client) -> dict[str, httpx.Response]:
    """`/` and every file it names, directly or through its modules' imports."""
    got = {"/": client.get("/")}
    todo = linked(got["/"].text)
    while todo:
        name = todo.pop()
        got[name] = client.get(f"/static/{name}")
        todo |= linked(got[name].text) - got.keys()
    return got


def check_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert "access-control-allow-origin" not in response.headers


def test_the_page_and_every_file_it_names_are_served_without_a_key(client):
    got = the_page(client)
    assert {"/", "app.js", "app.css", "markdown.js", "chat.js", "models.js", "spending.js"} <= got.keys()
    for name, response in got.items():
        assert response.status_code == 200, name
        check_headers(response)
        suffix = ".html" if name == "/" else Path(name).suffix
        assert response.headers["content-type"].split(";")[0] == TYPES[suffix], name
        assert response.content == (WEB / ("index.html" if name == "/" else name)).read_bytes()
    assert client.get("/v1/models").status_code == 401  # the data behind it still needs the key
    assert client.get("/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_page_is_small_and_loads_nothing_from_elsewhere(client):
    got = the_page(client)
    total = sum(len(r.content) for r in got.values())
    assert total < PAGE_BUDGET, f"the page is {total} bytes"
    assert got.keys() - {"/"} == {p.name for p in WEB.iterdir() if p.suffix in TYPES and p.name != "index.html"}
    for name, response in got.items():
        assert not re.search(r'(?:src|href)="(?!/static/|data:)|https?://(?!www\.w3\.org/2000/svg")|@import|\burl\(',
                             response.text), name
        assert "innerHTML" not in response.text and "insertAdjacentHTML" not in response.text, name
        assert "eval(" not in response.text and "new Function" not in response.text, name


@pytest.mark.parametrize("path", [
    "/static/../page.py", "/static/../app.py", "/static/%2e%2e/page.py", "/static/..%2fpage.py",
    "/static/..%5cpage.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/./app.js/../../page.py",
    "/static/web/app.js", "/static/app.js/", "/static/", "/static/nothing.js", "/static/index.html%00.py",
    "/static/APP.JS",
])
def test_no_path_under_static_reaches_anything_but_the_pages_files(served, path):
    with connect(served.url) as sock:  # a raw request: no client tidies the path first
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        status, body = response_of(read_until_closed(sock))
    assert status == 404, path
    assert b'"code":"not_found"' in body and b"import" not in body and b"root:" not in body


def test_an_unchanged_file_is_a_304_and_other_methods_are_refused(client):
    first = client.get("/static/app.js")
    again = client.get("/static/app.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    check_headers(again)
    assert client.get("/static/app.js", headers={"if-none-match": '"other"'}).status_code == 200
    assert client.head("/").status_code == 200
    assert client.post("/", content=b"x").status_code == 405
    assert client.post("/static/app.js", content=b"x").status_code == 405


def test_only_the_pages_kinds_of_file_are_served(tmp_path):
    (tmp_path / "index.html").write_text("<p>")
    (tmp_path / "x.js").write_text("1")
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "sub.js").mkdir()
    found = page.assets(tmp_path)
    assert sorted(found) == ["index.html", "x.js"]
    assert found["x.js"].media_type.startswith("text/javascript") and found["x.js"].body == b"1"


def test_the_pages_files_are_package_data():
    config = loads_toml((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["modelctl"]
    package = ROOT / "modelctl"
    for path in WEB.iterdir():
        if path.suffix in TYPES:
            name = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
