"""The demo command's pieces that need no browser (the browser test drives the whole)."""

from __future__ import annotations

import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from jupyter_http_over_ws.cli import main
from jupyter_http_over_ws.demo import PAGE_DIR, PageServer, page_url, server_command


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
