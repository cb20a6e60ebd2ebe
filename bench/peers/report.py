"""From the cells' metrics to the outputs: compare.json, compare.md (the markdown table: rows
are workload x metric x size, columns rocketpy, each peer and the rocketpy/best-peer ratio),
one PNG chart per workload, and the marked block of bench/RESULTS.md.

A row's figure per system is the median of its runs, with min and max. The ratio is taken per
run (rocketpy's run i against the best peer's run i: they ran back to back, so the machine's
drift hits both) and summarised the same way. For rows where lower is better (latency, CPU,
memory) the best peer is the lowest, and a ratio above 1 means rocketpy is worse.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path


def mark_begin(flush: str) -> str:
    return f"<!-- bench-compare {flush.upper()}:begin (written by `rocketpy bench compare`; do not edit by hand) -->"


def mark_end(flush: str) -> str:
    return f"<!-- bench-compare {flush.upper()}:end -->"


@dataclass(frozen=True)
class RowSpec:
    workload: str
    metric: str
    label: str
    unit: str
    higher_is_better: bool


ROWS: list[RowSpec] = [
    RowSpec("produce", "msgs_per_s", "1. produce, 64 in flight", "msg/s", True),
    RowSpec("one", "msgs_per_s", "2. produce, 1 in flight", "msg/s", True),
    RowSpec("one", "p50_ms", "2. produce, 1 in flight: latency p50", "ms", False),
    RowSpec("one", "p99_ms", "2. produce, 1 in flight: latency p99", "ms", False),
    RowSpec("one", "p999_ms", "2. produce, 1 in flight: latency p99.9", "ms", False),
    RowSpec("batch", "msgs_per_s", "3. batch produce (32 per batch, 8 in flight)", "msg/s", True),
    RowSpec("consume", "msgs_per_s", "4. consume a backlog, with acks", "msg/s", True),
    RowSpec("e2e", "p50_ms", "5. end to end at a fixed rate: p50", "ms", False),
    RowSpec("e2e", "p99_ms", "5. end to end at a fixed rate: p99", "ms", False),
    RowSpec("e2e", "p999_ms", "5. end to end at a fixed rate: p99.9", "ms", False),
    RowSpec("e2e", "sent_per_s", "5. end to end: send rate achieved", "msg/s", True),
    RowSpec("produce", "broker_cpu_s_per_100k", "6. broker CPU per 100k produced (64 in flight)", "CPU s", False),
    RowSpec("produce", "client_cpu_s_per_100k", "6. client CPU per 100k produced (64 in flight)", "CPU s", False),
    RowSpec("consume", "broker_cpu_s_per_100k", "6. broker CPU per 100k consumed", "CPU s", False),
    RowSpec("produce", "peak_mem_mib", "6. broker peak memory (PSS) while producing (64 in flight)", "MiB", False),
    RowSpec("hold", "hold_mem_mib", "6. broker memory (PSS) holding the backlog", "MiB", False),
    RowSpec("hold", "hold_anon_mib", "6. broker anonymous memory holding the backlog (no mapped files)", "MiB", False),
    RowSpec("hold", "hold_mem_mib_per_100k", "6. broker memory (PSS) added per 100k held", "MiB", False),
]

WORKLOAD_TITLES = {
    "produce": "1. produce, 64 in flight", "one": "2. produce, 1 in flight",
    "batch": "3. batch produce", "consume": "4. consume a backlog", "e2e": "5. end-to-end latency",
    "hold": "6. holding a backlog",
}


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def build(cells: list[dict], systems: list[str], sizes: list[int]) -> list[dict]:  # type: ignore[type-arg]
    """cells: {workload, system, size, run, metrics | error}. Returns the rows of the table."""
    peers = [s for s in systems if s != "rocketpy"]
    rows = []
    for spec in ROWS:
        # the hold step runs at one size whatever --sizes says
        for size in sorted({c["size"] for c in cells if c["workload"] == spec.workload} | set()):
            mine = [c for c in cells if c["workload"] == spec.workload and c["size"] == size
                    and "metrics" in c and spec.metric in c["metrics"]]
            if not mine:
                continue
            held_most = max(c["metrics"].get("messages", 0) for c in mine)
            values: dict[str, dict[str, float] | None] = {}
            per_run: dict[int, dict[str, float]] = {}
            for s in systems:
                v = [c["metrics"][spec.metric] for c in mine if c["system"] == s]
                values[s] = summarise(v) if v else None
                held = [c["metrics"]["messages"] for c in mine if c["system"] == s and spec.workload == "hold"]
                if values[s] is not None and held:
                    values[s]["held"] = held[0]   # type: ignore[index]
                for c in mine:
                    # a system that held fewer messages than the others is left out of the ratio
                    short = spec.workload == "hold" and c["metrics"]["messages"] < held_most
                    if c["system"] == s and not short:
                        per_run.setdefault(c["run"], {})[s] = c["metrics"][spec.metric]
            ratios = []
            for run_vals in per_run.values():
                peer_vals = [run_vals[p] for p in peers if p in run_vals]
                if "rocketpy" in run_vals and peer_vals:
                    best = max(peer_vals) if spec.higher_is_better else min(peer_vals)
                    if best > 0:
                        ratios.append(run_vals["rocketpy"] / best)
            rows.append({"workload": spec.workload, "metric": spec.metric, "label": spec.label,
                         "unit": spec.unit, "higher_is_better": spec.higher_is_better, "size": size,
                         "values": values, "ratio": summarise(ratios) if ratios else None})
    return rows


def _fmt(x: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{x:,.0f}"
    if unit in ("ms", "CPU s"):
        return f"{x:.3f}" if x < 10 else f"{x:.1f}"
    return f"{x:,.0f}"


def _cell(v: dict[str, float] | None, unit: str, held_max: float = 0) -> str:
    if v is None:
        return "n/a"
    if "held" in v and v["held"] < held_max:
        return f"{_fmt(v['median'], unit)} (holding only {v['held']:,.0f}: its fill ran out of time)"
    if v["n"] == 1:
        return _fmt(v["median"], unit)
    return f"{_fmt(v['median'], unit)} ({_fmt(v['min'], unit)}–{_fmt(v['max'], unit)})"


def markdown(rows: list[dict], systems: list[str]) -> str:  # type: ignore[type-arg]
    peers = [s for s in systems if s != "rocketpy"]
    head = (["workload", "size", "unit"] + systems
            + (["rocketpy / best peer"] if "rocketpy" in systems and peers else []))
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        arrow = "higher is better" if r["higher_is_better"] else "lower is better"
        line = [r["label"], f"{r['size']} B", f"{r['unit']} ({arrow})"]
        held_max = max((v.get("held", 0) for v in r["values"].values() if v), default=0)
        line += [_cell(r["values"].get(s), r["unit"], held_max) for s in systems]
        if len(head) > len(line):
            ra = r["ratio"]
            line.append("n/a" if ra is None else
                        (f"{ra['median']:.2f}" if ra["n"] == 1 else
                         f"{ra['median']:.2f} ({ra['min']:.2f}–{ra['max']:.2f})"))
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def limits_table(cells: list[dict], systems: list[str], busy: bool) -> str:  # type: ignore[type-arg]
    """What bounded each system in workload 1, from the measured CPU: cores used by the client
    (this one Python process) and by the broker's processes over the measured seconds."""
    out = ["| system | client cores (median) | broker cores (median) | limited by |", "|---|---|---|---|"]
    for s in systems:
        ms = [c["metrics"] for c in cells if c["workload"] == "produce" and c["system"] == s and "metrics" in c]
        if not ms:
            continue
        client = statistics.median(m["client_cores"] for m in ms)
        broker = statistics.median(m["broker_cores"] for m in ms)
        if busy and client + broker < 1.7:
            why = "not attributable: other processes kept the load average above the core count"
        elif client + broker >= 1.7:
            why = "the machine's 2 cores (client + broker)"
        elif client >= 0.85:
            why = "client CPU (the Python client saturates its one core)"
        elif broker >= 0.85:
            why = "broker CPU"
        else:
            why = "waiting: fsync / round trips (neither side's CPU is saturated)"
        out.append(f"| {s} | {client:.2f} | {broker:.2f} | {why} |")
    return "\n".join(out)


