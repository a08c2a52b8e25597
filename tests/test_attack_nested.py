"""The extension's own endpoints, asked for through the tunnel: refused cleanly, nothing dialled.

A tunnelled request is handed to the server's application in-process, on a connection
with no socket under it. The tunnel's own endpoints (another tunnel, ``diagnose``,
``proxied_ws``, the polling transport) need that socket: opened through the tunnel they
would nest one tunnel in another. Directly, a plain ``GET`` of a WebSocket endpoint is a
400 and a polling ``POST`` opens a session; through the tunnel each is a 403 with a
reason, before anything is opened upstream, and nothing is logged as an error (before,
``proxied_ws`` dialled its upstream and then failed with a 500 and a traceback, and a
polling session failed the same way). The client's static files stay reachable.
"""

from __future__ import annotations

import json

import pytest
from support.attack import debug_logs, raw_request, secrets_in

from jupyter_http_over_ws.client import TunnelClient

pytestmark = pytest.mark.timeout(120)

OWN = "http_over_websocket"


@pytest.fixture
def session_id(hows_server_url, jp_http_port, jp_base_url, hows_token, jp_asyncio_loop):
    """A polling session opened directly, to be reached through the tunnel."""
    auth = [("Host", f"localhost:{jp_http_port}"), ("Authorization", f"token {hows_token}")]
    opened = jp_asyncio_loop.run_until_complete(
        raw_request(jp_http_port, "POST", f"{jp_base_url}{OWN}/polling".encode(), auth, b"{}")
    )
    assert opened.status == 200
    return json.loads(opened.body)["session_id"]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_tunnels_own_endpoints_are_refused_inside_it(
    hows_server_url, hows_token, session_id, upstream_urls, transport
):
    requests = [
        ("GET", f"/{OWN}", None),
        ("GET", f"/{OWN}/diagnose", None),
        ("GET", f"/{OWN}/proxied_ws/api/events/subscribe", None),
        ("GET", f"/{OWN}/proxied_ws/api/kernels/0000/channels", None),
        ("POST", f"/{OWN}/polling", "{}"),
        ("POST", f"/{OWN}/polling/{session_id}/send", '{"seq": 0, "messages": []}'),
        ("GET", f"/{OWN}/polling/{session_id}/recv?since=0", None),
        ("DELETE", f"/{OWN}/polling/{session_id}", None),
    ]
    with debug_logs() as lines:
        async with await TunnelClient.connect(
            hows_server_url, token=hows_token, transports=(transport,)
        ) as tunnel:
            for method, path, body in requests:
                reply = await tunnel.request(method, path, body=body)
                assert reply.status == 403, (method, path, reply.status, reply.text)
                if "/polling" in path:  # an API error says why (a WebSocket's has no body)
                    assert "through the tunnel" in reply.text, (path, reply.text)
            static = await tunnel.request("GET", f"/{OWN}/static/index.js")
            assert static.status == 200
    assert upstream_urls == []
    assert [line for line in lines if line.startswith("ERROR")] == []
    assert secrets_in(lines, [hows_token]) == []
