"""Kernel messages through ``proxied_ws`` against a direct kernel WebSocket.

Both servers run the same kernelspec (ipykernel of the benchmarking interpreter), and
each server's proxied socket is compared with a direct socket to the same kernel.
Every measurement opens its own socket and closes it, so that no other socket of ours
receives the kernel's broadcast (iopub) messages meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clients import KernelSocket
from harness import Context, CpuWatch, Metric, Scenario, Variant, percentile
from scenarios_http import HTTP_VARIANTS

EXECUTE = {
    "code": "pass",
    "silent": False,
    "store_history": False,
    "user_expressions": {},
    "allow_stdin": False,
    "stop_on_error": True,
}


async def start_kernel(ctx: Context, server_kind: str) -> str:
    """Start a kernel on one of the run's servers (:func:`start_kernel_on`); keep its id."""
    kernel_id = await start_kernel_on(ctx.servers[server_kind])
    ctx.kernels[server_kind] = kernel_id
    return kernel_id


async def start_kernel_on(server: Any) -> str:
    """Start a kernel on ``server`` and wait until it answers ``kernel_info_request``."""
    import aiohttp

    async with (
        aiohttp.ClientSession(headers=server.auth_headers) as session,
        session.post(server.url + "/api/kernels", json={"name": "bench-python"}) as r,
    ):
        if r.status not in (200, 201):
            raise RuntimeError(f"starting a kernel answered {r.status}: {await r.text()}")
        kernel_id = str((await r.json())["id"])
    socket = await KernelSocket.connect(
        server.ws_url, kernel_id, server.auth_headers, proxied=False
    )
    try:
        await _round_trip(socket, "kernel_info_request", {}, "kernel_info_reply", timeout=120)
    finally:
        await socket.close()
    return kernel_id


def message_type(message: dict[str, Any]) -> str | None:
    """A received message's ``msg_type`` (top level, or in its header)."""
    return message.get("msg_type") or message.get("header", {}).get("msg_type")


async def _round_trip(
    socket: KernelSocket,
    msg_type: str,
    content: dict[str, Any],
    reply_type: str,
    timeout: float = 30,
) -> float:
    """Send one request; return seconds until its reply, after waiting for its idle status."""
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[float] = loop.create_future()
    idle: asyncio.Future[None] = loop.create_future()
    message = socket.message(msg_type, content)
    msg_id = message["header"]["msg_id"]

    def on_message(received: dict[str, Any]) -> None:
        if received.get("parent_header", {}).get("msg_id") != msg_id:
            return
        kind = message_type(received)
        if kind == reply_type and not reply.done():
            reply.set_result(time.perf_counter())
        elif (
            kind == "status"
            and received["content"].get("execution_state") == "idle"
            and not idle.done()
        ):
            idle.set_result(None)

    socket.on_message = on_message
    start = time.perf_counter()
    await socket.send(message)
    # Wait for the idle status too, so that the next request starts on a quiet kernel.
    done_at, _ = await asyncio.wait_for(asyncio.gather(reply, idle), timeout)
    return done_at - start


async def _connect(
    variant: Variant, ctx: Context, *, quick_ack: bool | None = None
) -> KernelSocket:
    server = ctx.server(variant)
    return await KernelSocket.connect(
        server.ws_url,
        ctx.kernels[variant.server_kind],
        server.auth_headers,
        proxied=variant.tunnel,
        quick_ack=quick_ack,
    )


async def _round_trips(variant: Variant, ctx: Context, *, quick_ack: bool | None) -> list[float]:
    """``ctx.sizes.kernel_rtts`` execute round trips on a new socket, in ms."""
    socket = await _connect(variant, ctx, quick_ack=quick_ack)
    try:
        for _ in range(3):
            await _round_trip(socket, "kernel_info_request", {}, "kernel_info_reply")
        return [
            1000 * await _round_trip(socket, "execute_request", EXECUTE, "execute_reply")
            for _ in range(ctx.sizes.kernel_rtts)
        ]
    finally:
        await socket.close()


