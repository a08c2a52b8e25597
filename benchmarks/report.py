"""Turning the rounds into medians and ratios, and writing JSON, Markdown and a PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness import BASELINE, VARIANT_LABELS, median

NONE = "-"
TABLE_START = "<!-- results-table:start -->"
TABLE_END = "<!-- results-table:end -->"


def summarize(results: dict[str, Any], scenarios: list[Any]) -> None:
    """Add ``results["metrics"]``: per metric and variant, round values, median, ratios."""
    metrics: dict[str, Any] = {}
    baseline_of: dict[str, str] = {}
    for scenario in scenarios:
        rounds = results["scenarios"].get(scenario.key, {}).get("rounds", {})
        for metric in scenario.metrics:
            entry: dict[str, Any] = {
                "scenario": scenario.key,
                "title": metric.title,
                "unit": metric.unit,
                "better": metric.better,
                "target": metric.target,
                "target_kind": metric.target_kind if metric.target else None,
                "target_value": metric.target_value,
                "baseline_metric": metric.baseline_metric,
                "variants": {},
                "ratios": {},
            }
            for name, entries in rounds.items():
                values = [e[metric.key] for e in entries if e.get("ok") and metric.key in e]
                errors = sorted({e["error"] for e in entries if not e.get("ok")})
                entry["variants"][name] = {
                    "rounds": values,
                    "median": median(values) if values else None,
                    # A round that measured but has no figure for this metric (the
                    # flood's idle timing, when the idle never came) did not fail.
                    "failed_rounds": sum(1 for e in entries if not e.get("ok")),
                    "errors": errors,
                }
            metrics[metric.key] = entry
            if metric.baseline_metric:
                baseline_of[metric.key] = metric.baseline_metric
    for key, entry in metrics.items():
        base_entry = metrics.get(baseline_of.get(key, key))
        if base_entry is None:  # the baseline metric was not measured in this run
            base_entry = entry
            entry["baseline_metric"] = None
        for name, base in BASELINE.items():
            a = entry["variants"].get(name, {}).get("median")
            b = base_entry["variants"].get(base, {}).get("median")
            if a is not None and b:
                entry["ratios"][f"{name}/{base}"] = a / b
        entry["target_met"] = _target_met(entry)
    results["metrics"] = metrics


def _target_met(entry: dict[str, Any]) -> bool | None:
    if not entry["target"]:
        return None
    ours = entry["variants"].get("ours", {})
    if ours.get("failed_rounds"):
        return False
    if entry["target_kind"] == "absolute":
        value = ours.get("median")
    else:
        value = entry["ratios"].get("ours/direct")
    if value is None:
        return False
    bound = entry["target_value"]
    return bool(value >= bound) if entry["better"] == "higher" else bool(value <= bound)


def _fmt(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(entry: dict[str, Any], name: str, notes: list[str]) -> str:
    variant = entry["variants"].get(name)
    if variant is None:
        return NONE
    text = _fmt(variant["median"])
    if variant["errors"]:
        notes.append("; ".join(variant["errors"]))
        number = len(notes)
        if variant["median"] is None:
            return f"**failed** [{number}]"
        text += f" ({variant['failed_rounds']} failed [{number}])"
    return text


def _ratio(entry: dict[str, Any], key: str) -> str:
    value = entry["ratios"].get(key)
    return NONE if value is None else f"{value:.2f}x"


def markdown_table(results: dict[str, Any]) -> str:
    """The results table (medians of the rounds; ratios are tunnel / its direct baseline)."""
    variants = results["meta"]["variants"]
    with_original = "original" in variants
    header = ["Figure", "Unit", "direct", "ours", "ours / direct", "Target", "Met"]
    if with_original:
        header += ["direct (nb 6.5)", "original 0.0.8", "original / direct (nb 6.5)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for entry in results["metrics"].values():
        met = {True: "yes", False: "**no**", None: ""}[entry["target_met"]]
        row = [
            entry["title"],
            entry["unit"],
            _cell(entry, "direct", notes),
            _cell(entry, "ours", notes),
            _ratio(entry, "ours/direct"),
            entry["target"] or "",
            met,
        ]
        if with_original:
            row += [
                _cell(entry, "direct_nb6", notes),
                _cell(entry, "original", notes),
                _ratio(entry, "original/direct_nb6"),
            ]
        lines.append("| " + " | ".join(row) + " |")
        for extra_name, column in (
            ("ours_binary", 3),
            ("ceiling_ws_binary", 3),
            ("ceiling_ws_json", 3),
            ("original_auth_url", 8),
        ):
            if extra_name not in entry["variants"] or (column > 3 and not with_original):
                continue
            # A sub-row: the value in its tunnel's column, the ratio in the next one.
            extra = [f"↳ {VARIANT_LABELS[extra_name]}", entry["unit"]] + [""] * (len(header) - 2)
            extra[column] = _cell(entry, extra_name, notes)
            extra[column + 1] = _ratio(entry, f"{extra_name}/{BASELINE[extra_name]}")
            lines.append("| " + " | ".join(extra) + " |")
    if notes:
        lines.append("")
        for number, note in enumerate(notes, start=1):
            lines.append(f"[{number}] {note.replace('|', '/')}  ")
    return "\n".join(lines)


def _machine_lines(meta: dict[str, Any]) -> list[str]:
    machine = meta["machine"]
    ours_env = machine.get("ours_env", {})
    lines = [
        f"- Run: {meta['started']}, {meta['rounds']} round(s), {meta.get('seconds', '?')} s, "
        f"`{meta['command']}`",
        f"- Machine: {machine.get('cpu')}, {machine.get('cpus')} CPUs, {machine.get('memory')}, "
        f"{machine.get('platform')} (shared, noisy)",
        "- Ours: "
        + ", ".join(f"{k} {v}" for k, v in ours_env.items() if v)
        + f"; package at git {machine.get('git_commit')}"
        + (" (with uncommitted changes)" if machine.get("git_dirty") else ""),
    ]
    original_env = machine.get("original_env")
    if original_env:
        lines.append("- Original: " + ", ".join(f"{k} {v}" for k, v in original_env.items() if v))
    client = machine.get("client")
    if client:
        lines.append(f"- Client: aiohttp {client.get('aiohttp')} on Python {client.get('python')}")
    return lines


#: The results of the other benchmarks, which write pages of their own (kept here so that
#: a new run of ``run.py`` keeps the links).
OTHER_RESULTS = """\
## Other benchmarks

