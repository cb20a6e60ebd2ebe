"""A worker in one process for the worker tests: anonymous shared maps for the control block, the
queue table and both rings; doorbells; a fake writer driven by the writer doorbell; client
connections on fake transports. No fork, no supervisor, no sockets (unless a test adds them)."""

from __future__ import annotations

import asyncio
import mmap
import time
from typing import Any

from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.putwire import PutResponse, PutStatus, decode_put_request
from rocketpy.broker.worker import WorkerServer
from rocketpy.broker.writer import split_records
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.control_block import BrokerState, ControlBlock, Role, control_block_size
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import (
    QueueTable,
    QueueTableWriter,
    init_queue_table,
    queue_table_size,
)
from rocketpy.ipc.ring import RingConsumer, RingProducer, init_ring, ring_segment_size
from rocketpy.protocol.bodies import TopicConfig
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

WORKER_SLOT = 3
CLIENT_PEER = ("10.1.2.3", 5555)


def shared(size: int) -> mmap.mmap:
    return mmap.mmap(-1, size, flags=mmap.MAP_SHARED)


def ring(capacity: int = 1 << 16) -> mmap.mmap:
    buf = shared(ring_segment_size(capacity))
    init_ring(buf, capacity)
    return buf


class FakeTransport(asyncio.Transport):
    def __init__(self, protocol: asyncio.Protocol | None = None, peer: Any = CLIENT_PEER) -> None:
        super().__init__()
        self.protocol = protocol
        self.peer = peer
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True
        self._decoder = FrameDecoder()
        self._frames: list[RemotingCommand] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self._frames += self._decoder.feed(bytes(data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def frames(self) -> list[RemotingCommand]:
        out, self._frames = self._frames, []
        return out


class Client:
    """A client connection of the worker, on a fake transport."""

    def __init__(self, host: Any, conn_id: int = 1, peer: Any = CLIENT_PEER) -> None:
        self.conn = ClientConnection(host, conn_id)
        self.transport = FakeTransport(self.conn, peer)
        self.conn.connection_made(self.transport)
        self.opaque = 1000
        self.received: list[RemotingCommand] = []
        self.pushed: list[RemotingCommand] = []      # requests the broker sent to this client

    def _collect(self) -> None:
        for frame in self.transport.frames():
            (self.received if frame.is_response else self.pushed).append(frame)

    def request(self, code: int, ext: dict[str, Any] | None = None, body: bytes = b"", *, flag: int = 0,
                **fields: Any) -> RemotingCommand:
        self.opaque += 1
        cmd = RemotingCommand(code=int(code), opaque=self.opaque, flag=flag, ext_fields=dict(ext or {}),
                              body=body, **fields)
        return cmd

    def send(self, *cmds: RemotingCommand) -> None:
        self.conn.data_received(b"".join(encode_frame(c) for c in cmds))

    async def responses(self, count: int = 1, timeout_s: float = 2.0) -> list[RemotingCommand]:
        deadline = time.monotonic() + timeout_s
        while True:
            self._collect()
            if len(self.received) >= count:
                out, self.received = self.received[:count], self.received[count:]
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} responses, got {len(self.received)}")
            await asyncio.sleep(0.002)

    async def call(self, cmd: RemotingCommand, timeout_s: float = 2.0) -> RemotingCommand:
        self.send(cmd)
        (response,) = await self.responses(1, timeout_s)
        assert response.opaque == cmd.opaque
        return response

    async def nothing(self, wait_s: float = 0.05) -> None:
        await asyncio.sleep(wait_s)
        self._collect()
        assert not self.received, f"unexpected responses {self.received}"


class FakeWriter:
    """Plays the writer: drains the put ring when its doorbell rings, appends nowhere, answers."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.puts = RingConsumer(rig.put_buf)
        self.responses = RingProducer(rig.resp_buf)
        self.seen: list[tuple[Any, list[bytes]]] = []
        self.phys = 0
        self.queue_offsets: dict[tuple[str, int], int] = {}
        self.status: PutStatus = PutStatus.PUT_OK
        self.auto_flush = True
        self.paused = False
        self.turns = 0

    def on_bell(self) -> None:
        self.rig.writer_bell.clear()
        if not self.paused:
            self.turn()

    def turn(self) -> int:
        self.turns += 1
        out: list[bytes] = []
        msgs = self.puts.peek()
        for msg in msgs:
            req = decode_put_request(msg)
            records = [bytes(r) for r in split_records(req.records, req.record_count)]
            self.seen.append((req, records))
            if self.status is not PutStatus.PUT_OK:
                out.append(PutResponse(req.request_id, self.status).encode())
                continue
            key = (req.topic, req.queue_id)
            first_q = self.queue_offsets.get(key, 0)
            self.queue_offsets[key] = first_q + len(records)
            first_phys = self.phys
            self.phys += sum(map(len, records))
            out.append(PutResponse(req.request_id, PutStatus.PUT_OK, len(records), first_phys, first_q,
                                   int(time.time() * 1000), self.phys).encode())
        self.puts.release()
        self.publish(flushed=self.phys if self.auto_flush else None)
        if out:
            assert self.responses.put_many(out) == len(out)
            self.rig.response_bell.ring()
        return len(msgs)

    def publish(self, flushed: int | None = None, generation: int | None = None) -> None:
        sup = self.rig.sup
        old = sup.writer_fields()
        sup.publish_writer(committed_offset=max(self.phys, old[0]),
                           flushed_offset=old[1] if flushed is None else flushed, flushed_store_ts=0,
                           writer_generation=old[3] if generation is None else generation)

    def flush(self) -> None:
        self.publish(flushed=self.phys)
        self.rig.response_bell.ring()


class Rig:
    """WorkerServer + fake writer, with optional store files (store_reader) for pulls."""

    def __init__(self, store_config: StoreConfig | None = None, broker_config: BrokerConfig | None = None, *,
                 put_ring_capacity: int = 1 << 16, store_reader: Any = None,
                 topics: dict[str, TopicConfig] | None = None) -> None:
        self.broker_config = broker_config or BrokerConfig(broker_ip1="192.168.7.7", listen_port=10911)
        self.store_config = store_config or StoreConfig(store_path_root_dir="/nonexistent")
        self.control_buf = shared(control_block_size(WORKER_SLOT + 1))
        self.sup = ControlBlock(self.control_buf, Role.SUPERVISOR, initialize=True, slot_count=WORKER_SLOT + 1)
        self.sup.set_supervisor(generation=1, state=BrokerState.RUNNING, writer_pid=0, boot_time_ms=0)
        self.sup.publish_writer(committed_offset=0, flushed_offset=0, flushed_store_ts=0, writer_generation=1)
        self.qt_buf = shared(queue_table_size(64))
        init_queue_table(self.qt_buf, 64)
        self.queue_table_writer = QueueTableWriter(self.qt_buf)
        self.put_buf, self.resp_buf = ring(put_ring_capacity), ring()
        self.writer_bell, self.response_bell, self.pull_bell = Doorbell(), Doorbell(), Doorbell()
        self.ctx = WorkerContext(self.broker_config, self.store_config, slot=WORKER_SLOT,
                                 control_block=ControlBlock(self.control_buf, Role.WORKER, slot=WORKER_SLOT),
                                 queue_table=QueueTable(self.qt_buf), store_reader=store_reader)
        self.ctx.set_topics(topics if topics is not None else {
            "TopicA": TopicConfig("TopicA", 4, 4, 6), "TBW102": TopicConfig("TBW102", 8, 8, 7)})
        self.server = WorkerServer(self.ctx, RingProducer(self.put_buf), RingConsumer(self.resp_buf),
                                   self.writer_bell, self.response_bell, self.pull_bell)
        self.writer = FakeWriter(self)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, *, fake_writer: bool = True) -> None:
        await self.server.start(None)
        self._loop = asyncio.get_running_loop()
        if fake_writer:
            self._loop.add_reader(self.writer_bell.fd, self.writer.on_bell)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.writer_bell.fd)
        await self.server.close()

    def client(self, conn_id: int = 1, peer: Any = CLIENT_PEER) -> Client:
        return Client(self.server, conn_id, peer)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
