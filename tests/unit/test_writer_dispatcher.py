"""Writer and dispatcher loop turns in one process: real rings, control block, queue table and
store files; a test plays the worker (puts into the ring, reads responses)."""

from __future__ import annotations

import mmap
import os

import pytest

from rocketpy.broker.dispatcher import Dispatcher
from rocketpy.broker.putwire import FLAG_WAIT, PutResponse, PutStatus, encode_put_request_parts
from rocketpy.broker.writer import Writer, split_records
from rocketpy.config import FlushDiskType, StoreConfig
from rocketpy.errors import ProtocolError
from rocketpy.ipc.control_block import (
    FLAG_DISK_FULL,
    BrokerState,
    ControlBlock,
    Role,
    control_block_size,
)
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import QueueTable, init_queue_table, queue_table_size
from rocketpy.ipc.ring import RingConsumer, RingProducer, init_ring, ring_segment_size
from rocketpy.protocol.message import MessageRecord, decode_record, encode_record, format_properties
from rocketpy.store.file_store import FileStore, StoreReader


def shared(size: int) -> mmap.mmap:
    return mmap.mmap(-1, size, flags=mmap.MAP_SHARED)


def ring(capacity: int = 1 << 16) -> mmap.mmap:
    buf = shared(ring_segment_size(capacity))
    init_ring(buf, capacity)
    return buf


def record(topic: str, queue_id: int, body: bytes, tags: str = "") -> bytes:
    props = format_properties({"TAGS": tags}) if tags else ""
    return bytes(encode_record(MessageRecord(topic=topic, body=body, queue_id=queue_id, properties=props,
                                             born_host="127.0.0.1", born_port=5000, store_port=10911)))


class Rig:
    def __init__(self, tmp_path, flush: FlushDiskType, **store) -> None:
        self.config = StoreConfig(store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=8192,
                                  mapped_file_size_consumequeue=20 * 8, flush_disk_type=flush, **store)
        self.store = FileStore.open(self.config)
        self.control_buf = shared(control_block_size(4))
        self.sup = ControlBlock(self.control_buf, Role.SUPERVISOR, initialize=True, slot_count=4)
        self.sup.set_supervisor(generation=1, state=BrokerState.RUNNING, writer_pid=0, boot_time_ms=0)
        cl = self.store.commitlog
        self.sup.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                                flushed_store_ts=0, writer_generation=1)
        self.qt_buf = shared(queue_table_size(64))
        init_queue_table(self.qt_buf, 64)
        self.put_buf, self.resp_buf = ring(), ring()
        self.writer_bell, self.dispatcher_bell = Doorbell(), Doorbell()
        self.worker_bell, self.pull_bell = Doorbell(), Doorbell()
        self.writer = Writer(0, self.config, cl, self.control_buf, [self.put_buf], [self.resp_buf],
                             self.writer_bell, [self.worker_bell], self.dispatcher_bell, generation=1)
        self.writer.setup()
        self.dispatcher = Dispatcher(1, self.config, self.control_buf, self.qt_buf, self.dispatcher_bell,
                                     [self.pull_bell])
        self.dispatcher.setup()
        self.producer = RingProducer(self.put_buf)
        self.responses = RingConsumer(self.resp_buf)
        self.next_id = 1

    def put(self, topic: str, queue_id: int, records: list[bytes], *, generation: int = 1,
            flags: int = FLAG_WAIT) -> int:
        rid = self.next_id
        self.next_id += 1
        head = encode_put_request_parts(rid, generation, flags, len(records), queue_id, 0, topic.encode(),
                                        sum(map(len, records)))
        assert self.producer.put_parts([head, *records])
        return rid

    @staticmethod
    def config_now_ms() -> int:
        import time

        return int(time.time() * 1000)

    def answers(self) -> dict[int, PutResponse]:
        return {r.request_id: r for r in map(PutResponse.decode, self.responses.drain())}

    def close(self) -> None:
        self.dispatcher.cqs.close()
        self.dispatcher.commitlog.close()
        self.store.close()


@pytest.fixture(params=[FlushDiskType.SYNC_FLUSH, FlushDiskType.ASYNC_FLUSH])
def rig(tmp_path, request):
    r = Rig(tmp_path, request.param)
    yield r
    r.close()


