"""Many sockets on one server: idle memory and CPU, and 200 active sockets against direct.

Usage::

    python benchmarks/idle_scale.py            # 1,000 tunnels, 100 kernel sockets, 200 active
    python benchmarks/idle_scale.py --smoke    # small counts, short windows, about 2 minutes

Three freshly started servers (our ``jupyter server`` with this package, as in
``run.py``), one after the other:

1. **ours, idle**: the server's CPU over an idle window with no socket open; then
   ``--tunnels`` tunnel sockets (``/http_over_websocket``, legacy framing, one
   ``GET /api/status`` each, then idle) and ``--kernel-sockets`` proxied kernel sockets
   (``proxied_ws``, spread over ``--kernels`` kernels, one ``kernel_info_request`` each,
   then idle); RSS before and after each set, per socket; then the server's CPU over
   the same idle window with all of them open (pings only).
2. **direct, idle**: the same on another fresh server with plain clients:
   ``--tunnels`` HTTP/1.1 keep-alive connections (one ``GET /api/status`` each) and
   ``--kernel-sockets`` direct kernel sockets: what the server pays per socket anyway.
3. **active**: ``--active`` tunnel sockets, each doing ``GET /api/status`` one after
   the other for ``--active-seconds``, against ``--active`` direct keep-alive clients
   doing the same, interleaved over ``--rounds`` rounds: total requests per second,
   p50 and p99 latency, server and client CPU per request.

Pings are jupyter_server's own (``WebSocketMixin``: ``ws_ping_interval``, 30 s unless
configured; the tunnel and ``proxied_ws`` handlers use it, as does the kernel handler
behind a proxied socket), so the idle window defaults to 60 s: two pings per socket.
Before each memory figure, a few sockets of the same kind are opened and closed, so
that one-time allocations (imports, caches) are not charged to the sockets.

Writes ``idle-scale.json`` and ``idle-scale.md`` into ``docs/benchmarks/`` (with
``--smoke``: ``benchmarks/.work/smoke/``). The Findings section of an existing
``idle-scale.md`` is kept. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_env

DEFAULT_OUT = bench_env.REPO_DIR / "docs" / "benchmarks"
SMOKE_OUT = bench_env.WORK_DIR / "smoke"
KiB = 1024
#: Sockets opened at once while building up the idle sets.
OPEN_BATCH = 50
#: Sockets of each kind opened and closed before a memory baseline.
WARMUP_SOCKETS = 20
#: jupyter_server's default ``ws_ping_interval`` (``jupyter_server.base.websocket``).
PING_INTERVAL_S = 30.0


@dataclass
class Counts:
    """Every count and duration, scaled down by ``--smoke``."""

    tunnels: int = 1000
    kernel_sockets: int = 100
    kernels: int = 4
    active: int = 200
    idle_seconds: float = 60.0
    active_seconds: float = 10.0
    rounds: int = 3

    @classmethod
    def smoke(cls) -> Counts:
        return cls(
            tunnels=50,
            kernel_sockets=8,
            kernels=2,
            active=20,
            idle_seconds=5.0,
            active_seconds=2.0,
            rounds=1,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small counts, short windows")
    defaults = Counts()
    for name, value in asdict(defaults).items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=None,
            help=f"default {value} ({getattr(Counts.smoke(), name)} with --smoke)",
        )
    parser.add_argument(
        "--phases",
        default="idle,active",
        help="which phases to run: idle (the two idle servers), active, or both (default); "
        "a phase not run is taken from the idle-scale.json already in the output folder",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    return parser.parse_args(argv)


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` (inherited by the servers it starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def open_many(count: int, open_one: Callable[[], Awaitable[Any]]) -> list[Any]:
    """``count`` sockets, :data:`OPEN_BATCH` at a time."""
    opened: list[Any] = []
    while len(opened) < count:
        batch = min(OPEN_BATCH, count - len(opened))
        opened += await asyncio.gather(*(open_one() for _ in range(batch)))
    return opened


async def close_all(sockets: list[Any]) -> None:
    for start in range(0, len(sockets), OPEN_BATCH):
        await asyncio.gather(
            *(s.close() for s in sockets[start : start + OPEN_BATCH]), return_exceptions=True
        )


async def settled_rss(server: Any, seconds: float = 2.0) -> int:
    await asyncio.sleep(seconds)
    return int(server.memory().rss)


async def idle_window(server: Any, seconds: float) -> dict[str, float]:
    """The server's CPU over ``seconds`` with nothing but its timers and pings running."""
    from harness import CpuWatch

    with CpuWatch(server) as cpu:
        await asyncio.sleep(seconds)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu.seconds,
        "cpu_percent": 100 * cpu.seconds / seconds,
    }


