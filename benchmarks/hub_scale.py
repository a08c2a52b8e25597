"""Many users behind one JupyterHub, each tunnel doing REST, uploads and a kernel at once.

Usage::

    python benchmarks/hub_scale.py                  # 5 users, 1 warm-up + 5 rounds per transport
    python benchmarks/hub_scale.py --smoke          # 2 users, 1 + 1 small rounds, WebSocket only
    python benchmarks/hub_scale.py --users 8 --rounds 3 --transports websocket

It starts a real JupyterHub with configurable-http-proxy (``tests/support/hub.py``,
the same hub the tests use; configurable-http-proxy must be installed, as the hub
tests install it), starts every user's single-user server, and runs the mixed
workload of ``tests/support/hub_workload.py`` for every user at once, each user on
their own tunnel with a token that reaches only their server: a fixed number of
operations per round, never a timed run. Per transport it reports total operations
per second, p50 and p99 per kind of operation, and the resident memory of each
user's server (before, peak, and held after a garbage collection and ``malloc_trim``)
and kernel, of the hub and of its proxy. Every reply is checked as the test checks it;
a run with a lost or wrong answer says so in its results.

Results go to ``docs/benchmarks/hub-scale.{json,md}`` (``--smoke``: under
``benchmarks/.work/smoke/``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench_env

sys.path.insert(0, str(bench_env.REPO_DIR / "tests"))

from support.hub import Hub
from support.hub_workload import OP_KINDS, Tally, UserRun, Workload, run_user
from support.process_memory import HubMemory, MemoryWatch, MiB, Snapshot
from support.server_process import TRIM_ON_SIGUSR2

from jupyter_http_over_ws.client import TunnelClient

DEFAULT_OUT = bench_env.REPO_DIR / "docs" / "benchmarks"
SMOKE_OUT = bench_env.WORK_DIR / "smoke"
PAGE_ORIGIN = "https://frontend.example"
KiB = 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5, help="users (and servers), default 5")
    parser.add_argument(
        "--rounds", type=int, default=5, help="measured rounds per transport (default 5)"
    )
    parser.add_argument(
        "--transports",
        default="websocket,polling",
        help="comma-separated: websocket, polling (default both, in that order)",
    )
    parser.add_argument(
        "--rest-rounds", type=int, default=30, help="rounds of each REST loop (default 30)"
    )
    parser.add_argument(
        "--executes", type=int, default=30, help="executes per kernel and round (default 30)"
    )
    parser.add_argument(
        "--idle-tunnels",
        type=int,
        default=50,
        help="open idle tunnels of one user, to measure what each costs (default 50; "
        "at most max_sockets_per_user, 64)",
    )
    parser.add_argument("--smoke", action="store_true", help="2 users, tiny rounds (CI)")
    parser.add_argument("--out", type=Path, default=None, help="where results go")
    return parser.parse_args(argv)


def server_config(work: Path, connect_timeout: float) -> Path:
    """The single-user servers' own config file: trim on SIGUSR2, a patient relay."""
    config = work / "server-config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.py").write_text(
        TRIM_ON_SIGUSR2 + f"\nc.HttpOverWebSocketApp.connect_timeout = {connect_timeout!r}\n"
    )
    return config


def mib(value: int) -> float:
    return round(value / MiB, 1)


def memory_figures(
    before: Snapshot, watch: MemoryWatch, warm: dict[str, int], held: dict[str, int]
) -> dict[str, Any]:
    """The memory figures of one transport's run, in MiB."""
    assert watch.peak is not None
    assert watch.after is not None
    return {
        "hub": {
            "before": mib(before.hub),
            "peak": mib(watch.peak.hub),
            "after": mib(watch.after.hub),
        },
        "proxy": {
            "before": mib(before.proxy),
            "peak": mib(watch.peak.proxy),
            "after": mib(watch.after.proxy),
        },
        "servers": {
            user: {
                "before": mib(before.servers[user]),
                "peak": mib(watch.peak.servers[user]),
                "held_after_warmup": mib(warm[user]),
                "held_after": mib(held[user]),
                "kernel_peak": mib(watch.peak.kernels[user]),
            }
            for user in before.servers
        },
    }