def _busy(meta: dict) -> bool:  # type: ignore[type-arg]
    """Was the machine loaded by others (1-minute load average above the cores at start or end)?"""
    m = meta.get("machine", {})
    try:
        cores = int(m.get("nproc", "0"))
        loads = [float(m[k].split()[0]) for k in ("loadavg at start", "loadavg at end") if k in m]
    except (ValueError, IndexError):
        return False
    return bool(cores and loads and max(loads) > cores)


def charts(rows: list[dict], systems: list[str], out_dir: Path) -> list[Path]:  # type: ignore[type-arg]
    """One PNG per workload: a panel per metric, bars per size and system, min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for wl, title in WORKLOAD_TITLES.items():
        wrows = [r for r in rows if r["workload"] == wl]
        metrics = list(dict.fromkeys(r["metric"] for r in wrows))
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            mrows = [r for r in wrows if r["metric"] == metric]
            width = 0.8 / max(1, len(systems))
            for i, s in enumerate(systems):
                xs, ys, lo, hi = [], [], [], []
                for j, r in enumerate(mrows):
                    v = r["values"].get(s)
                    if v is None:
                        continue
                    xs.append(j + (i - (len(systems) - 1) / 2) * width)
                    ys.append(v["median"])
                    lo.append(v["median"] - v["min"])
                    hi.append(v["max"] - v["median"])
                if xs:
                    ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=s)
            ax.set_xticks(range(len(mrows)), [f"{r['size']} B" for r in mrows])
            ax.set_title(f"{metric} ({mrows[0]['unit']}, {'higher' if mrows[0]['higher_is_better'] else 'lower'}"
                         " is better)", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{wl}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


ACK_MEANINGS = """\
What each system's ack means here (the durability the figures are bought with):