async def memory_of(
    server: Any, count: int, open_one: Callable[[], Awaitable[Any]]
) -> tuple[list[Any], dict[str, float]]:
    """Open ``count`` sockets after a warm-up; the RSS and fd growth, per socket."""
    await close_all(await open_many(min(WARMUP_SOCKETS, count), open_one))
    before, fds_before = await settled_rss(server), fd_count(server.pid)
    started = time.perf_counter()
    sockets = await open_many(count, open_one)
    opening = time.perf_counter() - started
    after, fds_after = await settled_rss(server), fd_count(server.pid)
    return sockets, {
        "count": count,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "rss_per_socket_kib": (after - before) / count / KiB,
        "server_fds_added": fds_after - fds_before,
        "open_seconds": opening,
    }


# --------------------------------------------------------------------------- clients


async def start_kernels(server: Any, count: int) -> list[str]:
    import aiohttp

    ids = []
    async with aiohttp.ClientSession(headers=server.auth_headers) as session:
        for _ in range(count):
            async with session.post(
                server.url + "/api/kernels", json={"name": "bench-python"}
            ) as response:
                if response.status not in (200, 201):
                    raise RuntimeError(f"starting a kernel answered {response.status}")
                ids.append(str((await response.json())["id"]))
    return ids


def kernel_opener(server: Any, kernel_ids: list[str], *, proxied: bool) -> Callable[[], Any]:
    """Opens kernel sockets round-robin over the kernels, one ``kernel_info`` each."""
    from clients import KernelSocket
    from scenarios_kernel import _round_trip

    turn = iter(range(10**9))

    async def open_one() -> KernelSocket:
        kernel_id = kernel_ids[next(turn) % len(kernel_ids)]
        socket = await KernelSocket.connect(
            server.ws_url, kernel_id, server.auth_headers, proxied=proxied
        )
        await _round_trip(socket, "kernel_info_request", {}, "kernel_info_reply", timeout=120)
        return socket

    return open_one


