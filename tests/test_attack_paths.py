"""Path confusion under a JupyterHub-style ``base_url``, tunnelled and relayed vs directly.

Behind JupyterHub a single-user server lives at ``/user/alice/``; everything outside it
belongs to someone else (the hub, other users). A tunnelled request's ``path`` and a
``proxied_ws`` path are relative to ``base_url`` and must never leave it, however they
are spelled: encoded dots and slashes, backslashes, ``;``, NUL, overlong UTF-8,
full-width characters. Each path gets either the status the same request gets directly
(with the tunnel's encoding) or a 400 where the direct request is refused too; nothing
ever reaches a handler outside ``base_url``.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

import pytest
from support.attack import OUTSIDE_PATH, Outside, debug_logs, raw_request, register_mirror
from support.echo_socket import EchoSocket, register_echo_socket

from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.protocol import parse_reply

pytestmark = pytest.mark.timeout(120)

BASE_URL = "/user/alice/"
OUTSIDE = OUTSIDE_PATH.lstrip("/")

#: Spellings of "leave base_url" and of odd names, relative to ``base_url``.
PATHS = [
    f"/../../{OUTSIDE}",
    f"/../{OUTSIDE}",
    f"../../{OUTSIDE}",
    f"/%2e%2e/%2e%2e/{OUTSIDE}",
    f"/%2E%2E/%2E%2E/{OUTSIDE}",
    f"/.%2e/.%2e/{OUTSIDE}",
    f"/..%2f..%2f{OUTSIDE}",
    f"/%2e%2e%2f%2e%2e%2f{OUTSIDE}",
    f"/api/contents/..%2f..%2f..%2f{OUTSIDE}",
    f"/%252e%252e/%252e%252e/{OUTSIDE}",
    f"/..\\..\\{OUTSIDE}",
    f"/%5c..%5c..%5c{OUTSIDE}",
    f"/..%5c..%5c{OUTSIDE}",
    f"/..;/..;/{OUTSIDE}",
    f"/;/../../{OUTSIDE}",
    f"/api/contents;/../../../{OUTSIDE}",
    f"/%c0%ae%c0%ae/%c0%ae%c0%ae/{OUTSIDE}",
    f"/%e0%80%ae%e0%80%ae/{OUTSIDE}",
    f"/\uff0e\uff0e/\uff0e\uff0e/{OUTSIDE}",
    f"/\uff0e\uff0e\uff0f\uff0e\uff0e\uff0f{OUTSIDE}",
    f"/%ef%bc%8e%ef%bc%8e/{OUTSIDE}",
    f"//{OUTSIDE}",
    f"///{OUTSIDE}",
    f"/./{OUTSIDE}",
    f"http://localhost/{OUTSIDE}",
    f"/api/contents/a.txt%00/../../../{OUTSIDE}",
    "/api/contents/a.txt%00.py",
    "/api/contents/a.txt\x00.py",
    "/api/contents/a.txt;.py",
    "/api/contents/a.txt%3b.py",
    "/api/contents/%61.txt",
    "/api/contents/a.txt%2f",
    "/api/contents/sub%2fa.txt",
    "/api/contents/sub%5ca.txt",
    "/api/contents/\uff41.txt",
    "/api/contents/%c0%ae%c0%ae/a.txt",
    "/api/contents/a.txt?x=../../..",
    "/files/a.txt",
    "/files/%2e%2e/a.txt",
    "/files/sub/%2e%2e/a.txt",
    "/files/sub/a.txt",
]


@pytest.fixture
def jp_base_url():
    return BASE_URL


@pytest.fixture
def server(hows_server_url, hows_token, jp_serverapp, jp_root_dir, jp_asyncio_loop):
    register_mirror(jp_serverapp, BASE_URL)
    register_echo_socket(jp_serverapp, "/", "hows-attack-outside-socket")
    (jp_root_dir / "a.txt").write_text("a")
    (jp_root_dir / "sub").mkdir()
    (jp_root_dir / "sub" / "a.txt").write_text("sub a")
    connection = jp_asyncio_loop.run_until_complete(
        Endpoint(hows_server_url, token=hows_token).open("http_over_websocket")
    )
    with debug_logs() as lines:
        yield connection
    connection.close()
    assert not [line for line in lines if hows_token in line]


async def tunnelled(connection, message_id: int, path: str) -> tuple[int, bytes]:
    connection.write_message(json.dumps({"message_id": message_id, "method": "GET", "path": path}))
    status, body = 0, b""
    while True:
        frame = parse_reply(await connection.read_message())
        status = frame.status if frame.status is not None else status
        body += frame.data or b""
        if frame.done:
            return status, body


def dot_segment(path: str) -> bool:
    decoded = unquote(path.partition("?")[0])
    return any(part in (".", "..") for part in decoded.replace("\\", "/").split("/"))


def direct_target(path: str) -> bytes:
    """What the tunnel would ask for: ``base_url`` + the path, percent-encoded as it does."""
    path = path.partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    return (BASE_URL.rstrip("/") + quote(path, safe="!$&'()*+,/:;=?@[]~%")).encode("latin-1")


async def test_tunnelled_paths_never_leave_base_url(server, jp_http_port, hows_token):
    headers = [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")]
    differences = {}
    for number, path in enumerate(PATHS):
        Outside.hits.clear()
        status, body = await tunnelled(server, number, path)
        assert Outside.hits == [], path
        direct = await raw_request(jp_http_port, "GET", direct_target(path), headers)
        same = status == direct.status and (status != 200 or body == direct.body)
        # The tunnel refuses every "." or ".." segment, plain or encoded, by design
        # (security.md), even one that would stay inside (``/files/sub/%2e%2e/a.txt``).
        stricter = status == 400 and (direct.status != 200 or dot_segment(path))
        if not (same or stricter):
            differences[path] = (status, direct.status)
    assert differences == {}


async def test_relayed_paths_never_leave_base_url(
    hows_server_url, server, jp_http_port, hows_token, upstream_urls
):
    """proxied_ws: no spelling of ``..`` reaches a socket outside ``base_url``."""
    headers = [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")]
    socket = "hows-attack-outside-socket"
    assert (
        await raw_request(jp_http_port, "GET", f"/{socket}".encode(), headers, upgrade=True)
    ).status == 101, "the socket outside is there"
    EchoSocket.instances.clear()
    relay = f"{BASE_URL}http_over_websocket/proxied_ws"
    for spelling in PATHS:
        if OUTSIDE not in spelling:
            continue
        path = spelling.replace(OUTSIDE, socket)
        if not path.startswith("/"):
            path = "/" + path
        target = (relay + quote(path, safe="!$&'()*+,/:;=?@[]~%\\")).encode("latin-1")
        response = await raw_request(jp_http_port, "GET", target, headers, upgrade=True)
        assert response.status != 101, spelling
        assert response.status in (400, 403, 404), (spelling, response.status)
    assert EchoSocket.instances == []
    for url in upstream_urls:
        assert url.split("/", 3)[3].startswith(BASE_URL.lstrip("/")), url
