"""The workloads, written once against adapters.PeerClient, each measuring one cell (one system,
one body size, one run) and returning flat metrics.

| id      | what                                                                                 |
|---------|--------------------------------------------------------------------------------------|
| produce | BENCH_PIPELINE_IN_FLIGHT sends awaiting their durable ack at once: msgs/s, broker and |
|         | client CPU s per 100k messages, peak broker memory                                   |
| one     | one send in flight, each awaited: msgs/s and latency p50/p99/p999                    |
| batch   | BENCH_BATCH_IN_FLIGHT batches of BENCH_BATCH_MESSAGES (systems with batches)          |
| consume | a backlog sent first, then received with acks: msgs/s, broker CPU s per 100k         |
| e2e     | a fixed send rate; latency from the send to the consumer's callback                  |
| hold    | BENCH_HOLD_MESSAGES x 1 KiB held: broker memory (one run per system)                |
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
from collections.abc import Awaitable, Callable

from bench.peers.adapters import STAMP, PeerClient, make_body, stamped
from bench.peers.servers import RssSampler, Server
from rocketpy.limits import (
    BENCH_BATCH_IN_FLIGHT,
    BENCH_BATCH_MESSAGES,
    BENCH_E2E_IN_FLIGHT_MAX,
    BENCH_FILL_IN_FLIGHT,
    BENCH_HOLD_FILL_TIMEOUT_S,
    BENCH_PIPELINE_IN_FLIGHT,
    BENCH_STEP_TIMEOUT_S,
    BENCH_WARMUP_S,
    MIB,
)

_names = itertools.count()


@dataclasses.dataclass
class Params:
    produce_s: float
    one_s: float
    backlog: int
    hold: int
    hold_size: int
    e2e_rate: int
    e2e_s: float
    warmup_s: float = BENCH_WARMUP_S


@dataclasses.dataclass
class Entry:
    name: str
    server: Server
    client: PeerClient


class Meter:
    """Broker CPU (its process tree), this client's CPU, wall time and the broker's peak memory."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sampler = RssSampler(server)

    def __enter__(self) -> Meter:
        self.cpu0 = self.server.cpu_seconds()
        t = os.times()
        self.client0 = t.user + t.system
        self.t0 = time.perf_counter()
        self.sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        t = os.times()
        self.client = t.user + t.system - self.client0
        self.broker = self.server.cpu_seconds() - self.cpu0
        self.sampler.__exit__()

    def metrics(self, messages: int) -> dict[str, float]:
        per = 100_000 / messages if messages else 0.0
        return {"broker_cpu_s_per_100k": self.broker * per, "client_cpu_s_per_100k": self.client * per,
                "broker_cores": self.broker / self.wall, "client_cores": self.client / self.wall,
                "peak_mem_mib": self.sampler.peak / MIB}


def pct(sorted_s: list[float], q: float) -> float:
    return sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] if sorted_s else 0.0


def latency_metrics(lat_s: list[float]) -> dict[str, float]:
    s = sorted(lat_s)
    return {"p50_ms": pct(s, 0.5) * 1e3, "p99_ms": pct(s, 0.99) * 1e3, "p999_ms": pct(s, 0.999) * 1e3}


def dest_name(workload: str, system: str) -> str:
    return f"bench_{workload}_{system}_{os.getpid()}_{next(_names)}"


async def pump(op: Callable[[], Awaitable[None]], per_op: int, in_flight: int, seconds: float,
               count: int | None = None) -> tuple[int, float]:
    """`in_flight` loops, each awaiting `op` and starting the next, until `seconds` pass or
    `count` messages are acked. Returns (messages acked, seconds)."""
    t0 = time.perf_counter()
    end = t0 + seconds
    done = 0
    budget = [count]

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < end:
            if budget[0] is not None:
                if budget[0] <= 0:
                    return
                budget[0] -= per_op
            await op()
            done += per_op

    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return done, time.perf_counter() - t0