def tunnel_opener(server: Any) -> Callable[[], Any]:
    from clients import RawTunnel

    async def open_one() -> RawTunnel:
        tunnel = await RawTunnel.connect(server.ws_url, server.auth_headers)
        reply = await tunnel.request("GET", "/api/status")
        if reply.status != 200:
            raise RuntimeError(f"GET /api/status through the tunnel answered {reply.status}")
        return tunnel

    return open_one


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection (its own aiohttp session, pool of one)."""

    def __init__(self, server: Any) -> None:
        import aiohttp

        self.server = server
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=3600)
        self.session = aiohttp.ClientSession(connector=connector, headers=server.auth_headers)

    async def get(self, path: str) -> int:
        async with self.session.get(self.server.url + path) as response:
            await response.read()
            return int(response.status)

    async def close(self) -> None:
        await self.session.close()


def keepalive_opener(server: Any) -> Callable[[], Any]:
    async def open_one() -> KeepAliveConnection:
        connection = KeepAliveConnection(server)
        status = await connection.get("/api/status")
        if status != 200:
            raise RuntimeError(f"GET /api/status answered {status}")
        return connection

    return open_one


# --------------------------------------------------------------------------- phases


async def fresh_server(name: str, source: str) -> Any:
    from servers import OurServer

    server = OurServer(
        name,
        bench_env.WORK_DIR / "root",
        source=source,
        # 1,000 tunnel sockets of one user: lift the per-user limit (64 by default).
        extra_args=("--HttpOverWebSocketApp.max_sockets_per_user=0",),
    )
    await server.start()
    await asyncio.sleep(1.0)
    return server


async def idle_phase(kind: str, counts: Counts, source: str) -> dict[str, Any]:
    """Idle sockets of one kind (``ours`` or ``direct``) on a fresh server."""
    server = await fresh_server(f"idle-{kind}", source)
    result: dict[str, Any] = {"started": now(), "load_average_before": load_average()}
    held: list[Any] = []
    try:
        kernels = await start_kernels(server, counts.kernels)
        await asyncio.sleep(3.0)  # let kernel start-up settle before the CPU baseline
        result["idle_no_sockets"] = await idle_window(server, counts.idle_seconds)
        print(f"[{kind}] idle, no sockets: {result['idle_no_sockets']}", flush=True)
        http_opener = tunnel_opener(server) if kind == "ours" else keepalive_opener(server)
        sockets, result["http"] = await memory_of(server, counts.tunnels, http_opener)
        held += sockets
        print(f"[{kind}] {counts.tunnels} http sockets: {result['http']}", flush=True)
        opener = kernel_opener(server, kernels, proxied=kind == "ours")
        sockets, result["kernel"] = await memory_of(server, counts.kernel_sockets, opener)
        held += sockets
        print(f"[{kind}] {counts.kernel_sockets} kernel sockets: {result['kernel']}", flush=True)
        result["idle_all_sockets"] = await idle_window(server, counts.idle_seconds)
        print(f"[{kind}] idle, all sockets: {result['idle_all_sockets']}", flush=True)
        result["server_fds"] = fd_count(server.pid)
    finally:
        await close_all(held)
        server.stop()
    result["load_average_after"] = load_average()
    return result


async def active_round(kind: str, server: Any, counts: Counts) -> dict[str, Any]:
    """``counts.active`` clients doing one small request after another."""
    from harness import CpuWatch, percentile

    opener = tunnel_opener(server) if kind == "ours" else keepalive_opener(server)
    clients = await open_many(counts.active, opener)
    latencies: list[float] = []
    stop = False

    async def worker(client: Any) -> None:
        while not stop:
            start = time.perf_counter()
            if kind == "ours":
                status = (await client.request("GET", "/api/status")).status
            else:
                status = await client.get("/api/status")
            if status != 200:
                raise RuntimeError(f"GET /api/status answered {status}")
            latencies.append(time.perf_counter() - start)

    try:
        workers = [asyncio.create_task(worker(c)) for c in clients]
        await asyncio.sleep(1.0)  # warm-up, not counted
        latencies.clear()
        cpu_before = client_cpu()
        with CpuWatch(server) as cpu:
            started = time.perf_counter()
            await asyncio.sleep(counts.active_seconds)
            samples = list(latencies)
            elapsed = time.perf_counter() - started
        client_seconds = client_cpu() - cpu_before
        stop = True
        await asyncio.gather(*workers)
    finally:
        stop = True
        await close_all(clients)
    return {
        "requests": len(samples),
        "req_per_s": len(samples) / elapsed,
        "p50_ms": 1000 * percentile(samples, 0.5),
        "p99_ms": 1000 * percentile(samples, 0.99),
        "server_cpu_us": 1e6 * cpu.seconds / len(samples),
        "client_cpu_us": 1e6 * client_seconds / len(samples),
    }


async def active_phase(counts: Counts, source: str) -> dict[str, Any]:
    from harness import median

    server = await fresh_server("active", source)
    rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "ours": []}
    result: dict[str, Any] = {
        "started": now(),
        "load_average_before": load_average(),
        "rounds": rounds,
    }
    try:
        for number in range(counts.rounds):
            order = ["direct", "ours"] if number % 2 == 0 else ["ours", "direct"]
            for kind in order:
                figures = await active_round(kind, server, counts)
                rounds[kind].append(figures)
                shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
                print(f"[active] round {number + 1} {kind:<6} {shown}", flush=True)
    finally:
        server.stop()
    result["load_average_after"] = load_average()
    result["median"] = {
        kind: {key: median([r[key] for r in values]) for key in values[0]}
        for kind, values in rounds.items()
    }
    return result


# --------------------------------------------------------------------------- report


def _f(value: float, digits: int = 3) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def markdown(results: dict[str, Any], findings: str) -> str:
    meta = results["meta"]
    counts = meta["counts"]
    ours, direct, active = results["ours"], results["direct"], results["active"]
    machine = meta["machine"]
    env = machine.get("ours_env", {})
    lines = [
        "# Idle sockets at scale, and 200 active sockets",
        "",
        "Made by `benchmarks/idle_scale.py` (see [benchmarks/README.md]"
        "(../../benchmarks/README.md)); every figure of every round is in "
        "[`idle-scale.json`](idle-scale.json). The main benchmark is in "
        "[results.md](results.md); the method in "
        "[performance.md](../developers/performance.md).",
        "",
        f"- Run: {meta['started']}, {meta['seconds']} s, `{meta['command']}`",
        f"- Machine: {machine.get('cpu')}, {machine.get('cpus')} CPUs, "
        f"{machine.get('memory')}, {machine.get('platform')} (shared, noisy)",
        *(
            f"- {name}: started {results[key].get('started', meta['started'])}, load average "
            f"(1, 5, 15 min) {results[key]['load_average_before']} before, "
            f"{results[key]['load_average_after']} after"
            + (f" (earlier run: `{results[key]['command']}`)" if "command" in results[key] else "")
            for name, key in (
                ("Idle, ours", "ours"),
                ("Idle, direct", "direct"),
                ("Active", "active"),
            )
        ),
        f"- Ours: python {env.get('python')}, jupyter_server {env.get('jupyter_server')}, "
        f"tornado {env.get('tornado')}, package at git {machine.get('git_commit')}"
        + (" (dirty)" if machine.get("git_dirty") else ""),
        f"- Pings: jupyter_server's `ws_ping_interval`, {meta['ping_interval_s']:g} s "
        "(its default); no client-side heartbeat",
        "",
        "## Idle sockets held by one server",
        "",
        f"Each column is its own freshly started server with {counts['kernels']} kernels. "
        "RSS is the server process's `VmRSS` (kernels are separate processes), 2 s after "
        f"the last socket opened, minus the same just before; {WARMUP_SOCKETS} sockets of "
        "the kind were opened and closed first.",
        "",
        "| Figure | direct | ours | ours / direct | Target |",
        "|---|---|---|---|---|",
    ]

    def row(title: str, d: float, o: float, target: str = "", digits: int = 3) -> None:
        ratio = f"{o / d:.2f}x" if d else "-"
        lines.append(f"| {title} | {_f(d, digits)} | {_f(o, digits)} | {ratio} | {target} |")

    n, k = counts["tunnels"], counts["kernel_sockets"]
    row(
        f"RSS per idle socket, {n:,} sockets (direct: HTTP/1.1 keep-alive; ours: tunnel), KiB",
        direct["http"]["rss_per_socket_kib"],
        ours["http"]["rss_per_socket_kib"],
        "ours <= 64 KiB",
    )
    row(
        f"RSS per idle kernel socket, {k} sockets (ours: proxied_ws), KiB",
        direct["kernel"]["rss_per_socket_kib"],
        ours["kernel"]["rss_per_socket_kib"],
    )
    row(
        f"server file descriptors per socket, {n:,} sockets",
        direct["http"]["server_fds_added"] / n,
        ours["http"]["server_fds_added"] / n,
    )
    row(
        f"server file descriptors per kernel socket, {k} sockets",
        direct["kernel"]["server_fds_added"] / k,
        ours["kernel"]["server_fds_added"] / k,
    )
    row(
        f"server RSS with all {n + k:,} sockets open, MiB",
        direct["kernel"]["rss_after_mib"],
        ours["kernel"]["rss_after_mib"],
    )
    row(
        f"server CPU while idle, no sockets ({counts['idle_seconds']:g} s window), % of a core",
        direct["idle_no_sockets"]["cpu_percent"],
        ours["idle_no_sockets"]["cpu_percent"],
    )
    row(
        f"server CPU while idle, all {n + k:,} sockets open, % of a core",
        direct["idle_all_sockets"]["cpu_percent"],
        ours["idle_all_sockets"]["cpu_percent"],
    )

    def per_socket_cpu(side: dict[str, Any]) -> float:
        extra = side["idle_all_sockets"]["cpu_seconds"] - side["idle_no_sockets"]["cpu_seconds"]
        return 1e6 * extra / (n + k) / counts["idle_seconds"]

    row(
        "server CPU per idle socket (all open minus none), µs per second",
        per_socket_cpu(direct),
        per_socket_cpu(ours),
    )
    row(
        f"seconds to open the {n:,} sockets ({OPEN_BATCH} at a time)",
        direct["http"]["open_seconds"],
        ours["http"]["open_seconds"],
    )
    medians = active["median"]
    d, o = medians["direct"], medians["ours"]
    lines += [
        "",
        f"## {counts['active']} active sockets",
        "",
        f"{counts['active']} tunnel sockets (legacy framing), each sending `GET /api/status` "
        f"as soon as the previous reply arrived, against {counts['active']} HTTP/1.1 "
        f"keep-alive connections doing the same, on one fresh server; "
        f"{counts['active_seconds']:g} s per round after 1 s of warm-up, "
        f"{counts['rounds']} interleaved rounds, medians. One client process (aiohttp) "
        "drives all of them on the same 2 cores, so the request rate is shared between "
        "client and server: CPU per request says what each side pays.",
        "",
        "| Figure | direct | ours | ours / direct |",
        "|---|---|---|---|",
    ]
    for key, title in (
        ("req_per_s", "requests per second, all clients"),
        ("p50_ms", "latency p50, ms"),
        ("p99_ms", "latency p99, ms"),
        ("server_cpu_us", "server CPU per request, µs"),
        ("client_cpu_us", "client CPU per request, µs"),
    ):
        lines.append(f"| {title} | {_f(d[key])} | {_f(o[key])} | {o[key] / d[key]:.2f}x |")
    lines += ["", "## Findings", "", findings.strip() or "(to be written)", ""]
    return "\n".join(lines)


def existing_findings(path: Path) -> str:
    if not path.exists():
        return ""
    match = re.search(r"^## Findings\n(.*)\Z", path.read_text(), re.S | re.M)
    return match.group(1) if match else ""


# --------------------------------------------------------------------------- main


def write_outputs(results: dict[str, Any], out: Path) -> None:
    """``idle-scale.json`` and ``idle-scale.md`` (keeping its Findings) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle-scale.json").write_text(json.dumps(results, indent=1) + "\n")
    md_path = out / "idle-scale.md"
    text = markdown(results, existing_findings(md_path))
    md_path.write_text(text)
    print(text)
    print(f"wrote {out / 'idle-scale.json'}\nwrote {md_path}")


