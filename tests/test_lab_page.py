"""``jupyter http-over-ws lab``'s page and page server, without a browser.

The installed JupyterLab (the test extra brings it with notebook 7) is rendered for a
page on another origin; the page server serves it and nothing else. The browser test is
tests/test_browser_lab.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyterlab
import pytest
from support.browser import jupyter_server
from support.ports import free_port

from jupyter_http_over_ws import cli
from jupyter_http_over_ws.lab.checks import check_lab_version, version_skew
from jupyter_http_over_ws.lab.command import lab_url, split_token
from jupyter_http_over_ws.lab.export import ExportError, export
from jupyter_http_over_ws.lab.frontend import EXTENSION_DIR, SERVICE_WORKER, LabFrontend
from jupyter_http_over_ws.lab.pageserver import LabPageServer, content_security_policy

ORIGIN = "http://localhost:8890"
OURS = json.loads((EXTENSION_DIR / "package.json").read_text())


@pytest.fixture(scope="module")
def frontend() -> LabFrontend:
    return LabFrontend.find()


@pytest.fixture(scope="module")
def page_server(frontend: LabFrontend) -> Iterator[LabPageServer]:
    page = LabPageServer(
        frontend, "127.0.0.1", 0, server_url="http://127.0.0.1:8888/", origin_host="localhost"
    )
    with page as server:
        yield server


def page_config(html: str) -> Any:
    match = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html
    )
    assert match, html[:500]
    return json.loads(match.group(1))


def get(server: LabPageServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_page_disables_jupyterlabs_settings_provider_and_loads_ours(
    frontend: LabFrontend,
) -> None:
    config = page_config(frontend.render(ORIGIN))
    assert "@jupyterlab/services-extension:server-settings" in config["disabledExtensions"]
    assert "@jupyterlab/services-extension:default-drive" in config["disabledExtensions"]
    ours = [e for e in config["federated_extensions"] if e["name"] == OURS["name"]]
    assert len(ours) == 1
    assert (EXTENSION_DIR / ours[0]["load"]).is_file()
    assert ours[0]["extension"] == "./extension"


def test_the_page_is_on_its_own_origin_and_holds_no_server_or_token(
    frontend: LabFrontend,
) -> None:
    html = frontend.render(ORIGIN)
    config = page_config(html)
    assert config["baseUrl"] == ORIGIN + "/"
    assert config["fullStaticUrl"] == ORIGIN + "/static/lab"
    assert config["fullLabextensionsUrl"] == ORIGIN + "/lab/extensions"
    assert "token" not in config
    assert config["appVersion"] == frontend.version
    # JupyterLab's own bundle, by the name its build gave it.
    script = re.search(r'src="http://localhost:8890/static/lab/(main\.[0-9a-f]+\.js)', html)
    assert script is not None
    assert (frontend.static_dir / script.group(1)).is_file()
    assert 'href="http://localhost:8890/static/favicons/favicon.ico"' in html


def test_the_installed_federated_extensions_are_listed(frontend: LabFrontend) -> None:
    from jupyterlab_server.config import get_federated_extensions

    installed = get_federated_extensions([str(p) for p in frontend.labextensions_path])
    listed = {e["name"] for e in page_config(frontend.render(ORIGIN))["federated_extensions"]}
    assert listed == {*installed, OURS["name"]}
    assert set(frontend.extension_dirs()) == listed


@pytest.mark.parametrize("path", ["/lab", "/lab/tree/a%20b.ipynb", "/lab/workspaces/w"])
def test_the_page_server_answers_the_page_under_lab(page_server: LabPageServer, path: str) -> None:
    status, headers, body = get(page_server, path)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert page_config(body.decode())["baseUrl"] == page_server.origin + "/"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    # Scripts from the page's origin, the one server it is for and the page's own inline
    # script (by its hash), nowhere else.
    policy = dict(p.strip().split(" ", 1) for p in headers["Content-Security-Policy"].split(";"))
    inline = re.findall(r"<script>(.*?)</script>", body.decode(), re.S)
    assert len(inline) == 1
    assert policy["script-src"].split() == [
        "'self'",
        "'unsafe-eval'",
        "http://127.0.0.1:8888",
        f"'sha256-{sha256_base64(inline[0])}'",
    ]
    assert policy["object-src"] == "'none'"
    # No base-uri: JupyterLab's HTML viewer resolves a file's relative links with <base>.
    assert "base-uri" not in policy


def sha256_base64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_policy_hashes_the_inline_scripts_a_browser_runs_and_only_those() -> None:
    page = (
        '<script id="c" type="application/json">{"a": 1}</script>'
        '<script src="/static/lab/main.js"></script>'
        "<script>run(1)</script>"
        '<script type="text/javascript">run(2)</script>'
        '<script type="module">run(3)</script>'
    )
    script_src = content_security_policy(page, "https://server.example:8443/base/").split(";")[0]
    assert script_src.split()[1:] == [
        "'self'",
        "'unsafe-eval'",
        "https://server.example:8443",
        *(f"'sha256-{sha256_base64(f'run({n})')}'" for n in (1, 2, 3)),
    ]


def test_the_page_server_serves_jupyterlabs_files_ours_and_the_themes(
    page_server: LabPageServer, frontend: LabFrontend
) -> None:
    load = OURS["jupyterlab"]["_build"]["load"]
    status, headers, body = get(page_server, f"/lab/extensions/{OURS['name']}/{load}")
    assert (status, headers["Content-Type"]) == (200, "text/javascript")
    assert body == (EXTENSION_DIR / load).read_bytes()
    main = next(frontend.static_dir.glob("main.*.js"))
    status, headers, body = get(page_server, f"/static/lab/{main.name}")
    assert (status, len(body)) == (200, main.stat().st_size)
    css = "/lab/api/themes/@jupyterlab/theme-light-extension/index.css"
    status, headers, _ = get(page_server, css)
    assert (status, headers["Content-Type"]) == (200, "text/css")
    status, headers, body = get(page_server, f"/static/lab/{main.name}", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(main.stat().st_size))
    # The Service Worker, at the root (its scope is the whole origin); its files are its own.
    status, headers, body = get(page_server, "/hows-sw.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript")
    assert body == SERVICE_WORKER.read_bytes()
    assert get(page_server, "/hows-files/data.txt")[0] == 404


def test_the_root_redirects_to_the_page(page_server: LabPageServer) -> None:
    status, headers, _ = get(page_server, "/")
    assert (status, headers["Location"]) == (302, "/lab")


@pytest.mark.parametrize(
    "path",
    [
        "/api/contents",
        "/files/a.txt",
        "/static/lab/../../../../../../etc/passwd",
        "/static/lab/%2e%2e/%2e%2e/settings/page_config.json",
        "/static/lab/..%2findex.html",
        "/static/lab/",
        "/static/lab/nothing.js",
        "/lab/extensions/not-installed/static/x.js",
        f"/lab/extensions/{OURS['name']}/../../../../etc/passwd",
        "/lab/api/themes/missing.css",
        "/lab/api/settings",
        "/static/favicons/../../__init__.py",
    ],
)
def test_the_page_server_answers_nothing_else(page_server: LabPageServer, path: str) -> None:
    status, _, body = get(page_server, path)
    assert status == 404, body[:200]


@pytest.mark.parametrize(
    ("url", "server", "token"),
    [
        ("http://127.0.0.1:8888/lab?token=abc", "http://127.0.0.1:8888/", "abc"),
        ("http://127.0.0.1:8888/tree?token=a%2Bb", "http://127.0.0.1:8888/", "a+b"),
        (
            "https://hub.example/user/ann/lab/tree/x.ipynb?token=t",
            "https://hub.example/user/ann/",
            "t",
        ),
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888/", None),
        ("http://h:1/base/?x=1&token=t", "http://h:1/base/", "t"),
    ],
)
def test_split_token(url: str, server: str, token: str | None) -> None:
    assert split_token(url) == (server, token)


@pytest.mark.parametrize("url", ["127.0.0.1:8888", "file:///tmp", "ws://h/"])
def test_split_token_refuses_what_is_not_a_server_url(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        split_token(url)


def test_the_lab_url_carries_server_and_token_in_the_fragment() -> None:
    url = lab_url("http://localhost:8890", "http://127.0.0.1:8888/", "a&b=c")
    assert url == "http://localhost:8890/lab#server=http://127.0.0.1:8888/&token=a%26b%3Dc"
    at = lab_url("http://localhost:8890", "http://127.0.0.1:8888/", "t", "/lab/tree/a%20b?reset")
    assert at == "http://localhost:8890/lab/tree/a%20b?reset#server=http://127.0.0.1:8888/&token=t"


def _lab_command(url: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_http_over_ws.cli", "lab", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _read_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"the command ended before {marker!r}:\n{seen}")


@pytest.mark.parametrize("allowed", [True, False])
def test_the_lab_command_serves_the_page_and_checks_the_server(
    tmp_path: Path, allowed: bool
) -> None:
    page_port = free_port()
    origin = f"http://localhost:{page_port}"
    token = secrets.token_hex(8)
    port = free_port()
    allow = origin if allowed else "http://elsewhere.example"
    with jupyter_server(
        tmp_path / "jupyter", port=port, token=token, root_dir=tmp_path, allow_origin=allow
    ):
        env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
        command = _lab_command(f"http://127.0.0.1:{port}/lab?token={token}", page_port, env)
        try:
            printed = _read_until(command, "Press Ctrl-C")
            with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/lab", timeout=10) as r:
                assert page_config(r.read().decode())["baseUrl"] == origin + "/"
            # The server's JupyterLab version, read from its own page, against an older page.
            skew = asyncio.run(check_lab_version(f"http://127.0.0.1:{port}/", token, "3.6.0"))
            assert skew is not None
            assert f"The server's JupyterLab is {jupyterlab.__version__}" in skew
        finally:
            command.send_signal(signal.SIGINT)
            rest, _ = command.communicate(timeout=20)
    assert f"{origin}/lab#server=http://127.0.0.1:{port}/&token={token}" in printed
    refused = f"--ServerApp.allow_origin='{origin}'"
    assert (refused in printed) is not allowed, printed
    assert "JupyterLab is" not in printed  # the same JupyterLab on both sides
    assert "Stopping." in rest
    assert command.returncode == 0


def test_the_export_is_the_page_and_its_files_for_a_static_host(
    frontend: LabFrontend, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    index = export(
        frontend, site, origin="https://app.example.org/", server_url="http://127.0.0.1:8888/"
    )
    assert index == site / "lab" / "index.html"
    page = index.read_text()
    assert page_config(page)["baseUrl"] == "https://app.example.org/"
    assert page_config(page)["fullStaticUrl"] == "https://app.example.org/static/lab"
    # The policy, as a <meta> before the first script; the same page answers missing paths.
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert meta is not None
    assert meta.start() < page.index("<script")
    assert html.unescape(meta.group(1)) == content_security_policy(
        page[: meta.start()] + page[meta.end() :], "http://127.0.0.1:8888/"
    )
    assert "'sha256-" in html.unescape(meta.group(1))
    assert (site / "404.html").read_text() == page
    # Every file the page server would answer is there, at its URL's path; not the template.
    for prefix, source in frontend.asset_dirs().items():
        copied = site.joinpath(*prefix.strip("/").split("/"))
        expected = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
        if prefix == "/static/lab":
            expected.remove(Path("index.html"))
        assert {p.relative_to(copied) for p in copied.rglob("*") if p.is_file()} == expected
    assert not (site / "static" / "lab" / "index.html").exists()
    assert (site / "hows-sw.js").read_bytes() == SERVICE_WORKER.read_bytes()
    ours = site / "lab" / "extensions" / OURS["name"] / OURS["jupyterlab"]["_build"]["load"]
    assert ours.is_file()


def test_the_export_overwrites_nothing_and_wants_an_origin(
    frontend: LabFrontend, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty directory"):
        export(frontend, tmp_path, origin="https://a.example", server_url="http://b.example/")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    for origin in ("app.example.org", "ftp://a.example", "https://a.example/sub/"):
        with pytest.raises(ExportError):
            export(frontend, tmp_path / "new", origin=origin, server_url="http://b.example/")
    assert not (tmp_path / "new").exists()


def test_the_lab_command_exports_and_prints_the_url_to_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there: the command warns, and still exports
    server = f"http://127.0.0.1:{port}/"
    site = tmp_path / "site"
    argv = ["lab", f"{server}lab?token=s3cret", "--export", str(site)]
    assert cli.main([*argv, "--origin", "https://app.example.org"]) == 0
    out = capsys.readouterr().out
    assert f"https://app.example.org/lab/#server={server}&token=s3cret" in out
    assert f"Cannot reach {server}" in out
    assert not [p for p in site.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    # Without --origin there is nothing to render the page for.
    assert cli.main([*argv[:-1], str(tmp_path / "other")]) == 1
    assert "--export needs --origin" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    # A public page on plain http cannot reach this machine: the command says so.
    assert cli.main([*argv[:-1], str(tmp_path / "plain"), "--origin", "http://a.example"]) == 0
    assert "serve it over https://" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("page", "server", "warned"),
    [
        ("4.6.6", "4.6.0", False),
        ("4.6.6", "4.6.6", False),
        ("4.6.6", "4.4.1", True),
        ("4.4.0", "5.0.0a1", True),
        ("4.6.6", "not a version", False),
    ],
)
def test_version_skew(page: str, server: str, warned: bool) -> None:
    skew = version_skew(page, server)
    assert (skew is not None) is warned
    if skew is not None:
        assert f"The server's JupyterLab is {server}, this page's is {page}" in skew
