"""A read-only ``Authorizer``: reads pass, nothing is written through any path.

The operator's ``Authorizer`` allows only ``read``. Every write the API offers (files,
directories, renames, checkpoints, kernels, sessions, terminals, kernel channels) must be
refused through the tunnel, the polling transport and proxied sockets exactly as it is
directly, and leave nothing behind: no file, no kernel, no session, no terminal.
"""

from __future__ import annotations

import json

import pytest
from jupyter_server.auth import Authorizer
from support.attack import debug_logs, raw_request, secrets_in
from support.polling import RawPolling, request_envelope

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.polling import OpenEnvelope, parse_batch

pytestmark = pytest.mark.timeout(120)

FAKE_KERNEL = "00000000-0000-0000-0000-000000000000"


class ReadOnly(Authorizer):
    """Every user may read; nobody may write or execute anything."""

    def is_authorized(self, handler, user, action, resource):
        return action == "read"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "authorizer_class": ReadOnly,
        },
        "HttpOverWebSocketApp": {"poll_timeout": 0.2},
    }


FILE = json.dumps({"type": "file", "format": "text", "content": "x"})
WRITES = [
    ("PUT", "api/contents/w.txt", FILE),
    ("POST", "api/contents", json.dumps({"type": "file"})),
    ("POST", "api/contents", json.dumps({"type": "directory"})),
    ("PATCH", "api/contents/existing.txt", json.dumps({"path": "renamed.txt"})),
    ("DELETE", "api/contents/existing.txt", ""),
    ("POST", "api/contents/existing.txt/checkpoints", ""),
    ("PUT", "api/contents/existing.txt", FILE),
    ("POST", "api/kernels", json.dumps({"name": "python3"})),
    ("POST", "api/sessions", json.dumps({"path": "a.ipynb", "type": "notebook", "kernel": {}})),
    ("POST", "api/terminals", ""),
    ("POST", f"api/kernels/{FAKE_KERNEL}/restart", ""),
    ("DELETE", f"api/kernels/{FAKE_KERNEL}", ""),
    ("PUT", "api/config/notebook", "{}"),
    ("PATCH", "api/config/notebook", "{}"),
]


@pytest.fixture
def tree(jp_root_dir, jp_serverapp, hows_token):
    (jp_root_dir / "existing.txt").write_text("original")

    def snapshot():
        return sorted(
            (str(p.relative_to(jp_root_dir)), p.read_bytes() if p.is_file() else b"")
            for p in jp_root_dir.rglob("*")
        )

    before = snapshot()
    with debug_logs() as lines:
        yield
    assert snapshot() == before
    assert list(jp_serverapp.kernel_manager.list_kernel_ids()) == []
    assert secrets_in(lines, [hows_token]) == []


async def test_no_write_passes_the_tunnel(
    tree, hows_server_url, jp_http_port, jp_base_url, hows_token
):
    auth = [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")]
    async with await TunnelClient.connect(hows_server_url, token=hows_token) as tunnel:
        assert (await tunnel.request("GET", "/api/contents")).status == 200
        for method, path, body in WRITES:
            direct = await raw_request(
                jp_http_port, method, (jp_base_url + path).encode(), auth, body.encode()
            )
            reply = await tunnel.request(method, "/" + path, body=body or None)
            assert reply.status == direct.status, (method, path)
            assert reply.status in (403, 404), (method, path, reply.status)


async def test_no_write_passes_the_polling_transport(tree, hows_server_url, hows_token):
    polling = RawPolling(hows_server_url, hows_token)
    try:
        assert (await polling.open()).code == 200
        envelopes = [
            request_envelope(number, method, "/" + path, body=body)
            for number, (method, path, body) in enumerate(WRITES)
        ]
        assert (await polling.send(0, envelopes)).code == 200
        _, frames = await polling.collect(0, set(range(len(WRITES))))
        statuses = {f.message_id: f.status for f in frames if f.status is not None}
        assert set(statuses.values()) <= {403, 404}, statuses
    finally:
        await polling.delete()
        polling.close()


async def test_no_kernel_channel_opens_through_any_path(
    tree, hows_server_url, hows_token, upstream_urls
):
    channels = f"api/kernels/{FAKE_KERNEL}/channels"
    endpoint = Endpoint(hows_server_url, token=hows_token)
    statuses = []
    for path in (channels, "http_over_websocket/proxied_ws/" + channels):
        try:
            connection = await endpoint.open(path)
        except Exception as refused:  # HTTPClientError
            statuses.append(getattr(refused, "code", None))
        else:
            connection.close()
            statuses.append(101)
    assert statuses == [403, 403]
    polling = RawPolling(hows_server_url, hows_token)
    try:
        await polling.open()
        assert (await polling.send(0, [OpenEnvelope(1, "/" + channels)])).code == 200
        closed: list = []
        for _ in range(50):  # long polls of 0.2 s until the channel's answer comes
            batch = parse_batch((await polling.recv(0, request_timeout=10)).body)
            closed = [e for e in batch.messages if getattr(e, "channel", 0) == 1]
            if closed:
                break
        assert closed, "the channel's answer came"
        assert getattr(closed[0], "code", None) == 4403, closed
    finally:
        await polling.delete()
        polling.close()
