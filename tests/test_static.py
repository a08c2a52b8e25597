"""The browser client's modules, served at ``{base_url}http_over_websocket/static/``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from jupyter_http_over_ws.handlers.static import static_root

JS_SRC = Path(__file__).resolve().parents[1] / "js" / "src"


@pytest.fixture
def jp_base_url():
    """Serve under a non-root base_url, as JupyterHub does."""
    return "/user/alice/"


def static_url(port: int, name: str) -> str:
    return f"http://127.0.0.1:{port}/user/alice/http_over_websocket/static/{name}"


async def test_every_module_is_served_without_credentials_to_any_origin(
    jp_serverapp, http_server, jp_http_port
):
    client = AsyncHTTPClient()
    names = sorted(p.name for p in JS_SRC.glob("*.js"))
    assert "index.js" in names
    for name in names:
        # No token, no cookie, a foreign origin: public code, importable cross-origin.
        response = await client.fetch(
            static_url(jp_http_port, name), headers={"Origin": "http://elsewhere.example"}
        )
        assert response.code == 200, name
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Set-Cookie" not in response.headers
        assert response.body == (JS_SRC / name).read_bytes()


async def test_relative_imports_of_the_entry_point_resolve(jp_serverapp, http_server, jp_http_port):
    client = AsyncHTTPClient()
    seen: set[str] = set()
    todo = ["index.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = (await client.fetch(static_url(jp_http_port, name))).body.decode()
        todo.extend(re.findall(r'from "\./([\w.-]+\.js)"', body))
    assert {"index.js", "tunnel.js", "fetch.js", "websocket.js", "codec.js"} <= seen


async def test_preflight_and_private_network_preflight(jp_serverapp, http_server, jp_http_port):
    response = await AsyncHTTPClient().fetch(
        static_url(jp_http_port, "index.js"),
        method="OPTIONS",
        headers={
            "Origin": "https://page.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


async def test_nothing_outside_the_client_is_served(jp_serverapp, http_server, jp_http_port):
    client = AsyncHTTPClient()
    for name in ("missing.js", "../handlers/static.py", "..%2F..%2Fpyproject.toml"):
        with pytest.raises(HTTPClientError) as info:
            await client.fetch(static_url(jp_http_port, name))
        assert info.value.code in (403, 404), name


def test_an_editable_install_serves_the_repository_copy():
    # In this checkout there is no packaged copy, so the handler falls back to js/src.
    assert static_root() == JS_SRC


@pytest.mark.slow
def test_the_wheel_ships_the_client_inside_the_package(tmp_path):
    import os
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(repo), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        timeout=110,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.rsplit("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if name.startswith("jupyter_http_over_ws/static/")
        }
    expected = {p.name: p.read_bytes() for p in JS_SRC.glob("*.js")}
    assert shipped == expected

    # Installed from the wheel, the handler serves the packaged copy.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=60,
    )
    probe = "from jupyter_http_over_ws.handlers.static import static_root; print(static_root())"
    root = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout.strip()
    assert Path(root) == target / "jupyter_http_over_ws" / "static"


# The server's own static route (jupyter_server's FileFindHandler) is the reference.
SERVER_STATIC = "static/favicon.ico"


def server_url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}/user/alice/{path}"


@pytest.fixture
def server_logs(jp_serverapp) -> Iterator[list[logging.LogRecord]]:
    """Every record the server's loggers write during the test (at DEBUG and up)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.DEBUG)
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(keep)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(keep)


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "0.0.0.0:{port}"],
)
async def test_a_foreign_host_is_refused_as_by_the_servers_own_static_route(
    jp_serverapp, http_server, jp_http_port, host
):
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    client = AsyncHTTPClient()
    headers = {"Host": host.format(port=jp_http_port)}
    own = await client.fetch(
        server_url(jp_http_port, SERVER_STATIC), headers=headers, raise_error=False
    )
    assert own.code == 403
    for method in ("GET", "HEAD", "OPTIONS"):
        ours = await client.fetch(
            static_url(jp_http_port, "index.js"), method=method, headers=headers, raise_error=False
        )
        assert ours.code == own.code, method
        assert JS_SRC.joinpath("index.js").read_bytes() not in ours.body
        assert "Set-Cookie" not in ours.headers


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
async def test_a_local_host_is_served(jp_serverapp, http_server, jp_http_port, host):
    client = AsyncHTTPClient()
    headers = {"Host": host.format(port=jp_http_port)}
    own = await client.fetch(server_url(jp_http_port, SERVER_STATIC), headers=headers)
    ours = await client.fetch(static_url(jp_http_port, "index.js"), headers=headers)
    assert own.code == ours.code == 200
    assert ours.body == (JS_SRC / "index.js").read_bytes()
    assert "Set-Cookie" not in ours.headers


async def test_the_host_check_follows_allow_remote_access(jp_serverapp, http_server, jp_http_port):
    jp_serverapp.web_app.settings["allow_remote_access"] = True
    try:
        response = await AsyncHTTPClient().fetch(
            static_url(jp_http_port, "index.js"), headers={"Host": "jupyter.example"}
        )
    finally:
        jp_serverapp.web_app.settings["allow_remote_access"] = False
    assert response.code == 200


INVALID = [
    "index.js%00.py",
    "index.js%00",
    "%00",
    "%00/index.js",
    "..%00/index.js",
    "%ff.js",
    "%C0%AE%C0%AE/pyproject.toml",
    "%EF%BC%8E%EF%BC%8E/pyproject.toml",
    "..%5c..%5cpyproject.toml",
    "..;/pyproject.toml",
    "a" * 300 + ".js",
    "a/" * 2000 + "index.js",
]


async def test_an_invalid_path_is_a_4xx_without_a_traceback(
    jp_serverapp, http_server, jp_http_port, server_logs
):
    client = AsyncHTTPClient()
    for name in INVALID:
        for method in ("GET", "HEAD"):
            response = await client.fetch(
                static_url(jp_http_port, name), method=method, raise_error=False
            )
            assert 400 <= response.code < 500, (name, method, response.code)
            assert "Set-Cookie" not in response.headers
    failures = [
        f"{r.levelname} {r.getMessage()}"
        for r in server_logs
        if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
    ]
    assert failures == []
    # And the route still serves.
    ok = await client.fetch(static_url(jp_http_port, "index.js"))
    assert ok.body == (JS_SRC / "index.js").read_bytes()
