"""Resident memory of a hub's processes: the hub, its proxy, each user's server and kernels.

Read from ``/proc`` (Linux), so nothing beyond the standard library is needed. The
processes are found the way :class:`support.hub.Hub` marks them: every process the hub
starts carries ``HOWS_HUB_TEST=<marker>`` in its environment, a single-user server also
``JUPYTERHUB_USER=<name>`` (the spawner sets it), and a user's kernels are that
server's descendants.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from support.processes import carrying

__all__ = ["HubMemory", "MemoryWatch", "MiB", "Snapshot", "cpu_seconds", "descendants", "rss"]

MiB = 1024 * 1024


def rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    """Every live process's parent: ``{pid: ppid}``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """The live processes started by ``pid``, directly or not."""
    parents = _parents() if parents is None else parents
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Snapshot:
    """RSS in bytes at one moment: the hub, its proxy, and each user's server and kernels."""

    hub: int
    proxy: int
    servers: dict[str, int]
    #: The sum over each user's kernels (and anything else their server started).
    kernels: dict[str, int]


@dataclass
class HubMemory:
    """The processes of one hub, found once; :meth:`snapshot` reads their RSS."""

    hub_pid: int
    proxy_pids: list[int]
    #: Each user's single-user server process.
    server_pids: dict[str, int]

    @classmethod
    def find(cls, hub_pid: int, marker: str, users: Iterable[str]) -> HubMemory:
        """The hub ``hub_pid``'s proxy and the running servers of ``users``."""
        users = list(users)
        marked = carrying("HOWS_HUB_TEST", marker)
        proxies = [pid for pid in marked if "configurable-http-proxy" in _cmdline(pid)]
        servers: dict[str, int] = {}
        for pid in marked:
            if "jupyterhub.singleuser" not in _cmdline(pid):
                continue
            for user in users:
                if f"JUPYTERHUB_USER={user}".encode() in _environ(pid):
                    servers[user] = pid
        missing = [user for user in users if user not in servers]
        if missing:
            raise LookupError(f"no running single-user server found for {missing}")
        return cls(hub_pid, proxies, servers)

    async def held_by_servers(self, settle: float = 1.0) -> dict[str, int]:
        """Each server's RSS once it collected garbage and trimmed its heap.

        The servers must run the ``SIGUSR2`` handler of
        :data:`support.server_process.TRIM_ON_SIGUSR2` (a config file of theirs); what
        they then still hold is what they keep, not what the allocator has yet to return.
        """
        for pid in self.server_pids.values():
            os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(settle)
        return {user: rss(pid) for user, pid in self.server_pids.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the hub, the proxy and all servers together."""
        return {
            "hub": cpu_seconds(self.hub_pid),
            "proxy": sum(cpu_seconds(pid) for pid in self.proxy_pids),
            "servers": sum(cpu_seconds(pid) for pid in self.server_pids.values()),
        }

    def snapshot(self) -> Snapshot:
        """Everyone's RSS now."""
        parents = _parents()
        return Snapshot(
            hub=rss(self.hub_pid),
            proxy=sum(rss(pid) for pid in self.proxy_pids),
            servers={user: rss(pid) for user, pid in self.server_pids.items()},
            kernels={
                user: sum(rss(child) for child in descendants(pid, parents))
                for user, pid in self.server_pids.items()
            },
        )


@dataclass
class MemoryWatch:
    """Samples a :class:`HubMemory` every ``interval`` seconds; keeps each figure's peak.

    ``async with MemoryWatch(memory) as watch: ...`` then ``watch.before``,
    ``watch.peak`` and ``watch.after``.
    """

    memory: HubMemory
    interval: float = 0.5
    before: Snapshot | None = None
    after: Snapshot | None = None
    peak: Snapshot | None = None
    samples: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def _sample(self) -> Snapshot:
        now = self.memory.snapshot()
        self.samples += 1
        if self.peak is None:
            self.peak = now
        else:
            peak = self.peak
            self.peak = Snapshot(
                hub=max(peak.hub, now.hub),
                proxy=max(peak.proxy, now.proxy),
                servers={u: max(v, now.servers.get(u, 0)) for u, v in peak.servers.items()},
                kernels={u: max(v, now.kernels.get(u, 0)) for u, v in peak.kernels.items()},
            )
        return now

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    async def __aenter__(self) -> MemoryWatch:
        self.before = self._sample()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.after = self._sample()