async def measure_round_trip(variant: Variant, ctx: Context) -> dict[str, Any]:
    """``execute_request`` (``pass``) to ``execute_reply``, one at a time: p50, p90 in ms.

    Twice, on two sockets one after the other: a client that ACKs every segment at once
    (``TCP_QUICKACK``, unless ``--no-quickack``), then one that delays its ACKs as most
    clients do. jupyter_server's kernel socket writes without ``TCP_NODELAY``, so with
    the second client Nagle's algorithm holds a small frame until the delayed ACK of the
    previous one comes (up to 40 ms on Linux): the difference is that stall.
    """
    quick = await _round_trips(variant, ctx, quick_ack=None)
    delayed = await _round_trips(variant, ctx, quick_ack=False)
    return {
        "kernel_rtt_p50": percentile(quick, 0.5),
        "kernel_rtt_p90": percentile(quick, 0.9),
        "kernel_rtt_delayed_ack_p50": percentile(delayed, 0.5),
        "kernel_rtt_delayed_ack_p90": percentile(delayed, 0.9),
    }


async def measure_round_trip_paired(variant: Variant, ctx: Context) -> dict[str, Any]:
    """Direct and tunnelled round trips alternated sample by sample on one kernel.

    ``measure_round_trip`` takes each variant's samples in its own stretch of time; on a
    shared machine the drift between two stretches can exceed the difference measured
    (a tunnelled round trip costs tenths of a millisecond more, or less). Here a direct
    socket and ``variant``'s proxied socket to the same kernel are open together and take
    turns, the order swapped every pair (D T, T D, ...), so the drift falls on both
    alike. Both sockets receive every request's broadcast (iopub) messages, whichever
    socket sent it, so that cost too falls on both alike. Clients ACK at once (the
    delayed-ACK rows of ``kernel_rtt`` measure the other kind).
    """
    server = ctx.server(variant)
    kernel_id = ctx.kernels[variant.server_kind]
    direct = await KernelSocket.connect(
        server.ws_url, kernel_id, server.auth_headers, proxied=False
    )
    try:
        tunnelled = await _connect(variant, ctx)
        try:
            for socket in (direct, tunnelled):
                for _ in range(3):
                    await _round_trip(socket, "kernel_info_request", {}, "kernel_info_reply")
            samples: dict[bool, list[float]] = {False: [], True: []}
            for i in range(ctx.sizes.kernel_rtts):
                for through_tunnel in (False, True) if i % 2 == 0 else (True, False):
                    socket = tunnelled if through_tunnel else direct
                    seconds = await _round_trip(socket, "execute_request", EXECUTE, "execute_reply")
                    samples[through_tunnel].append(1000 * seconds)
        finally:
            await tunnelled.close()
    finally:
        await direct.close()
    figures: dict[str, Any] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9)):
        direct_ms = percentile(samples[False], q)
        tunnel_ms = percentile(samples[True], q)
        figures[f"kernel_rtt_paired_direct_{name}"] = direct_ms
        figures[f"kernel_rtt_paired_{name}"] = tunnel_ms
        figures[f"kernel_rtt_paired_ratio_{name}"] = tunnel_ms / direct_ms
    return figures


#: Requests outstanding at most during a burst. ZeroMQ drops messages past its high-water
#: marks (1000 by default) between jupyter_server and the kernel, so an unbounded burst of
#: 10,000 loses most replies, directly as much as through the tunnel.
BURST_WINDOW = 200


