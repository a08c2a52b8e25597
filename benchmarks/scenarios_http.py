"""Latency, requests per second, head-of-line blocking and download speed.

Each ``measure_*`` coroutine runs one round for one variant on the long-lived servers
and returns its figures; the caller interleaves variants and takes medians.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clients import CeilingSocket
from harness import (
    CEILING_VARIANTS,
    Context,
    CpuWatch,
    Metric,
    MiB,
    Scenario,
    Variant,
    open_http,
    percentile,
)

STATUS = "/api/status"
HTTP_VARIANTS = ("direct", "ours", "direct_nb6", "original")
#: Where the framing matters (bodies), our opt-in binary framing is measured too.
BODY_VARIANTS = ("direct", "ours", "ours_binary", "direct_nb6", "original")


def file_name(size: int) -> str:
    return f"bench-{size // MiB}MiB.bin" if size >= MiB else f"bench-{size}B.bin"


async def measure_latency(variant: Variant, ctx: Context) -> dict[str, Any]:
    """``GET /api/status``, one at a time: p50 and p90 in milliseconds."""
    server = ctx.server(variant)
    client = await open_http(variant, server)
    try:
        for _ in range(5):  # connection set-up and first-request costs stay out
            await client.request("GET", STATUS)
        samples = []
        with CpuWatch(server) as cpu:
            for _ in range(ctx.sizes.latency_requests):
                start = time.perf_counter()
                reply = await client.request("GET", STATUS)
                samples.append((time.perf_counter() - start) * 1000)
                if reply.status != 200:
                    raise RuntimeError(f"GET {STATUS} answered {reply.status}")
    finally:
        await client.close()
    return {
        "status_p50": percentile(samples, 0.5),
        "status_p90": percentile(samples, 0.9),
        "status_cpu": cpu.seconds / len(samples) * 1e6,
    }


def _throughput(in_flight: int) -> Any:
    async def measure(variant: Variant, ctx: Context) -> dict[str, Any]:
        """``GET /api/status`` with ``in_flight`` requests outstanding, for a fixed time.

        Direct HTTP/1.1 cannot multiplex, so it gets ``in_flight`` keep-alive connections;
        a tunnel carries them all on its one socket.
        """
        server = ctx.server(variant)
        client = await open_http(variant, server, connections=in_flight)
        completed = 0
        counting = False
        stop_at = 0.0

        async def worker() -> None:
            nonlocal completed
            while time.perf_counter() < stop_at:
                reply = await client.request("GET", STATUS)
                if reply.status != 200:
                    raise RuntimeError(f"GET {STATUS} answered {reply.status}")
                if counting:
                    completed += 1

        try:
            # Warm up (opens the connections), then count for the measured period.
            stop_at = time.perf_counter() + 0.3
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            counting = True
            with CpuWatch(server) as cpu:
                start = time.perf_counter()
                stop_at = start + ctx.sizes.throughput_seconds
                await asyncio.gather(*(worker() for _ in range(in_flight)))
                elapsed = time.perf_counter() - start
        finally:
            await client.close()
        return {
            f"rps_{in_flight}": completed / elapsed,
            f"rps_{in_flight}_cpu": cpu.seconds / completed * 1e6,
        }

    return measure


async def measure_head_of_line(variant: Variant, ctx: Context) -> dict[str, Any]:
    """Small ``GET``s, one at a time, while a large download streams on the same tunnel.

    Direct: the download and the small requests use two keep-alive connections, as a
    browser would. Only requests sent while the download is running are counted.
    """
    size = ctx.sizes.hol_file
    client = await open_http(variant, ctx.server(variant), connections=2)
    try:
        for _ in range(3):  # two requests at once: a direct client opens both connections
            await asyncio.gather(client.request("GET", STATUS), client.request("GET", STATUS))
        started = asyncio.Event()
        download = asyncio.create_task(
            client.request("GET", "/files/" + file_name(size), keep_body=False, started=started)
        )
        await asyncio.wait(
            [download, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        samples = []
        while not download.done() and len(samples) < ctx.sizes.hol_max_samples:
            start = time.perf_counter()
            await client.request("GET", STATUS)
            samples.append((time.perf_counter() - start) * 1000)
        reply = await download
        if reply.status != 200 or reply.length != size:
            raise RuntimeError(f"download answered {reply.status} with {reply.length} bytes")
        if not samples:
            raise RuntimeError("the download ended before a small request could be sent")
    finally:
        await client.close()
    return {"hol_p50": percentile(samples, 0.5), "hol_samples": len(samples)}


def _download(index: int) -> Any:
    async def measure(variant: Variant, ctx: Context) -> dict[str, Any]:
        """One ``GET /files/...`` read as fast as possible: MiB/s of body.

        The ceiling variants read as many bytes from a bare Tornado WebSocket instead.
        """
        size = ctx.sizes.downloads[index]
        server = ctx.server(variant)
        if variant.server_kind == "ceiling":
            return await _ceiling(index, size, variant, server)
        client = await open_http(variant, server)
        try:
            await client.request("GET", STATUS)
            with CpuWatch(server) as cpu:
                client_cpu = time.process_time()
                start = time.perf_counter()
                reply = await client.request("GET", "/files/" + file_name(size), keep_body=False)
                elapsed = time.perf_counter() - start
                client_cpu = time.process_time() - client_cpu
        finally:
            await client.close()
        if reply.status != 200 or reply.length != size:
            raise RuntimeError(
                f"download answered {reply.status} {reply.status_text!r} "
                f"with {reply.length} of {size} bytes"
            )
        return {
            f"download_{index}": size / MiB / elapsed,
            f"download_{index}_cpu": cpu.seconds * 1000 / (size / MiB),
            f"download_{index}_client_cpu": client_cpu * 1000 / (size / MiB),
        }

    return measure


async def _ceiling(index: int, size: int, variant: Variant, server: Any) -> dict[str, Any]:
    """``size`` bytes from ``ceiling_server.py``, timed as a download is."""
    client = await CeilingSocket.connect(server.ws_url, json_frames=not variant.binary)
    try:
        await client.download(1)  # as the GET /api/status before a download
        with CpuWatch(server) as cpu:
            client_cpu = time.process_time()
            start = time.perf_counter()
            length = await client.download(size)
            elapsed = time.perf_counter() - start
            client_cpu = time.process_time() - client_cpu
    finally:
        await client.close()
    if length != size:
        raise RuntimeError(f"ceiling server sent {length} of {size} bytes")
    return {
        f"download_{index}": size / MiB / elapsed,
        f"download_{index}_cpu": cpu.seconds * 1000 / (size / MiB),
        f"download_{index}_client_cpu": client_cpu * 1000 / (size / MiB),
    }


def scenarios(ctx: Context) -> list[Scenario]:
    sizes = ctx.sizes
    out = [
        Scenario(
            "latency",
            (*HTTP_VARIANTS, "original_auth_url"),
            measure_latency,
            (
                Metric(
                    "status_p50",
                    "GET /api/status latency, p50",
                    "ms",
                    "lower",
                    "<= 1.5x direct",
                    "ratio",
                    1.5,
                ),
                Metric("status_p90", "GET /api/status latency, p90", "ms", "lower"),
                Metric("status_cpu", "server CPU per GET /api/status, 1 in flight", "µs", "lower"),
            ),
            warmup=True,
        ),
    ]
    for n in (1, 16, 64):
        title = f"GET /api/status, {n} in flight"
        metric = (
            Metric(f"rps_{n}", title, "req/s", "higher", ">= 0.9x direct", "ratio", 0.9)
            if n == 16
            else Metric(f"rps_{n}", title, "req/s", "higher")
        )
        metrics: tuple[Metric, ...] = (metric,)
        if n == 16:
            metrics += (
                Metric("rps_16_cpu", "server CPU per request, 16 in flight", "µs", "lower"),
            )
        out.append(Scenario(f"rps_{n}", HTTP_VARIANTS, _throughput(n), metrics, warmup=True))
    out.append(
        Scenario(
            "head_of_line",
            BODY_VARIANTS,
            measure_head_of_line,
            (
                Metric(
                    "hol_p50",
                    f"GET /api/status p50 during a {sizes.hol_file // MiB} MiB download "
                    "(ratio: to the idle p50 of direct)",
                    "ms",
                    "lower",
                    "<= 3x direct idle",
                    "ratio",
                    3.0,
                    baseline_metric="status_p50",
                ),
            ),
        )
    )
    for index, size in enumerate(sizes.downloads):
        out.append(
            Scenario(
                f"download_{index}",
                # The physical ceiling (a bare Tornado WebSocket) for the first size only.
                BODY_VARIANTS + (CEILING_VARIANTS if index == 0 else ()),
                _download(index),
                (
                    Metric(
                        f"download_{index}",
                        f"download {size // MiB} MiB via /files/",
                        "MiB/s",
                        "higher",
                        ">= 0.3x direct",
                        "ratio",
                        0.3,
                    ),
                    Metric(
                        f"download_{index}_cpu",
                        f"server CPU per MiB, {size // MiB} MiB download",
                        "ms/MiB",
                        "lower",
                    ),
                    *(
                        (
                            Metric(
                                f"download_{index}_client_cpu",
                                f"client CPU per MiB, {size // MiB} MiB download",
                                "ms/MiB",
                                "lower",
                            ),
                        )
                        if index == 0
                        else ()
                    ),
                ),
            )
        )
    return out
