"""Remote kernels through a real Jupyter Kernel Gateway, used through the tunnel.

A jupyter_server with the extension runs with its ``GatewayClient`` pointed at a
Kernel Gateway on another loopback port (tests/support/gateway.py). Through the
tunnel, over the WebSocket transport and over polling: the kernelspecs are the
gateway's, a kernel starts on the gateway (its own API lists it), code runs with
outputs over a proxied kernel socket, interrupt and restart work. In gateway mode
jupyter_server speaks only the legacy kernel protocol to its clients (it selects no
subprotocol, whatever the client offers) and forwards every frame from the gateway
as text; the tunnel gives a client exactly what a direct client of the same server
gets. Stopping the server and the gateway leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gateway import GATEWAY_KERNEL, KernelGateway, gateway_server, leftovers
from support.kernels import V1, KernelSocket, Received, stdout_text
from support.server_process import ServerProcess
from support.waiting import eventually
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TRANSPORTS = [("websocket",), ("polling",)]

#: Code whose replies exercise every kind of output: stdout, stderr, a rich display,
#: a result and an error. ipykernel sends stdout and stderr as separate streams, each
#: flushed on its own timer, so without an explicit flush their order differs from run
#: to run, direct or not; flushing each puts them on the wire in the order printed.
MIXED_OUTPUT = """\
import sys
from IPython.display import HTML, display
print("out", 1, flush=True)
print("err", 2, file=sys.stderr, flush=True)
display(HTML("<b>bold</b>"))
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGateway]:
    """A Kernel Gateway for this module's tests."""
    gw = KernelGateway(tmp_path_factory.mktemp("gateway"))
    gw.start()
    try:
        yield gw
    finally:
        gw.kill()


