"""Send benchmark, modelled on RocketMQ's benchmark Producer (example/benchmark/Producer.java).

`--concurrency` asyncio senders share `--connections` connections (SO_REUSEPORT spreads them
over the broker's workers); each sender sends one SEND_MESSAGE_V2 (string ext fields, as the
Java client writes them), waits for the answer, records the round trip and sends the next.
With `--batch N` > 1 each request carries N messages (`batch`=true, the MessageBatch body).
Every message carries what the Java client adds: WAIT=true and a 32-hex UNIQ_KEY.

Each second it prints TPS (messages/s), RT avg/p50/p99/max in ms and failures; at the end a
summary with p50/p99/p999, the broker's CPU seconds per 100k messages (its whole process tree,
by role) and the client's own.

    python bench/produce.py --start                              # own broker, ASYNC_FLUSH, 64 senders, 1 KiB
    python bench/produce.py --start --batch 32
    python bench/produce.py --start --flush SYNC
    python bench/produce.py --start --flush SYNC --concurrency 1
    python bench/produce.py --broker 127.0.0.1:10911 --broker-pid 1234 --topic T --duration 20
    python bench/produce.py --start --quick                       # 8 s

Never a test: bounded by --duration and --messages.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path

from common import (
    MIB,
    CpuMeter,
    LocalBroker,
    Percentiles,
    SelfCpu,
    connection_spread,
    cpu_lines,
    create_topic,
    loadavg,
    machine_header,
    open_balanced,
    roles_from_log,
)
from run_progress import RunProgress

from rocketpy.errors import RemotingConnectError, RemotingTimeoutError
from rocketpy.protocol.batch import BatchItem, encode_batch_body
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR
from rocketpy.protocol.remoting import RemotingCommand

SEND_V2 = int(RequestCode.SEND_MESSAGE_V2)
SUCCESS = int(ResponseCode.SUCCESS)
WAIT_PROP = f"WAIT{NAME_VALUE_SEPARATOR}true"
UNIQ_PREFIX = f"{PROPERTY_SEPARATOR}UNIQ_KEY{NAME_VALUE_SEPARATOR}"


class Stats:
    """Counters of the current one-second window and of the measured run."""

    def __init__(self) -> None:
        self.window_rt: list[float] = []
        self.window_msgs = 0
        self.window_fail = 0
        self.total = Percentiles()
        self.total_msgs = 0
        self.acked_msgs = 0           # warm-up included: what --messages counts
        self.total_fail = 0
        self.fail_codes: dict[str, int] = {}
        self.measuring = False

    def ok(self, rt: float, msgs: int) -> None:
        self.window_rt.append(rt)
        self.window_msgs += msgs
        self.acked_msgs += msgs
        if self.measuring:
            self.total.add(rt)
            self.total_msgs += msgs

    def fail(self, what: str) -> None:
        self.window_fail += 1
        if self.measuring:
            self.total_fail += 1
        self.fail_codes[what] = self.fail_codes.get(what, 0) + 1

    def take_window(self) -> tuple[list[float], int, int]:
        rt, msgs, fail = self.window_rt, self.window_msgs, self.window_fail
        self.window_rt, self.window_msgs, self.window_fail = [], 0, 0
        return rt, msgs, fail


def window_line(t: float, rt: list[float], msgs: int, fail: int, dt: float) -> tuple[str, dict[str, float]]:
    rt.sort()
    n = len(rt)
    if n:
        avg = sum(rt) / n * 1e3
        p50 = rt[n // 2] * 1e3
        p99 = rt[min(n - 1, int(n * 0.99))] * 1e3
        mx = rt[-1] * 1e3
    else:
        avg = p50 = p99 = mx = 0.0
    tps = msgs / dt if dt > 0 else 0.0
    line = (f"[{t:5.1f}s] TPS {tps:>9,.0f}  RT avg {avg:7.3f} p50 {p50:7.3f} p99 {p99:7.3f} "
            f"max {mx:8.3f} ms  failures {fail}")
    return line, {"t": round(t, 2), "tps": tps, "avg_ms": avg, "p50_ms": p50, "p99_ms": p99, "max_ms": mx,
                  "failures": fail}


class Producer:
    def __init__(self, args: argparse.Namespace, conns: list, stats: Stats) -> None:  # type: ignore[type-arg]
        self.args = args
        self.conns = conns
        self.stats = stats
        self.body = (b"0123456789abcdef" * (args.size // 16 + 1))[:args.size]
        self.uniq = f"{os.getpid():08X}{int(time.time()):012X}"    # 20 hex; 12-hex counter follows
        self.counter = itertools.count()
        self.queue_rr = itertools.count()
        self.stop = False
        self.remaining = args.messages if args.messages else None
        self.topic = args.topic
        self.group = "BenchProducerGroup"

    def _props(self) -> str:
        return f"{WAIT_PROP}{UNIQ_PREFIX}{self.uniq}{next(self.counter):012X}"

    def build(self) -> tuple[RemotingCommand, int]:
        a = self.args
        qid = next(self.queue_rr) % a.queues
        if a.batch <= 1:
            props, body, batch_flag, n = self._props(), self.body, "false", 1
        else:
            n = a.batch
            body = encode_batch_body([BatchItem(0, self.body, self._props()) for _ in range(n)])
            props, batch_flag = WAIT_PROP, "true"
        ext = {"a": self.group, "b": self.topic, "c": "TBW102", "d": "4", "e": str(qid), "f": "0",
               "g": str(int(time.time() * 1000)), "h": "0", "i": props, "j": "0", "k": "false",
               "m": batch_flag}
        return RemotingCommand(code=SEND_V2, ext_fields=ext, body=body), n  # type: ignore[arg-type]

    def _reserve(self, n: int) -> bool:
        if self.stop:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                self.stop = True
                return False
            self.remaining -= n
        return True

    async def sender(self, i: int) -> None:
        conn = self.conns[i % len(self.conns)]
        stats, timeout = self.stats, self.args.timeout_ms
        perf = time.perf_counter
        while True:
            cmd, n = self.build()
            if not self._reserve(n):
                return
            t0 = perf()
            try:
                resp = await conn.request(cmd, timeout)
            except RemotingTimeoutError:
                stats.fail("timeout")
                continue
            except RemotingConnectError as exc:
                stats.fail("connection")
                if self.stop:
                    return
                print(f"sender {i}: {exc}", file=sys.stderr)
                await asyncio.sleep(0.1)
                continue
            rt = perf() - t0
            if resp.code == SUCCESS:
                stats.ok(rt, n)
            else:
                stats.fail(f"code {resp.code}: {(resp.remark or '')[:60]}")


async def run(args: argparse.Namespace, addr: str, broker_pid: int | None, roles: dict[int, str],
              out) -> dict[str, object]:  # type: ignore[no-untyped-def]
    workers = sum(1 for r in roles.values() if r.startswith("worker"))
    conns = await (open_balanced(addr, args.connections, broker_pid, roles, workers) if args.balance
                   else open_balanced(addr, args.connections, None, roles, 0))
    if args.create_topic:
        await create_topic(conns[0], args.topic, args.queues)
    stats = Stats()
    prod = Producer(args, conns, stats)
    port = int(addr.rsplit(":", 1)[1])
    out(f"# {args.concurrency} senders on {len(conns)} connections to {addr}; topic {args.topic} "
        f"({args.queues} queues); {args.size} B bodies, batch {args.batch}; warm-up {args.warmup} s, "
        f"then {args.duration} s" + (f" or {args.messages:,} messages" if args.messages else ""))
    if broker_pid is not None:
        out(f"# connections per worker: {connection_spread(broker_pid, port, roles)}")
    tasks = [asyncio.create_task(prod.sender(i)) for i in range(args.concurrency)]
    meter = CpuMeter(broker_pid, roles) if broker_pid is not None else None
    t_start = time.monotonic()
    last = t_start
    rows = []
    client_cpu: SelfCpu | None = None
    measure_start = measure_end = t_start
    load_start = loadavg()
    end_at = t_start + args.warmup + args.duration
    progress = RunProgress("produce", args.warmup + args.duration, args.messages)
    while True:
        now = time.monotonic()
        next_tick = last + 1.0
        if not stats.measuring:
            next_tick = min(next_tick, t_start + args.warmup)
        await asyncio.sleep(max(0.0, min(next_tick, end_at) - now))
        now = time.monotonic()
        if not stats.measuring and now - t_start >= args.warmup:
            stats.take_window()      # drop the warm-up window's samples
            stats.measuring = True
            measure_start = now
            load_start = loadavg()
            if meter is not None:
                meter.start()
            client_cpu = SelfCpu()
            progress.say(out, "# warm-up done; measuring")
            last = now
            continue
        rt, msgs, fail = stats.take_window()
        line, row = window_line(now - t_start, rt, msgs, fail, now - last)
        last = now
        if stats.measuring:
            progress.say(out, line)
            rows.append(row)
        progress.tick(stats.acked_msgs)
        done = all(t.done() for t in tasks)
        if now >= end_at or done or (prod.remaining is not None and prod.remaining <= 0 and stats.measuring):
            break
    measure_end = time.monotonic()
    progress.finish()
    client_s = client_cpu.used() if client_cpu is not None else 0.0
    if meter is not None:
        meter.stop()
    prod.stop = True
    await asyncio.wait(tasks, timeout=args.timeout_ms / 1000 + 2)
    for t in tasks:
        t.cancel()
    for c in conns:
        c.close()
    secs = measure_end - measure_start
    summ = stats.total.summary()
    tps = stats.total_msgs / secs if secs > 0 else 0.0
    out("")
    out(f"== produce summary: size {args.size} B, batch {args.batch}, concurrency {args.concurrency}, "
        f"connections {args.connections}, flush {args.flush_label}")
    out(f"messages {stats.total_msgs:,} in {secs:.2f} s = {tps:,.0f} msg/s "
        f"({tps * args.size / MIB:.1f} MiB/s of bodies); requests {summ['n']:,}")
    out(f"RT ms: avg {summ['avg']:.3f}  p50 {summ['p50']:.3f}  p99 {summ['p99']:.3f}  "
        f"p999 {summ['p999']:.3f}  max {summ['max']:.3f}")
    out(f"failures {stats.total_fail} during measurement; all: {stats.fail_codes or 'none'}")
    result: dict[str, object] = {"messages": stats.total_msgs, "seconds": secs, "tps": tps, "rt_ms": summ,
                                 "failures": stats.total_fail, "failure_kinds": stats.fail_codes,
                                 "per_second": rows}
    if meter is not None:
        lines, data = cpu_lines(meter, stats.total_msgs, client_s)
        for ln in lines:
            out(ln)
        result.update(data)
    else:
        out(f"client CPU: {client_s:.2f} s (no --broker-pid: broker CPU not measured)")
        result["client_cpu_s"] = client_s
    load_end = loadavg()
    out(f"loadavg at start of measurement {load_start}, at end {load_end} (nproc {os.cpu_count()})")
    result["loadavg_start"], result["loadavg_end"] = load_start, load_end
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--broker", metavar="ADDR", help="a running broker, host:port")
    where.add_argument("--namesrv", metavar="ADDR", help="a NameServer: the topic's first broker is used")
    where.add_argument("--start", action="store_true", help="start a broker of our own on loopback")
    p.add_argument("--broker-pid", type=int, default=None,
                   help="the running broker's supervisor pid, for its CPU (with --broker/--namesrv)")
    p.add_argument("--topic", default="BenchTopic")
    p.add_argument("--queues", type=int, default=8, help="queues of the topic; sends round-robin over them")
    p.add_argument("--no-create-topic", dest="create_topic", action="store_false",
                   help="do not send UPDATE_AND_CREATE_TOPIC first")
    p.add_argument("--concurrency", "-w", type=int, default=64, help="async senders (default 64)")
    p.add_argument("--connections", type=int, default=4, help="TCP connections (default 4)")
    p.add_argument("--no-balance", dest="balance", action="store_false",
                   help="keep the connections wherever SO_REUSEPORT puts them (default: with a known "
                        "broker pid, open extra connections and keep an even share per worker)")
    p.add_argument("--size", "-s", type=int, default=1024, help="message body bytes (default 1024)")
    p.add_argument("--batch", type=int, default=1, help="messages per request (batch=true) (default 1)")
    p.add_argument("--flush", choices=("SYNC", "ASYNC"), default="ASYNC",
                   help="flushDiskType of the broker started with --start (default ASYNC)")
    p.add_argument("--workers", type=int, default=0, help="workerCount with --start (0 = cores)")
    p.add_argument("--commitlog-file-size", type=int, default=1024 * MIB,
                   help="mappedFileSizeCommitLog with --start (default 1 GiB, RocketMQ's)")
    p.add_argument("--no-settle", dest="settle", action="store_false",
                   help="with --start: do not wait for the writer to warm the next CommitLog file first")
    p.add_argument("--duration", "-d", type=float, default=None,
                   help="measured seconds (default 20; --quick 6)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds sent before measuring (default 2; --quick 1)")
    p.add_argument("--messages", "-n", type=int, default=0, help="stop after this many messages")
    p.add_argument("--timeout-ms", type=int, default=3000, help="send timeout (default 3000)")
    p.add_argument("--quick", action="store_true", help="defaults --duration 6 --warmup 1")
    p.add_argument("--json", dest="json_out", type=Path, default=None, help="write results here")
    p.add_argument("--keep", action="store_true", help="keep the --start broker's dir (log, store)")
    p.add_argument("--hold", type=float, default=0.0,
                   help="with --start: seconds to wait after the run before stopping (for profiling)")
    p.add_argument("--no-coalesce", dest="coalesce", action="store_false",
                   help="write each request at once (the stock RemotingConnection.request) instead of "
                        "one write per event-loop turn")
    p.add_argument("--client", choices=("raw", "sdk"), default="raw",
                   help="raw: hand-built requests (default); sdk: rocketpy.client's AsyncProducer "
                        "(needs --namesrv), reporting client CPU per 100k messages")
    args = p.parse_args(argv)
    if args.client == "sdk" and not args.namesrv:
        p.error("--client sdk needs --namesrv")
    import common
    common.COALESCE = args.coalesce
    if args.duration is None:
        args.duration = 6.0 if args.quick else 20.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    args.flush_label = args.flush if args.start else "(the broker's)"
    return args


async def resolve_namesrv(namesrv: str, topic: str) -> str:
    from common import connect

    from rocketpy.protocol.bodies import TopicRouteData

    conn = await connect(namesrv)
    try:
        resp = await conn.request(RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}),
                                  5000)
        if resp.code != SUCCESS:
            resp = await conn.request(
                RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}), 5000)
        if resp.code != SUCCESS:
            raise SystemExit(f"no route for {topic} or TBW102 at {namesrv}: {resp.remark}")
        route = TopicRouteData.from_json(resp.body)
        return route.broker_datas[0].broker_addrs[0]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client == "sdk":
        import sdk_client
        result = asyncio.run(sdk_client.produce(args))
        if args.json_out:
            args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "result": result}, indent=2))
        return 0
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    broker: LocalBroker | None = None
    report: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()},
                                 "argv": sys.argv}
    try:
        if args.start:
            broker = LocalBroker(flush=args.flush, commitlog_file_size=args.commitlog_file_size,
                                 workers=args.workers, keep=args.keep).start()
            addr, pid = broker.addr, broker.pid
            roles = broker.roles()
            settled = broker.wait_settled() if args.settle else 0.0
            info = machine_header(broker.store_dir)
        else:
            addr = args.broker or asyncio.run(resolve_namesrv(args.namesrv, args.topic))
            pid = args.broker_pid
            roles = {}        # children are reported as pidNNN (their roles are in the broker's log)
            info = machine_header(None)
        out("# rocketpy produce bench: " + " ".join(sys.argv[1:]))
        for k, v in info.items():
            out(f"#   {k}: {v}")
        if broker is not None:
            out(f"#   waited {settled:.1f} s for the writer to finish warming the next CommitLog file")
            out(f"#   broker pid {pid} at {addr}, flushDiskType {broker.props['flushDiskType']}, "
                f"children: " + ", ".join(f"{r}={p}" for p, r in sorted(roles.items(), key=lambda x: x[1])))
        report["machine"] = info
        report["result"] = asyncio.run(run(args, addr, pid, roles, out))
        if broker is not None:
            restarted = set(roles_from_log(broker.log())) - set(roles)
            if restarted:
                out(f"WARNING: broker children restarted during the run: {sorted(restarted)}")
            if args.hold:
                out(f"# holding the broker (pid {pid}) for {args.hold} s")
                time.sleep(args.hold)
    finally:
        if broker is not None:
            rc = broker.stop()
            if rc not in (0, None):
                out(f"WARNING: the broker exited with {rc}; log tail:\n{broker.log()[-2000:]}")
    if args.json_out:
        report["output"] = lines
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
