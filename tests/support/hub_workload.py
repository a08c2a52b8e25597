"""A mixed workload for one user's tunnel behind a hub: REST, uploads and a kernel at once.

Shared by ``tests/test_hub_scale.py`` (which asserts on it) and
``benchmarks/hub_scale.py`` (which times it). Each user gets one
:class:`~jupyter_http_over_ws.client.TunnelClient` on their own server
(``/user/<name>/``) and runs, concurrently on that one tunnel:

- ``rest_workers`` REST loops, each ``rest_rounds`` times: ``PUT`` a text file through
  the contents API, ``GET`` it back (its content must be the same string) and list the
  home directory (it must hold what this user wrote and nothing of another user's);
- one upload loop: for each of ``upload_sizes``, random bytes ``PUT`` base64-encoded,
  then downloaded through ``/files/`` (the SHA-256 must match);
- one kernel: started through the REST API, its channels through the tunnel
  (``proxied_ws``), ``executes`` times code whose output (a few KB of stdout and an
  ``execute_result``) must come back exactly, then deleted.

The work is a fixed number of operations, never a timed run. Every operation is one
request (an execute counts as one: its request and the messages answering it; so does
opening the kernel's channels, until the kernel answers on them); a
:class:`Tally` counts each kind issued and answered, keeps each latency, and records
every wrong or missing answer in ``errors`` instead of stopping, so a run reports
everything that went wrong.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from jupyter_http_over_ws.client import Response, TunnelClient
from support.kernels import V1, KernelSocket, Received, stdout_text

__all__ = ["OP_KINDS", "Tally", "UserRun", "Workload", "percentile", "run_user"]

KiB = 1024
MiB = 1024 * KiB

#: Every kind of operation, in the order reports list them.
OP_KINDS = (
    "contents_put",
    "contents_get",
    "contents_list",
    "upload",
    "download",
    "kernel_start",
    "kernel_connect",
    "execute",
    "kernel_delete",
)


@dataclass(frozen=True)
class Workload:
    """How much each user does (a fixed count of operations)."""

    rest_workers: int = 2
    rest_rounds: int = 10
    upload_sizes: tuple[int, ...] = (4 * KiB, 256 * KiB, 1 * MiB, 3 * MiB)
    executes: int = 10
    #: Bytes of stdout each execute prints.
    output_size: int = 4000
    #: The client's ``connect_timeout``, which also bounds opening the kernel's channels:
    #: jupyter_server answers that upgrade once the new kernel answers, which can take
    #: more than the default 20 s when every user's kernel starts at once on a busy
    #: machine (set the servers' ``HttpOverWebSocketApp.connect_timeout`` to match).
    connect_timeout: float = 90.0
    #: The tunnel's transport: ``"websocket"`` or ``"polling"``.
    transport: str = "websocket"

    def operations(self) -> int:
        """How many operations one user issues."""
        rest = 3 * self.rest_workers * self.rest_rounds
        return rest + 2 * len(self.upload_sizes) + 3 + self.executes


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Tally:
    """Operations issued and answered, their latencies (seconds), and what went wrong."""

    issued: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def timed(self, kind: str, who: str, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run one operation: count it, time it, and note it if it raises (returns None)."""
        self.issued[kind] += 1
        start = time.perf_counter()
        try:
            result = await operation()
        except Exception as error:  # every failure is reported; none stops the run
            self.errors.append(f"{who} {kind}: no answer: {type(error).__name__}: {error}")
            return None
        self.latencies.setdefault(kind, []).append(time.perf_counter() - start)
        self.answered[kind] += 1
        return result

    def check(self, who: str, kind: str, condition: bool, detail: str) -> None:
        """Note a wrong answer."""
        if not condition:
            self.errors.append(f"{who} {kind}: {detail}")

    @property
    def lost(self) -> int:
        """Operations issued that got no answer."""
        return sum(self.issued.values()) - sum(self.answered.values())

    def summary(self) -> dict[str, dict[str, float]]:
        """Per kind: count, p50 and p99 in milliseconds."""
        return {
            kind: {
                "count": len(self.latencies[kind]),
                "p50_ms": 1000 * percentile(self.latencies[kind], 0.50),
                "p99_ms": 1000 * percentile(self.latencies[kind], 0.99),
            }
            for kind in OP_KINDS
            if kind in self.latencies
        }


@dataclass
class UserRun:
    """One user's part: who they are, where their server is, and what they wrote."""

    user: str
    url: str
    token: str
    origin: str
    #: Files this user's run wrote, by name: their SHA-256 (what the home must hold).
    written: dict[str, str] = field(default_factory=dict)

    def file_name(self, kind: str, *parts: object) -> str:
        """A file name that says whose it is (the isolation checks look for the prefix)."""
        return "-".join([self.user, kind, *map(str, parts)])


def _status(who: str, kind: str, tally: Tally, reply: Response | None, *ok: int) -> bool:
    if reply is None:
        return False
    good = reply.status in ok
    tally.check(who, kind, good, f"status {reply.status} {reply.body[:200]!r}")
    return good


