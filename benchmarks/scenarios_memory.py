"""Server memory under a slow reader and under uploads, each on a freshly started server.

A fresh server per measurement keeps the figures independent: CPython rarely returns
freed memory to the system, so a second large request on the same process would grow
its RSS less than the first and favour whichever variant ran later.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from harness import Context, MemoryWatch, Metric, MiB, Scenario, Variant, open_http
from scenarios_http import BODY_VARIANTS, file_name

JSON = {"Content-Type": "application/json"}
UPLOAD_DIR = "uploads"


def prepare_payloads(ctx: Context) -> None:
    """The upload bodies, built once per run and shared by every variant."""
    data = os.urandom(ctx.sizes.upload)
    content = base64.b64encode(data).decode("ascii")
    ctx.payloads["single"] = '{"type":"file","format":"base64","content":"' + content + '"}'
    step = ctx.sizes.upload_chunk
    starts = list(range(0, len(data), step))
    chunks = []
    for number, offset in enumerate(starts, start=1):
        # JupyterLab numbers chunks 1, 2, ... and marks the last one -1.
        chunk_number = -1 if offset == starts[-1] else number
        chunk = base64.b64encode(data[offset : offset + step]).decode("ascii")
        chunks.append((chunk_number, chunk))
    ctx.payloads["chunks"] = chunks
    (ctx.root_dir / UPLOAD_DIR).mkdir(exist_ok=True)


def _check_upload(ctx: Context, name: str, reply: Any) -> None:
    path = ctx.root_dir / UPLOAD_DIR / name
    try:
        if reply.status not in (200, 201):
            raise RuntimeError(
                f"upload answered {reply.status} {reply.status_text!r}: {reply.body[:200]!r}"
            )
        if path.stat().st_size != ctx.sizes.upload:
            raise RuntimeError(f"uploaded file has {path.stat().st_size} bytes")
    finally:
        path.unlink(missing_ok=True)


async def measure_slow_reader(variant: Variant, ctx: Context) -> dict[str, Any]:
    """A download read at ``slow_rate``: how much the server's RSS grows meanwhile."""
    size = ctx.sizes.slow_file
    async with ctx.fresh_server(variant) as server:
        client = await open_http(variant, server)
        try:
            await client.request("GET", "/api/status")
            async with MemoryWatch(server) as watch:
                start = time.perf_counter()
                reply = await client.request(
                    "GET", "/files/" + file_name(size), keep_body=False, rate=ctx.sizes.slow_rate
                )
                elapsed = time.perf_counter() - start
        finally:
            await client.close()
    if reply.status != 200 or reply.length != size:
        raise RuntimeError(f"download answered {reply.status} with {reply.length} bytes")
    return {"slow_rss": watch.growth / MiB, "slow_seconds": elapsed}


async def measure_upload_single(variant: Variant, ctx: Context) -> dict[str, Any]:
    """``PUT /api/contents/...`` with the whole file as one base64 body."""
    name = f"single-{variant.name}-{time.monotonic_ns()}.bin"
    body: str = ctx.payloads["single"]
    async with ctx.fresh_server(variant) as server:
        client = await open_http(variant, server)
        try:
            await client.request("GET", "/api/status")
            async with MemoryWatch(server) as watch:
                start = time.perf_counter()
                reply = await client.request(
                    "PUT",
                    f"/api/contents/{UPLOAD_DIR}/{name}",
                    body=body if variant.tunnel else body.encode("ascii"),
                    headers=JSON,
                )
                elapsed = time.perf_counter() - start
        finally:
            await client.close()
    _check_upload(ctx, name, reply)
    return {
        "upload_single_speed": ctx.sizes.upload / MiB / elapsed,
        "upload_single_rss": watch.growth / MiB,
    }


async def measure_upload_chunked(variant: Variant, ctx: Context) -> dict[str, Any]:
    """The same file in 1 MiB chunks, one ``PUT`` after another, as JupyterLab uploads."""
    name = f"chunked-{variant.name}-{time.monotonic_ns()}.bin"
    path = f"{UPLOAD_DIR}/{name}"
    async with ctx.fresh_server(variant) as server:
        client = await open_http(variant, server)
        try:
            await client.request("GET", "/api/status")
            async with MemoryWatch(server) as watch:
                start = time.perf_counter()
                for number, content in ctx.payloads["chunks"]:
                    body = (
                        '{"type":"file","format":"base64","name":"'
                        + name
                        + '","path":"'
                        + path
                        + f'","chunk":{number},"content":"'
                        + content
                        + '"}'
                    )
                    reply = await client.request(
                        "PUT",
                        "/api/contents/" + path,
                        body=body if variant.tunnel else body.encode("ascii"),
                        headers=JSON,
                    )
                    if reply.status not in (200, 201):
                        break
                elapsed = time.perf_counter() - start
        finally:
            await client.close()
    _check_upload(ctx, name, reply)
    return {
        "upload_chunked_speed": ctx.sizes.upload / MiB / elapsed,
        "upload_chunked_rss": watch.growth / MiB,
    }


def scenarios(ctx: Context) -> list[Scenario]:
    sizes = ctx.sizes
    up = sizes.upload // MiB
    return [
        Scenario(
            "slow_reader",
            BODY_VARIANTS,
            measure_slow_reader,
            (
                Metric(
                    "slow_rss",
                    f"server RSS growth, {sizes.slow_file // MiB} MiB read at "
                    f"{sizes.slow_rate / MiB:g} MiB/s",
                    "MiB",
                    "lower",
                    "< 32 MiB",
                    "absolute",
                    32.0,
                ),
            ),
        ),
        Scenario(
            "upload_single",
            BODY_VARIANTS,
            measure_upload_single,
            (
                Metric(
                    "upload_single_speed",
                    f"upload {up} MiB, one base64 body",
                    "MiB/s",
                    "higher",
                    ">= 0.7x direct",
                    "ratio",
                    0.7,
                ),
                Metric(
                    "upload_single_rss",
                    f"server peak RSS growth, {up} MiB one-body upload",
                    "MiB",
                    "lower",
                    "<= 2x direct",
                    "ratio",
                    2.0,
                ),
            ),
        ),
        Scenario(
            "upload_chunked",
            BODY_VARIANTS,
            measure_upload_chunked,
            (
                Metric(
                    "upload_chunked_speed",
                    f"upload {up} MiB in {sizes.upload_chunk // MiB} MiB chunks",
                    "MiB/s",
                    "higher",
                ),
                Metric(
                    "upload_chunked_rss",
                    f"server peak RSS growth, {up} MiB chunked upload",
                    "MiB",
                    "lower",
                ),
            ),
        ),
    ]
