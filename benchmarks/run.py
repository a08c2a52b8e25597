"""Measure the tunnel against direct HTTP and against the original extension.

Usage::

    python benchmarks/run.py                 # full run (5 rounds), writes docs/benchmarks/
    python benchmarks/run.py --smoke         # tiny sizes, 1 round, under a minute
    python benchmarks/run.py --rounds 3 --only latency,rps_16

Run it with the interpreter of the environment under test (the one where this package
and jupyter_server are installed): our server is that environment's ``jupyter server``.
It starts every server it needs on 127.0.0.1 and stops them at the end; client packages
and the original's virtualenv go under ``benchmarks/.work/``. See
``docs/developers/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import bench_env

DEFAULT_OUT = bench_env.REPO_DIR / "docs" / "benchmarks"
SMOKE_OUT = bench_env.WORK_DIR / "smoke"
PERFORMANCE_DOC = bench_env.REPO_DIR / "docs" / "developers" / "performance.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and 1 round (CI); skips the original unless its "
        "virtualenv exists or --with-original is given",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per scenario (default 5, 1 with --smoke)"
    )
    original = parser.add_mutually_exclusive_group()
    original.add_argument(
        "--with-original",
        action="store_true",
        help="measure the original 0.0.8 (create its virtualenv if needed)",
    )
    original.add_argument(
        "--without-original", action="store_true", help="measure direct and ours only"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario keys (latency, rps_1, rps_16, rps_64, "
        "head_of_line, download_0, download_1, kernel_rtt, kernel_burst, kernel_flood, "
        "slow_reader, upload_single, upload_chunked, polling)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default {DEFAULT_OUT.relative_to(bench_env.REPO_DIR)}"
        f", or {SMOKE_OUT.relative_to(bench_env.REPO_DIR)} with --smoke)",
    )
    parser.add_argument(
        "--ours-source",
        type=Path,
        default=None,
        help="folder holding another jupyter_http_over_ws package (e.g. a "
        "patched copy) to run our server with, first on its PYTHONPATH; "
        "default: a snapshot of this checkout's package taken at start",
    )
    parser.add_argument(
        "--ours-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra command-line argument for our server, e.g. "
        "--ours-arg=--HttpOverWebSocketApp.chunk_size=65536 (repeatable)",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for our server only (repeatable)",
    )
    parser.add_argument(
        "--no-binary",
        action="store_true",
        help="skip our opt-in binary framing (variant ours_binary)",
    )
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the physical ceiling of the 64 MiB download (a bare Tornado "
        "WebSocket; variants ceiling_ws_binary and ceiling_ws_json)",
    )
    parser.add_argument(
        "--no-quickack",
        action="store_true",
        help="WebSocket clients delay their ACKs as usual (see clients.py)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="measure nothing: rebuild the table and plot from an earlier results.json",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="do not update the table in docs/developers/performance.md",
    )
    return parser.parse_args(argv)


def snapshot_package() -> tuple[str, str]:
    """Copy the package as it is now, so that every server of this run uses the same code.

    The working tree may change while a run goes on (fresh servers start throughout);
    the copy is put first on our servers' ``PYTHONPATH``. Returns its folder and a hash.
    """
    source = bench_env.REPO_DIR / "jupyter_http_over_ws"
    target = bench_env.WORK_DIR / "ours-snapshot"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        source, target / "jupyter_http_over_ws", ignore=shutil.ignore_patterns("__pycache__")
    )
    digest = hashlib.sha256()
    for path in sorted((target / "jupyter_http_over_ws").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
    return str(target), digest.hexdigest()[:12]


def make_files(root: Path, sizes: list[int]) -> None:
    """Random (incompressible) files for the downloads, made once and reused."""
    from scenarios_http import file_name

    root.mkdir(parents=True, exist_ok=True)
    block = 16 * 1024 * 1024
    for size in sorted(set(sizes)):
        path = root / file_name(size)
        if path.exists() and path.stat().st_size == size:
            continue
        with path.open("wb") as f:
            left = size
            while left:
                n = min(block, left)
                f.write(os.urandom(n))
                left -= n


async def run_scenarios(
    ctx: Any,
    scenarios: list[Any],
    variants: list[str],
    rounds: int,
    results: dict[str, Any],
    max_timeout: float,
) -> None:
    from harness import VARIANTS

    for scenario in scenarios:
        names = [v for v in scenario.variants if v in variants]
        if not names:
            continue
        print(f"== {scenario.key}", flush=True)
        timeout = min(scenario.timeout, max_timeout)
        timed_out: set[str] = set()
        record = results["scenarios"].setdefault(scenario.key, {"rounds": {}})
        if scenario.warmup:
            for name in names:
                # Failures are recorded in the rounds that follow.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(scenario.measure(VARIANTS[name], ctx), timeout)
        for round_number in range(rounds):
            # Interleaved, and every other round in reverse (A B, B A, ...), so that slow
            # drifts of a shared machine fall on every variant alike.
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                if name in timed_out:
                    # A hang is not retried: it would only cost another full timeout.
                    entry = {"ok": False, "error": "skipped: timed out in an earlier round"}
                    record["rounds"].setdefault(name, []).append(entry)
                    continue
                start = time.perf_counter()
                try:
                    figures = await asyncio.wait_for(scenario.measure(VARIANTS[name], ctx), timeout)
                    entry: dict[str, Any] = {"ok": True, **figures}
                    shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
                except Exception as error:
                    message = f"{type(error).__name__}: {error}".strip()
                    if isinstance(error, asyncio.TimeoutError):
                        message = f"timed out after {timeout:g}s"
                        timed_out.add(name)
                    entry = {"ok": False, "error": message[:500]}
                    shown = "FAILED " + message[:200]
                    if os.environ.get("BENCH_TRACEBACK"):
                        traceback.print_exc()
                entry["seconds"] = round(time.perf_counter() - start, 3)
                record["rounds"].setdefault(name, []).append(entry)
                print(f"   round {round_number + 1} {name:<18} {shown}", flush=True)


def all_scenarios(ctx: Any) -> list[Any]:
    import scenarios_flood
    import scenarios_http
    import scenarios_kernel
    import scenarios_memory
    import scenarios_polling

    return (
        scenarios_http.scenarios(ctx)
        + scenarios_kernel.scenarios(ctx)
        + scenarios_flood.scenarios(ctx)
        + scenarios_memory.scenarios(ctx)
        + scenarios_polling.scenarios(ctx)
    )


def rebuild(args: argparse.Namespace) -> int:
    """Summarize and write an earlier run's rounds again (``--from-json``)."""
    bench_env.ensure_client_packages(need_plot=not args.no_plot)
    import harness
    import report
    import scenarios_polling

    results = json.loads(args.from_json.read_text())
    sizes = harness.Sizes(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in results["meta"]["sizes"].items()}
    )
    ctx = harness.Context(sizes=sizes, root_dir=bench_env.WORK_DIR / "root")
    chosen = [s for s in all_scenarios(ctx) if s.key in results["scenarios"]]
    report.summarize(results, chosen)
    scenarios_polling.take_metrics(results)  # its own side-by-side table, not the main one
    out = args.out or args.from_json.parent
    for path in report.write_all(results, out, plot=not args.no_plot):
        print(f"wrote {path}")
    if not args.no_docs and out.resolve() == DEFAULT_OUT.resolve():
        report.update_performance_doc(results, PERFORMANCE_DOC)
    print(report.markdown_table(results))
    if side_by_side := scenarios_polling.side_by_side(results):
        print("\nPolling against WebSocket (same Python client):\n" + side_by_side)
        scenarios_polling.append_section(out / "results.md", side_by_side, results)
    return 0


