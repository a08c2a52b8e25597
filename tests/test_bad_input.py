"""Malformed messages get a 4xx for that message alone; the socket and other requests go on."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
from support.wire import TEXT, raw_upgrade
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.wire.protocol import JSON_REQUIRED

pytestmark = pytest.mark.timeout(60)


async def next_unmatched(client):
    return await asyncio.wait_for(client.unmatched.get(), 10)


@pytest.mark.parametrize("message", ["not json", "[1, 2", "", "\ufeff{}"])
async def test_not_json(hows_tunnel, message):
    hows_tunnel.send_raw(message)
    frame = await next_unmatched(hows_tunnel)
    assert (frame.message_id, frame.status, frame.status_text, frame.done) == (
        None,
        400,
        JSON_REQUIRED,
        True,
    )
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200


async def test_binary_frame_on_the_tunnel(hows_tunnel):
    hows_tunnel.send_raw(b"\x00\x01\x02", binary=True)
    frame = await next_unmatched(hows_tunnel)
    assert frame.status == 400
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200


@pytest.mark.parametrize(
    ("message", "status", "text"),
    [
        ({"message_id": "m1", "method": "GET"}, 400, "The body must contain the following keys"),
        ({"message_id": "m2", "path": "/api/status"}, 400, "The body must contain"),
        ({"message_id": "m3", "method": 7, "path": "/api/status"}, 400, "method"),
        ({"message_id": "m4", "method": "GET", "path": ["x"]}, 400, "path"),
        ({"message_id": "m5", "method": "PUT", "path": "/x", "body_base64": "@@@"}, 400, "base64"),
        ({"message_id": "m6", "method": "GET", "path": "http://127.0.0.1:1/"}, 400, "not a URL"),
        ({"message_id": "m7", "method": "GET", "path": "//127.0.0.1:1/x"}, 400, "//"),
        ({"message_id": "m8", "method": "GET", "path": "/api/../../x"}, 400, ".."),
        ({"message_id": "m9", "method": "GET", "path": "/a\r\nHost: x"}, 400, "control"),
        ({"message_id": "m10", "method": "GET", "path": "/" + "a" * 20000}, 414, "longer"),
        ({"message_id": "m11", "method": "GET\r\n", "path": "/"}, 400, "method"),
        (
            {"message_id": "m12", "method": "GET", "path": "/", "headers": {"X": "a\nb"}},
            400,
            "header",
        ),
        ({"message_id": "m13", "method": "GET", "path": "/", "headers": []}, 400, "headers"),
        ({"message_id": "m14", "method": "GET", "path": "/", "body": {"a": 1}}, 400, "body"),
    ],
)
async def test_bad_messages_are_answered_for_their_id(hows_tunnel, message, status, text):
    hows_tunnel.send_raw(json.dumps(message))
    frame = await next_unmatched(hows_tunnel)
    assert frame.message_id == message["message_id"]
    assert frame.status == status
    assert text in frame.status_text
    assert frame.done is True
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200


async def test_bad_messages_do_not_disturb_requests_in_flight(hows_tunnel, jp_root_dir):
    payload = os.urandom(6 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    download = asyncio.ensure_future(hows_tunnel.request("GET", "/files/big.bin"))
    junk_messages = [
        "junk",
        "{}",
        '{"message_id": "junk-1"}',
        json.dumps({"message_id": "junk-2", "method": "GET", "path": "//evil"}),
    ]
    for junk in junk_messages:
        hows_tunnel.send_raw(junk)
    reply = await download
    assert reply.body == payload
    for _ in range(4):
        assert (await next_unmatched(hows_tunnel)).status == 400


async def test_huge_numbers_and_deep_nesting(hows_tunnel):
    hows_tunnel.send_raw('{"message_id": 1e999999, "method": "GET", "path": "/"}')
    hows_tunnel.send_raw("[" * 100000 + "]" * 100000)
    frames = [await next_unmatched(hows_tunnel) for _ in range(2)]
    assert sorted(f.status for f in frames) == [400, 400]
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
            "HttpOverWebSocketApp": {"max_requests_in_flight": 2},
        }
    ],
)
async def test_requests_over_the_in_flight_limit_get_429(hows_tunnel, jp_root_dir):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    replies = await asyncio.gather(
        *(hows_tunnel.request("GET", "/files/big.bin") for _ in range(3))
    )
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 200, 429]
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
            "HttpOverWebSocketApp": {"max_message_size": 64 * 1024},
        }
    ],
)
async def test_message_over_the_size_limit_closes_with_1009(hows_server_url, hows_token):
    client = await TunnelClient.connect(hows_server_url, token=hows_token)
    client.send_raw(
        json.dumps({"message_id": 1, "method": "PUT", "path": "/x", "body": "a" * 70000})
    )
    await asyncio.wait_for(client.wait_closed(), 10)
    assert client.close_code == 1009


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
            "HttpOverWebSocketApp": {"allowed_paths": ["/api/contents", "/files/"]},
        }
    ],
)
async def test_allowed_paths(hows_tunnel, jp_root_dir):
    (jp_root_dir / "x.txt").write_text("x")
    assert (await hows_tunnel.request("GET", "/api/contents?content=0")).status == 200
    assert (await hows_tunnel.request("GET", "/files/x.txt")).status == 200
    refused = await hows_tunnel.request("GET", "/api/kernels")
    assert refused.status == 403
    assert "allowed_paths" in refused.reason


def with_options(**options):
    return pytest.mark.parametrize(
        "jp_server_config",
        [
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}},
                "HttpOverWebSocketApp": options,
            }
        ],
    )


@with_options(max_body_size=1000)
async def test_body_over_the_limit_is_413(hows_tunnel, jp_root_dir):
    body = json.dumps({"type": "file", "format": "text", "content": "x" * 2000})
    reply = await hows_tunnel.request("PUT", "/api/contents/x.txt", body=body)
    assert reply.status == 413
    assert "1000 bytes" in reply.reason
    assert not (jp_root_dir / "x.txt").exists()
    small = json.dumps({"type": "file", "format": "text", "content": "x"})
    assert (await hows_tunnel.request("PUT", "/api/contents/x.txt", body=small)).status == 201


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": {"jupyter_http_over_ws": True}, "max_body_size": 1000}}],
)
async def test_body_limit_defaults_to_the_servers_own(hows_tunnel, jp_root_dir):
    """max_body_size 0 (the default): a tunnelled body meets ServerApp.max_body_size."""
    body = json.dumps({"type": "file", "format": "text", "content": "x" * 2000})
    reply = await hows_tunnel.request("PUT", "/api/contents/x.txt", body=body)
    assert reply.status == 413
    assert "1000 bytes" in reply.reason
    assert not (jp_root_dir / "x.txt").exists()


@with_options(max_sockets_per_user=2)
async def test_sockets_over_the_per_user_limit_are_closed(hows_server_url, hows_token):
    first = await TunnelClient.connect(hows_server_url, token=hows_token)
    second = await TunnelClient.connect(hows_server_url, token=hows_token)
    third = await TunnelClient.connect(hows_server_url, token=hows_token)
    await asyncio.wait_for(third.wait_closed(), 10)
    assert third.close_code == 4429
    assert "max_sockets_per_user" in third.close_reason
    assert (await second.request("GET", "/api/status")).status == 200
    await first.close()
    await asyncio.sleep(0.1)
    fourth = await TunnelClient.connect(hows_server_url, token=hows_token)
    assert (await fourth.request("GET", "/api/status")).status == 200
    for client in (second, fourth):
        await client.close()


@with_options(idle_timeout=0.3)
async def test_idle_tunnels_are_closed(hows_server_url, hows_token):
    client = await TunnelClient.connect(hows_server_url, token=hows_token)
    for _ in range(4):  # activity keeps it open
        assert (await client.request("GET", "/api/status")).status == 200
        await asyncio.sleep(0.15)
    await asyncio.wait_for(client.wait_closed(), 10)
    assert client.close_code == 4408
    assert "idle_timeout" in client.close_reason


@with_options(allowed_paths=["/api/contents"])
async def test_allowed_paths_apply_to_proxied_sockets(hows_tunnel):
    with pytest.raises(HTTPClientError) as e:
        await hows_tunnel.websocket("/api/events/subscribe")
    assert e.value.code == 403


@with_options(max_sockets_per_user=2)
async def test_proxied_sockets_count_toward_the_per_user_limit(hows_tunnel):
    first = await hows_tunnel.websocket("/api/events/subscribe")
    second = await hows_tunnel.websocket("/api/events/subscribe")
    assert await asyncio.wait_for(second.read_message(), 10) is None
    assert second.close_code == 4429
    first.close()


async def test_shutdown_closes_proxied_sockets(hows_tunnel, jp_serverapp):
    socket = await hows_tunnel.websocket("/api/events/subscribe")
    ext = jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app
    await ext.stop_extension()
    assert await asyncio.wait_for(socket.read_message(), 10) is None
    assert socket.close_code == 1001
    await asyncio.wait_for(hows_tunnel.wait_closed(), 10)
    assert hows_tunnel.close_code == 1001


# ------------------------------------------------------------------- header-size abuse

HEADER_ABUSE = {
    "count": {f"X-H{i}": "v" for i in range(101)},
    "value": {"X-Big": "a" * 70000},
    "name": {"X-" + "n" * 70000: "x"},
    "total": {f"X-H{i}": "b" * 800 for i in range(90)},
}


@pytest.mark.parametrize("framing", ["json", "binary"])
async def test_oversized_tunnelled_headers_get_431(
    hows_server_url, hows_token, jp_root_dir, framing
):
    payload = os.urandom(4 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    async with await TunnelClient.connect(
        hows_server_url, token=hows_token, framing=framing
    ) as client:
        assert client.framing == framing
        download = asyncio.ensure_future(client.request("GET", "/files/big.bin"))
        replies = await asyncio.gather(
            *(client.request("GET", "/api/status", headers=h) for h in HEADER_ABUSE.values())
        )
        for kind, reply in zip(HEADER_ABUSE, replies, strict=False):
            assert reply.status == 431, (kind, reply)
            assert "header" in reply.reason, (kind, reply)
        # Just inside the limits is fine, and the socket and the download went on.
        within = {f"X-H{i}": "b" * 600 for i in range(100)}
        assert (await client.request("GET", "/api/status", headers=within)).status == 200
        assert (await download).body == payload


def upgrade_target(base_url, endpoint):
    return (base_url.rstrip("/") + "/" + endpoint).encode()


ENDPOINTS = [
    "http_over_websocket/diagnose",
    "http_over_websocket",
    "http_over_websocket/proxied_ws/api/events/subscribe",
]
UPGRADE_ABUSE = {
    "value": [(b"X-Big", b"a" * 70000)],
    "count": [(b"X-H%d" % i, b"v") for i in range(8000)],
    "name": [(b"X-" + b"n" * 70000, b"x")],
    "cookie": [(b"Cookie", b"a=" + b"b" * 70000)],
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_huge_upgrade_headers_are_refused_cleanly(
    hows_tunnel, hows_token, jp_http_port, jp_base_url, jp_root_dir, endpoint, caplog
):
    payload = os.urandom(4 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    download = asyncio.ensure_future(hows_tunnel.request("GET", "/files/big.bin"))
    auth = [(b"Authorization", b"token " + hows_token.encode())]
    for kind, headers in UPGRADE_ABUSE.items():
        upgrade = await raw_upgrade(
            jp_http_port, upgrade_target(jp_base_url, endpoint), auth + headers
        )
        upgrade.close()
        # Tornado refuses a request head over 64 KiB before any handler runs, as for
        # every request to this server: no upgrade, no 5xx.
        assert upgrade.status is None or 400 <= upgrade.status < 500, (kind, upgrade.head)
    assert (await download).body == payload
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_proxied_upgrades_just_under_the_header_limit_reach_upstream(
    hows_server_url, hows_token, jp_http_port, jp_base_url, caplog
):
    # The relay adds its own headers upstream: whatever the server accepted from the
    # client must not then be refused on the inner hop (it was: 502 in a ~50-byte band).
    target = upgrade_target(jp_base_url, ENDPOINTS[2])
    auth = [(b"Authorization", b"token " + hows_token.encode())]
    statuses = {}
    for pad in range(65536 - 600, 65536, 8):
        upgrade = await raw_upgrade(jp_http_port, target, [*auth, (b"Cookie", b"a=" + b"b" * pad)])
        upgrade.close()
        statuses[pad] = upgrade.status
    assert set(statuses.values()) <= {101, None}, statuses
    assert 101 in statuses.values()
    assert None in statuses.values()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_undecodable_min_version_gets_a_clear_answer(
    hows_server_url, hows_token, jp_http_port, jp_base_url
):
    auth = [(b"Authorization", b"token " + hows_token.encode())]
    tunnel = await raw_upgrade(
        jp_http_port, upgrade_target(jp_base_url, "http_over_websocket?min_version=%ff"), auth
    )
    assert tunnel.status == 101
    # A close frame with the version code, not a dropped connection.
    assert await tunnel.recv_close() == 4400
    tunnel.close()
    diagnose = await raw_upgrade(
        jp_http_port,
        upgrade_target(jp_base_url, "http_over_websocket/diagnose?min_version=%ff%fe"),
    )
    assert diagnose.status == 101
    await diagnose.send(b"probe")
    opcode, answer = await diagnose.recv()
    assert opcode == TEXT
    assert json.loads(answer)["is_outdated_extension"] is False
    diagnose.close()
