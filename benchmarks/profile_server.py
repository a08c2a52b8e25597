"""Profile our server with py-spy while the tunnel carries one kind of load.

Usage::

    python benchmarks/profile_server.py                      # every load, 15 s each
    python benchmarks/profile_server.py --load download --seconds 30

For each load it starts our server on 127.0.0.1, attaches ``py-spy record`` (sampling,
non-blocking, so the server is not paused), drives the load through the tunnel, and
writes the collapsed stacks under ``benchmarks/.work/profiles/`` and a summary (top
functions by own time and by inclusive time, our package's functions singled out) to
``docs/benchmarks/profile-<load>.txt``.

Loads:
  latency     GET /api/status, one at a time (legacy framing)
  rps16       GET /api/status, 16 in flight on one tunnel
  download    64 MiB GET /files/..., back to back (legacy framing)
  download-binary   the same with framing=binary
  upload      64 MiB PUT /api/contents/... with one base64 body, back to back
  upload-binary     the same with framing=binary
  kernel      kernel_info_request bursts through proxied_ws
  polling     GET /api/status, one at a time, over the polling transport (TunnelClient)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_env

LOADS = (
    "latency",
    "rps16",
    "download",
    "download-binary",
    "upload",
    "upload-binary",
    "kernel",
    "polling",
)
PACKAGE = "jupyter_http_over_ws"  # the original's module has the same name


async def _drive(load: str, server: Any, seconds: float, root: Path) -> dict[str, float]:
    from clients import KernelSocket, RawTunnel
    from harness import MiB

    deadline = time.perf_counter() + seconds
    count = 0
    if load in ("latency", "rps16"):
        tunnel = await RawTunnel.connect(server.ws_url, server.auth_headers)
        in_flight = 16 if load == "rps16" else 1

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await tunnel.request("GET", "/api/status")
                count += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        await tunnel.close()
        return {"requests": count, "per_second": count / seconds}
    if load == "polling":
        from jupyter_http_over_ws.client import TunnelClient

        client = await TunnelClient.connect(server.url, token=server.token, transports=("polling",))
        if client.transport != "polling":
            raise RuntimeError(f"connected over {client.transport}, not polling")
        while time.perf_counter() < deadline:
            await client.request("GET", "/api/status")
            count += 1
        await client.close()
        return {"requests": count, "per_second": count / seconds}
    if load.startswith("download"):
        tunnel = await RawTunnel.connect(
            server.ws_url, server.auth_headers, binary=load.endswith("binary")
        )
        while time.perf_counter() < deadline:
            reply = await tunnel.request("GET", "/files/bench-64MiB.bin", keep_body=False)
            assert reply.length == 64 * MiB, reply
            count += 1
        await tunnel.close()
        return {"downloads": count, "MiB_per_second": count * 64 / seconds}
    if load.startswith("upload"):
        import base64
        import os

        content = base64.b64encode(os.urandom(64 * MiB)).decode("ascii")
        body = '{"type":"file","format":"base64","content":"' + content + '"}'
        (root / "uploads").mkdir(exist_ok=True)
        tunnel = await RawTunnel.connect(
            server.ws_url, server.auth_headers, binary=load.endswith("binary")
        )
        while time.perf_counter() < deadline:
            reply = await tunnel.request(
                "PUT",
                f"/api/contents/uploads/profile-{count}.bin",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            assert reply.status in (200, 201), reply
            count += 1
        await tunnel.close()
        for path in (root / "uploads").glob("profile-*.bin"):
            path.unlink()
        return {"uploads": count, "MiB_per_second": count * 64 / seconds}
    # kernel
    import aiohttp

    async with (
        aiohttp.ClientSession(headers=server.auth_headers) as session,
        session.post(server.url + "/api/kernels", json={"name": "bench-python"}) as r,
    ):
        kernel_id = (await r.json())["id"]
    await asyncio.sleep(3)
    socket = await KernelSocket.connect(server.ws_url, kernel_id, server.auth_headers, proxied=True)
    received = 0
    caught_up = asyncio.Event()

    def on_message(message: dict[str, Any]) -> None:
        nonlocal received
        received += 1
        if received >= count * 3 * 0.9:  # a reply and two status messages per request
            caught_up.set()

    socket.on_message = on_message
    while time.perf_counter() < deadline:
        caught_up.clear()
        for _ in range(200):
            await socket.send(socket.message("kernel_info_request", {}))
            count += 1
        await asyncio.wait_for(caught_up.wait(), 30)
    await socket.close()
    return {"requests": count, "messages_received": received}


def summarize(collapsed: Path, top: int = 30) -> str:
    """Own and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    ours_inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        samples = int(number)
        total += samples
        frames = [f for f in stack.split(";") if f]
        # Drop the thread name py-spy puts first when it is not a Python frame.
        frames = [f for f in frames if "(" in f] or frames
        if frames:
            own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += samples
            if PACKAGE in frame:
                ours_inclusive[frame] += samples
    if not total:
        return "no samples\n"

    def table(counter: collections.Counter[str], title: str) -> list[str]:
        lines = [title, "-" * len(title)]
        for name, samples in counter.most_common(top):
            lines.append(f"{100 * samples / total:6.1f}%  {name}")
        return [*lines, ""]

    return "\n".join(
        [
            f"{total} samples",
            "",
            *table(own, "Own time (the function itself, not its callees)"),
            *table(ours_inclusive, f"Inclusive time, functions of {PACKAGE}"),
            *table(inclusive, "Inclusive time, all functions"),
        ]
    )


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    path, _, _line = where.rpartition(":")
    return f"{name} ({path or where})"