async def fill(client: PeerClient, dest: str, n: int, size: int, partial: bool = False,
               timeout_s: float = BENCH_STEP_TIMEOUT_S) -> tuple[int, float]:
    """Send n messages as fast as the client allows (batches where it has them), for at most
    `timeout_s`; fewer is an error unless `partial`. Returns (messages held, seconds)."""
    body = make_body(size)
    t0 = time.perf_counter()
    bulk = await client.bulk_fill(dest, n, body, time.monotonic() + timeout_s)
    if bulk is not None:
        sent, secs = bulk, time.perf_counter() - t0
    elif client.has_batch:
        bodies = [body] * BENCH_BATCH_MESSAGES
        sent, secs = await pump(lambda: client.send_batch(dest, bodies), BENCH_BATCH_MESSAGES,
                                BENCH_BATCH_IN_FLIGHT * 2, timeout_s, n)
    else:
        sent, secs = await pump(lambda: client.send(dest, body), 1, BENCH_FILL_IN_FLIGHT, timeout_s, n)
    if sent < n and not partial:
        raise RuntimeError(f"{client.name}: filled only {sent:,} of {n:,} messages within "
                           f"{timeout_s:.0f} s; lower --backlog/--hold or check the server")
    return sent, secs


# --- the workloads --------------------------------------------------------------------------------


async def w_produce(e: Entry, size: int, p: Params) -> dict[str, float]:
    dest = dest_name("produce", e.name)
    await e.client.create(dest)
    body = make_body(size)

    def op() -> Awaitable[None]:
        return e.client.send(dest, body)

    await pump(op, 1, BENCH_PIPELINE_IN_FLIGHT, p.warmup_s)
    with Meter(e.server) as m:
        n, secs = await pump(op, 1, BENCH_PIPELINE_IN_FLIGHT, p.produce_s)
    await e.client.delete(dest)
    return {"msgs_per_s": n / secs, "messages": n, **m.metrics(n)}


async def w_one(e: Entry, size: int, p: Params) -> dict[str, float]:
    dest = dest_name("one", e.name)
    await e.client.create(dest)
    body = make_body(size)
    send = e.client.send
    warm_end = time.perf_counter() + p.warmup_s
    while time.perf_counter() < warm_end:
        await send(dest, body)
    lat: list[float] = []
    perf = time.perf_counter
    t0 = perf()
    end = t0 + p.one_s
    while True:
        t = perf()
        if t >= end:
            break
        await send(dest, body)
        lat.append(perf() - t)
    secs = perf() - t0
    await e.client.delete(dest)
    return {"msgs_per_s": len(lat) / secs, "messages": len(lat), **latency_metrics(lat)}


async def w_batch(e: Entry, size: int, p: Params) -> dict[str, float]:
    dest = dest_name("batch", e.name)
    await e.client.create(dest)
    bodies = [make_body(size)] * BENCH_BATCH_MESSAGES

    def op() -> Awaitable[None]:
        return e.client.send_batch(dest, bodies)

    await pump(op, BENCH_BATCH_MESSAGES, BENCH_BATCH_IN_FLIGHT, p.warmup_s)
    with Meter(e.server) as m:
        n, secs = await pump(op, BENCH_BATCH_MESSAGES, BENCH_BATCH_IN_FLIGHT, p.produce_s)
    await e.client.delete(dest)
    return {"msgs_per_s": n / secs, "messages": n, **m.metrics(n)}


async def w_consume(e: Entry, size: int, p: Params) -> dict[str, float]:
    dest = dest_name("consume", e.name)
    await e.client.create(dest)
    filled, fill_s = await fill(e.client, dest, p.backlog, size)
    with Meter(e.server) as m:
        got = await e.client.consume(dest, p.backlog, None, time.monotonic() + BENCH_STEP_TIMEOUT_S)
    await e.client.delete(dest)
    if got < p.backlog:
        raise RuntimeError(f"{e.name}: consumed {got:,} of a {p.backlog:,}-message backlog within "
                           f"{BENCH_STEP_TIMEOUT_S:.0f} s")
    return {"msgs_per_s": got / m.wall, "messages": got, "fill_msgs_per_s": filled / fill_s, **m.metrics(got)}


