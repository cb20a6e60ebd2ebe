"""Shared-memory primitives, in one process and across real forked processes."""

from __future__ import annotations

import mmap
import os
import random
import struct
import time

import pytest

from rocketpy.ipc import shm
from rocketpy.ipc.control_block import BrokerState, ControlBlock, Role, control_block_size
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import (
    QueueTable,
    QueueTableFull,
    QueueTableWriter,
    init_queue_table,
    queue_table_size,
)
from rocketpy.ipc.ring import (
    RingConsumer,
    RingMessageTooLarge,
    RingProducer,
    init_ring,
    ring_segment_size,
)
from rocketpy.ipc.seqlock import SeqlockRecord, SeqlockTornError


def anon(size: int) -> mmap.mmap:
    """A MAP_SHARED anonymous map: shared with children forked after it."""
    return mmap.mmap(-1, size, flags=mmap.MAP_SHARED)


def run_child(fn) -> int:
    """Fork, run fn in the child, exit with its return code; returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn() or 0
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("child did not finish in time")


# --- seqlock -------------------------------------------------------------------


def test_seqlock_round_trip_and_torn_detection(monkeypatch):
    monkeypatch.setattr("rocketpy.limits.SEQLOCK_READ_TIMEOUT_MS", 50)
    buf = anon(4096)
    rec = SeqlockRecord(buf, 64, "qq")
    assert rec.read() == (0, 0)
    rec.write(5, -7)
    assert rec.read() == (5, -7)
    struct.pack_into("<Q", buf, 64, 3)  # a writer that died mid-update
    with pytest.raises(SeqlockTornError):
        rec.read()
    rec.reset()
    assert rec.read() == (5, -7)
    rec.write(6, 6)  # a successor continues the sequence from the next even value
    assert struct.unpack_from("<Q", buf, 64)[0] % 2 == 0
    assert rec.read() == (6, 6)


def test_seqlock_readers_never_see_a_torn_record_across_processes():
    buf = anon(4096)
    rec = SeqlockRecord(buf, 0, "qqqq")
    iterations = 200_000

    def writer():
        for i in range(1, iterations + 1):
            rec.write(i, i, -i, i * 3)
        return 0

    pid = run_child(writer)
    seen = 0
    last = 0
    while True:
        a, b, c, d = rec.read()
        assert b == a and c == -a and d == 3 * a, f"torn read {a, b, c, d}"
        assert a >= last, "published values went backwards"
        last = a
        seen += 1
        if a == iterations:
            break
    assert wait_child(pid) == 0
    assert seen > 1


# --- control block ---------------------------------------------------------------


def test_control_block_roles_are_enforced():
    buf = anon(control_block_size(4))
    sup = ControlBlock(buf, Role.SUPERVISOR, initialize=True, slot_count=4)
    sup.set_supervisor(generation=1, state=BrokerState.RUNNING, writer_pid=10, boot_time_ms=5)
    writer = ControlBlock(buf, Role.WRITER, slot=0)
    writer.publish_writer(committed_offset=100, flushed_offset=50, flushed_store_ts=7, writer_generation=1)
    assert sup.committed_offset == 100 and sup.flushed_offset == 50
    with pytest.raises(AssertionError):
        writer.publish_writer(committed_offset=90, flushed_offset=50, flushed_store_ts=7, writer_generation=1)
    with pytest.raises(AssertionError):
        writer.publish_dispatched(10, 0)
    with pytest.raises(AssertionError):
        ControlBlock(buf, Role.WORKER, slot=2).publish_writer(
            committed_offset=1, flushed_offset=0, flushed_store_ts=0, writer_generation=0)
    dispatcher = ControlBlock(buf, Role.DISPATCHER, slot=1)
    dispatcher.publish_dispatched(80, 3)
    assert sup.dispatched_offset == 80
    assert sup.state is BrokerState.RUNNING and sup.generation == 1
    writer.beat(os.getpid(), 1234, busy_since_ms=1200)
    assert sup.heartbeat(0) == (os.getpid(), 1234, 1200)
    with pytest.raises(AssertionError):
        ControlBlock(buf, Role.WORKER, slot=9)


def test_control_block_heartbeat_from_child():
    buf = anon(control_block_size(2))
    sup = ControlBlock(buf, Role.SUPERVISOR, initialize=True, slot_count=2)

    def child():
        ControlBlock(buf, Role.WORKER, slot=1).beat(os.getpid(), 777)
        return 0

    pid = run_child(child)
    assert wait_child(pid) == 0
    assert sup.heartbeat(1) == (pid, 777, 0)


# --- ring ------------------------------------------------------------------------


def make_ring(capacity: int) -> mmap.mmap:
    buf = anon(ring_segment_size(capacity))
    init_ring(buf, capacity)
    return buf


def test_ring_put_peek_release_and_full():
    buf = make_ring(256)
    prod, cons = RingProducer(buf), RingConsumer(buf)
    assert prod.put(b"hello")
    assert prod.put_parts([b"ab", b"", b"cd"])
    msgs = cons.peek()
    assert [bytes(m) for m in msgs] == [b"hello", b"abcd"]
    assert cons.peek() == []  # already returned, not yet released
    cons.release()
    # fill it: 256 bytes hold 8 messages of 24+8 bytes
    written = prod.put_many([bytes([i]) * 24 for i in range(20)])
    assert 0 < written < 20
    assert not prod.put(b"x" * 24)
    got = cons.drain()
    assert got == [bytes([i]) * 24 for i in range(written)]
    assert prod.put(b"x" * 24)  # space came back
    with pytest.raises(RingMessageTooLarge):
        prod.put(b"y" * 200)


def test_ring_wraps_without_splitting_messages():
    buf = make_ring(128)
    prod, cons = RingProducer(buf), RingConsumer(buf)
    rng = random.Random(7)
    sent: list[bytes] = []
    received: list[bytes] = []
    for i in range(500):
        payload = bytes([i % 256]) * rng.randint(0, 50)
        if prod.put(payload):
            sent.append(payload)
        else:
            received.extend(cons.drain())
            assert prod.put(payload)
            sent.append(payload)
    received.extend(cons.drain())
    assert received == sent


def test_ring_across_processes_in_order():
    buf = make_ring(1 << 12)
    count = 20_000
    seed = 11

    def producer():
        prod = RingProducer(buf)
        sizes = random.Random(seed).choices(range(301), k=count)
        i = 0
        while i < count:
            if prod.put(struct.pack("<I", i) + bytes([i % 251]) * sizes[i]):
                i += 1
            else:
                time.sleep(0)  # full: the consumer frees space
        return 0

    pid = run_child(producer)
    cons = RingConsumer(buf)
    expected = 0
    deadline = time.monotonic() + 60
    while expected < count and time.monotonic() < deadline:
        for msg in cons.peek():
            n = struct.unpack_from("<I", msg)[0]
            assert n == expected, f"message {n} arrived where {expected} was due"
            assert all(b == n % 251 for b in msg[4:])
            expected += 1
        cons.release()
    assert wait_child(pid) == 0
    assert expected == count


# --- doorbell --------------------------------------------------------------------


def test_doorbell_collapses_and_times_out():
    bell = Doorbell()
    try:
        assert not bell.wait(0.0)
        bell.ring()
        bell.ring()
        bell.ring()
        assert bell.wait(1.0)
        assert not bell.wait(0.01)  # three rings made one wakeup
    finally:
        bell.close()


def test_doorbell_wakes_another_process():
    bell = Doorbell()

    def child():
        bell.ring()
        return 0

    t0 = time.monotonic()
    pid = run_child(child)
    assert bell.wait(10.0)
    assert time.monotonic() - t0 < 10.0
    assert wait_child(pid) == 0
    bell.close()


# --- queue table -------------------------------------------------------------------


def test_queue_table_publish_and_read_elsewhere():
    buf = anon(queue_table_size(64))
    init_queue_table(buf, 64)
    writer = QueueTableWriter(buf)
    for q in range(40):
        writer.publish("TopicA", q, q * 10, q, 1000 + q)
    writer.publish("TopicA", 3, 99, 1, 5)

    def child():
        table = QueueTable(buf)
        ok = table.get("TopicA", 3) == (99, 1, 5) and table.max_offset("TopicA", 39) == 390
        ok = ok and table.get("TopicB", 0) is None and table.max_offset("nope", 1) == 0
        return 0 if ok else 3

    pid = run_child(child)
    assert wait_child(pid) == 0
    for q in range(64 - 40):
        writer.publish("TopicB", q, 1, 0, 0)
    with pytest.raises(QueueTableFull):
        writer.publish("TopicC", 0, 1, 0, 0)


# --- named segments ----------------------------------------------------------------


def test_named_segments_create_open_sweep():
    name = shm.segment_name("broker-a/test", "deadbeef", "control")
    assert name.startswith("/rocketpy.broker-a_test.deadbeef.")
    shm.unlink_segment(name)
    seg = shm.create_segment(name, 4096)
    try:
        seg[0:4] = b"abcd"
        with pytest.raises(shm.IpcError):
            shm.create_segment(name, 4096)
        other = shm.open_segment(name)
        assert other[0:4] == b"abcd"
        other.close()
        stale = shm.segment_name("broker-a/test", "0badf00d", "ring_0")
        shm.create_segment(stale, 4096).close()
        removed = shm.sweep_stale_segments("broker-a/test", keep_boot_id="deadbeef")
        assert removed == [stale]
        assert shm.open_segment(name)[0:4] == b"abcd"
    finally:
        seg.close()
        shm.unlink_segment(name)
    assert shm.sweep_stale_segments("broker-a/test") == []