async def run_rounds(runs: list[UserRun], work: Workload, rounds: int, tally: Tally) -> float:
    """``rounds`` rounds of every user's workload at once; the seconds they took."""
    start = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(run_user(run, work, tally) for run in runs))
    return time.perf_counter() - start


async def measure(hub: Hub, users: list[str], work: Workload, rounds: int) -> dict[str, Any]:
    """One transport: a warm-up round, then ``rounds`` measured rounds."""
    runs = [
        UserRun(
            user,
            hub.user_url(user),
            hub.new_token(user, [f"access:servers!user={user}"], note="bench"),
            PAGE_ORIGIN,
        )
        for user in users
    ]
    assert hub.proc is not None
    memory = HubMemory.find(hub.proc.pid, hub.marker, users)
    before = memory.snapshot()
    warmup = Tally()
    await run_rounds(runs, work, 1, warmup)
    warm = await memory.held_by_servers()
    tally = Tally()
    cpu_before = memory.cpu()
    async with MemoryWatch(memory) as watch:
        elapsed = await run_rounds(runs, work, rounds, tally)
    cpu = {name: used - cpu_before[name] for name, used in memory.cpu().items()}
    held = await memory.held_by_servers()
    answered = sum(tally.answered.values())
    return {
        "transport": work.transport,
        "rounds": rounds,
        "seconds": round(elapsed, 2),
        "operations": answered,
        "ops_per_second": round(answered / elapsed, 1),
        "issued": dict(tally.issued),
        "lost": tally.lost + warmup.lost,
        "errors": warmup.errors + tally.errors,
        "latency": {
            kind: {k: round(v, 2) for k, v in figures.items()}
            for kind, figures in tally.summary().items()
        },
        "memory": memory_figures(before, watch, warm, held),
        "cpu_seconds": {name: round(used, 2) for name, used in cpu.items()},
        "body_mib": round(rounds * len(users) * body_bytes(work) / MiB, 1),
    }