async def w_e2e(e: Entry, size: int, p: Params) -> dict[str, float]:
    """Sends paced at `e2e_rate` (each in its own task, at most BENCH_E2E_IN_FLIGHT_MAX unacked)
    while the consumer runs; latency = the consumer's clock at the callback - the stamp the
    sender wrote into the body just before sending. Client and consumer share this process,
    so both clocks are perf_counter."""
    dest = dest_name("e2e", e.name)
    await e.client.create(dest)
    n = max(1, int(p.e2e_rate * p.e2e_s))
    lat: list[float] = []

    def on_bodies(bodies: list[bytes]) -> None:
        now = time.perf_counter_ns()
        unpack = STAMP.unpack_from
        lat.extend((now - unpack(b)[0]) / 1e9 for b in bodies)

    consumer = asyncio.create_task(e.client.consume(dest, n, on_bodies,
                                                    time.monotonic() + p.e2e_s + BENCH_STEP_TIMEOUT_S / 6))
    await asyncio.sleep(0.2)           # let the consumer subscribe before the first send
    body = make_body(size)
    in_flight: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []
    sent = 0
    stalled = 0
    t0 = time.perf_counter()

    def finished(t: asyncio.Task[None]) -> None:
        in_flight.discard(t)
        if not t.cancelled() and t.exception() is not None:
            errors.append(t.exception())  # type: ignore[arg-type]

    while sent < n and not errors:
        due = min(n, int((time.perf_counter() - t0) * p.e2e_rate) + 1)
        while sent < due:
            if len(in_flight) >= BENCH_E2E_IN_FLIGHT_MAX:
                stalled += 1
                break
            t = asyncio.create_task(e.client.send(dest, stamped(body)))
            in_flight.add(t)
            t.add_done_callback(finished)
            sent += 1
        await asyncio.sleep(0.001)
    send_secs = time.perf_counter() - t0
    if in_flight:
        await asyncio.wait(set(in_flight), timeout=30)
    got = await consumer
    await e.client.delete(dest)
    if errors:
        raise RuntimeError(f"{e.name}: a paced send failed: {errors[0]!r}")
    out = {"sent_per_s": sent / send_secs, "received": got, "missing": sent - got, **latency_metrics(lat)}
    if got < sent:
        raise RuntimeError(f"{e.name}: the consumer received {got:,} of {sent:,} paced messages")
    return out


async def w_hold(e: Entry, size: int, p: Params) -> dict[str, float]:
    """Memory holding the backlog after the fill: PSS of the broker's processes, so the page
    cache of its files is not counted (a mapped page the broker touched is). Not drained:
    workload 4 measures consuming."""
    dest = dest_name("hold", e.name)
    await e.client.create(dest)
    try:
        before = e.server.memory_bytes()
        # a client too slow to fill `hold` within the step's time holds fewer: the count is reported
        n, fill_s = await fill(e.client, dest, p.hold, p.hold_size, partial=True,
                               timeout_s=BENCH_HOLD_FILL_TIMEOUT_S)
        if n == 0:
            raise RuntimeError(f"{e.name}: no message could be sent for the hold step")
        await asyncio.sleep(0.5)       # let the broker settle (dispatch, flush timers) before measuring
        held = e.server.memory_bytes()
        anon = e.server.anon_bytes()
    finally:
        await e.client.delete(dest)    # a million messages left behind would slow the server's stop
    return {"hold_mem_mib": held / MIB, "hold_mem_delta_mib": (held - before) / MIB,
            "hold_anon_mib": anon / MIB,
            "hold_mem_mib_per_100k": max(0, held - before) / MIB * 100_000 / n,
            "fill_msgs_per_s": n / fill_s, "messages": n}


WORKLOADS: dict[str, Callable[[Entry, int, Params], Awaitable[dict[str, float]]]] = {
    "produce": w_produce, "one": w_one, "batch": w_batch, "consume": w_consume, "e2e": w_e2e,
    "hold": w_hold,
}