def test_puts_are_appended_answered_dispatched_and_published(rig):
    a = rig.put("TopicA", 0, [record("TopicA", 0, b"one", "TagA")])
    b = rig.put("TopicA", 0, [record("TopicA", 0, b"two"), record("TopicA", 0, b"three")])
    c = rig.put("TopicB", 1, [record("TopicB", 1, b"x" * 100)])
    assert rig.writer.turn()
    assert rig.worker_bell.clear() > 0 and rig.dispatcher_bell.clear() > 0
    got = rig.answers()
    assert [got[i].status for i in (a, b, c)] == [PutStatus.PUT_OK] * 3
    assert (got[a].first_queue_offset, got[b].first_queue_offset, got[b].record_count) == (0, 1, 2)
    assert got[c].first_queue_offset == 0
    assert got[b].first_phys_offset == got[a].end_phys_offset
    committed = rig.sup.committed_offset
    assert committed == got[c].end_phys_offset
    if rig.writer.sync_flush:
        assert rig.sup.flushed_offset == committed   # group commit: one fdatasync for the batch
    assert rig.dispatcher.turn()
    assert rig.pull_bell.clear() > 0
    assert rig.sup.dispatched_offset == committed
    table = QueueTable(rig.qt_buf)
    assert table.max_offset("TopicA", 0) == 3 and table.max_offset("TopicB", 1) == 1
    reader = StoreReader(rig.config)
    res = reader.get_message("TopicA", 0, 0, 32, None, committed_offset=committed, max_queue_offset=3)
    bodies = [decode_record(r).body for r in res.records]
    assert bodies == [b"one", b"two", b"three"]
    assert decode_record(res.records[1]).phys_offset == got[b].first_phys_offset
    reader.close()


def test_records_roll_into_the_next_file(rig):
    ids = [rig.put("T", 0, [record("T", 0, bytes(900))]) for _ in range(20)]
    while rig.writer.turn():
        pass
    got = rig.answers()
    assert all(got[i].status is PutStatus.PUT_OK for i in ids)
    assert [got[i].first_queue_offset for i in ids] == list(range(20))
    assert len(rig.store.commitlog.mfq.files) >= 2
    rig.dispatcher.turn()
    assert QueueTable(rig.qt_buf).max_offset("T", 0) == 20


def test_stale_generation_illegal_and_disk_full_are_refused(rig):
    stale = rig.put("T", 0, [record("T", 0, b"a")], generation=0)
    too_big = rig.put("T", 0, [record("T", 0, bytes(9000))])      # larger than a CommitLog file
    rig.writer.turn()
    got = rig.answers()
    assert got[stale].status is PutStatus.STALE_GENERATION
    assert got[too_big].status is PutStatus.MESSAGE_ILLEGAL
    rig.writer.usage_ratio = lambda: 0.95          # past diskSpaceWarningLevelRatio (0.90)
    rig.writer._next_disk_check_ms = 0
    rig.writer.housekeeping()
    assert rig.sup.disk_full and rig.sup.writer_fields()[5] & FLAG_DISK_FULL
    full = rig.put("T", 0, [record("T", 0, b"a")])
    rig.writer.turn()
    assert rig.answers()[full].status is PutStatus.SERVICE_NOT_AVAILABLE
    assert rig.sup.committed_offset == 0      # nothing refused was written
    rig.writer.usage_ratio = lambda: 0.80          # back below the clean ratio (0.85)
    rig.writer._next_disk_check_ms = 0
    rig.writer.housekeeping()
    assert not rig.sup.disk_full
    ok = rig.put("T", 0, [record("T", 0, b"a")])
    rig.writer.turn()
    assert rig.answers()[ok].status is PutStatus.PUT_OK


def test_retention_deletes_expired_files_and_queues_follow(tmp_path):
    rig = Rig(tmp_path, FlushDiskType.ASYNC_FLUSH, file_reserved_time_hours=0,
              delete_when=";".join(f"{h:02d}" for h in range(24)), flush_interval_consumequeue_ms=0)
    try:
        for i in range(40):
            rig.put("T", 0, [record("T", 0, bytes(900) + b"%03d" % i)])
        while rig.writer.turn():
            pass
        rig.writer._flush()
        rig.dispatcher.turn()
        rig.dispatcher.turn()              # flushes the queues: retention may now pass them
        files_before = len(rig.writer.commitlog.mfq.files)
        assert files_before >= 4
        deleted = rig.writer.retention_pass(rig.config_now_ms())
        assert 0 < deleted < files_before, "expired files go, the newest stays"
        min_phys = rig.sup.min_phys_offset
        assert min_phys == rig.writer.commitlog.min_phys_offset > 0
        rig.dispatcher.turn()
        table = QueueTable(rig.qt_buf)
        max_offset, min_offset, _ = table.get("T", 0)
        assert max_offset == 40 and 0 < min_offset < 40
        reader = StoreReader(rig.config)
        res = reader.get_message("T", 0, 0, 32, None, committed_offset=rig.sup.committed_offset,
                                 max_queue_offset=40)
        assert res.status.name == "OFFSET_TOO_SMALL" and res.next_begin_offset == min_offset
        res = reader.get_message("T", 0, min_offset, 32, None, committed_offset=rig.sup.committed_offset,
                                 max_queue_offset=40)
        assert decode_record(res.records[0]).body.endswith(b"%03d" % min_offset)
        reader.close()
    finally:
        rig.close()


