"""Side-by-side benchmark of rocketpy and the brokers a Python team would weigh against it
(Redis Streams, NATS JetStream, RabbitMQ), same workloads, same run, same machine.

    python -m bench.peers --quick                          # rocketpy, redis, nats; < 3 minutes
    python -m bench.peers --update-results-md              # the full matrix (+ rabbitmq), < 15 minutes
    python -m bench.peers --systems rocketpy,redis --sizes 1024 --flush sync
    rocketpy bench compare --quick                          # the same, through the CLI

Every server is started here on loopback with a data dir of its own and stopped by its pid. The
systems run interleaved (A B C A B C ...) inside every workload and size, so the machine's drift
hits them alike; figures are medians of the runs with min and max. Writes compare.json,
compare.md and one PNG per workload under --out (default bench/results/async|sync/); with
--update-results-md also the marked block of bench/RESULTS.md.

Never a test: bounded by counts, per-step timeouts and a total time budget.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import os
import platform
import signal
import sys
import time
from pathlib import Path

from bench.peers import report
from bench.peers.adapters import make_client
from bench.peers.servers import INSTALL_HINTS, SERVERS, PeerMissing, Server
from bench.peers.workloads import WORKLOADS, Entry, Params
from rocketpy import limits as L

REPO = Path(__file__).resolve().parents[2]
ALL_SYSTEMS = ["rocketpy", "redis", "nats", "rabbitmq"]
QUICK_SYSTEMS = ["rocketpy", "redis", "nats"]      # RabbitMQ boots in 5-10 s: not in --quick by default
DEFAULT_SIZES = [128, 1024]
CLIENT_MODULES = {"redis": "redis", "nats": "nats", "rabbitmq": "aio_pika"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rocketpy bench compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts, short steps (< 3 minutes)")
    p.add_argument("--systems", default=None,
                   help=f"comma list from {','.join(ALL_SYSTEMS)} (default: all; --quick: "
                        f"{','.join(QUICK_SYSTEMS)})")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="body sizes in bytes")
    p.add_argument("--flush", choices=("async", "sync"), default="async",
                   help="rocketpy's flushDiskType; the peers get the matching persistence")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list from " + ",".join(WORKLOADS))
    p.add_argument("--runs", type=int, default=L.BENCH_RUNS_DEFAULT, help="interleaved runs per cell")
    p.add_argument("--produce-seconds", type=float, default=None, help="workloads 1 and 3, per run")
    p.add_argument("--one-seconds", type=float, default=None, help="workload 2, per run")
    p.add_argument("--backlog", type=int, default=None, help="workload 4 backlog, messages")
    p.add_argument("--hold", type=int, default=None, help="messages of 1 KiB held in workload 6")
    p.add_argument("--e2e-rate", type=int, default=None, help="workload 5 send rate, msg/s")
    p.add_argument("--e2e-seconds", type=float, default=None, help="workload 5 seconds per run")
    p.add_argument("--warmup-seconds", type=float, default=L.BENCH_WARMUP_S)
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="stop starting cells after this long (default 14 min; --quick 170 s)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default bench/results/<flush>/)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where the servers' data dirs go (default: next to the repository, same disk)")
    p.add_argument("--update-results-md", action="store_true",
                   help="also write the comparison into bench/RESULTS.md's marked block")
    p.add_argument("--results-md", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = p.parse_args(argv)
    q = args.quick
    args.systems_explicit = args.systems is not None
    args.systems = [s.strip() for s in (args.systems or ",".join(QUICK_SYSTEMS if q else ALL_SYSTEMS)).split(",") if s.strip()]
    bad = [s for s in args.systems if s not in SERVERS]
    if bad:
        p.error(f"unknown system(s) {', '.join(bad)}; choose from {', '.join(ALL_SYSTEMS)}")
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(s < 8 or s > 1024 * 1024 for s in args.sizes):
        p.error("--sizes must be between 8 B (the send stamp) and 1 MiB (NATS's max_payload)")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(WORKLOADS)}")
    if args.runs < 1:
        p.error("--runs must be at least 1 (3 or more for the published figures)")
    args.params = Params(
        produce_s=args.produce_seconds or (L.BENCH_PRODUCE_S_QUICK if q else L.BENCH_PRODUCE_S_FULL),
        one_s=args.one_seconds or (L.BENCH_ONE_IN_FLIGHT_S_QUICK if q else L.BENCH_ONE_IN_FLIGHT_S_FULL),
        backlog=args.backlog or (L.BENCH_BACKLOG_MESSAGES_QUICK if q else L.BENCH_BACKLOG_MESSAGES_FULL),
        hold=args.hold or (L.BENCH_HOLD_MESSAGES_QUICK if q else L.BENCH_HOLD_MESSAGES_FULL),
        hold_size=L.BENCH_HOLD_BODY_SIZE,
        e2e_rate=args.e2e_rate or (L.BENCH_E2E_RATE_PER_S_QUICK if q else L.BENCH_E2E_RATE_PER_S_FULL),
        e2e_s=args.e2e_seconds or (L.BENCH_E2E_S_QUICK if q else L.BENCH_E2E_S_FULL),
        warmup_s=args.warmup_seconds)
    if args.out is None:
        args.out = REPO / "bench" / "results" / args.flush
    args.budget = args.budget_seconds or (L.BENCH_QUICK_BUDGET_S if q else L.BENCH_FULL_BUDGET_S)
    return args


def plan(args: argparse.Namespace, systems: list[str], has_batch: dict[str, bool]) -> list[tuple[str, int, int, str]]:
    """(workload, size, run, system) in the order they run: interleaved systems innermost."""
    cells = []
    for wl in args.workloads:
        sizes = [L.BENCH_HOLD_BODY_SIZE] if wl == "hold" else args.sizes
        runs = 1 if wl == "hold" else args.runs
        for size in sizes:
            for run in range(runs):
                for s in systems:
                    if wl == "batch" and not has_batch[s]:
                        continue
                    cells.append((wl, size, run, s))
    return cells


def headline(wl: str, m: dict[str, float]) -> str:
    if wl == "one":
        return f"{m['msgs_per_s']:,.0f} msg/s, p50 {m['p50_ms']:.3f} p99 {m['p99_ms']:.3f} ms"
    if wl == "e2e":
        return f"p50 {m['p50_ms']:.3f} p99 {m['p99_ms']:.3f} p99.9 {m['p999_ms']:.3f} ms at {m['sent_per_s']:,.0f} msg/s"
    if wl == "hold":
        return (f"holding {m['messages']:,.0f}: {m['hold_mem_mib']:,.0f} MiB "
                f"(+{m['hold_mem_delta_mib']:,.0f}); filled at {m['fill_msgs_per_s']:,.0f} msg/s")
    filled = f" (backlog filled at {m['fill_msgs_per_s']:,.0f} msg/s)" if "fill_msgs_per_s" in m else ""
    return (f"{m['msgs_per_s']:,.0f} msg/s, broker {m['broker_cpu_s_per_100k']:.2f} / client "
            f"{m['client_cpu_s_per_100k']:.2f} CPU s per 100k{filled}")


async def run_matrix(args: argparse.Namespace, servers: dict[str, Server], t_start: float,
                     out) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    entries: dict[str, Entry] = {}
    for name, srv in servers.items():
        client = make_client(name, srv)
        await client.connect()
        entries[name] = Entry(name, srv, client)
    cells: list[dict] = []  # type: ignore[type-arg]
    todo = plan(args, list(servers), {n: e.client.has_batch for n, e in entries.items()})
    try:
        for i, (wl, size, run, system) in enumerate(todo, 1):
            elapsed = time.monotonic() - t_start
            cell: dict = {"workload": wl, "size": size, "run": run, "system": system}  # type: ignore[type-arg]
            runs = 1 if wl == "hold" else args.runs
            tag = f"[{elapsed:6.1f}s {i:3d}/{len(todo)}] {wl:<8} {size:>5} B run {run + 1}/{runs} {system:<9}"
            if elapsed > args.budget:
                cell["error"] = f"skipped: over the {args.budget:.0f} s time budget"
                out(f"{tag} skipped (over the time budget)")
            else:
                try:
                    cell["metrics"] = await WORKLOADS[wl](entries[system], size, args.params)
                    out(f"{tag} {headline(wl, cell['metrics'])}")
                except Exception as exc:  # noqa: BLE001 - one failed cell must not lose the others
                    cell["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    out(f"{tag} FAILED {cell['error']}")
            cells.append(cell)
    finally:
        for e in entries.values():
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(e.client.close(), 10)
            except Exception as exc:  # noqa: BLE001
                out(f"# closing the {e.name} client: {exc!r}")
            if time.monotonic() - t0 > 1:
                out(f"# closing the {e.name} client took {time.monotonic() - t0:.1f} s")
    return cells


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            "kernel": platform.release(), "loadavg at start": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)      # stop our servers on SIGTERM as on Ctrl-C
    t_start = time.monotonic()

    def out(line: str) -> None:
        print(line, flush=True)

    cmd = "rocketpy bench compare " + " ".join(argv if argv is not None else sys.argv[1:])
    out(f"# {cmd.strip()}")
    out(f"# systems {','.join(args.systems)}; sizes {args.sizes}; flush {args.flush.upper()}; "
        f"{args.runs} runs; {args.params}")
    needed = ["matplotlib"] + [CLIENT_MODULES[s] for s in args.systems if s in CLIENT_MODULES]
    for mod in needed:
        try:
            importlib.import_module(mod)
        except ImportError:
            out(f"error: the Python package {mod} is missing; install the bench clients with: "
                f"{INSTALL_HINTS['clients']}")
            return 2
    servers: dict[str, Server] = {}
    cells: list[dict] = []  # type: ignore[type-arg]
    try:
        for name in args.systems:
            try:
                srv = SERVERS[name](args.flush, args.work_dir)
            except PeerMissing as exc:
                if args.systems_explicit:
                    out(f"error: {exc}")
                    return 2
                out(f"# skipping {name}: {exc}")
                continue
            t0 = time.monotonic()
            servers[name] = srv.start()
            out(f"# {name}: {srv.version()} on 127.0.0.1:{srv.port}, pid {srv.pid}, "
                f"{srv.durability()}; up in {time.monotonic() - t0:.1f} s")
        meta = {
            "command": cmd.strip(), "mode": "quick" if args.quick else "full", "flush": args.flush.upper(),
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "runs": args.runs, "params": str(args.params),
            "versions": {n: s.version() for n, s in servers.items()},
            "durability": {n: s.durability() for n, s in servers.items()},
        }
        cells = asyncio.run(run_matrix(args, servers, t_start, out))
    finally:
        for name, srv in servers.items():
            t0 = time.monotonic()
            rc = srv.stop()
            out(f"# stopped {name} (pid {srv.pid}, exit {rc}) in {time.monotonic() - t0:.1f} s")
    meta["elapsed_s"] = time.monotonic() - t_start
    meta["machine"]["loadavg at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    paths = report.write_outputs(args.out, meta, cells, list(servers), args.sizes)
    out(f"# wrote {', '.join(str(p) for p in paths.values())}")
    if args.update_results_md:
        report.update_results_md(args.results_md, paths["md"].read_text(),
                                 [p for p in paths.values() if p.suffix == ".png"], args.flush)
        out(f"# updated {args.results_md}")
    out(f"# done in {meta['elapsed_s']:.0f} s")
    failed = sum(1 for c in cells if "error" in c)
    return 1 if failed and failed == len(cells) else 0


if __name__ == "__main__":
    sys.exit(main())
