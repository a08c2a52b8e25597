"""Faults: a client that vanishes leaves no task, file descriptor or socket behind."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import uuid

import pytest
from kernel_helpers import V1, KernelSocket, by_type

from jupyter_http_over_ws.client import TunnelClient
from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def live_tasks():
    return {t for t in asyncio.all_tasks() if not t.done()}


async def settle(ext, baseline_tasks):
    for _ in range(100):
        gc.collect()
        if not ext.sockets and len(live_tasks() - baseline_tasks) <= 1:
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("direction", ["download", "upload"])
async def test_vanishing_clients_leak_nothing(
    hows_server_url, hows_token, jp_serverapp, jp_root_dir, direction
):
    ext = jp_serverapp.extension_manager.extension_points["jupyter_http_over_ws"].app
    (jp_root_dir / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    upload = json.dumps({"type": "file", "format": "text", "content": "x" * (24 * 1024 * 1024)})
    endpoint = Endpoint(hows_server_url, token=hows_token)
    # Warm up (first-use imports, the entrance, caches), then take the baseline.
    warm = await endpoint.open("http_over_websocket")
    warm.write_message('{"message_id": 0, "method": "GET", "path": "/api/status"}')
    await asyncio.wait_for(warm.read_message(), 10)
    warm.close()
    await settle(ext, live_tasks())
    baseline_fds, baseline_tasks = open_fds(), live_tasks()

    for round_ in range(5):
        connection = await endpoint.open("http_over_websocket")
        if direction == "download":
            connection.write_message(
                json.dumps({"message_id": round_, "method": "GET", "path": "/files/big.bin"})
            )
            assert (
                json.loads(await asyncio.wait_for(connection.read_message(), 10))["status"] == 200
            )
        else:
            message = json.dumps(
                {
                    "message_id": round_,
                    "method": "PUT",
                    "path": "/api/contents/up.txt",
                    "body": upload,
                }
            )
            connection.write_message(message)
            await asyncio.sleep(0.01)  # the upload is still on the wire, or being saved
        connection.protocol.stream.close()  # vanish: no close frame, just a dead TCP connection
    await settle(ext, baseline_tasks)

    assert not ext.sockets, "a tunnel socket outlived its client"
    assert all(s.in_flight == 0 for s in ext.sessions)
    leaked = live_tasks() - baseline_tasks
    assert len(leaked) <= 1, leaked  # at most the test's own task
    assert open_fds() <= baseline_fds + 1
    # The server still serves, and no half-written upload is left under its name.
    async with await TunnelClient.connect(hows_server_url, token=hows_token) as client:
        assert (await client.request("GET", "/api/status")).status == 200
    # A body that arrived whole is saved whole even though its client left (as for a
    # direct request): jupyter_server writes in place, so wait for the save to end.
    up, size = jp_root_dir / "up.txt", len("x" * (24 * 1024 * 1024))
    for _ in range(200):
        if not up.exists() or up.stat().st_size == size:
            break
        await asyncio.sleep(0.05)
    assert not up.exists() or up.stat().st_size == size


# ---------------------------------------------------------------- kernel faults


async def kernel_sockets(tunnel, url, token, kernel_id):
    """The same kernel through a proxied socket and directly, both ready."""
    sockets = {}
    for how in ("proxied", "direct"):
        session = uuid.uuid4().hex
        path = f"api/kernels/{kernel_id}/channels?session_id={session}"
        if how == "proxied":
            connection = await tunnel.websocket(path, subprotocols=[V1])
        else:
            connection = await Endpoint(url, token=token).open(path, subprotocols=[V1])
        ks = KernelSocket(connection, session, V1)
        await ks.wait_ready()
        sockets[how] = ks
    return sockets


def server_states(messages):
    """The execution states jupyter_server announced itself (no parent request)."""
    return [
        m.content["execution_state"]
        for m in messages
        if m.msg_type == "status" and not m.msg.get("parent_header")
    ]


async def states_until(ks, state, timeout=60):
    seen = []
    await ks.wait_for(
        lambda m: (
            m.msg_type == "status"
            and not m.msg.get("parent_header")
            and m.content["execution_state"] == state
        ),
        timeout,
        keep=seen,
    )
    return [*server_states(seen), state]


async def execute_value(ks, code):
    msg_id = await ks.execute(code)
    (result,) = by_type(await ks.collect(msg_id, timeout=60), "execute_result")
    return result.content["data"]["text/plain"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", ["kill", "restart"])
async def test_kernel_death_and_restart_reach_proxied_sockets_as_directly(
    hows_tunnel, hows_server_url, hows_token, jp_serverapp, fault
):
    reply = await hows_tunnel.request("POST", "/api/kernels", body='{"name": "python3"}')
    assert reply.status == 201, reply
    kernel_id = reply.json()["id"]
    sockets = await kernel_sockets(hows_tunnel, hows_server_url, hows_token, kernel_id)
    for ks in sockets.values():
        assert await execute_value(ks, "x = 1; x") == "1"

    if fault == "kill":
        kernel = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        os.kill(kernel.provisioner.process.pid, signal.SIGKILL)
    else:
        reply = await hows_tunnel.request("POST", f"/api/kernels/{kernel_id}/restart")
        assert reply.status == 200, reply
    # jupyter_server announces the new kernel on every socket it has ("restarting" when
    # its restarter revives a dead kernel, "starting" after a requested restart): the
    # relayed socket hears exactly what the direct one hears, and stays open.
    announced = "restarting" if fault == "kill" else "starting"
    heard = {how: await states_until(ks, announced) for how, ks in sockets.items()}
    assert heard["proxied"] == heard["direct"]
    for ks in sockets.values():
        await ks.wait_ready()
        assert await execute_value(ks, "'x' in globals()") == "False"  # a fresh kernel
    assert sockets["proxied"].connection.close_code is None

    # And a client that reconnects gets a working socket.
    sockets["proxied"].connection.close()
    again = (await kernel_sockets(hows_tunnel, hows_server_url, hows_token, kernel_id))["proxied"]
    assert await execute_value(again, "6 * 7") == "42"
    for ks in [*sockets.values(), again]:
        ks.connection.close()