async def measure_burst(variant: Variant, ctx: Context) -> dict[str, Any]:
    """Send ``kernel_burst`` ``kernel_info_request``s as fast as replies allow; replies/s.

    Up to :data:`BURST_WINDOW` requests are outstanding: a new one goes out as soon as a
    reply comes in. Each request also makes the kernel publish two status messages, so
    three messages come back per request.
    """
    count = ctx.sizes.kernel_burst
    socket = await _connect(variant, ctx)
    try:
        await _round_trip(socket, "kernel_info_request", {}, "kernel_info_reply")
        sent: set[str] = set()
        received = 0
        window = asyncio.Semaphore(BURST_WINDOW)
        all_in = asyncio.get_running_loop().create_future()

        def on_message(message: dict[str, Any]) -> None:
            nonlocal received
            if (
                message_type(message) == "kernel_info_reply"
                and message.get("parent_header", {}).get("msg_id") in sent
            ):
                received += 1
                window.release()
                if received == count and not all_in.done():
                    all_in.set_result(time.perf_counter())

        socket.on_message = on_message
        with CpuWatch(ctx.server(variant)) as cpu:
            start = time.perf_counter()
            for _ in range(count):
                await window.acquire()
                message = socket.message("kernel_info_request", {})
                sent.add(message["header"]["msg_id"])  # before sending: the reply may be quick
                await socket.send(message)
            end = await asyncio.wait_for(all_in, 120)
    finally:
        await socket.close()
    return {
        "kernel_burst": count / (end - start),
        "kernel_burst_seconds": end - start,
        # Per request: the request in, and its reply and two status messages out.
        "kernel_burst_cpu": cpu.seconds / count * 1e6,
    }


def scenarios(ctx: Context) -> list[Scenario]:
    return [
        Scenario(
            "kernel_rtt",
            HTTP_VARIANTS,
            measure_round_trip,
            (
                Metric(
                    "kernel_rtt_p50",
                    "kernel execute_request round trip, p50",
                    "ms",
                    "lower",
                    "<= 1.05x direct",
                    "ratio",
                    1.05,
                ),
                Metric(
                    "kernel_rtt_p90",
                    "kernel execute_request round trip, p90",
                    "ms",
                    "lower",
                    "<= 1.05x direct",
                    "ratio",
                    1.05,
                ),
                Metric(
                    "kernel_rtt_delayed_ack_p50",
                    "kernel execute_request round trip, p50, client delaying its ACKs",
                    "ms",
                    "lower",
                ),
                Metric(
                    "kernel_rtt_delayed_ack_p90",
                    "kernel execute_request round trip, p90, client delaying its ACKs",
                    "ms",
                    "lower",
                ),
            ),
            warmup=True,
        ),
        Scenario(
            "kernel_rtt_paired",
            ("ours",),
            measure_round_trip_paired,
            (
                Metric(
                    "kernel_rtt_paired_ratio_p50",
                    "kernel round trip p50, tunnelled/direct, alternated sample by sample",
                    "x",
                    "lower",
                    "<= 1.05x direct",
                    "absolute",
                    1.05,
                ),
                Metric(
                    "kernel_rtt_paired_ratio_p90",
                    "kernel round trip p90, tunnelled/direct, alternated sample by sample",
                    "x",
                    "lower",
                    "<= 1.05x direct",
                    "absolute",
                    1.05,
                ),
                Metric("kernel_rtt_paired_p50", "↳ tunnelled p50", "ms", "lower"),
                Metric("kernel_rtt_paired_direct_p50", "↳ direct p50, same run", "ms", "lower"),
                Metric("kernel_rtt_paired_p90", "↳ tunnelled p90", "ms", "lower"),
                Metric("kernel_rtt_paired_direct_p90", "↳ direct p90, same run", "ms", "lower"),
            ),
            warmup=True,
        ),
        Scenario(
            "kernel_burst",
            HTTP_VARIANTS,
            measure_burst,
            (
                Metric(
                    "kernel_burst",
                    f"{ctx.sizes.kernel_burst:,} kernel_info_requests, {BURST_WINDOW} outstanding",
                    "replies/s",
                    "higher",
                ),
                Metric(
                    "kernel_burst_cpu",
                    "server CPU per kernel_info_request in the burst (4 messages)",
                    "µs",
                    "lower",
                ),
            ),
            timeout=180.0,
        ),
    ]
