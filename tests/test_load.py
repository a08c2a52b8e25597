"""Load: 50 tunnel sockets, 200 mixed requests each, plus kernels through proxied sockets.

One server, in its own process (so its memory and log are its own), loopback only.
Every request must get exactly one final reply, every written file must read back
byte-exact, the server log must hold no error, and the server's memory must come
back near where it started. The figures are printed (``-s``) for
docs/developers/reliability.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import pytest
from support.kernels import V1, KernelSocket, by_type, stdout_text
from support.server_process import ServerProcess

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SOCKETS = 50
REQUESTS_PER_SOCKET = 200
IN_FLIGHT_PER_SOCKET = 8
KERNELS = 3
KERNEL_SOCKETS_PER_KERNEL = 2
EXECUTES_PER_KERNEL_SOCKET = 40
MiB = 1024 * 1024


@dataclass
class Tally:
    """What the run did, for the assertions and the report."""

    requests: int = 0
    replies: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    files_written: int = 0
    reads_checked: int = 0
    executes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    written: dict[str, bytes] = field(default_factory=dict)


def body_size(rng: random.Random) -> int:
    bucket = rng.random()
    if bucket < 0.1:
        return 0
    if bucket < 0.6:
        return rng.randint(1, 4096)
    if bucket < 0.95:
        return rng.randint(4096, 96 * 1024)
    return rng.randint(96 * 1024, 768 * 1024)


async def socket_load(
    index: int, client: TunnelClient, tally: Tally, count: int = REQUESTS_PER_SOCKET
) -> None:
    """``count`` mixed requests, at most ``IN_FLIGHT_PER_SOCKET`` at once."""
    rng = random.Random(index)
    folder = f"load/s{index}"
    reply = await client.request(
        "PUT", f"/api/contents/{folder}", body=json.dumps({"type": "directory"})
    )
    assert reply.status in (200, 201), reply
    mine: dict[str, bytes] = {}  # files whose write has completed

    def expect(status: int, reply_status: int, what: str) -> None:
        tally.replies += 1
        tally.statuses[reply_status] = tally.statuses.get(reply_status, 0) + 1
        assert reply_status == status, (what, reply_status)

    async def one(number: int) -> None:
        kind = rng.choices(["write", "read", "download", "list"], [4, 3, 2, 1])[0]
        if kind != "write" and not mine:
            kind = "write"
        tally.requests += 1
        if kind == "write":
            name = f"{folder}/f{number}.bin"
            data = rng.randbytes(body_size(rng))
            model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
            body = json.dumps(model)
            tally.bytes_up += len(body)
            reply = await client.request("PUT", f"/api/contents/{name}", body=body)
            expect(201, reply.status, name)
            mine[name] = tally.written[name] = data
            tally.files_written += 1
        elif kind == "read":
            name = rng.choice(sorted(mine))
            reply = await client.request(
                "GET", f"/api/contents/{name}?content=1&format=base64&type=file"
            )
            expect(200, reply.status, name)
            tally.bytes_down += len(reply.body)
            assert base64.b64decode(reply.json()["content"]) == mine[name], name
            tally.reads_checked += 1
        elif kind == "download":
            name = rng.choice(sorted(mine))
            reply = await client.request("GET", f"/files/{name}")
            expect(200, reply.status, name)
            tally.bytes_down += len(reply.body)
            assert reply.body == mine[name], name
            tally.reads_checked += 1
        else:
            reply = await client.request("GET", f"/api/contents/{folder}?content=1")
            expect(200, reply.status, folder)
            tally.bytes_down += len(reply.body)

    slots = asyncio.Semaphore(IN_FLIGHT_PER_SOCKET)
    tasks = []
    for number in range(count):
        await slots.acquire()
        task = asyncio.create_task(one(number))
        task.add_done_callback(lambda _: slots.release())
        tasks.append(task)
        await asyncio.sleep(rng.random() * 0.02)  # requests arrive over time
    await asyncio.gather(*tasks)


async def kernel_load(ks: KernelSocket, tag: str, tally: Tally) -> None:
    """Executions one after another on one proxied kernel socket, each answered in full."""
    await ks.wait_ready()
    for number in range(EXECUTES_PER_KERNEL_SOCKET):
        msg_id = await ks.execute(f"print({tag!r}, {number})")
        messages = await ks.collect(msg_id, timeout=60)
        (reply,) = by_type(messages, "execute_reply")
        assert reply.content["status"] == "ok"
        assert stdout_text(messages) == f"{tag} {number}\n"
        tally.executes += 1
        await asyncio.sleep(0.01)


async def open_kernel_sockets(client: TunnelClient) -> list[tuple[KernelSocket, str]]:
    sockets = []
    for k in range(KERNELS):
        reply = await client.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
        assert reply.status == 201, reply
        kernel_id = reply.json()["id"]
        for s in range(KERNEL_SOCKETS_PER_KERNEL):
            session = uuid.uuid4().hex
            protocol = V1 if s % 2 else None
            connection = await client.websocket(
                f"/api/kernels/{kernel_id}/channels?session_id={session}",
                subprotocols=[protocol] if protocol else None,
            )
            sockets.append((KernelSocket(connection, session, protocol), f"k{k}s{s}"))
    return sockets


async def sample_peak(server: ServerProcess, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss())
        await asyncio.sleep(0.25)


async def settle_rss(server: ServerProcess, seconds: float = 3.0) -> tuple[int, int]:
    """RSS once quiet, as is and after the server trimmed its heap."""
    await asyncio.sleep(seconds)
    return server.rss(), await server.held_memory()


@pytest.fixture
def load_server(tmp_path):
    server = ServerProcess(tmp_path, {"max_sockets_per_user": 128})
    (server.root_dir / "load").mkdir()
    server.start()
    yield server
    server.kill()


def test_fifty_sockets_of_mixed_requests(load_server, jp_asyncio_loop):
    jp_asyncio_loop.run_until_complete(run_load(load_server))


async def run_load(server: ServerProcess) -> None:
    url, token = server.url, server.token
    # Warm up with the same shape at a tenth of the requests (imports, caches, the relay
    # entrance, and the allocator's pools at this concurrency), then take the baseline:
    # what is left after ten times as many requests must not have grown with them.
    control = await TunnelClient.connect(url, token=token)
    warm = await asyncio.gather(*(TunnelClient.connect(url, token=token) for _ in range(SOCKETS)))
    await asyncio.gather(
        *(socket_load(1000 + i, c, Tally(), REQUESTS_PER_SOCKET // 10) for i, c in enumerate(warm))
    )
    for client in warm:
        await client.close()
    kernel_sockets = await open_kernel_sockets(control)
    await asyncio.gather(*(ks.wait_ready() for ks, _ in kernel_sockets))
    _, baseline = await settle_rss(server)

    tally = Tally()
    started = time.monotonic()
    clients = await asyncio.gather(
        *(
            TunnelClient.connect(url, token=token, framing="binary" if i % 2 else "json")
            for i in range(SOCKETS)
        )
    )
    peak, stop = [baseline], asyncio.Event()
    sampler = asyncio.create_task(sample_peak(server, peak, stop))
    await asyncio.gather(
        *(socket_load(i, client, tally) for i, client in enumerate(clients)),
        *(kernel_load(ks, tag, tally) for ks, tag in kernel_sockets),
    )
    elapsed = time.monotonic() - started
    stop.set()
    await sampler

    # Exactly one final reply per request: a second "done" frame, or any frame for an
    # id nobody waits for, would land in ``unmatched``.
    for client in clients:
        assert client.unmatched.empty(), client.unmatched.get_nowait()
    assert tally.requests == tally.replies == SOCKETS * REQUESTS_PER_SOCKET
    assert tally.executes == KERNELS * KERNEL_SOCKETS_PER_KERNEL * EXECUTES_PER_KERNEL_SOCKET
    # Every written file is on disk, byte-exact.
    for name, data in tally.written.items():
        assert (server.root_dir / name).read_bytes() == data, name

    for client in clients:
        await client.close()
    for ks, _ in kernel_sockets:
        ks.connection.close()
    await control.close()
    untrimmed, final = await settle_rss(server)
    errors = server.error_lines()
    print(
        f"\nload: {SOCKETS} sockets, {tally.requests} requests "
        f"({tally.files_written} writes, {tally.reads_checked} byte-exact reads), "
        f"{tally.executes} kernel executions on {len(kernel_sockets)} proxied sockets, "
        f"{tally.bytes_up / MiB:.1f} MiB up, {tally.bytes_down / MiB:.1f} MiB down, "
        f"{elapsed:.1f} s; statuses {tally.statuses}; "
        f"RSS baseline {baseline / MiB:.1f} MiB, peak {peak[0] / MiB:.1f} MiB, "
        f"after {untrimmed / MiB:.1f} MiB ({final / MiB:.1f} MiB once trimmed); "
        f"{len(errors)} error lines"
    )
    assert not errors, errors[:20]
    # Memory comes back near its start. Both figures are taken after the server collected
    # garbage and returned free heap pages (malloc_trim): without that, glibc keeps the
    # pages of the busiest moment mapped, which says nothing about what is still held.
    assert final - baseline < 32 * MiB, (baseline, peak[0], untrimmed, final)
