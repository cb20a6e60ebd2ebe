"""Pull benchmark, modelled on RocketMQ's benchmark Consumer (example/benchmark/Consumer.java).

Drains a backlog: one puller per queue (all queues in parallel over `--connections`
connections), each sending PULL_MESSAGE with maxMsgNums 32 from the queue's min offset, no
commit offset, no suspend, and the next pull from nextBeginOffset, until every queue reaches
the max offset it had at the start. Prints msgs/s and MB/s (records as stored) and pull RT
each second and at the end, with the broker's CPU seconds per 100k messages.

    python bench/consume.py --start --backlog 200000          # own broker; 200k x 1 KiB sent in batches of 32 first
    python bench/consume.py --broker 127.0.0.1:10911 --broker-pid 1234 --topic BenchTopic
    python bench/consume.py --start --backlog 50000 --quick
    python bench/consume.py --start --backlog 50000 --quick --client sdk-push   # the SDK's AsyncPushConsumer

Never a test: bounded by the backlog and --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
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
    free_port,
    loadavg,
    machine_header,
    open_balanced,
    port_open,
)
from produce import Producer, Stats
from run_progress import RunProgress

from rocketpy.errors import RemotingConnectError, RemotingTimeoutError
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import iter_records
from rocketpy.protocol.remoting import RemotingCommand

PULL = int(RequestCode.PULL_MESSAGE)
SUCCESS = int(ResponseCode.SUCCESS)
FLAG_SUBSCRIPTION = 0x4


async def queue_offsets(conn, topic: str, queues: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    out = []
    for q in range(queues):
        lo = await conn.request(RemotingCommand.request(RequestCode.GET_MIN_OFFSET,
                                                        {"topic": topic, "queueId": str(q)}), 5000)
        hi = await conn.request(RemotingCommand.request(RequestCode.GET_MAX_OFFSET,
                                                        {"topic": topic, "queueId": str(q)}), 5000)
        out.append((int(lo.ext_fields.get("offset", 0)), int(hi.ext_fields.get("offset", 0))))
    return out


async def produce_backlog(args: argparse.Namespace, conns, out) -> None:  # type: ignore[no-untyped-def]
    pa = argparse.Namespace(size=args.size, batch=args.backlog_batch, queues=args.queues, topic=args.topic,
                            messages=args.backlog, timeout_ms=10_000)
    stats = Stats()
    stats.measuring = True
    prod = Producer(pa, conns, stats)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(prod.sender(i)) for i in range(args.backlog_senders)]
    await asyncio.gather(*tasks)
    dt = time.monotonic() - t0
    out(f"# backlog: {stats.total_msgs:,} messages of {args.size} B in batches of {args.backlog_batch} "
        f"in {dt:.1f} s ({stats.total_msgs / dt:,.0f} msg/s), {stats.total_fail} failed sends "
        f"{stats.fail_codes or ''}")
    # wait for the dispatcher: every queue's max offset covers what was sent
    deadline = time.monotonic() + 120
    while True:
        offs = await queue_offsets(conns[0], args.topic, args.queues)
        total = sum(hi - lo for lo, hi in offs)
        if total >= stats.total_msgs or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    out(f"# dispatched: {total:,} queue entries after {time.monotonic() - t0:.1f} s")


class LocalNameServer:
    """A NameServer of its own on loopback, for --client sdk-push."""

    def __init__(self) -> None:
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalNameServer:
        self.popen = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.namesrv", "--listen", self.addr,
                                       "--metrics-port", "0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the NameServer did not start on {self.addr}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


class Puller:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.window_msgs = 0
        self.window_bytes = 0
        self.window_rt: list[float] = []
        self.total_msgs = 0
        self.total_bytes = 0
        self.total_rt = Percentiles()
        self.pulls = 0
        self.empty = 0
        self.failures: dict[str, int] = {}
        self.stop = False

    async def pull_queue(self, conn, qid: int, offset: int, end: int) -> None:  # type: ignore[no-untyped-def]
        a = self.args
        perf = time.perf_counter
        while offset < end and not self.stop:
            ext = {"consumerGroup": a.group, "topic": a.topic, "queueId": str(qid), "queueOffset": str(offset),
                   "maxMsgNums": str(a.max_msgs), "sysFlag": str(FLAG_SUBSCRIPTION), "commitOffset": "0",
                   "suspendTimeoutMillis": "15000", "subscription": "*", "subVersion": "0"}
            cmd = RemotingCommand(code=PULL, ext_fields=ext)  # type: ignore[arg-type]
            t0 = perf()
            try:
                resp = await conn.request(cmd, a.timeout_ms)
            except (RemotingTimeoutError, RemotingConnectError) as exc:
                kind = type(exc).__name__
                self.failures[kind] = self.failures.get(kind, 0) + 1
                await asyncio.sleep(0.05)
                continue
            rt = perf() - t0
            self.pulls += 1
            if resp.code != SUCCESS:
                key = f"code {resp.code} {resp.remark}"
                self.failures[key] = self.failures.get(key, 0) + 1
                self.empty += 1
                if resp.code == ResponseCode.PULL_OFFSET_MOVED:
                    offset = int(resp.ext_fields.get("nextBeginOffset", offset))
                await asyncio.sleep(0.01)
                continue
            nxt = int(resp.ext_fields["nextBeginOffset"])
            n = nxt - offset
            if a.verify:
                n_rec = len(iter_records(resp.body, check_crc=True))
                if n_rec != n:
                    self.failures["count mismatch"] = self.failures.get("count mismatch", 0) + 1
            offset = nxt
            self.window_msgs += n
            self.window_bytes += len(resp.body)
            self.window_rt.append(rt)
            self.total_msgs += n
            self.total_bytes += len(resp.body)
            self.total_rt.add(rt)


async def run(args: argparse.Namespace, addr: str, broker_pid: int | None, roles: dict[int, str],
              out) -> dict[str, object]:  # type: ignore[no-untyped-def]
    workers = sum(1 for r in roles.values() if r.startswith("worker"))
    conns = await open_balanced(addr, args.connections, broker_pid if args.balance else None, roles, workers)
    port = int(addr.rsplit(":", 1)[1])
    result: dict[str, object] = {}
    if args.backlog:
        await create_topic(conns[0], args.topic, args.queues)
        await produce_backlog(args, conns, out)
    offs = await queue_offsets(conns[0], args.topic, args.queues)
    backlog = sum(hi - lo for lo, hi in offs)
    out(f"# consuming {backlog:,} messages from {args.queues} queues of {args.topic}, maxMsgNums {args.max_msgs}, "
        f"{len(conns)} connections" + (f"; per worker: {connection_spread(broker_pid, port, roles)}"
                                       if broker_pid else ""))
    if not backlog:
        out("nothing to consume")
        return {"messages": 0}
    if args.drop_cache:
        out("# dropping the page cache first (echo 1 > /proc/sys/vm/drop_caches)")
        os.system("sync; echo 1 > /proc/sys/vm/drop_caches")  # noqa: S605
    if args.client == "sdk-push":
        for c in conns:
            c.close()
        await run_sdk(args, backlog, broker_pid, roles, out, result)
        return result
    puller = Puller(args)
    meter = CpuMeter(broker_pid, roles) if broker_pid is not None else None
    if meter is not None:
        meter.start()
    cpu = SelfCpu()
    load_start = loadavg()
    t0 = time.monotonic()
    tasks = [asyncio.create_task(puller.pull_queue(conns[q % len(conns)], q, lo, hi))
             for q, (lo, hi) in enumerate(offs)]
    last = t0
    rows = []
    end_at = t0 + args.duration
    progress = RunProgress("consume", args.duration, backlog)
    while True:
        await asyncio.wait(tasks, timeout=max(0.0, min(last + 1.0, end_at) - time.monotonic()))
        now = time.monotonic()
        dt = now - last
        last = now
        rt = sorted(puller.window_rt)
        msgs, nbytes = puller.window_msgs, puller.window_bytes
        puller.window_msgs = puller.window_bytes = 0
        puller.window_rt = []
        p50 = rt[len(rt) // 2] * 1e3 if rt else 0.0
        p99 = rt[min(len(rt) - 1, int(len(rt) * 0.99))] * 1e3 if rt else 0.0
        row = {"t": round(now - t0, 2), "msgs_per_s": msgs / dt if dt else 0.0,
               "mb_per_s": nbytes / MIB / dt if dt else 0.0, "pull_p50_ms": p50, "pull_p99_ms": p99}
        rows.append(row)
        progress.say(out, f"[{now - t0:5.1f}s] {row['msgs_per_s']:>10,.0f} msg/s  {row['mb_per_s']:7.1f} MiB/s  "
                     f"pull RT p50 {p50:6.2f} p99 {p99:6.2f} ms  ({puller.total_msgs:,}/{backlog:,})")
        progress.tick(puller.total_msgs)
        if all(t.done() for t in tasks) or now >= end_at:
            break
    progress.finish()
    secs = time.monotonic() - t0
    client_s = cpu.used()
    if meter is not None:
        meter.stop()
    puller.stop = True
    await asyncio.wait(tasks, timeout=args.timeout_ms / 1000 + 1)
    for t in tasks:
        t.cancel()
    for c in conns:
        c.close()
    summ = puller.total_rt.summary()
    rate = puller.total_msgs / secs if secs else 0.0
    out("")
    out(f"== consume summary: {args.queues} queues, maxMsgNums {args.max_msgs}, {len(conns)} connections")
    out(f"messages {puller.total_msgs:,} of {backlog:,} in {secs:.2f} s = {rate:,.0f} msg/s, "
        f"{puller.total_bytes / MIB / secs:.1f} MiB/s of stored records; pulls {puller.pulls:,} "
        f"({puller.total_msgs / max(1, puller.pulls):.1f} msgs/pull)")
    out(f"pull RT ms: avg {summ['avg']:.3f}  p50 {summ['p50']:.3f}  p99 {summ['p99']:.3f}  "
        f"p999 {summ['p999']:.3f}  max {summ['max']:.3f}")
    out(f"non-FOUND answers / errors: {puller.failures or 'none'}")
    result.update({"backlog": backlog, "messages": puller.total_msgs, "seconds": secs, "msgs_per_s": rate,
                   "mib_per_s": puller.total_bytes / MIB / secs, "pulls": puller.pulls, "pull_rt_ms": summ,
                   "failures": puller.failures, "per_second": rows})
    if meter is not None:
        lines, data = cpu_lines(meter, puller.total_msgs, client_s)
        for ln in lines:
            out(ln)
        result.update(data)
    load_end = loadavg()
    out(f"loadavg at start {load_start}, at end {load_end} (nproc {os.cpu_count()})")
    result["loadavg_start"], result["loadavg_end"] = load_start, load_end
    return result


async def run_sdk(args: argparse.Namespace, backlog: int, broker_pid: int | None, roles: dict[int, str],
                  out, result: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Drain the backlog with the SDK's AsyncPushConsumer (long-polling pulls, process queues,
    listener calls, offset commits): the SDK's own cost per message, next to the raw pulls above."""
    from rocketpy.client.push_consumer import (
        AsyncPushConsumer,
        ConsumeConcurrentlyStatus,
        ConsumeFromWhere,
    )

    if not args.namesrv:
        raise SystemExit("--client sdk-push needs the NameServer --start starts")
    count = [0]
    done = asyncio.Event()

    def listener(msgs, ctx):  # type: ignore[no-untyped-def]
        count[0] += len(msgs)
        if count[0] >= backlog:
            done.set()
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    group = f"{args.group}-sdk-{os.getpid()}"
    consumer = AsyncPushConsumer(group, args.namesrv, instance_name=f"bench{os.getpid()}",
                                 consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
                                 pull_batch_size=args.max_msgs, consume_message_batch_max_size=args.sdk_batch)
    consumer.subscribe(args.topic)
    consumer.register_message_listener(listener)
    out(f"# SDK AsyncPushConsumer, group {group}, pull batch {args.max_msgs}, listener batch {args.sdk_batch}")
    meter = CpuMeter(broker_pid, roles) if broker_pid is not None else None
    if meter is not None:
        meter.start()
    cpu = SelfCpu()
    t0 = time.monotonic()
    await consumer.start()
    last, last_count = t0, 0
    while not done.is_set() and time.monotonic() < t0 + args.duration:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 1.0)
        now = time.monotonic()
        out(f"[{now - t0:5.1f}s] {(count[0] - last_count) / (now - last):>10,.0f} msg/s  ({count[0]:,}/{backlog:,})")
        last, last_count = now, count[0]
    secs = time.monotonic() - t0
    client_s = cpu.used()
    if meter is not None:
        meter.stop()
    await consumer.shutdown()
    rate = count[0] / secs if secs else 0.0
    out("")
    out(f"== SDK consume summary: {count[0]:,} of {backlog:,} messages in {secs:.2f} s = {rate:,.0f} msg/s "
        f"(start, rebalance and long-poll set-up included)")
    out(f"client CPU: {client_s:.2f} s = {client_s / max(1, count[0]) * 100_000:.2f} s per 100k messages")
    result.update({"client": "sdk-push", "backlog": backlog, "messages": count[0], "seconds": secs, "msgs_per_s": rate,
                   "client_cpu_s": client_s,
                   "client_cpu_s_per_100k": client_s / max(1, count[0]) * 100_000})
    if meter is not None:
        lines, data = cpu_lines(meter, count[0], client_s)
        for ln in lines:
            out(ln)
        result.update(data)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--broker", metavar="ADDR", help="a running broker, host:port")
    where.add_argument("--start", action="store_true", help="start a broker of our own on loopback")
    where.add_argument("--namesrv", metavar="ADDR", help="a NameServer (needed by --client sdk)")
    p.add_argument("--broker-pid", type=int, default=None, help="the running broker's pid, for its CPU")
    p.add_argument("--topic", default="BenchTopic")
    p.add_argument("--queues", type=int, default=8, help="queues of the topic (default 8)")
    p.add_argument("--group", default="BenchConsumerGroup")
    p.add_argument("--connections", type=int, default=4, help="TCP connections (default 4)")
    p.add_argument("--no-balance", dest="balance", action="store_false",
                   help="keep connections wherever SO_REUSEPORT puts them")
    p.add_argument("--max-msgs", type=int, default=32, help="maxMsgNums per pull (default 32)")
    p.add_argument("--backlog", type=int, default=0,
                   help="with --start: first send this many messages (in batches) to consume")
    p.add_argument("--backlog-batch", type=int, default=32, help="batch size of the backlog sends")
    p.add_argument("--backlog-senders", type=int, default=16, help="concurrent backlog senders")
    p.add_argument("--size", type=int, default=1024, help="backlog message body bytes (default 1024)")
    p.add_argument("--workers", type=int, default=0, help="workerCount with --start (0 = cores)")
    p.add_argument("--commitlog-file-size", type=int, default=1024 * MIB)
    p.add_argument("--duration", type=float, default=None,
                   help="cap on the consuming seconds (default 30; --quick 10)")
    p.add_argument("--timeout-ms", type=int, default=5000)
    p.add_argument("--verify", action="store_true", help="decode every record with its CRC (client CPU)")
    p.add_argument("--drop-cache", action="store_true",
                   help="drop the page cache before consuming (root; a cold read from disk)")
    p.add_argument("--quick", action="store_true", help="defaults --duration 10")
    p.add_argument("--json", dest="json_out", type=Path, default=None)
    p.add_argument("--sdk-batch", type=int, default=1,
                   help="with --client sdk-push: consume_message_batch_max_size")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--no-coalesce", dest="coalesce", action="store_false",
                   help="write each request at once (the stock RemotingConnection.request) instead of "
                        "one write per event-loop turn")
    p.add_argument("--client", choices=("raw", "sdk", "sdk-push"), default="raw",
                   help="raw: hand-built requests (default); sdk: rocketpy.client's lite pull consumer "
                        "(needs --namesrv), reporting client CPU per 100k messages; sdk-push: the SDK's "
                        "AsyncPushConsumer (needs --start: its own NameServer and broker)")
    p.add_argument("--backlog-count", type=int, default=0,
                   help="with --client sdk: stop after this many messages (0: --duration only)")
    args = p.parse_args(argv)
    if args.client == "sdk" and not args.namesrv:
        p.error("--client sdk needs --namesrv")
    if args.client == "sdk-push" and not args.start:
        p.error("--client sdk-push needs --start (it starts its own NameServer and broker)")
    if args.namesrv and args.client != "sdk":
        p.error("--namesrv is for --client sdk; give the raw client --broker")
    import common
    common.COALESCE = args.coalesce
    if args.duration is None:
        args.duration = 10.0 if args.quick else 30.0
    if args.backlog and not args.start:
        p.error("--backlog needs --start")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client == "sdk":
        import sdk_client
        result = asyncio.run(sdk_client.consume(args))
        if args.json_out:
            args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "result": result}, indent=2))
        return 0
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    broker: LocalBroker | None = None
    namesrv: LocalNameServer | None = None
    report: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()}, "argv": sys.argv}
    try:
        if args.start:
            extra = {}
            if args.client == "sdk-push":
                namesrv = LocalNameServer().start()
                args.namesrv = namesrv.addr
                extra = {"namesrvAddr": namesrv.addr, "registerNameServerPeriod": "2000"}
            broker = LocalBroker(commitlog_file_size=args.commitlog_file_size, workers=args.workers,
                                 keep=args.keep, extra=extra).start()
            addr, pid, roles = broker.addr, broker.pid, broker.roles()
            settled = broker.wait_settled()
            info = machine_header(broker.store_dir)
        else:
            addr, pid, roles = args.broker, args.broker_pid, {}
            info = machine_header(None)
        out("# rocketpy consume bench: " + " ".join(sys.argv[1:]))
        for k, v in info.items():
            out(f"#   {k}: {v}")
        if broker is not None:
            out(f"#   waited {settled:.1f} s for the writer to finish warming the next CommitLog file")
            out(f"#   broker pid {pid} at {addr}; children: "
                + ", ".join(f"{r}={p}" for p, r in sorted(roles.items(), key=lambda x: x[1])))
        report["machine"] = info
        report["result"] = asyncio.run(run(args, addr, pid, roles, out))
    finally:
        if broker is not None:
            rc = broker.stop()
            if rc not in (0, None):
                out(f"WARNING: the broker exited with {rc}; log tail:\n{broker.log()[-2000:]}")
        if namesrv is not None:
            namesrv.stop()
    if args.json_out:
        report["output"] = lines
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
