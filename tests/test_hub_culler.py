"""jupyterhub-idle-culler under a real hub: a server used only through the tunnel stays up.

The hub (``support/hub.py``) runs ``jupyterhub-idle-culler`` as a hub-managed service
with its own role (``CULLER_SCOPES``). Alice's server is used only through the tunnel,
first over its WebSocket, then over polling; bob's is left idle. The culler stops bob's
and leaves alice's, whose ``last_activity`` (as the hub sees it) keeps moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import pytest
from support.hub import Hub

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PAGE_ORIGIN = "https://frontend.example"

#: The culler's idle timeout and its period, in seconds (see the test's docstring).
CULL_TIMEOUT = 12
CULL_EVERY = 3
#: How often alice's frontend makes a request through the tunnel.
REQUEST_EVERY = 1.0


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def culled(hub: Hub, user: str) -> list[str]:
    """The culler's log lines saying it culls ``user``'s server.

    ``Culling server bob (inactive for 00:00:12)``, in the hub's log (a managed
    service's output is the hub's).
    """
    return [line for line in hub.log().splitlines() if f"Culling server {user} " in line]


class AliceAtWork:
    """Alice's frontend: a request through the tunnel every second, with one transport."""

    def __init__(self, hub: Hub, token: str) -> None:
        self.hub = hub
        self.token = token
        #: ``(transport, hub's last_activity of alice's server)`` after each request.
        self.samples: list[tuple[str, datetime]] = []
        self.requests = 0

    async def work(self, transport: str, stop: asyncio.Event) -> None:
        """Use alice's server through the tunnel until ``stop`` is set."""
        async with await TunnelClient.connect(
            self.hub.user_url("alice"),
            token=self.token,
            origin=PAGE_ORIGIN,
            transports=(transport,),
        ) as tunnel:
            assert tunnel.transport == transport
            while not stop.is_set():
                listing = await tunnel.request("GET", "/api/contents")
                assert listing.status == 200, listing.text
                self.requests += 1
                model = await asyncio.to_thread(self.hub.user, "alice")
                server = model["servers"].get("")
                assert server, f"alice's server is gone:\n{self.hub.log()[-3000:]}"
                self.samples.append((transport, parse_time(server["last_activity"])))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), REQUEST_EVERY)

    def activity(self, transport: str) -> list[datetime]:
        return [stamp for used, stamp in self.samples if used == transport]


async def wait_until_gone(hub: Hub, user: str, deadline: float) -> None:
    while True:
        model: dict[str, Any] = await asyncio.to_thread(hub.user, user)
        if not model["servers"]:
            return
        assert time.monotonic() < deadline, (
            f"the culler did not stop {user}'s server:\n{hub.log()[-5000:]}"
        )
        await asyncio.sleep(0.5)


async def test_the_culler_stops_the_idle_server_and_not_the_one_used_through_the_tunnel(
    tmp_path,
):
    """Margins (timeout 12 s, cull every 3 s, activity reported every 1 s ±10 %).

    Alice: a request every 1 s; her server reports its last activity to the hub every
    ~1 s, so at any cull the hub's ``last_activity`` of hers is at most ~2-3 s old. The
    culler stops a server only once that age reaches 12 s: it would take a stall of ~9 s
    of her server or of the hub (on a loaded 2-core machine, seconds at worst) to cull
    her wrongly.

    Bob: idle from his start on, so the first cull after 12 s stops him (12 + 3 s, plus
    the stop); the test waits up to 12 + 3 + 60 s for that.

    Both transports are shown on their own: the WebSocket phase lasts until bob is
    culled; alice was started before bob, so had the WebSocket traffic not counted, she
    would have been culled no later than him. The polling phase then lasts 12 + 3 x 3 s:
    had polling traffic not counted, her last activity would be the last WebSocket
    request, and at least two culls would have found it older than 12 s.
    """
    hub = Hub(tmp_path / "hub", page_origin=PAGE_ORIGIN, culler=(CULL_TIMEOUT, CULL_EVERY))
    hub.start()
    try:
        await asyncio.to_thread(hub.start_server, "alice")
        token = hub.new_token("alice", ["access:servers!user=alice"], note="frontend")
        alice = AliceAtWork(hub, token)

        stop = asyncio.Event()
        websocket_work = asyncio.create_task(alice.work("websocket", stop))
        await asyncio.to_thread(hub.start_server, "bob")
        bob_ready = time.monotonic()
        await wait_until_gone(hub, "bob", bob_ready + CULL_TIMEOUT + CULL_EVERY + 60)
        stop.set()
        await websocket_work
        assert culled(hub, "bob"), hub.log()[-3000:]
        assert not culled(hub, "alice")

        stop = asyncio.Event()
        polling_work = asyncio.create_task(alice.work("polling", stop))
        await asyncio.sleep(CULL_TIMEOUT + 3 * CULL_EVERY)
        stop.set()
        await polling_work

        assert not culled(hub, "alice"), hub.log()[-3000:]
        server = hub.user("alice")["servers"][""]
        assert server["ready"]
        assert not server["pending"]
        assert not hub.user("bob")["servers"]
        # The hub saw alice's activity move in both phases, not just once.
        over_websocket, over_polling = alice.activity("websocket"), alice.activity("polling")
        assert over_websocket == sorted(over_websocket)
        assert over_polling == sorted(over_polling)
        assert over_websocket[-1] > over_websocket[0]
        assert over_polling[0] >= over_websocket[-1]
        assert over_polling[-1] > over_polling[0]
        assert len(set(over_polling)) >= 5  # reported again and again, not once
        # The culler decided, and stopped bob's server through the hub's REST API.
        assert "DELETE /hub/api/users/bob/server (idle-culler@" in hub.log()
        assert "DELETE /hub/api/users/alice/server" not in hub.log()
    finally:
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"