def body_bytes(work: Workload) -> int:
    """The upload and download bytes one user's round moves, as they travel (base64)."""
    return 2 * sum(4 * ((size + 2) // 3) for size in work.upload_sizes)


async def measure_open_tunnels(hub: Hub, user: str, count: int, transport: str) -> dict[str, Any]:
    """What ``count`` open, idle tunnels of one user cost its server and the proxy."""
    assert hub.proc is not None
    memory = HubMemory.find(hub.proc.pid, hub.marker, [user])
    token = hub.new_token(user, [f"access:servers!user={user}"], note="bench-idle")
    before = (await memory.held_by_servers())[user]
    proxy_before = memory.snapshot().proxy
    tunnels = []
    try:
        for _ in range(count):
            tunnel = await TunnelClient.connect(
                hub.user_url(user), token=token, origin=PAGE_ORIGIN, transports=(transport,)
            )
            tunnels.append(tunnel)
            reply = await tunnel.request("GET", "/api/status")
            if reply.status != 200:
                raise RuntimeError(f"GET /api/status answered {reply.status}")
        await asyncio.sleep(2)
        held_open = (await memory.held_by_servers())[user]
        proxy_open = memory.snapshot().proxy
    finally:
        for tunnel in tunnels:
            await tunnel.close()
    await asyncio.sleep(2)
    held_closed = (await memory.held_by_servers())[user]
    return {
        "transport": transport,
        "tunnels": count,
        "server_held_before": mib(before),
        "server_held_open": mib(held_open),
        "server_held_after_close": mib(held_closed),
        "server_kib_per_tunnel": round((held_open - before) / count / 1024, 1),
        "proxy_before": mib(proxy_before),
        "proxy_open": mib(proxy_open),
        "proxy_kib_per_tunnel": round((proxy_open - proxy_before) / count / 1024, 1),
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    versions = machine.get("ours_env", {})
    work = meta["workload"]
    lines = [
        "# Many users behind one JupyterHub",
        "",
        f"Generated by `benchmarks/hub_scale.py`. {meta['users']} users, each with a "
        "single-user server (jupyter_server with the extension) behind one JupyterHub "
        "and configurable-http-proxy on this machine, and each running, at the same "
        "time as all the others, on their own tunnel with a token that reaches only "
        f"their server: {work['rest_workers']} REST loops of {work['rest_rounds']} "
        "rounds (PUT a text file, GET it, list the folder), uploads of "
        f"{', '.join(size_label(s) for s in work['upload_sizes'])} (random bytes, "
        "base64 through the contents API, then downloaded through `/files/` and compared "
        f"by SHA-256) and a kernel running {work['executes']} executes with "
        f"{work['output_size']} bytes of output each. A round is that fixed work for "
        f"every user; one warm-up round, then {meta['rounds']} measured rounds per "
        "transport. Operations per second count every operation of every user; each "
        "round starts and deletes every user's kernel, so a round lasts at least as long "
        "as the slowest kernel start (`kernel_connect`: until the new kernel answers). See "
        "[docs/operators/scaling.md](../operators/scaling.md) for what the figures mean "
        "for a deployment.",
        "",
        f"- Run: {meta['started']}, {meta['seconds']:.0f} s, `{meta['command']}`",
        f"- Machine: {machine.get('cpu')}, {machine.get('cpus')} CPUs, "
        f"{machine.get('memory')}, {machine.get('platform')}; load average at the start "
        f"{meta['load_average']} (shared with other work: figures are noisy)",
        f"- Stack: python {versions.get('python')}, jupyterhub {meta['jupyterhub']}, "
        f"configurable-http-proxy {meta['proxy']}, jupyter_server "
        f"{versions.get('jupyter_server')}, tornado {versions.get('tornado')}, ipykernel "
        f"{versions.get('ipykernel')}; package at git {machine.get('git_commit')}",
        "",
        "## Throughput and latency",
        "",
        "| transport | operations | seconds | ops/s | lost | wrong |",
        "|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['transport']} | {run['operations']} | {run['seconds']} | "
            f"{run['ops_per_second']} | {run['lost']} | {len(run['errors'])} |"
        )
    transports = [run["transport"] for run in results["runs"]]
    lines += [
        "",
        "Latency per operation, p50 / p99 in ms, all users together:",
        "",
        "| operation | " + " | ".join(transports) + " |",
        "|---|" + "---|" * len(transports),
    ]
    for kind in OP_KINDS:
        cells = []
        for run in results["runs"]:
            figures = run["latency"].get(kind)
            cells.append(
                f"{figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} (n={figures['count']})"
                if figures
                else "-"
            )
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "CPU seconds used during the measured rounds (all users' traffic), and the upload "
        "and download bodies the rounds moved (base64, as they travel):",
        "",
        "| transport | bodies, MiB | hub | proxy | all servers | proxy ms per MiB of bodies |",
        "|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        cpu = run["cpu_seconds"]
        per_mib = 1000 * cpu["proxy"] / run["body_mib"] if run["body_mib"] else 0
        lines.append(
            f"| {run['transport']} | {run['body_mib']} | {cpu['hub']} | {cpu['proxy']} | "
            f"{cpu['servers']} | {per_mib:.1f} |"
        )
    lines += ["", "## Memory (RSS, MiB)", ""]
    for run in results["runs"]:
        memory = run["memory"]
        lines += [
            f"{run['transport']}: hub {memory['hub']['before']} before, peak "
            f"{memory['hub']['peak']}, after {memory['hub']['after']}; proxy "
            f"{memory['proxy']['before']} before, peak {memory['proxy']['peak']}, after "
            f"{memory['proxy']['after']}.",
            "",
            "| user | server before | server peak | held after warm-up | held after the "
            "measured rounds | kernel peak |",
            "|---|---|---|---|---|---|",
        ]
        for user, figures in memory["servers"].items():
            lines.append(
                f"| {user} | {figures['before']} | {figures['peak']} | "
                f"{figures['held_after_warmup']} | {figures['held_after']} | "
                f"{figures['kernel_peak']} |"
            )
        lines.append("")
    if results.get("open_tunnels"):
        lines += [
            "## What an open tunnel costs",
            "",
            "One user opens this many tunnels (each answers one `GET /api/status`, then "
            "stays open and idle); the server's held memory before, with them open, and "
            "after they closed, and the proxy's RSS:",
            "",
            "| transport | tunnels | server held before | open | after close | "
            "KiB per tunnel | proxy before | proxy open | proxy KiB per tunnel |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in results["open_tunnels"]:
            lines.append(
                f"| {row['transport']} | {row['tunnels']} | {row['server_held_before']} | "
                f"{row['server_held_open']} | {row['server_held_after_close']} | "
                f"{row['server_kib_per_tunnel']} | {row['proxy_before']} | "
                f"{row['proxy_open']} | {row['proxy_kib_per_tunnel']} |"
            )
        lines.append("")
    lines += [
        "*Held*: the server's RSS one second after it collected garbage and called "
        "`malloc_trim` (on `SIGUSR2`, a handler its config file installs), i.e. what it "
        "keeps rather than what the allocator has not yet returned. *Before*: at the start "
        "of that transport's warm-up round (for the first transport, the servers just "
        "started and idle); *peak*: the highest of samples every 0.5 s during the measured "
        "rounds; *after*: at their end. The kernel "
        "column sums the processes a server started (its kernels). *wrong*: answers that "
        "arrived but were not byte-exact (or a status not expected).",
        "",
    ]
    return "\n".join(lines)


def size_label(size: int) -> str:
    return f"{size // (1024 * KiB)} MiB" if size >= 1024 * KiB else f"{size // KiB} KiB"


def proxy_version() -> str | None:
    from support import provision

    package = provision.proxy_binary().resolve().parent.parent / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import jupyterhub

    users = [f"u{number}" for number in range(1, args.users + 1)]
    base = Workload(rest_rounds=args.rest_rounds, executes=args.executes)
    if args.smoke:
        base = Workload(rest_rounds=2, upload_sizes=(4 * KiB, 256 * KiB), executes=2)
    work_dir = bench_env.WORK_DIR / "hub-scale" / time.strftime("%Y%m%d-%H%M%S")
    config = server_config(work_dir, base.connect_timeout)
    hub = Hub(
        work_dir / "hub",
        page_origin=PAGE_ORIGIN,
        users=users,
        environment={"JUPYTER_CONFIG_PATH": str(config)},
    )
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load = load_average()
    clock = time.perf_counter()
    hub.start()
    runs = []
    idle: list[dict[str, Any]] = []
    try:
        for user in users:
            hub.api("POST", f"users/{user}/server")
        for user in users:
            hub.start_server(user, timeout=180)
        for transport in args.transports.split(","):
            work = Workload(**{**asdict(base), "transport": transport.strip()})
            print(f"{transport}: {len(users)} users, 1 + {args.rounds} rounds", flush=True)
            runs.append(await measure(hub, users, work, args.rounds))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "errors"}), flush=True)
        for transport in args.transports.split(","):
            idle.append(await measure_open_tunnels(hub, users[0], args.idle_tunnels, transport))
            print(json.dumps(idle[-1]), flush=True)
    finally:
        left = hub.stop()
        if left:
            print(f"processes left after the hub stopped (killed): {left}", file=sys.stderr)
    return {
        "meta": {
            "command": "python benchmarks/hub_scale.py " + " ".join(sys.argv[1:]),
            "started": started,
            "seconds": round(time.perf_counter() - clock, 1),
            "load_average": load,
            "users": len(users),
            "rounds": args.rounds,
            "workload": asdict(base),
            "jupyterhub": jupyterhub.__version__,
            "proxy": proxy_version(),
            "client_python": platform.python_version(),
            "machine": bench_env.machine_info(),
        },
        "runs": runs,
        "open_tunnels": idle,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.users = min(args.users, 2)
        args.rounds = 1
        args.idle_tunnels = min(args.idle_tunnels, 5)
        if args.transports == "websocket,polling":
            args.transports = "websocket"
    out = args.out or (SMOKE_OUT if args.smoke else DEFAULT_OUT)
    results = asyncio.run(main_async(args))
    out.mkdir(parents=True, exist_ok=True)
    (out / "hub-scale.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "hub-scale.md").write_text(markdown(results))
    print(f"wrote {out / 'hub-scale.json'} and {out / 'hub-scale.md'}")
    failed = [run["transport"] for run in results["runs"] if run["lost"] or run["errors"]]
    if failed:
        for run in results["runs"]:
            for error in run["errors"][:20]:
                print(f"{run['transport']}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
