"""A kernel's flood of output through ``proxied_ws`` against a direct kernel WebSocket.

A cell prints ``flood_lines`` lines of 100 bytes, flushing every 5 lines (one ``stream``
message each: ipykernel otherwise batches 0.2 s of output into one), on a freshly
started server with jupyter_server's output rate limit off
(``ZMQChannelsWebsocketConnection.limit_rate=False``), so that the limiter is not what
is measured. Two readers, each on its own socket and kernel run:

* a fast reader: stream text per second, from the ``execute_request`` to the cell's
  ``idle`` status, and the share of the printed lines that arrived (ZeroMQ drops what a
  server does not drain in time; tests/test_output_flood.py counts it too);
* a reader at ``flood_slow_rate`` bytes/s: the server's peak RSS growth meanwhile (what
  the reader has not taken waits in the server's buffers, directly as through the
  tunnel), and the p50 of ``GET /api/status`` on another connection of the same kind
  meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

from clients import KernelSocket
from harness import Context, MemoryWatch, Metric, MiB, Scenario, Variant, open_http, percentile
from scenarios_kernel import EXECUTE, message_type, start_kernel_on
from servers import OurServer

LIMIT_RATE_OFF = "--ZMQChannelsWebsocketConnection.limit_rate=False"
FLUSH_EVERY = 5
LINE = re.compile(r"(\d{8}) x{90}\n")
#: Seconds without any message of the cell after which its ``idle`` is taken as dropped.
IDLE_GRACE = 10.0


def flood_code(lines: int) -> str:
    return (
        "import sys\n"
        f"for i in range({lines}):\n"
        '    sys.stdout.write("%08d %s\\n" % (i, "x" * 90))\n'
        f"    if i % {FLUSH_EVERY} == {FLUSH_EVERY - 1}:\n"
        "        sys.stdout.flush()\n"
        "sys.stdout.flush()\n"
    )


async def _flood(socket: KernelSocket, lines: int) -> tuple[float, int, bool, float | None]:
    """Run the flood: (seconds to the last message, lines arrived, idle, reply to idle in s).

    The reply comes on the shell channel, which is not behind the output: the output
    still queued may arrive long after it. So the ``idle`` is waited for as long as the
    cell's messages keep coming, and taken as dropped after :data:`IDLE_GRACE` seconds
    without any.
    """
    loop = asyncio.get_running_loop()
    message = socket.message("execute_request", {**EXECUTE, "code": flood_code(lines)})
    msg_id = message["header"]["msg_id"]
    text: list[str] = []
    reply: asyncio.Future[float] = loop.create_future()
    idle: asyncio.Future[float] = loop.create_future()
    last_arrival = [0.0]

    def on_message(received: dict[str, Any]) -> None:
        if received.get("parent_header", {}).get("msg_id") != msg_id:
            return
        last_arrival[0] = time.perf_counter()
        kind = message_type(received)
        content = received.get("content", {})
        if kind == "stream" and content.get("name") == "stdout":
            text.append(content["text"])
        elif kind == "execute_reply" and not reply.done():
            reply.set_result(last_arrival[0])
        elif kind == "status" and content.get("execution_state") == "idle" and not idle.done():
            idle.set_result(last_arrival[0])

    socket.on_message = on_message
    start = time.perf_counter()
    await socket.send(message)
    replied = await asyncio.wait_for(reply, 600)
    while not idle.done() and time.perf_counter() - last_arrival[0] < IDLE_GRACE:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(idle), 0.5)
    arrived = len({m.group(1) for m in LINE.finditer("".join(text))})
    after_reply = idle.result() - replied if idle.done() else None
    return last_arrival[0] - start, arrived, idle.done(), after_reply


async def _status_latencies(variant: Variant, server: Any, stop: asyncio.Event) -> list[float]:
    client = await open_http(variant, server)
    samples: list[float] = []
    try:
        while not (stop.is_set() and samples):
            start = time.perf_counter()
            reply = await client.request("GET", "/api/status")
            if reply.status != 200:
                raise RuntimeError(f"GET /api/status answered {reply.status}")
            samples.append(1000 * (time.perf_counter() - start))
            await asyncio.sleep(0.05)
    finally:
        await client.close()
    return samples


async def measure_flood(variant: Variant, ctx: Context) -> dict[str, Any]:
    lines = ctx.sizes.flood_lines
    server = OurServer(
        "ours-flood",
        ctx.root_dir,
        extra_args=(*ctx.ours_args, LIMIT_RATE_OFF),
        source=ctx.ours_source,
        extra_env=ctx.ours_env,
    )
    await server.start()
    try:
        kernel_id = await start_kernel_on(server)

        async def connect() -> KernelSocket:
            socket = await KernelSocket.connect(
                server.ws_url, kernel_id, server.auth_headers, proxied=variant.tunnel
            )
            # A small flood first, read whole: the socket's iopub subscription is in place
            # (jupyter_server's nudge may still be under way when the socket opens).
            for _ in range(10):
                _, arrived, idle, _ = await _flood(socket, 10)
                if arrived == 10 and idle:
                    return socket
            raise RuntimeError("the kernel's output never reached the new socket")

        fast = await connect()
        try:
            seconds, arrived, idle, idle_after_reply = await _flood(fast, lines)
        finally:
            await fast.close()

        slow_lines = ctx.sizes.flood_slow_lines
        slow = await connect()
        slow.read_rate = ctx.sizes.flood_slow_rate
        stop = asyncio.Event()
        try:
            async with MemoryWatch(server) as watch:
                probe = asyncio.create_task(_status_latencies(variant, server, stop))
                try:
                    _, slow_arrived, _, _ = await _flood(slow, slow_lines)
                finally:
                    stop.set()
                latencies = await probe
        finally:
            await slow.close()
    finally:
        server.stop()
    figures = {
        "flood_speed": arrived * 100 / MiB / seconds,
        "flood_arrived": 100.0 * arrived / lines,
        "flood_idle": 1.0 if idle else 0.0,
        "flood_slow_rss": watch.growth / MiB,
        "flood_slow_status_p50": percentile(latencies, 0.5),
        "flood_slow_arrived": 100.0 * slow_arrived / slow_lines,
    }
    if idle_after_reply is not None:
        figures["flood_idle_after_reply"] = idle_after_reply
    return figures


def scenarios(ctx: Context) -> list[Scenario]:
    sizes = ctx.sizes
    slow_mb = sizes.flood_slow_lines * 100 / MiB
    return [
        Scenario(
            "kernel_flood",
            ("direct", "ours"),
            measure_flood,
            (
                Metric(
                    "flood_speed",
                    f"output flood, {sizes.flood_lines:,} lines of 100 B, fast reader",
                    "MiB/s",
                    "higher",
                    ">= 0.9x direct",
                    "ratio",
                    0.9,
                ),
                Metric("flood_arrived", "↳ lines that arrived", "%", "higher"),
                Metric("flood_idle", "↳ the cell's idle status arrived (1 = yes)", "", "higher"),
                Metric(
                    "flood_idle_after_reply",
                    "↳ the idle's arrival after the execute_reply's (rounds where it arrived)",
                    "s",
                    "lower",
                ),
                Metric(
                    "flood_slow_rss",
                    f"server peak RSS growth, {slow_mb:.1f} MiB flood read at "
                    f"{sizes.flood_slow_rate / MiB:g} MiB/s",
                    "MiB",
                    "lower",
                ),
                Metric(
                    "flood_slow_status_p50",
                    "↳ GET /api/status p50 meanwhile, another connection",
                    "ms",
                    "lower",
                ),
                Metric("flood_slow_arrived", "↳ lines that arrived", "%", "higher"),
            ),
            timeout=900.0,
        )
    ]