def _prepare(load: str) -> tuple[Path, Path, Path]:
    """py-spy, the served folder (with the 64 MiB file) and the collapsed-stacks file."""
    from run import make_files

    py_spy = bench_env.py_spy_path()
    if py_spy is None:
        raise RuntimeError("py-spy is not available")
    root = bench_env.WORK_DIR / "root"
    make_files(root, [64 * 1024 * 1024])
    raw_dir = bench_env.WORK_DIR / "profiles"
    raw_dir.mkdir(parents=True, exist_ok=True)
    return py_spy, root, raw_dir / f"{load}.txt"


async def profile(load: str, seconds: float, out_dir: Path, which: str = "ours") -> Path:
    from servers import OriginalServer, OurServer, Server

    py_spy, root, collapsed = _prepare(load if which == "ours" else f"{which}-{load}")
    server: Server
    if which == "ours":
        server = OurServer("ours-profile", root)
    else:
        bench_env.ensure_original_venv()
        server = OriginalServer("original-profile", root)
    await server.start()
    try:
        recorder = _start_py_spy(py_spy, server.pid, seconds, collapsed)
        await asyncio.sleep(1.0)  # py-spy attaches
        figures = await _drive(load, server, seconds - 2, root)
        await asyncio.to_thread(recorder.wait, 60)
    finally:
        server.stop()
    name = load if which == "ours" else f"{which}-{load}"
    return _write_summary(name, seconds, figures, collapsed, out_dir)


def _start_py_spy(py_spy: Path, pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` at 250 Hz without pausing it, writing collapsed stacks to ``output``."""
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    command += ["--format", "raw", "--output", str(output), "--duration", str(int(seconds))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _write_summary(
    load: str, seconds: float, figures: dict[str, float], collapsed: Path, out_dir: Path
) -> Path:
    summary = summarize(collapsed)
    header = (
        f"py-spy profile of the server under load '{load}' "
        f"({seconds:g} s, 250 Hz, non-blocking); load figures: "
        + ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
        + "\n\n"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"profile-{load}.txt"
    path.write_text(header + summary)
    return path


async def main_async(args: argparse.Namespace) -> int:
    bench_env.ensure_client_packages(need_plot=False)
    for load in args.load or LOADS:
        if args.server == "original" and load in ("download-binary", "polling"):
            continue
        path = await profile(load, args.seconds, args.out, args.server)
        print(f"wrote {path}")
        print(path.read_text()[:3000])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--load", action="append", choices=LOADS, help="load to profile (repeatable; default: all)"
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--server",
        choices=("ours", "original"),
        default="ours",
        help="profile our server (default) or the original's, for comparison",
    )
    parser.add_argument("--out", type=Path, default=bench_env.REPO_DIR / "docs" / "benchmarks")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
