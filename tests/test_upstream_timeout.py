"""How long the relay waits for this server to accept a proxied socket (``connect_timeout``).

An upstream that is slow to accept its upgrade is answered 504 once ``connect_timeout``
runs out (a polled channel closes with 4504); before that, the client waits as a direct
client would. The default waits as long as jupyter_server waits for a starting kernel
(``kernel_info_timeout``), because a kernel's channels are accepted only once the kernel
is ready. The slow upstream is :class:`~support.echo_socket.EchoSocket` with
``?delay=`` (a kernel cannot be made slow to the second on demand).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from support.echo_socket import EchoSocket, register_echo_socket
from support.polling import RawPolling
from tornado.httpclient import HTTPClientError

from jupyter_http_over_ws.app import HttpOverWebSocketApp
from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.wire.polling import ClosedEnvelope, OpenedEnvelope, OpenEnvelope
from jupyter_http_over_ws.wire.polling import parse_batch as parse_polled_batch

EXT = {"jupyter_http_over_ws": True}
#: The relay's limit in these tests, and how long the slow upstream holds its upgrade.
TIMEOUT, SLOW, QUICK = 1.0, 4.0, 0.3

pytestmark = pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {"jpserver_extensions": EXT},
            "HttpOverWebSocketApp": {"connect_timeout": TIMEOUT},
        }
    ],
)


@pytest.fixture
def echo_path(jp_serverapp, jp_base_url):
    EchoSocket.instances.clear()
    return register_echo_socket(jp_serverapp, jp_base_url, "hows-test/echo")


def test_the_default_waits_as_long_as_jupyter_server_waits_for_a_kernel(jp_server_config):
    waits_for_kernel = MappingKernelManager.class_traits()["kernel_info_timeout"].default_value
    assert HttpOverWebSocketApp().connect_timeout >= waits_for_kernel


async def test_a_slow_upstream_is_answered_504_after_connect_timeout(
    hows_server_url, hows_token, echo_path
):
    endpoint = Endpoint(hows_server_url, token=hows_token)
    started = time.monotonic()
    with pytest.raises(HTTPClientError) as refused:
        await endpoint.open(f"http_over_websocket/proxied_ws{echo_path}", {"delay": str(SLOW)})
    waited = time.monotonic() - started
    assert refused.value.code == 504
    assert TIMEOUT <= waited < SLOW, waited
    # An upstream quicker than the limit is waited for, and works.
    quick = await endpoint.open(f"http_over_websocket/proxied_ws{echo_path}", {"delay": str(QUICK)})
    await quick.write_message("ping")
    assert await asyncio.wait_for(quick.read_message(), 10) == "ping"
    quick.close()


async def test_a_slow_upstream_closes_a_polled_channel_with_4504(
    hows_server_url, hows_token, echo_path
):
    client = RawPolling(hows_server_url, hows_token)
    try:
        assert (await client.open()).code == 200
        opens = [
            OpenEnvelope(1, f"{echo_path}?delay={SLOW}"),
            OpenEnvelope(2, f"{echo_path}?delay={QUICK}"),
        ]
        assert (await client.send(0, opens)).code == 200
        closed: dict[int, int | None] = {}
        opened: set[int] = set()
        since = 0
        deadline = time.monotonic() + 20
        while not (1 in closed and 2 in opened):
            assert time.monotonic() < deadline, (closed, opened)
            batch = parse_polled_batch((await client.recv(since)).body)
            for number, envelope in enumerate(batch.messages, batch.seq):
                since = number + 1
                if isinstance(envelope, ClosedEnvelope):
                    closed[envelope.channel] = envelope.code
                elif isinstance(envelope, OpenedEnvelope):
                    opened.add(envelope.channel)
        assert closed == {1: 4504}
        assert opened == {2}
        assert (await client.delete()).code == 204
    finally:
        client.close()