async def main_async(args: argparse.Namespace) -> int:
    bench_env.ensure_client_packages(need_plot=not args.no_plot)
    import clients
    import harness
    import report
    import scenarios_kernel
    import scenarios_memory
    import scenarios_polling
    from servers import CeilingServer, OriginalServer

    clients.QUICK_ACK = not args.no_quickack
    rounds = args.rounds or (1 if args.smoke else 5)
    sizes = harness.Sizes.smoke() if args.smoke else harness.Sizes()
    if args.without_original:
        with_original = False
    elif args.with_original or not args.smoke:
        bench_env.ensure_original_venv()
        with_original = True
    else:
        with_original = bench_env.original_available()

    root = bench_env.WORK_DIR / "root"
    make_files(root, [sizes.hol_file, sizes.slow_file, *sizes.downloads])
    if args.ours_source:
        source, source_hash = str(args.ours_source.resolve()), None
    else:
        source, source_hash = snapshot_package()
    ours_env = tuple(tuple(item.split("=", 1)) for item in args.ours_env)
    ctx = harness.Context(
        sizes=sizes,
        root_dir=root,
        ours_source=source,
        ours_args=tuple(args.ours_arg),
        ours_env=ours_env,  # type: ignore[arg-type]
    )
    variants = ["direct", "ours"] + ([] if args.no_binary else ["ours_binary"])
    variants += ["client_ws", "client_polling"]  # the polling scenario (same client, 2 transports)
    if with_original:
        variants += ["direct_nb6", "original", "original_auth_url"]
    if not args.no_ceiling:
        variants += list(harness.CEILING_VARIANTS)

    scenarios = all_scenarios(ctx)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {s.key for s in scenarios}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [s for s in scenarios if not only or s.key in only]

    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "command": "python " + shlex.join(["benchmarks/run.py", *sys.argv[1:]]),
            "smoke": args.smoke,
            "rounds": rounds,
            "quick_ack": clients.QUICK_ACK,
            "ours_source": source,
            "ours_snapshot_sha256": source_hash,
            "ours_args": list(args.ours_arg),
            "ours_env": list(args.ours_env),
            "variants": variants,
            "sizes": vars(sizes),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "machine": bench_env.machine_info(),
        },
        "scenarios": {},
    }
    # SIGTERM and SIGINT cancel the run, so that the servers are stopped in `finally`.
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)
    ctx.servers["ours"] = ctx.our_server("ours")
    if with_original:
        ctx.servers["original"] = OriginalServer("original", root)
    ceiling = set(harness.CEILING_VARIANTS) & set(variants)
    if any(ceiling & set(scenario.variants) for scenario in chosen):
        ctx.servers["ceiling"] = CeilingServer("ceiling", root)
    try:
        await asyncio.gather(*(server.start() for server in ctx.servers.values()))
        needs_kernels = any(s.key.startswith("kernel") for s in chosen)
        if needs_kernels:
            await asyncio.gather(
                *(
                    scenarios_kernel.start_kernel(ctx, kind)
                    for kind in ("ours", "original")
                    if kind in ctx.servers
                )
            )
        if any(s.key.startswith("upload") for s in chosen):
            scenarios_memory.prepare_payloads(ctx)
        await run_scenarios(
            ctx, chosen, variants, rounds, results, max_timeout=45.0 if args.smoke else 600.0
        )
    finally:
        for server in ctx.servers.values():
            server.stop()
    results["meta"]["seconds"] = round(time.time() - started, 1)

    out = args.out or (SMOKE_OUT if args.smoke else DEFAULT_OUT)
    report.summarize(results, chosen)
    scenarios_polling.take_metrics(results)  # its own side-by-side table, not the main one
    written = report.write_all(results, out, plot=not args.no_plot)
    if not args.smoke and not args.no_docs and out.resolve() == DEFAULT_OUT.resolve():
        report.update_performance_doc(results, PERFORMANCE_DOC)
    print(report.markdown_table(results))
    if side_by_side := scenarios_polling.side_by_side(results):
        print("\nPolling against WebSocket (same Python client):\n" + side_by_side)
        scenarios_polling.append_section(out / "results.md", side_by_side, results)
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return rebuild(args)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
