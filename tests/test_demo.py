"""The demo command's pieces that need no browser (the browser test drives the whole)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from jupyter_http_over_ws.cli import main
from jupyter_http_over_ws.demo import (
    CONFIG_PATH,
    PAGE_DIR,
    PageServer,
    content_security_policy,
    page_url,
    server_command,
)


def test_page_url_carries_server_and_token_in_the_fragment_only() -> None:
    url = page_url("http://localhost:9999", "http://127.0.0.1:8888/", "s3cr/t+&=")
    parts = urlsplit(url)
    # Browsers send neither the fragment nor anything after '#' to any server.
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "http",
        "localhost:9999",
        "/",
        "",
    )
    fragment = parse_qs(parts.fragment)
    assert fragment == {"server": ["http://127.0.0.1:8888/"], "token": ["s3cr/t+&="]}


def test_server_command_enables_the_extension_and_allows_only_the_page() -> None:
    command = server_command(
        port=8123, token="t", root_dir="/srv", allow_origin="http://localhost:9"
    )
    assert "--ServerApp.jpserver_extensions=jupyter_http_over_ws=True" in command
    assert "--ServerApp.allow_origin=http://localhost:9" in command
    assert "--IdentityProvider.token=t" in command
    assert "--port=8123" in command
    assert "--ServerApp.port_retries=0" in command
    assert not any(arg.startswith("--ServerApp.allow_origin_pat") for arg in command)


def test_page_server_serves_the_page_as_modules_uncached() -> None:
    with PageServer(PAGE_DIR) as page:
        base = f"http://127.0.0.1:{page.port}/"
        with urllib.request.urlopen(base + "app.js", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
            assert r.headers["Cache-Control"] == "no-store"
            assert b"tunnel.fetch" in r.read()
        with urllib.request.urlopen(base, timeout=10) as r:
            assert b'<script type="module" src="app.js">' in r.read()


def test_demo_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--root-dir" in out
    assert "--open-browser" in out


def test_the_demo_page_server_names_its_one_server_in_config_and_policy() -> None:
    server = "http://127.0.0.1:8123/"
    with PageServer(PAGE_DIR, server_url=server) as page:
        base = f"http://127.0.0.1:{page.port}"
        with urllib.request.urlopen(base + CONFIG_PATH, timeout=10) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert r.headers["Cache-Control"] == "no-store"
            assert json.loads(r.read()) == {"server": server}
        for path in ("/", "/app.js", CONFIG_PATH):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                policy = r.headers["Content-Security-Policy"]
                assert policy == content_security_policy(server), path
        # A missing file is refused with the same policy.
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/nothing.js", timeout=10)
        assert missing.value.headers["Content-Security-Policy"] == policy


def test_the_policy_allows_scripts_from_the_page_and_the_server_only() -> None:
    policy = content_security_policy("http://127.0.0.1:8123/user/alice/")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    # No data:, no inline script, no other host: the browser enforces what the page checks.
    assert directives["script-src"].split() == ["'self'", "http://127.0.0.1:8123"]
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"


@pytest.mark.parametrize(
    "server", ["data:text/javascript,alert(1)", "javascript:alert(1)", "ws://127.0.0.1:1/", ""]
)
def test_the_demo_page_server_takes_only_an_http_server(server: str) -> None:
    with pytest.raises(ValueError, match=r"http\(s\) URL"):
        PageServer(PAGE_DIR, server_url=server)


def test_a_page_server_without_a_server_has_no_config_and_no_policy() -> None:
    # The browser tests' page servers: plain static files, as before.
    with PageServer(PAGE_DIR) as page:
        with urllib.request.urlopen(f"http://127.0.0.1:{page.port}/", timeout=10) as r:
            assert "Content-Security-Policy" not in r.headers
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{page.port}{CONFIG_PATH}", timeout=10)
        assert missing.value.code == 404


def test_the_page_imports_code_only_from_the_checked_server() -> None:
    app = (PAGE_DIR / "app.js").read_text()
    # One dynamic import, of the URL checkServer returned; no other way to load code.
    assert re.findall(r"\bimport\(([^)]*)\)", app) == [
        "`${trusted}http_over_websocket/static/index.js`"
    ]
    assert "trusted = checkServer(server, await allowedServer());" in app
    for loader in ("eval(", "new Function", 'createElement("script")', "innerHTML"):
        assert loader not in app, loader