| system | ASYNC_FLUSH runs | SYNC_FLUSH runs |
|---|---|---|
| rocketpy | SEND_OK once the record is in the CommitLog's page cache (flushDiskType=ASYNC_FLUSH; the writer flushes on its timer): survives kill -9 of any broker process, not a power cut | SEND_OK once the writer's group commit has fdatasync'ed the record (SYNC_FLUSH) |
| redis | the XADD reply comes after the command is written to the AOF (page cache); fsync once a second (`appendfsync everysec`), RDB snapshots off | the reply comes after the AOF is fsync'ed (`appendfsync always`; Redis batches the fsync per event-loop turn) |
| nats | the JetStream PubAck comes once the message is in the stream's file store (page cache); fsync on the default 2-minute `sync_interval` | `sync_interval: always`: the file store syncs every write before the PubAck |
| rabbitmq | a publisher confirm for a persistent message routed to a durable classic queue, which RabbitMQ sends once the message store has persisted (fsync'ed) it; the same in both modes, so RabbitMQ's ASYNC column pays for more durability than the others | same |
"""


def write_outputs(out_dir: Path, meta: dict, cells: list[dict], systems: list[str],  # type: ignore[type-arg]
                  sizes: list[int]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build(cells, systems, sizes)
    table = markdown(rows, systems)
    data = {"meta": meta, "systems": systems, "sizes": sizes, "rows": rows, "cells": cells}
    json_path = out_dir / "compare.json"
    json_path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    md_path = out_dir / "compare.md"
    md_path.write_text(compare_md(meta, rows, cells, systems, table))
    pngs = charts(rows, systems, out_dir)
    return {"json": json_path, "md": md_path, **{p.stem: p for p in pngs}}


def compare_md(meta: dict, rows: list[dict], cells: list[dict], systems: list[str],  # type: ignore[type-arg]
               table: str) -> str:
    errors = [c for c in cells if "error" in c]
    lines = [
        f"Produced by `{meta['command']}` on {meta['started']} ({meta['mode']} mode, "
        f"{meta['flush']}_FLUSH, {meta['elapsed_s']:.0f} s).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in meta["machine"].items()) + ".",
        "",
        "Versions: " + "; ".join(f"{s}: {v}" for s, v in meta["versions"].items()) + ".",
        "",
        "Durability configured: " + "; ".join(f"{s}: {v}" for s, v in meta["durability"].items()) + ".",
        "",
        f"Counts: {meta['params']}. Runs per cell: {meta['runs']} (systems interleaved in each run: "
        + " ".join(systems) + "), the hold step once per system.",
        "",
        "Each cell is the median over runs (min–max); the last column is the median (min–max) of the "
        "per-run ratio rocketpy / best peer.",
        "",
        table,
        "",
        "What limited each system in workload 1 (cores used over the measured seconds; the client is "
        "one Python process; the machine has " + str(meta["machine"].get("nproc", "?")) + " cores):",
        "",
        limits_table(cells, systems, busy=_busy(meta)),
        "",
        ACK_MEANINGS,
    ]
    if errors:
        lines += ["Cells that failed or were skipped:", ""]
        lines += [f"- {c['workload']} {c['size']} B run {c['run']} {c['system']}: {c['error']}" for c in errors]
        lines.append("")
    return "\n".join(lines)


def update_results_md(results_md: Path, compare_md_text: str, pngs: list[Path], flush: str) -> None:
    """Replace this flush mode's marked block of RESULTS.md (append one if there is none)."""
    text = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    links = [f"[{p.name}]({os.path.relpath(p, results_md.parent)})" for p in pngs]
    charts_line = ("Charts: " + ", ".join(links) + ".") if links else ""
    begin, end = mark_begin(flush), mark_end(flush)
    block = f"{begin}\n{compare_md_text.rstrip()}\n\n{charts_line}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + f"\n\n### {flush.upper()}_FLUSH\n\n" + block + "\n"
    results_md.write_text(text)
