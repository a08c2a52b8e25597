"""What every scenario shares: variants, the run context, metric definitions, statistics.

A *variant* is one way of reaching a server:

==============  =====================================================================
``direct``      HTTP/1.1 keep-alive (or a kernel WebSocket) straight to our jupyter_server
``ours``        our tunnel, legacy framing, on that same jupyter_server
``direct_nb6``  the same direct client, to the notebook 6.5 server that runs the original
``original``    ``jupyter_http_over_ws`` 0.0.8 on that notebook 6.5 server
``ours_binary`` our tunnel with the opt-in binary framing (``framing=binary``)
==============  =====================================================================

Two more variants, of the 64 MiB download only, are no tunnel at all but its physical
ceiling: ``ceiling_ws_binary`` and ``ceiling_ws_json`` read the same number of bytes
from ``ceiling_server.py``, a bare Tornado WebSocket server on the same interpreter
(binary frames, or legacy-style base64-in-JSON text frames), with the tunnel's client.

``ours`` is compared with ``direct``; ``original`` with ``direct_nb6`` (its own server's
direct speed), so each ratio says what the tunnel costs on top of its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients import DirectClient, RawTunnel
from servers import OriginalServer, OurServer, Server

MiB = 1024 * 1024

VARIANT_LABELS = {
    "direct": "direct",
    "ours": "ours (tunnel)",
    "direct_nb6": "direct (nb 6.5)",
    "original": "original 0.0.8",
    "original_auth_url": "original 0.0.8, auth_url",
    "ours_binary": "ours, binary framing",
    "ceiling_ws_binary": "bare Tornado WebSocket, binary frames (ceiling)",
    "ceiling_ws_json": "bare Tornado WebSocket, base64-in-JSON frames (ceiling)",
}
#: Which direct variant each tunnel is compared with.
BASELINE = {
    "ours": "direct",
    "ours_binary": "direct",
    "original": "direct_nb6",
    "original_auth_url": "direct_nb6",
    "ceiling_ws_binary": "direct",
    "ceiling_ws_json": "direct",
}
#: The ceiling variants (served by ``ceiling_server.py``, see above).
CEILING_VARIANTS = ("ceiling_ws_binary", "ceiling_ws_json")


@dataclass(frozen=True)
class Variant:
    name: str
    server_kind: str  # "ours", "original" or "ceiling": which server process it talks to
    tunnel: bool
    #: Upgrade query arguments and whether the upgrade carries the token header.
    auth_url: bool = False
    binary: bool = False

    @property
    def label(self) -> str:
        return VARIANT_LABELS[self.name]


VARIANTS = {
    "direct": Variant("direct", "ours", tunnel=False),
    "ours": Variant("ours", "ours", tunnel=True),
    "direct_nb6": Variant("direct_nb6", "original", tunnel=False),
    "original": Variant("original", "original", tunnel=True),
    "original_auth_url": Variant("original_auth_url", "original", tunnel=True, auth_url=True),
    "ours_binary": Variant("ours_binary", "ours", tunnel=True, binary=True),
    "ceiling_ws_binary": Variant("ceiling_ws_binary", "ceiling", tunnel=True, binary=True),
    "ceiling_ws_json": Variant("ceiling_ws_json", "ceiling", tunnel=True),
}


@dataclass
class Sizes:
    """Every size and count, scaled down by ``--smoke``."""

    latency_requests: int = 300
    throughput_seconds: float = 2.0
    hol_file: int = 64 * MiB
    hol_max_samples: int = 200
    downloads: tuple[int, ...] = (64 * MiB, 256 * MiB)
    slow_file: int = 64 * MiB
    slow_rate: float = 16 * MiB
    upload: int = 64 * MiB
    upload_chunk: int = 1 * MiB
    kernel_rtts: int = 200
    kernel_burst: int = 10_000
    #: Lines of 100 bytes a cell prints for the output-flood figures (scenarios_flood).
    flood_lines: int = 200_000
    flood_slow_lines: int = 80_000
    flood_slow_rate: float = 1 * MiB

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            latency_requests=20,
            throughput_seconds=0.4,
            hol_file=4 * MiB,
            hol_max_samples=10,
            downloads=(2 * MiB, 8 * MiB),
            slow_file=2 * MiB,
            upload=3 * MiB,
            kernel_rtts=10,
            kernel_burst=200,
            flood_lines=5_000,
            flood_slow_lines=5_000,
        )


@dataclass
class Context:
    """Servers, files and payloads of one run."""

    sizes: Sizes
    root_dir: Path
    servers: dict[str, Server] = field(default_factory=dict)
    kernels: dict[str, str] = field(default_factory=dict)
    payloads: dict[str, Any] = field(default_factory=dict)
    ours_source: str | None = None
    #: Extra command-line arguments and environment variables for our servers.
    ours_args: tuple[str, ...] = ()
    ours_env: tuple[tuple[str, str], ...] = ()

    def our_server(self, name: str) -> OurServer:
        return OurServer(
            name,
            self.root_dir,
            extra_args=self.ours_args,
            source=self.ours_source,
            extra_env=self.ours_env,
        )

    def server(self, variant: Variant) -> Server:
        return self.servers[variant.server_kind]

    @contextlib.asynccontextmanager
    async def fresh_server(self, variant: Variant) -> AsyncIterator[Server]:
        """A newly started server of the variant's kind, for memory figures."""
        server: Server
        if variant.server_kind == "ours":
            server = self.our_server("ours-fresh")
        else:
            server = OriginalServer("original-fresh", self.root_dir)
        await server.start()
        try:
            await asyncio.sleep(0.5)  # let start-up allocations settle
            yield server
        finally:
            server.stop()