- [hub-scale.md](hub-scale.md) (`benchmarks/hub_scale.py`): five users' servers behind a
  real JupyterHub and configurable-http-proxy, each user's tunnel doing REST, uploads and
  a kernel at the same time: operations per second, p50/p99 per operation over the
  WebSocket and the polling transport, and the memory of every server, kernel, the hub
  and its proxy. What they mean for a deployment:
  [docs/operators/scaling.md](../operators/scaling.md).
- [idle-scale.md](idle-scale.md) (`benchmarks/idle_scale.py`): 1,000 idle tunnel sockets
  and 100 idle proxied kernel sockets held by one server (memory per socket, CPU while
  idle), and 200 active tunnels against 200 direct keep-alive clients.
- [lab-startup.md](lab-startup.md) (`benchmarks/lab_startup.py`): the real JupyterLab
  through the tunnel from another site against the server's own JupyterLab: time to a
  ready JupyterLab and to the first cell's output.
"""


def results_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/run.py`; see `docs/developers/performance.md` for the method "
        "and the findings. Every figure is the median of the rounds; each ratio is a tunnel's "
        "figure divided by the same figure measured directly against the same server "
        "(`ours` against jupyter_server 2, the original against notebook 6.5).",
        "",
        *_machine_lines(meta),
        "",
        markdown_table(results),
        "",
        "![tunnel / direct ratios](results.png)",
        "",
        OTHER_RESULTS,
    ]
    return "\n".join(parts)


def write_plot(results: dict[str, Any], path: Path) -> bool:
    """Two panels of tunnel / direct ratios: higher-is-better and lower-is-better figures."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    series = [
        ("ours/direct", "ours (legacy framing)", "#1f77b4"),
        ("ours_binary/direct", "ours, binary framing", "#7fb8e6"),
        ("original/direct_nb6", "original 0.0.8", "#d62728"),
    ]
    panels = [
        ("higher", "Higher is better: tunnel / direct (1 = as fast as direct)"),
        ("lower", "Lower is better: tunnel / direct (1 = as good as direct)"),
    ]
    metrics = results["metrics"]
    fig, axes = plt.subplots(1, 2, figsize=(16, 9))
    for ax, (better, title) in zip(axes, panels, strict=True):
        # A figure judged on its own value (slow-reader RSS growth: direct's is ~0.1 MiB)
        # makes a meaningless ratio; it stays in the table only.
        rows = [
            m
            for m in metrics.values()
            if m["better"] == better and m["ratios"] and m["target_kind"] != "absolute"
        ]
        if not rows:
            ax.set_visible(False)
            continue
        height = 0.8 / len(series)
        for i, (key, label, color) in enumerate(series):
            ys, xs = [], []
            for y, row in enumerate(rows):
                value = row["ratios"].get(key)
                base_variant = key.split("/")[0]
                failed = row["variants"].get(base_variant, {}).get("median") is None and (
                    base_variant in row["variants"]
                )
                if value is not None:
                    ys.append(y + i * height)
                    xs.append(value)
                elif failed:
                    ax.text(
                        1, y + i * height, f" {label}: failed", va="center", fontsize=8, color=color
                    )
            ax.barh(ys, xs, height=height, color=color, label=label)
            for x, y in zip(xs, ys, strict=True):
                ax.text(x, y, f" {x:.2g}", va="center", fontsize=7)
        for y, row in enumerate(rows):
            if row["target_kind"] == "ratio" and row["target_value"]:
                ax.plot(
                    [row["target_value"]] * 2,
                    [y - 0.1, y + 0.8],
                    color="black",
                    linestyle="--",
                    linewidth=1,
                )
        ax.set_yticks([y + 0.4 - height / 2 for y in range(len(rows))])
        ax.set_yticklabels([f"{r['title']} ({r['unit']})" for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        ticks = [
            t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if low <= t <= high
        ]
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3)
    machine = results["meta"]["machine"]
    versions = machine.get("ours_env", {})
    fig.suptitle(
        f"jupyter_http_over_ws benchmark ({results['meta']['started']}, "
        f"{results['meta']['rounds']} rounds; {machine.get('cpus')} CPUs; "
        f"jupyter_server {versions.get('jupyter_server')}, tornado {versions.get('tornado')}). "
        "Dashed: the issue's targets.",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(results: dict[str, Any], out: Path, *, plot: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    written.append(json_path)
    md_path = out / "results.md"
    md_path.write_text(results_markdown(results))
    written.append(md_path)
    if plot and write_plot(results, out / "results.png"):
        written.append(out / "results.png")
    return written


def update_performance_doc(results: dict[str, Any], path: Path) -> None:
    """Replace the table between the markers in the developers' performance page."""
    if not path.exists():
        return
    text = path.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        return
    block = "\n".join(
        [
            TABLE_START,
            "",
            *_machine_lines(results["meta"]),
            "",
            markdown_table(results),
            "",
            TABLE_END,
        ]
    )
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.DOTALL)
    path.write_text(pattern.sub(lambda _: block, text))


__all__ = ["VARIANT_LABELS", "markdown_table", "summarize", "update_performance_doc", "write_all"]
