"""The SDK driving the produce/consume benchmarks (`--client sdk`): what a user's program
costs, measured as the client process's CPU time per 100k messages.

    python bench/produce.py --client sdk --namesrv 127.0.0.1:9876 --topic T -n 100000
    python bench/consume.py --client sdk --namesrv 127.0.0.1:9876 --topic T --backlog-count 100000

The SDK finds brokers through a NameServer, so --namesrv is required. Bounded by
--duration and the message count; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from rocketpy.client import AsyncLitePullConsumer, AsyncProducer, ConsumeFromWhere, Message

PER = 100_000


def _cpu_line(label: str, messages: int, cpu_s: float, wall_s: float) -> str:
    per = cpu_s / messages * PER if messages else float("nan")
    rate = messages / wall_s if wall_s > 0 else 0.0
    return (f"== sdk {label}: {messages:,} messages in {wall_s:.2f} s = {rate:,.0f} msg/s; "
            f"client CPU {cpu_s:.2f} s = {per:.2f} s per 100k messages")


async def produce(args: argparse.Namespace) -> dict[str, float]:
    body = (b"0123456789abcdef" * (args.size // 16 + 1))[:args.size]
    limit = args.messages or 0
    deadline = time.monotonic() + args.duration
    sent = failed = 0
    async with AsyncProducer("BenchSdkProducer", namesrv_addr=args.namesrv) as producer:
        await producer.send(Message(args.topic, body))          # route and connection warm
        cpu0, t0 = time.process_time(), time.monotonic()

        async def sender() -> None:
            nonlocal sent, failed
            while time.monotonic() < deadline and (not limit or sent + failed < limit):
                if args.batch > 1:
                    try:
                        await producer.send_batch([Message(args.topic, body) for _ in range(args.batch)])
                        sent += args.batch
                    except Exception:  # noqa: BLE001 - counted, the bench goes on
                        failed += args.batch
                    continue
                try:
                    await producer.send(Message(args.topic, body))
                    sent += 1
                except Exception:  # noqa: BLE001 - counted, the bench goes on
                    failed += 1

        await asyncio.gather(*(sender() for _ in range(args.concurrency)))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    print(_cpu_line(f"produce (batch {args.batch}, {args.concurrency} senders)", sent, cpu, wall))
    print(f"failures {failed}")
    return {"messages": sent, "failures": failed, "client_cpu_s": cpu, "seconds": wall,
            "client_cpu_s_per_100k": cpu / sent * PER if sent else 0.0}


async def consume(args: argparse.Namespace) -> dict[str, float]:
    want = args.backlog_count
    got = 0
    group = f"{args.group}-{os.getpid()}"
    async with AsyncLitePullConsumer(group, namesrv_addr=args.namesrv, pull_batch_size=32,
                                     consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as consumer:
        await consumer.subscribe(args.topic)
        cpu0, t0 = time.process_time(), time.monotonic()
        deadline = t0 + args.duration
        while time.monotonic() < deadline and (not want or got < want):
            got += len(await consumer.poll(1.0))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    print(_cpu_line("consume (lite pull)", got, cpu, wall))
    return {"messages": got, "client_cpu_s": cpu, "seconds": wall,
            "client_cpu_s_per_100k": cpu / got * PER if got else 0.0}
