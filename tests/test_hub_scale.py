"""Five users behind one hub, each tunnel doing REST, uploads and a kernel at the same time.

One real JupyterHub (``support/hub.py``) with users ``u1`` .. ``u5``; all five
single-user servers run at once. Each user's Python client opens its own tunnel to
``/user/<name>/`` with a hub token that reaches that user's server only (sent in the
``Authorization`` header) and runs the mixed workload of ``support/hub_workload.py``
(REST, uploads of up to 3 MiB, a kernel running code), all five concurrently. Nothing
may be lost (every request answered), every reply must be byte-exact, each user's
files must be in their own home only, and each server's memory stays bounded; the
memory of every server and kernel, the hub and its proxy is printed (``-s`` shows it).
``benchmarks/hub_scale.py`` times the same workload.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from support.hub import Hub
from support.hub_workload import Tally, UserRun, Workload, run_user
from support.process_memory import HubMemory, MemoryWatch, MiB

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PAGE_ORIGIN = "https://frontend.example"
USERS = tuple(f"u{number}" for number in range(1, 6))
WORKLOAD = Workload()

#: A single-user server (jupyter_server with the extension) holds about 80-120 MiB here;
#: the bound is generous, but a server that kept its uploads or replies would pass it.
SERVER_RSS_LIMIT = 400 * MiB
#: What one server may grow by during the workload (it decodes a 3 MiB upload at most
#: twice at once: base64 text, JSON, bytes): far below what keeping every upload needs.
SERVER_GROWTH_LIMIT = 150 * MiB
KERNEL_RSS_LIMIT = 400 * MiB


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running hub with five users' servers, started at once; stopped with nothing left."""
    hub = Hub(tmp_path_factory.mktemp("hub-scale"), page_origin=PAGE_ORIGIN, users=USERS)
    hub.start()
    try:
        for user in USERS:  # ask for all five first: they start side by side
            status, body = hub.api("POST", f"users/{user}/server")
            assert status in (201, 202), (user, status, body)
        for user in USERS:
            hub.start_server(user)
        yield hub
    finally:
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


def memory_report(watch: MemoryWatch) -> str:
    """The memory figures, one line per process group, in MiB."""
    assert watch.before
    assert watch.peak
    assert watch.after
    lines = [
        f"hub {watch.before.hub / MiB:.0f} -> {watch.after.hub / MiB:.0f} MiB "
        f"(peak {watch.peak.hub / MiB:.0f}), proxy {watch.before.proxy / MiB:.0f} -> "
        f"{watch.after.proxy / MiB:.0f} MiB (peak {watch.peak.proxy / MiB:.0f})"
    ]
    for user in USERS:
        lines.append(
            f"{user}: server {watch.before.servers[user] / MiB:.0f} -> "
            f"{watch.after.servers[user] / MiB:.0f} MiB (peak "
            f"{watch.peak.servers[user] / MiB:.0f}), kernel peak "
            f"{watch.peak.kernels[user] / MiB:.0f} MiB"
        )
    return "\n".join(lines)


async def test_five_users_mixed_workload_at_once_nothing_lost_every_byte_exact(hub):
    runs = [
        UserRun(
            user,
            hub.user_url(user),
            hub.new_token(user, [f"access:servers!user={user}"], note="scale"),
            PAGE_ORIGIN,
        )
        for user in USERS
    ]
    memory = HubMemory.find(hub.proc.pid, hub.marker, USERS)
    tally = Tally()
    async with MemoryWatch(memory) as watch:
        await asyncio.gather(*(run_user(run, WORKLOAD, tally) for run in runs))
    report = memory_report(watch)
    print(f"\n{sum(tally.answered.values())} operations; memory:\n{report}")

    # Nothing lost, nothing wrong: every operation answered, every answer exact.
    assert tally.errors == [], "\n".join(tally.errors[:30])
    assert tally.lost == 0
    expected = len(USERS) * WORKLOAD.operations()
    assert sum(tally.issued.values()) == expected, tally.issued
    assert tally.answered == tally.issued
    assert tally.answered["execute"] == len(USERS) * WORKLOAD.executes

    # Each user's files are in their own home, byte-exact, and nowhere else.
    for run in runs:
        home = hub.home(run.user)
        rest_files = WORKLOAD.rest_workers * WORKLOAD.rest_rounds
        assert len(run.written) == rest_files + len(WORKLOAD.upload_sizes)
        for name, digest in run.written.items():
            assert hashlib.sha256((home / name).read_bytes()).hexdigest() == digest, name
        visible = {path.name for path in home.iterdir() if not path.name.startswith(".")}
        assert visible == set(run.written), (run.user, visible ^ set(run.written))

    # Memory: each server and kernel stays within a generous bound.
    assert watch.before
    assert watch.peak
    for user in USERS:
        assert watch.peak.servers[user] < SERVER_RSS_LIMIT, report
        growth = watch.peak.servers[user] - watch.before.servers[user]
        assert growth < SERVER_GROWTH_LIMIT, report
        assert 0 < watch.peak.kernels[user] < KERNEL_RSS_LIMIT, report