async def main_async(args: argparse.Namespace) -> int:
    bench_env.ensure_client_packages(need_plot=False)
    from run import snapshot_package

    counts = Counts.smoke() if args.smoke else Counts()
    for name in asdict(counts):
        if getattr(args, name) is not None:
            setattr(counts, name, getattr(args, name))
    # Each socket: one fd here and one to four (kernel sockets: more) in the server.
    fd_limit = raise_fd_limit(4 * (counts.tunnels + counts.active) + 20 * counts.kernel_sockets)
    source, source_hash = snapshot_package()
    # SIGTERM cancels the run, so that the servers are stopped in `finally`.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "command": "python " + shlex.join(["benchmarks/idle_scale.py", *sys.argv[1:]]),
            "smoke": args.smoke,
            "counts": asdict(counts),
            "ping_interval_s": PING_INTERVAL_S,
            "fd_limit": fd_limit,
            "ours_snapshot_sha256": source_hash,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "load_average_start": load_average(),
            "machine": bench_env.machine_info(),
        }
    }
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    out: Path = args.out or (SMOKE_OUT if args.smoke else DEFAULT_OUT)
    if phases != {"idle", "active"}:
        earlier = json.loads((out / "idle-scale.json").read_text())
        for key in ("ours", "direct", "active"):
            results[key] = earlier[key]
            results[key].setdefault("command", earlier["meta"]["command"])
            results[key].setdefault("started", earlier["meta"]["started"])
    if "idle" in phases:
        results["ours"] = await idle_phase("ours", counts, source)
        results["direct"] = await idle_phase("direct", counts, source)
    if "active" in phases:
        results["active"] = await active_phase(counts, source)
    results["meta"]["seconds"] = round(time.time() - started, 1)
    results["meta"]["load_average_end"] = load_average()

    write_outputs(results, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