def test_a_full_response_ring_keeps_answers_until_there_is_room(tmp_path):
    rig = Rig(tmp_path, FlushDiskType.ASYNC_FLUSH)
    try:
        small = ring(256)          # holds 4 responses of 48 + 8 bytes
        rig.writer._response_ring_bufs = [small]
        rig.writer.setup()
        rig.responses = RingConsumer(small)
        ids = [rig.put("T", 0, [record("T", 0, b"m")]) for _ in range(10)]
        rig.writer.turn()
        first = rig.answers()
        assert 0 < len(first) < 10
        for _ in range(5):
            rig.writer.turn()
            first.update(rig.answers())
        assert sorted(first) == ids
    finally:
        rig.close()


@pytest.mark.parametrize("damage", ["torn", "lost"])
def test_a_respawned_dispatcher_rebuilds_a_damaged_queue_tail(tmp_path, damage):
    """kill -9 of the dispatcher in its last batch: B's entries were written, then A's entry was
    torn mid-write ("torn"), or never written and the batch never published ("lost")."""
    rig = Rig(tmp_path, FlushDiskType.ASYNC_FLUSH)
    try:
        rig.put("B", 1, [record("B", 1, b"b" * 100)])       # B's queue first: committed first
        rig.put("A", 0, [record("A", 0, b"a" * 1000, "TagA") for _ in range(2)])
        while rig.writer.turn():
            pass
        assert rig.dispatcher.turn()
        before = rig.sup.dispatched_offset
        rig.put("A", 0, [record("A", 0, b"x" * 1000, "TagA")])
        rig.put("B", 1, [record("B", 1, b"b" * 100) for _ in range(3)])
        while rig.writer.turn():
            pass
        assert rig.dispatcher.turn()
        committed = rig.sup.committed_offset
        assert rig.sup.dispatched_offset == committed > before
        cq_size = rig.config.mapped_file_size_consumequeue
        path = os.path.join(rig.config.store_path_root_dir, "consumequeue", "A", "0",
                            f"{2 * 20 // cq_size * cq_size:020d}")
        with open(path, "r+b") as f:
            f.seek(2 * 20 % cq_size)
            good = f.read(20)
            f.seek(2 * 20 % cq_size)
            f.write(good[:11] + bytes(9) if damage == "torn" else bytes(20))
        if damage == "lost":
            rig.sup.publish_dispatched(before, before)
        rig.dispatcher.cqs.close()
        rig.dispatcher.commitlog.close()
        rig.dispatcher = Dispatcher(1, rig.config, rig.control_buf, rig.qt_buf, rig.dispatcher_bell,
                                    [rig.pull_bell])
        rig.dispatcher.setup()
        assert rig.dispatcher.dispatched < committed
        assert rig.dispatcher.turn()
        assert rig.sup.dispatched_offset == committed
        table = QueueTable(rig.qt_buf)
        assert table.max_offset("A", 0) == 3 and table.max_offset("B", 1) == 4
        with open(path, "rb") as f:
            f.seek(2 * 20 % cq_size)
            assert f.read(20) == good
        reader = StoreReader(rig.config)
        res = reader.get_message("A", 0, 0, 32, None, committed_offset=committed, max_queue_offset=3)
        assert [decode_record(r).body for r in res.records] == [b"a" * 1000] * 2 + [b"x" * 1000]
        res = reader.get_message("B", 1, 0, 32, None, committed_offset=committed, max_queue_offset=4)
        assert len(res.records) == 4
        reader.close()
    finally:
        rig.close()


def test_split_records_validates_lengths():
    one = record("T", 0, b"abc")
    assert [bytes(p) for p in split_records(memoryview(one + one), 2)] == [one, one]
    for bad, count in ((one[:-1], 1), (one + b"\x00", 1), (one, 2), (b"\xff\xff\xff\xff", 1)):
        with pytest.raises(ProtocolError):
            split_records(memoryview(bad), count)


def test_the_next_file_is_warmed_in_the_background_while_puts_go_on(tmp_path):
    rig = Rig(tmp_path, FlushDiskType.ASYNC_FLUSH)
    try:
        assert rig.writer.commitlog.needs_next_file
        rig.writer._maybe_warm()
        ids = [rig.put("T", 0, [record("T", 0, bytes(500))]) for _ in range(30)]   # rolls twice
        while rig.writer.turn():
            rig.writer._maybe_warm()
        if rig.writer._warm_thread is not None:
            rig.writer._warm_thread.join(10)
        got = rig.answers()
        assert [got[i].first_queue_offset for i in ids] == list(range(30))
        starts = [mf.file_start for mf in rig.writer.commitlog.mfq.files]
        assert starts == [i * 8192 for i in range(len(starts))] and len(starts) >= 3
        assert not list((tmp_path / "store" / "commitlog").glob("*.tmp")), "a finished warm-up leaves no .tmp"
    finally:
        rig.close()