async def _rest_loop(
    tunnel: TunnelClient, run: UserRun, work: Workload, tally: Tally, worker: int
) -> None:
    who = run.user
    for round_ in range(work.rest_rounds):
        name = run.file_name("note", worker, round_) + ".txt"
        text = f"{who} {worker} {round_} " + secrets.token_hex(64) + " é ✓\n"
        body = json.dumps({"type": "file", "format": "text", "content": text})
        put = await tally.timed(
            "contents_put", who, partial(tunnel.request, "PUT", f"/api/contents/{name}", body=body)
        )
        if _status(who, "contents_put", tally, put, 200, 201):
            run.written[name] = hashlib.sha256(text.encode()).hexdigest()
        got = await tally.timed(
            "contents_get",
            who,
            partial(tunnel.request, "GET", f"/api/contents/{name}?type=file&format=text"),
        )
        if _status(who, "contents_get", tally, got, 200):
            assert got is not None
            content = got.json().get("content")
            tally.check(who, "contents_get", content == text, f"{name}: {content!r} != {text!r}")
        listing = await tally.timed(
            "contents_list", who, partial(tunnel.request, "GET", "/api/contents")
        )
        if _status(who, "contents_list", tally, listing, 200):
            assert listing is not None
            names = {entry["name"] for entry in listing.json()["content"]}
            tally.check(who, "contents_list", name in names, f"{name} not listed")
            strangers = sorted(n for n in names if not n.startswith(f"{who}-"))
            tally.check(who, "contents_list", not strangers, f"another's files: {strangers}")


async def _upload_loop(tunnel: TunnelClient, run: UserRun, work: Workload, tally: Tally) -> None:
    who = run.user
    for number, size in enumerate(work.upload_sizes):
        payload = os.urandom(size)
        digest = hashlib.sha256(payload).hexdigest()
        name = run.file_name("upload", number, size) + ".bin"
        body = json.dumps(
            {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
        )
        del payload
        put = await tally.timed(
            "upload", who, partial(tunnel.request, "PUT", f"/api/contents/{name}", body=body)
        )
        del body
        if _status(who, "upload", tally, put, 200, 201):
            run.written[name] = digest
        download = await tally.timed(
            "download", who, partial(tunnel.request, "GET", f"/files/{name}")
        )
        if _status(who, "download", tally, download, 200):
            assert download is not None
            got = hashlib.sha256(download.body).hexdigest()
            tally.check(
                who, "download", got == digest, f"{name}: {len(download.body)} bytes, sha256 {got}"
            )


async def _connect(tunnel: TunnelClient, kernel_id: str) -> KernelSocket:
    """The kernel's channels through the tunnel, once the kernel answers on them."""
    session = uuid.uuid4().hex
    socket = await tunnel.websocket(
        f"/api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
    )
    kernel = KernelSocket(socket, session, V1, timeout=90)
    await kernel.wait_ready(timeout=90)
    return kernel


async def _execute(kernel: KernelSocket, code: str) -> list[Received]:
    """Run ``code``; every message answering it."""
    return await kernel.collect(await kernel.execute(code))


async def _kernel_loop(tunnel: TunnelClient, run: UserRun, work: Workload, tally: Tally) -> None:
    who = run.user
    started = await tally.timed(
        "kernel_start", who, partial(tunnel.request, "POST", "/api/kernels", body="{}")
    )
    if not _status(who, "kernel_start", tally, started, 201):
        return
    assert started is not None
    kernel_id = started.json()["id"]
    try:
        kernel = await tally.timed("kernel_connect", who, partial(_connect, tunnel, kernel_id))
        if kernel is None:
            return
        for number in range(work.executes):
            mark = secrets.token_hex(8)
            repeat = max(1, work.output_size // len(mark))
            code = f"print({mark!r} * {repeat})\n{number} * 7"
            replies = await tally.timed("execute", who, partial(_execute, kernel, code))
            if replies is None:
                continue
            stdout = stdout_text(replies)
            tally.check(who, "execute", stdout == mark * repeat + "\n", f"stdout {stdout[:80]!r}")
            results = [
                m.content["data"]["text/plain"] for m in replies if m.msg_type == "execute_result"
            ]
            tally.check(who, "execute", results == [str(number * 7)], f"results {results}")
        kernel.connection.close()
    finally:
        deleted = await tally.timed(
            "kernel_delete", who, partial(tunnel.request, "DELETE", f"/api/kernels/{kernel_id}")
        )
        _status(who, "kernel_delete", tally, deleted, 204)


async def run_user(run: UserRun, work: Workload, tally: Tally) -> None:
    """``run.user``'s whole workload on one tunnel to their server."""
    async with await TunnelClient.connect(
        run.url,
        token=run.token,
        origin=run.origin,
        transports=(work.transport,),
        connect_timeout=work.connect_timeout,
    ) as tunnel:
        await asyncio.gather(
            *(_rest_loop(tunnel, run, work, tally, w) for w in range(work.rest_workers)),
            _upload_loop(tunnel, run, work, tally),
            _kernel_loop(tunnel, run, work, tally),
        )