async def open_http(variant: Variant, server: Server, connections: int = 1) -> Any:
    """A :class:`DirectClient` or :class:`RawTunnel` for ``variant``."""
    if not variant.tunnel:
        return DirectClient(server.url, server.auth_headers, connections)
    if variant.auth_url:
        # As Colab-era clients connect: no credentials but the auth URL in the query.
        params = {"jupyter_http_over_ws_auth_url": f"{server.url}/?token={server.token}"}
        return await RawTunnel.connect(server.ws_url, {}, params)
    return await RawTunnel.connect(server.ws_url, server.auth_headers, binary=variant.binary)


@dataclass(frozen=True)
class Metric:
    """One figure of the report."""

    key: str
    title: str
    unit: str
    better: str  # "higher" or "lower"
    #: The issue's target, as a bound on ours/direct (``ratio``) or on ours' value itself.
    target: str | None = None
    target_kind: str = "ratio"  # "ratio" or "absolute"
    target_value: float | None = None
    #: Ratios divide by the baseline variant's figure of this other metric (e.g. a small
    #: request during a download, against the same request on an idle server).
    baseline_metric: str | None = None


@dataclass(frozen=True)
class Scenario:
    """A measurement that yields one or more metrics per variant and round."""

    key: str
    variants: tuple[str, ...]
    measure: Callable[[Variant, Context], Awaitable[dict[str, Any]]]
    metrics: tuple[Metric, ...]
    timeout: float = 120.0
    warmup: bool = False
    description: str = ""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


class CpuWatch:
    """CPU seconds (all threads) the server process spends while something runs.

    The client shares the machine's two cores with the server, so requests per second
    can be limited by either; the server's CPU per request is what the tunnel costs,
    and it is steadier than wall-clock figures on a busy machine. Nanosecond per-thread
    counters are used when every thread outlived the measurement, else 10 ms ticks.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.seconds = 0.0
        self._start: tuple[dict[int, int], float] = ({}, 0.0)

    def __enter__(self) -> CpuWatch:
        self._start = self.server.cpu_times()
        return self

    def __exit__(self, *exc: object) -> None:
        (before, before_total), (after, after_total) = self._start, self.server.cpu_times()
        if set(before) <= set(after):
            self.seconds = sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9
        else:
            self.seconds = after_total - before_total


class MemoryWatch:
    """Peak RSS growth of a server process while something runs.

    The baseline is ``VmRSS`` just before; the peak is the larger of ``VmHWM`` (reset
    through ``/proc/<pid>/clear_refs`` before starting) and ``VmRSS`` sampled every 20 ms.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.baseline = 0
        self.peak = 0
        self._task: asyncio.Task[None] | None = None
        self.hwm_reset = False

    async def __aenter__(self) -> MemoryWatch:
        self.hwm_reset = self.server.reset_peak()
        self.baseline = self.server.memory().rss
        self.peak = self.baseline
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.memory().rss)
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        memory = self.server.memory()
        self.peak = max(self.peak, memory.rss, memory.hwm if self.hwm_reset else 0)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)
