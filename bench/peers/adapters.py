"""One small client class per system, all with the same asyncio surface, so every workload is
written once. Each peer goes through its standard Python client (redis-py, nats-py, aio-pika);
rocketpy through the asyncio remoting client bench/produce.py uses (`RocketpyClient` is the one
class to replace once the SDK's Producer/PullConsumer land).

    create(dest) / delete(dest)       a fresh topic / stream / queue per measured step
    send(dest, body)                  one message; returns once the system's durable ack is in
    send_batch(dest, bodies)          one batch request (only where `has_batch`)
    consume(dest, n, on_bodies, ...)  receive n messages, acking as the system's consumers do
                                      (cumulatively, once per fetched batch); returns the count
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
import time
from collections.abc import Callable

from rocketpy.limits import BENCH_CONSUME_BATCH_MAX, BENCH_E2E_IN_FLIGHT_MAX

STAMP = struct.Struct(">q")          # perf_counter_ns at the send, first 8 bytes of every body
GROUP = "BenchGroup"

OnBodies = Callable[[list[bytes]], None] | None


def make_body(size: int) -> bytes:
    """A body of `size` bytes whose first 8 are free for the send stamp."""
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def stamped(body: bytes) -> bytes:
    return STAMP.pack(time.perf_counter_ns()) + body[STAMP.size:]


class PeerClient:
    name = "?"
    has_batch = False

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def create(self, dest: str) -> None:
        raise NotImplementedError

    async def delete(self, dest: str) -> None:
        raise NotImplementedError

    async def send(self, dest: str, body: bytes) -> None:
        raise NotImplementedError

    async def send_batch(self, dest: str, bodies: list[bytes]) -> None:
        raise NotImplementedError(f"{self.name} has no batch send")

    async def consume(self, dest: str, n: int, on_bodies: OnBodies, deadline: float) -> int:
        raise NotImplementedError

    async def bulk_fill(self, dest: str, n: int, body: bytes, deadline: float) -> int | None:
        """Fill a backlog (not measured) the fastest way the client has, stopping at `deadline`;
        returns how many the system holds, or None: no such way, the caller sends with many in
        flight instead."""
        return None


# --- rocketpy -------------------------------------------------------------------------------------


class RocketpyClient(PeerClient):
    """SEND_MESSAGE_V2 as the Java client writes it (WAIT=true, a UNIQ_KEY per message), queues
    round-robin over `queues` (RocketMQ's default topic has 4) and `connections` coalescing
    connections; consume = one long-polling puller per queue with FLAG_COMMIT_OFFSET carrying
    the consumed offset (how RocketMQ's push consumer acks), every record decoded."""

    name = "rocketpy"
    has_batch = True

    def __init__(self, addr: str, connections: int = 4, queues: int = 4) -> None:
        self.addr = addr
        self.n_conns = connections
        self.queues = queues
        self.conns: list = []  # type: ignore[type-arg]
        self.rr = itertools.count()
        self.uniq = f"{os.getpid():08X}{int(time.time()):012X}"
        self.counter = itertools.count()

    async def connect(self) -> None:
        from bench.common import open_connections

        self.conns = await open_connections(self.addr, self.n_conns)

    async def close(self) -> None:
        for c in self.conns:
            c.close()

    async def create(self, dest: str) -> None:
        from bench.common import create_topic

        await create_topic(self.conns[0], dest, self.queues)

    async def delete(self, dest: str) -> None:
        from rocketpy.protocol.codes import RequestCode
        from rocketpy.protocol.remoting import RemotingCommand

        # the broker keeps the CommitLog bytes until retention; this drops the topic's queues
        await self.conns[0].request(RemotingCommand.request(RequestCode.DELETE_TOPIC_IN_BROKER,
                                                            {"topic": dest}), 10_000)

    def _props(self) -> str:
        from rocketpy.protocol.message import NAME_VALUE_SEPARATOR as NV
        from rocketpy.protocol.message import PROPERTY_SEPARATOR as PS

        return f"WAIT{NV}true{PS}UNIQ_KEY{NV}{self.uniq}{next(self.counter):012X}"

    async def _send(self, dest: str, body: bytes, props: str, batch: bool) -> None:
        from rocketpy.protocol.codes import RequestCode, ResponseCode
        from rocketpy.protocol.remoting import RemotingCommand

        i = next(self.rr)
        ext = {"a": "BenchProducerGroup", "b": dest, "c": "TBW102", "d": str(self.queues),
               "e": str(i % self.queues), "f": "0", "g": str(int(time.time() * 1000)), "h": "0",
               "i": props, "j": "0", "k": "false", "m": "true" if batch else "false"}
        cmd = RemotingCommand(code=int(RequestCode.SEND_MESSAGE_V2), ext_fields=ext, body=body)
        resp = await self.conns[i % len(self.conns)].request(cmd, 10_000)
        if resp.code != ResponseCode.SUCCESS:
            raise RuntimeError(f"rocketpy send to {dest}: code {resp.code} {resp.remark}")

    async def send(self, dest: str, body: bytes) -> None:
        await self._send(dest, body, self._props(), False)

    async def send_batch(self, dest: str, bodies: list[bytes]) -> None:
        from rocketpy.protocol.batch import BatchItem, encode_batch_body
        from rocketpy.protocol.message import NAME_VALUE_SEPARATOR as NV

        body = encode_batch_body([BatchItem(0, b, self._props()) for b in bodies])
        await self._send(dest, body, f"WAIT{NV}true", True)

    async def consume(self, dest: str, n: int, on_bodies: OnBodies, deadline: float) -> int:
        from rocketpy.errors import RemotingConnectError, RemotingTimeoutError
        from rocketpy.protocol.codes import RequestCode, ResponseCode
        from rocketpy.protocol.message import iter_records
        from rocketpy.protocol.remoting import RemotingCommand

        flags = 0x1 | 0x2 | 0x4          # PullSysFlag: COMMIT_OFFSET | SUSPEND | SUBSCRIPTION
        got = 0
        done = asyncio.Event()

        async def puller(qid: int) -> None:
            nonlocal got
            conn = self.conns[qid % len(self.conns)]
            offset = 0
            while not done.is_set() and time.monotonic() < deadline:
                ext = {"consumerGroup": GROUP, "topic": dest, "queueId": str(qid),
                       "queueOffset": str(offset), "maxMsgNums": "32", "sysFlag": str(flags),
                       "commitOffset": str(offset), "suspendTimeoutMillis": "1000",
                       "subscription": "*", "subVersion": "0"}
                try:
                    resp = await conn.request(RemotingCommand(code=int(RequestCode.PULL_MESSAGE),
                                                              ext_fields=ext), 5_000)
                except (RemotingTimeoutError, RemotingConnectError):
                    await asyncio.sleep(0.05)
                    continue
                if resp.code == ResponseCode.SUCCESS:
                    records = iter_records(resp.body)
                    offset = int(resp.ext_fields["nextBeginOffset"])
                    if on_bodies is not None:
                        on_bodies([r.body for r in records])
                    got += len(records)
                    if got >= n:
                        done.set()
                elif resp.code in (ResponseCode.PULL_OFFSET_MOVED, ResponseCode.PULL_NOT_FOUND,
                                   ResponseCode.PULL_RETRY_IMMEDIATELY):
                    offset = int(resp.ext_fields.get("nextBeginOffset", offset))
                else:
                    raise RuntimeError(f"rocketpy pull {dest}:{qid}: code {resp.code} {resp.remark}")

        tasks = [asyncio.create_task(puller(q)) for q in range(self.queues)]
        waiter = asyncio.create_task(done.wait())
        try:
            await asyncio.wait([waiter, *tasks], timeout=max(0.0, deadline - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            done.set()
            waiter.cancel()
            # parked pulls answer within suspendTimeoutMillis; do not wait for them
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return got


# --- Redis Streams --------------------------------------------------------------------------------


class RedisClient(PeerClient):
    """redis-py's asyncio client: XADD per message (a pool of connections, one per request in
    flight, as redis-py does it), a pipeline of XADDs as the batch, XREADGROUP + XACK of each
    read batch in one round trip for consuming."""

    name = "redis"
    has_batch = True

    def __init__(self, port: int, pool_size: int = BENCH_E2E_IN_FLIGHT_MAX + 16) -> None:
        self.port = port
        self.pool_size = pool_size

    async def connect(self) -> None:
        import redis.asyncio as aioredis

        # a blocking pool: a request beyond pool_size waits for a connection instead of failing
        pool = aioredis.BlockingConnectionPool(host="127.0.0.1", port=self.port,
                                               max_connections=self.pool_size, timeout=30)
        self.r = aioredis.Redis(connection_pool=pool)
        await self.r.ping()

    async def close(self) -> None:
        await self.r.aclose()

    async def create(self, dest: str) -> None:
        await self.r.delete(dest)
        await self.r.xgroup_create(dest, GROUP, id="0", mkstream=True)

    async def delete(self, dest: str) -> None:
        await self.r.delete(dest)

    async def send(self, dest: str, body: bytes) -> None:
        await self.r.xadd(dest, {"b": body})

    async def send_batch(self, dest: str, bodies: list[bytes]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for b in bodies:
            pipe.xadd(dest, {"b": b})
        await pipe.execute()

    async def consume(self, dest: str, n: int, on_bodies: OnBodies, deadline: float) -> int:
        got = 0
        ack: list[bytes] = []
        while got < n and time.monotonic() < deadline:
            pipe = self.r.pipeline(transaction=False)
            if ack:
                pipe.xack(dest, GROUP, *ack)
            pipe.xreadgroup(GROUP, "c1", {dest: ">"}, count=BENCH_CONSUME_BATCH_MAX, block=1000)
            res = (await pipe.execute())[-1]
            ack = []
            for _stream, entries in res or ():
                ack = [eid for eid, _ in entries]
                if on_bodies is not None:
                    on_bodies([f[b"b"] for _, f in entries])
                got += len(entries)
        if ack:
            await self.r.xack(dest, GROUP, *ack)
        return got


# --- NATS JetStream -------------------------------------------------------------------------------


class NatsClient(PeerClient):
    """nats-py: js.publish waits for the stream's PubAck; consuming is a durable pull consumer
    with AckAll, fetching up to BENCH_CONSUME_BATCH_MAX and acking the last of each batch.
    JetStream has no batch publish in the servers tested here (n/a)."""

    name = "nats"

    def __init__(self, port: int) -> None:
        self.port = port

    async def connect(self) -> None:
        import nats

        self.nc = await nats.connect(f"nats://127.0.0.1:{self.port}", max_reconnect_attempts=0)
        self.js = self.nc.jetstream(timeout=10)

    async def close(self) -> None:
        await self.nc.close()

    async def create(self, dest: str) -> None:
        from nats.js.api import StorageType

        await self.js.add_stream(name=dest, subjects=[dest], storage=StorageType.FILE, num_replicas=1)

    async def delete(self, dest: str) -> None:
        await self.js.delete_stream(dest)

    async def send(self, dest: str, body: bytes) -> None:
        await self.js.publish(dest, body)

    async def bulk_fill(self, dest: str, n: int, body: bytes, deadline: float) -> int | None:
        """publish_async: nats-py's own pipelined publish (bounded pending acks)."""
        futs = []
        for _ in range(n):
            if time.monotonic() >= deadline:
                break
            futs.append(await self.js.publish_async(dest, body))
        await asyncio.wait_for(asyncio.gather(*futs), timeout=max(1.0, deadline - time.monotonic()) + 30)
        return len(futs)

    async def consume(self, dest: str, n: int, on_bodies: OnBodies, deadline: float) -> int:
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        cfg = ConsumerConfig(ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL,
                             max_ack_pending=-1)
        sub = await self.js.pull_subscribe(dest, durable=GROUP, stream=dest, config=cfg)
        got = 0
        try:
            while got < n and time.monotonic() < deadline:
                try:
                    msgs = await sub.fetch(min(BENCH_CONSUME_BATCH_MAX, n - got), timeout=1)
                except nats.errors.TimeoutError:
                    continue
                if not msgs:
                    continue
                if on_bodies is not None:
                    on_bodies([m.data for m in msgs])
                got += len(msgs)
                await msgs[-1].ack()
        finally:
            await sub.unsubscribe()
        return got


# --- RabbitMQ -------------------------------------------------------------------------------------


class RabbitClient(PeerClient):
    """aio-pika: a channel in publisher-confirm mode, each publish awaited until its confirm
    (many in flight on one channel); consuming with prefetch BENCH_CONSUME_BATCH_MAX and a
    multiple ack every half window. AMQP has no batch publish with confirms (n/a)."""

    name = "rabbitmq"

    def __init__(self, port: int) -> None:
        self.port = port

    async def connect(self) -> None:
        import aio_pika

        self.conn = await aio_pika.connect(host="127.0.0.1", port=self.port, login="guest",
                                           password="guest")
        self.ch = await self.conn.channel(publisher_confirms=True)

    async def close(self) -> None:
        await self.conn.close()

    async def create(self, dest: str) -> None:
        await self.ch.declare_queue(dest, durable=True)

    async def delete(self, dest: str) -> None:
        await self.ch.queue_delete(dest)

    async def send(self, dest: str, body: bytes) -> None:
        import aio_pika

        await self.ch.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=dest)

    async def bulk_fill(self, dest: str, n: int, body: bytes, deadline: float) -> int | None:
        """Persistent publishes on a channel without confirms, then wait until the queue holds
        them all (aio-pika's confirm per publish bounds a Python client to a few thousand/s)."""
        import aio_pika

        ch = await self.conn.channel(publisher_confirms=False)
        try:
            ex = ch.default_exchange
            sent = 0
            while sent < n and time.monotonic() < deadline:
                k = min(BENCH_CONSUME_BATCH_MAX, n - sent)
                await asyncio.gather(*(ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                                  routing_key=dest) for _ in range(k)))
                sent += k
            settle_until = max(deadline, time.monotonic()) + 30
            held = 0
            while time.monotonic() < settle_until:
                q = await ch.declare_queue(dest, durable=True, passive=True)
                held = q.declaration_result.message_count or 0
                if held >= sent:
                    break
                await asyncio.sleep(0.1)
            return held
        finally:
            await ch.close()

    async def consume(self, dest: str, n: int, on_bodies: OnBodies, deadline: float) -> int:
        ch = await self.conn.channel()
        await ch.set_qos(prefetch_count=BENCH_CONSUME_BATCH_MAX)
        queue = await ch.declare_queue(dest, durable=True, passive=True)
        got = 0
        unacked = 0
        done = asyncio.Event()
        every = max(1, BENCH_CONSUME_BATCH_MAX // 2)

        async def on_message(msg) -> None:  # type: ignore[no-untyped-def]
            nonlocal got, unacked
            if on_bodies is not None:
                on_bodies([msg.body])
            got += 1
            unacked += 1
            if unacked >= every or got >= n:
                unacked = 0
                await msg.ack(multiple=True)
            if got >= n:
                done.set()

        tag = await queue.consume(on_message, no_ack=False)
        try:
            await asyncio.wait_for(done.wait(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass
        finally:
            await queue.cancel(tag)
            await ch.close()
        return got


def make_client(name: str, server) -> PeerClient:  # type: ignore[no-untyped-def]
    if name == "rocketpy":
        return RocketpyClient(f"127.0.0.1:{server.port}")
    if name == "redis":
        return RedisClient(server.port)
    if name == "nats":
        return NatsClient(server.port)
    if name == "rabbitmq":
        return RabbitClient(server.port)
    raise ValueError(f"unknown system {name!r}; choose from rocketpy, redis, nats, rabbitmq")
