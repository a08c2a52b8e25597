"""The polling transport against the WebSocket transport, with the same client.

Both variants use this package's own Python client (``TunnelClient``) on the same
server: ``client_ws`` over the tunnel WebSocket, ``client_polling`` forced onto the
polling transport (``transports=("polling",)``), so the figures compare transports, not
client libraries. Figures: ``GET /api/status`` latency (one at a time), requests per
second with 16 in flight, download speed of the first download size, and a kernel
``execute_request`` round trip through a proxied socket. ``python benchmarks/run.py
--only polling`` runs it; ``--smoke`` includes it with small sizes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from harness import BASELINE, VARIANT_LABELS, VARIANTS, Context, Metric, MiB, Scenario, Variant
from harness import percentile as _percentile
from scenarios_http import STATUS, file_name

from jupyter_http_over_ws.client import TunnelClient

POLLING_VARIANTS = ("client_ws", "client_polling")
VARIANT_LABELS.update(
    {
        "client_ws": "Python client, WebSocket",
        "client_polling": "Python client, polling",
    }
)
VARIANTS.update(
    {
        "client_ws": Variant("client_ws", "ours", tunnel=True),
        "client_polling": Variant("client_polling", "ours", tunnel=True),
    }
)
BASELINE["client_polling"] = "client_ws"

METRICS = (
    Metric("transport_status_p50", "GET /api/status latency, p50", "ms", "lower"),
    Metric("transport_rps_16", "GET /api/status, 16 in flight", "req/s", "higher"),
    Metric("transport_download", "download (first size)", "MB/s", "higher"),
    Metric("transport_kernel_rtt", "kernel execute round trip, p50", "ms", "lower"),
)


async def _connect(variant: Variant, ctx: Context) -> TunnelClient:
    server = ctx.server(variant)
    transports = ("polling",) if variant.name == "client_polling" else ("websocket",)
    client = await TunnelClient.connect(server.url, token=server.token, transports=transports)
    expected = "polling" if variant.name == "client_polling" else "websocket"
    if client.transport != expected:
        raise RuntimeError(f"connected over {client.transport}, not {expected}")
    return client


async def _kernel_rtt(client: TunnelClient, samples: int) -> float:
    reply = await client.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    kernel_id = reply.json()["id"]
    session = uuid.uuid4().hex
    socket = await client.websocket(f"/api/kernels/{kernel_id}/channels?session_id={session}")
    times = []
    try:

        async def round_trip() -> float:
            msg_id = uuid.uuid4().hex
            header = {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "bench",
                "session": session,
                "date": datetime.now(timezone.utc).isoformat(),
                "version": "5.3",
            }
            content = {"code": "1", "silent": False, "store_history": False}
            message = {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
            }
            start = time.perf_counter()
            await socket.write_message(json.dumps(message))
            while True:
                frame = await asyncio.wait_for(socket.read_message(), 60)
                if frame is None:
                    raise RuntimeError("the kernel socket closed")
                if isinstance(frame, str):
                    msg = json.loads(frame)
                    if (
                        msg.get("channel") == "shell"
                        and msg.get("parent_header", {}).get("msg_id") == msg_id
                    ):
                        return (time.perf_counter() - start) * 1000

        await round_trip()  # the kernel's first execute is slow: leave it out
        for _ in range(samples):
            times.append(await round_trip())
    finally:
        socket.close()
        await client.request("DELETE", f"/api/kernels/{kernel_id}")
    return _percentile(times, 0.5)


async def measure_transports(variant: Variant, ctx: Context) -> dict[str, Any]:
    """Latency, 16 in flight, a download and a kernel round trip over one transport."""
    client = await _connect(variant, ctx)
    try:
        for _ in range(5):
            await client.request("GET", STATUS)
        samples = []
        for _ in range(ctx.sizes.latency_requests):
            start = time.perf_counter()
            reply = await client.request("GET", STATUS)
            samples.append((time.perf_counter() - start) * 1000)
            if reply.status != 200:
                raise RuntimeError(f"GET {STATUS} answered {reply.status}")

        completed = 0
        stop_at = time.perf_counter() + ctx.sizes.throughput_seconds

        async def worker() -> None:
            nonlocal completed
            while time.perf_counter() < stop_at:
                await client.request("GET", STATUS)
                completed += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        rps = completed / (time.perf_counter() - start)

        size = ctx.sizes.downloads[0]
        start = time.perf_counter()
        received = 0
        async with client.stream("GET", "/files/" + file_name(size)) as download:
            async for chunk in download:
                received += len(chunk)
        elapsed = time.perf_counter() - start
        if received != size:
            raise RuntimeError(f"downloaded {received} bytes, not {size}")

        rtt = await _kernel_rtt(client, max(5, ctx.sizes.kernel_rtts // 4))
    finally:
        await client.close()
    return {
        "transport_status_p50": _percentile(samples, 0.5),
        "transport_rps_16": rps,
        "transport_download": size / elapsed / 1e6,
        "transport_kernel_rtt": rtt,
    }


def scenarios(ctx: Context) -> list[Scenario]:
    """The one side-by-side scenario (key ``polling``)."""
    size = ctx.sizes.downloads[0]
    metrics = tuple(
        Metric(m.key, f"{m.title} ({size // MiB} MiB)", m.unit, m.better)
        if m.key == "transport_download"
        else m
        for m in METRICS
    )
    return [
        Scenario(
            "polling",
            POLLING_VARIANTS,
            measure_transports,
            metrics,
            timeout=300.0,
            warmup=True,
            description="the polling transport against the WebSocket, same client",
        )
    ]


def take_metrics(results: dict[str, Any]) -> None:
    """Move this scenario's figures to ``results["transport_metrics"]``.

    They compare two transports of ours, not ours against direct HTTP, so they get
    their own table (:func:`side_by_side`) instead of empty columns in the main one.
    """
    metrics = results.get("metrics", {})
    moved = {k: v for k, v in metrics.items() if v.get("scenario") == "polling"}
    for key in moved:
        del metrics[key]
    if moved:
        results["transport_metrics"] = moved


def side_by_side(results: dict[str, Any]) -> str:
    """A Markdown table of the ``polling`` scenario: WebSocket, polling, their ratio."""
    metrics = results.get("transport_metrics", {})
    lines = [
        "| Figure | Unit | WebSocket | polling | polling / WebSocket |",
        "|---|---|---|---|---|",
    ]
    for entry in metrics.values():
        if entry.get("scenario") != "polling":
            continue
        ws = entry["variants"].get("client_ws", {}).get("median")
        poll = entry["variants"].get("client_polling", {}).get("median")
        ratio = f"{poll / ws:.2f}x" if ws and poll else "-"
        lines.append(
            f"| {entry['title']} | {entry['unit']} | {_fmt(ws)} | {_fmt(poll)} | {ratio} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


SECTION_TITLE = "## Polling against WebSocket"


def append_section(path: Any, table: str, results: dict[str, Any]) -> None:
    """Add the side-by-side table to a freshly written ``results.md``."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return
    meta = results["meta"]
    text = path.read_text()
    if SECTION_TITLE in text:
        text = text[: text.index(SECTION_TITLE)].rstrip() + "\n"
    text += (
        f"\n{SECTION_TITLE}\n\n"
        "The same Python client (`TunnelClient`) on the same server, over the tunnel "
        'WebSocket and forced onto the polling transport (`transports=("polling",)`); '
        f"medians of {meta['rounds']} round(s), `{meta['command']}`.\n\n{table}\n"
    )
    path.write_text(text)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
