"""The unauthenticated ``diagnose`` socket reads small frames; the tunnel still reads large ones."""

from __future__ import annotations

import asyncio
import json

import pytest

from jupyter_http_over_ws.client._connect import Endpoint
from jupyter_http_over_ws.handlers.diagnose import MAX_DIAGNOSE_FRAME, MAX_DIAGNOSE_MESSAGE
from jupyter_http_over_ws.wire.names import DIAGNOSE_PATH, CloseCode

pytestmark = pytest.mark.timeout(60)


async def test_diagnose_answers_a_frame_at_its_cap(hows_server_url):
    connection = await Endpoint(hows_server_url).open(DIAGNOSE_PATH)
    connection.write_message("a" * MAX_DIAGNOSE_FRAME)
    answer = json.loads(await asyncio.wait_for(connection.read_message(), 10))
    assert answer["message_id"] == "a" * MAX_DIAGNOSE_MESSAGE
    # Binary frames are capped alike; the socket still answers after a large probe.
    connection.write_message(b"b" * (MAX_DIAGNOSE_FRAME - 1), binary=True)
    answer = json.loads(await asyncio.wait_for(connection.read_message(), 10))
    assert answer["message_id"] == "b" * MAX_DIAGNOSE_MESSAGE
    connection.close()


@pytest.mark.parametrize("binary", [False, True])
async def test_a_diagnose_frame_over_its_cap_closes_with_1009(hows_server_url, binary):
    connection = await Endpoint(hows_server_url).open(DIAGNOSE_PATH)
    payload = "a" * (MAX_DIAGNOSE_FRAME + 1)
    connection.write_message(payload.encode() if binary else payload, binary=binary)
    assert await asyncio.wait_for(connection.read_message(), 10) is None
    assert connection.close_code == CloseCode.MESSAGE_TOO_BIG == 1009


async def test_the_tunnel_still_reads_large_frames(hows_tunnel):
    # 1 MiB, 64 times diagnose's cap and far below the tunnel's max_message_size: it is
    # read and answered (400, not JSON) for that message alone, and the socket goes on.
    hows_tunnel.send_raw("x" * (1 << 20))
    frame = await asyncio.wait_for(hows_tunnel.unmatched.get(), 10)
    assert frame.status == 400
    assert (await hows_tunnel.request("GET", "/api/status")).status == 200