@pytest.fixture(scope="module")
def server(
    gateway: KernelGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A jupyter_server with the extension whose kernels live on ``gateway``."""
    srv = gateway_server(tmp_path_factory.mktemp("server"), gateway)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


async def start_kernel(tunnel: TunnelClient) -> str:
    started = await tunnel.request("POST", "api/kernels", body=f'{{"name": "{GATEWAY_KERNEL}"}}')
    assert started.status == 201, started.text()
    assert started.json()["name"] == GATEWAY_KERNEL
    return str(started.json()["id"])


async def tunnel_socket(tunnel: TunnelClient, kernel_id: str) -> tuple[KernelSocket, Any]:
    """A kernel socket through the tunnel, offering v1 as JupyterLab does."""
    session = uuid.uuid4().hex
    connection = await tunnel.websocket(
        f"api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
    )
    return KernelSocket(connection, session, None, timeout=30.0), connection


async def direct_socket(server: ServerProcess, kernel_id: str) -> tuple[KernelSocket, Any]:
    """The same, straight to the server (no tunnel)."""
    session = uuid.uuid4().hex
    request = HTTPRequest(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?session_id={session}",
        headers={"Authorization": f"token {server.token}"},
    )
    connection = await websocket_connect(request, subprotocols=[V1])
    return KernelSocket(connection, session, None, timeout=30.0), connection


def shape(messages: list[Received]) -> list[tuple[bool, str, str, Any]]:
    """What a frontend sees of a reply: frame type, channel, type and the output it shows."""
    result = []
    for m in messages:
        content = m.content
        shown: Any = None
        if m.msg_type == "stream":
            shown = (content["name"], content["text"])
        elif m.msg_type in ("display_data", "execute_result"):
            shown = content["data"]
        elif m.msg_type == "error":
            shown = (content["ename"], content["evalue"])
        elif m.msg_type == "status":
            shown = content["execution_state"]
        elif m.msg_type == "execute_reply":
            shown = content["status"]
        result.append((m.binary, m.channel, m.msg_type, shown))
    return result


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_kernelspecs_come_from_the_gateway(
    server: ServerProcess, gateway: KernelGateway, transports: tuple[str, ...]
) -> None:
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=transports
    ) as tunnel:
        assert tunnel.transport == transports[0]
        reply = await tunnel.request("GET", "api/kernelspecs")
        assert reply.status == 200, reply.text()
        specs = reply.json()
        # jupyter_server adopts the gateway's default kernel name once it has seen it
        # (its first listing may still name its own default, python3).
        again = await tunnel.request("GET", "api/kernelspecs")
    assert again.json()["default"] == GATEWAY_KERNEL
    assert set(specs["kernelspecs"]) == {GATEWAY_KERNEL}
    assert specs["kernelspecs"][GATEWAY_KERNEL]["spec"]["display_name"] == "Python on the gateway"
    assert set(gateway.get("/api/kernelspecs")["kernelspecs"]) == {GATEWAY_KERNEL}


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_kernel_on_the_gateway_runs_interrupts_and_restarts(
    server: ServerProcess, gateway: KernelGateway, transports: tuple[str, ...]
) -> None:
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=transports
    ) as tunnel:
        kernel_id = await start_kernel(tunnel)
        assert kernel_id in gateway.kernel_ids()
        listed = await tunnel.request("GET", "api/kernels")
        assert kernel_id in {k["id"] for k in listed.json()}

        kernel, connection = await tunnel_socket(tunnel, kernel_id)
        # The server selects no subprotocol in gateway mode: the legacy protocol.
        assert connection.selected_subprotocol is None
        await kernel.wait_ready()
        msg_id = await kernel.execute("x = 41\nprint('on the gateway', x + 1)")
        messages = await kernel.collect(msg_id)
        assert stdout_text(messages) == "on the gateway 42\n"
        assert not any(m.binary for m in messages)

        # Interrupt a running cell.
        msg_id = await kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
        await kernel.wait_for(
            lambda m: m.replies_to(msg_id) and m.msg_type == "stream", keep=kernel.backlog
        )
        interrupted = await tunnel.request("POST", f"api/kernels/{kernel_id}/interrupt")
        assert interrupted.status == 204, interrupted.text()
        messages = await kernel.collect(msg_id)
        reply = next(m for m in messages if m.msg_type == "execute_reply")
        assert reply.content["status"] == "error"
        assert reply.content["ename"] == "KeyboardInterrupt"

        # Restart: the kernel's state is gone, the socket carries on.
        restarted = await tunnel.request("POST", f"api/kernels/{kernel_id}/restart")
        assert restarted.status == 200, restarted.text()
        await kernel.wait_ready()
        msg_id = await kernel.execute("print('x' in globals())")
        assert stdout_text(await kernel.collect(msg_id)) == "False\n"
        assert kernel_id in gateway.kernel_ids()

        connection.close()
        deleted = await tunnel.request("DELETE", f"api/kernels/{kernel_id}")
        assert deleted.status == 204, deleted.text()
    assert kernel_id not in gateway.kernel_ids()
    assert not server.error_lines(), gateway.error_lines()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_tunnel_gives_what_a_direct_client_gets(
    server: ServerProcess, gateway: KernelGateway, transports: tuple[str, ...]
) -> None:
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=transports
    ) as tunnel:
        shapes = []
        for opener in ("tunnel", "direct"):
            kernel_id = await start_kernel(tunnel)
            try:
                if opener == "tunnel":
                    kernel, connection = await tunnel_socket(tunnel, kernel_id)
                else:
                    kernel, connection = await direct_socket(server, kernel_id)
                assert connection.selected_subprotocol is None
                await kernel.wait_ready()
                msg_id = await kernel.execute(MIXED_OUTPUT)
                ok = await kernel.collect(msg_id)
                msg_id = await kernel.execute("1/0")
                failed = await kernel.collect(msg_id)
                shapes.append(shape(ok) + shape(failed))
                connection.close()
            finally:
                await tunnel.request("DELETE", f"api/kernels/{kernel_id}")
    through_tunnel, direct = shapes

    # Shell and iopub are separate streams in the kernel; their interleaving differs
    # from run to run, direct or not. Within each channel the order is the kernel's.
    def per_channel(messages: list[tuple[bool, str, str, Any]]) -> dict[str, list[Any]]:
        return {c: [m for m in messages if m[1] == c] for c in ("shell", "iopub")}

    assert per_channel(through_tunnel) == per_channel(direct)
    assert len(through_tunnel) == len(direct)
    # Every message came as a text frame, with its channel, as the legacy protocol says.
    assert all(not binary for binary, *_ in direct)
    kinds = {msg_type for _, _, msg_type, _ in direct}
    assert {"stream", "display_data", "error", "execute_reply", "status"} <= kinds


async def test_clean_shutdown_leaves_no_process(tmp_path: Path) -> None:
    gw = KernelGateway(tmp_path / "gateway")
    gw.start()
    srv = gateway_server(tmp_path / "server", gw)
    try:
        srv.start()
        async with await TunnelClient.connect(srv.url, token=srv.token) as tunnel:
            kernel_id = await start_kernel(tunnel)
            kernel, _connection = await tunnel_socket(tunnel, kernel_id)
            await kernel.wait_ready()
            msg_id = await kernel.execute("print('bye')")
            assert stdout_text(await kernel.collect(msg_id)) == "bye\n"
        assert kernel_id in gw.kernel_ids()
        # Leave the kernel running: the server shuts it down on the gateway as it stops.
        assert await srv.stop() == 0
        assert kernel_id not in gw.kernel_ids()
        assert gw.stop() == 0
        for _ in range(50):
            if not leftovers(gw.marker):
                break
            await asyncio.sleep(0.2)
        assert leftovers(gw.marker) == []
    finally:
        srv.kill()
        gw.kill()


#: A kernel message with binary buffers (what ipywidgets and others send).
MESSAGE_WITH_BUFFERS = """\
from comm import create_comm
c = create_comm(target_name="t", data={"a": 1}, buffers=[b"ab", bytes([0, 255])])
"""


async def test_a_message_with_buffers_ends_the_kernel_output_for_both(tmp_path: Path) -> None:
    # Upstream behaviour, the same for a direct client and through the tunnel: the
    # gateway sends a message with buffers as a binary frame; jupyter_server decodes
    # every frame from the gateway as UTF-8 text (gateway/connections.py), the decode
    # fails, and the task reading the gateway's socket ends. The client's socket stays
    # open but carries nothing from the kernel any more (ipywidgets#3798).
    gw = KernelGateway(tmp_path / "gateway")
    gw.start()
    srv = gateway_server(tmp_path / "server", gw)
    try:
        srv.start()
        async with await TunnelClient.connect(srv.url, token=srv.token) as tunnel:
            for opener in ("tunnel", "direct"):
                kernel_id = await start_kernel(tunnel)
                if opener == "tunnel":
                    kernel, connection = await tunnel_socket(tunnel, kernel_id)
                else:
                    kernel, connection = await direct_socket(srv, kernel_id)
                await kernel.wait_ready()
                msg_id = await kernel.execute(MESSAGE_WITH_BUFFERS)
                with pytest.raises(asyncio.TimeoutError):
                    await kernel.collect(msg_id, timeout=5)
                assert not any(m.msg_type == "comm_open" for m in kernel.backlog)
                msg_id = await kernel.execute("print('still there?')")
                with pytest.raises(asyncio.TimeoutError):
                    await kernel.collect(msg_id, timeout=3)
                assert connection.close_code is None  # open, and silent
                connection.close()
                deleted = await tunnel.request("DELETE", f"api/kernels/{kernel_id}")
                assert deleted.status == 204
        # One failed read task per socket (the tunnel's and the direct one).
        failed_reads = [
            line
            for line in srv.log().splitlines()
            if "GatewayWebSocketConnection._read_messages" in line and "UnicodeDecodeError" in line
        ]
        assert len(failed_reads) == 2, srv.log()[-3000:]
    finally:
        srv.kill()
        gw.kill()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_a_kernel_killed_on_the_gateway_restarts_for_both(
    server: ServerProcess, gateway: KernelGateway, transports: tuple[str, ...]
) -> None:
    # The gateway's restarter restarts a kernel whose process dies: a tunnelled and a
    # direct socket on the same kernel both hear "restarting", both stay open, and
    # code runs again on both.
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=transports
    ) as tunnel:
        kernel_id = await start_kernel(tunnel)
        try:
            through_tunnel, tunnel_connection = await tunnel_socket(tunnel, kernel_id)
            direct, direct_connection = await direct_socket(server, kernel_id)
            await through_tunnel.wait_ready()
            await direct.wait_ready()
            msg_id = await through_tunnel.execute("import os\nprint(os.getpid())")
            pid = int(stdout_text(await through_tunnel.collect(msg_id)))
            os.kill(pid, signal.SIGKILL)

            def restarting(m: Received) -> bool:
                return m.msg_type == "status" and m.content["execution_state"] == "restarting"

            for kernel in (through_tunnel, direct):
                await kernel.wait_for(restarting, timeout=30)
            assert tunnel_connection.close_code is None
            assert direct_connection.close_code is None
            for kernel in (through_tunnel, direct):
                await kernel.wait_ready()
                msg_id = await kernel.execute("import os\nprint(os.getpid())")
                assert int(stdout_text(await kernel.collect(msg_id))) != pid
            assert kernel_id in gateway.kernel_ids()
            tunnel_connection.close()
            direct_connection.close()
        finally:
            await tunnel.request("DELETE", f"api/kernels/{kernel_id}")


async def test_a_gateway_that_goes_away_leaves_both_sockets_open_and_silent(
    tmp_path: Path,
) -> None:
    # Upstream behaviour, the same for a direct client and through the tunnel: when
    # the gateway's socket closes, jupyter_server tries to reconnect
    # (GatewayClient.gateway_retry_max times, about 30 s with the defaults; 2 tries a
    # few seconds apart here), then stops, and never closes its client's socket.
    gw = KernelGateway(tmp_path / "gateway")
    gw.start()
    srv = gateway_server(tmp_path / "server", gw)
    srv.env.update(
        JUPYTER_GATEWAY_RETRY_MAX="2",
        JUPYTER_GATEWAY_RETRY_INTERVAL="0.5",
        JUPYTER_GATEWAY_RETRY_INTERVAL_MAX="1",
    )
    try:
        srv.start()
        async with await TunnelClient.connect(srv.url, token=srv.token) as tunnel:
            kernel_id = await start_kernel(tunnel)
            through_tunnel, tunnel_connection = await tunnel_socket(tunnel, kernel_id)
            direct, direct_connection = await direct_socket(srv, kernel_id)
            await through_tunnel.wait_ready()
            await direct.wait_ready()
            gw.kill()  # the gateway and its kernels, at once
            await eventually(
                lambda: (
                    srv.log().count("Attempting to re-establish the connection to Gateway") >= 4
                ),  # two tries for each of the two sockets
                timeout=30,
                message="jupyter_server's reconnection attempts",
            )
            await asyncio.sleep(5)  # past the last attempt
            for kernel, connection in (
                (through_tunnel, tunnel_connection),
                (direct, direct_connection),
            ):
                assert connection.close_code is None  # still open
                msg_id = await kernel.execute("print('anyone?')")
                with pytest.raises(asyncio.TimeoutError):
                    await kernel.collect(msg_id, timeout=3)
            listed = await tunnel.request("GET", "api/kernels")
            assert listed.status >= 500, listed.text()
            tunnel_connection.close()
            direct_connection.close()
        # Not SIGTERM: with the gateway gone, the server did not exit within 30 s.
        srv.kill()
        # The gateway's kernels run in sessions of their own; orphaned, they notice
        # their parent is gone and exit.
        await eventually(lambda: not leftovers(gw.marker), timeout=20, message="leftovers")
    finally:
        srv.kill()
        gw.kill()
