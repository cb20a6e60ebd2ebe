"""Recovery: clean stop, crash with torn tail, bit flip mid-log, lost unsynced tail, CQ tails."""

from __future__ import annotations

import os
import struct

import pytest

from rocketpy.clock import FakeClock
from rocketpy.config import StoreConfig
from rocketpy.errors import StoreError
from rocketpy.protocol.message import (
    TRANSACTION_PREPARED,
    MessageRecord,
    decode_record,
    encode_record,
    format_properties,
)
from rocketpy.store.api import PutRequest
from rocketpy.store.file_store import FileStore
from rocketpy.store.io import FaultyFileIO
from rocketpy.store.verify import verify_store

CL_SIZE = 4096
CQ_SIZE = 10 * 20


def _req(topic: str = "T", qid: int = 0, body: bytes = b"m" * 80, sys_flag: int = 0) -> PutRequest:
    rec = MessageRecord(topic=topic, body=body, queue_id=qid, sys_flag=sys_flag,
                        properties=format_properties({"TAGS": "A"}))
    return PutRequest(topic, qid, sys_flag, encode_record(rec))


@pytest.fixture
def cfg(tmp_path) -> StoreConfig:
    return StoreConfig(max_hash_slot_num=64, max_index_num=256, store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=CL_SIZE,
                       mapped_file_size_consumequeue=CQ_SIZE)


def _open(cfg: StoreConfig, io: FaultyFileIO) -> FileStore:
    return FileStore.open(cfg, io, FakeClock())


def _fill(store: FileStore, n: int, qids: int = 2) -> list:
    return [store.append([_req("T", i % qids)])[0] for i in range(n)]


def _assert_verifies(cfg: StoreConfig) -> None:
    result = verify_store(cfg.store_path_root_dir)
    assert result.ok, [str(p) for p in result.problems]


def test_clean_stop_recovers_everything(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    assert not store.recovery_report.abnormal
    results = _fill(store, 50)
    store.append([_req(sys_flag=TRANSACTION_PREPARED)])
    end = store.committed_offset
    store.close()
    assert not os.path.exists(os.path.join(cfg.store_path_root_dir, "abort"))
    _assert_verifies(cfg)
    store = _open(cfg, io)
    rep = store.recovery_report
    assert not rep.abnormal and rep.commitlog_end == end and rep.truncated_bytes == 0
    assert rep.reasons == () and rep.deleted_files == ()
    assert store.committed_offset == store.flushed_offset == store.dispatched_offset == end
    assert store.max_queue_offset("T", 0) == 25 and store.max_queue_offset("T", 1) == 25
    for r in results:
        assert decode_record(store.read_record(r.phys_offset)).queue_offset == r.queue_offset
    nxt = store.append([_req("T", 1)])[0]
    assert nxt.queue_offset == 25 and nxt.phys_offset == end, "queue offsets continue"
    assert nxt.store_timestamp >= results[-1].store_timestamp
    store.close()


def test_second_store_on_same_root_is_refused(cfg):
    store = _open(cfg, FaultyFileIO())
    with pytest.raises(StoreError, match="another broker is using"):
        _open(cfg, FaultyFileIO())
    store.close()


def test_crash_with_torn_tail(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 10)
    store.flush()
    flushed = store.flushed_offset
    torn = store.append([_req("T", 0)])[0]
    store.dispatch()
    store.flush_consumequeues()
    store.abandon()
    cl_file = os.path.join(cfg.store_path_root_dir, "commitlog", f"{0:020d}")
    io.crash(lose_unsynced=False, torn_keep_bytes=50, torn_path=cl_file)
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.abnormal
    assert rep.commitlog_end == flushed == torn.phys_offset
    assert 40 < rep.truncated_bytes <= 50          # up to the last non-zero byte of the torn part
    assert any("torn" in r for r in rep.reasons), rep.reasons
    assert rep.consumequeue_entries_truncated == 1
    assert store.read_record(torn.phys_offset) is None
    assert store.max_queue_offset("T", 0) == 5
    assert store.append([_req("T", 0)])[0].queue_offset == 5
    store.close()
    _assert_verifies(cfg)


def test_bit_flip_mid_log_truncates_there_and_says_so(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    results = _fill(store, 30)
    store.close()
    victim = results[12]
    path = os.path.join(cfg.store_path_root_dir, "commitlog", f"{victim.phys_offset // CL_SIZE * CL_SIZE:020d}")
    io.flip_bit(path, victim.phys_offset % CL_SIZE + 100, 2)       # inside the body
    store = _open(cfg, io)
    rep = store.recovery_report
    assert not rep.abnormal
    assert rep.commitlog_end == victim.phys_offset
    assert any("corrupt record in the middle" in r for r in rep.reasons), rep.reasons
    assert rep.truncated_bytes >= sum(r.size for r in results[12:])
    assert rep.consumequeue_entries_truncated == 18
    assert store.read_record(results[11].phys_offset) is not None
    assert store.read_record(victim.phys_offset) is None
    assert store.max_queue_offset("T", 0) == 6 and store.max_queue_offset("T", 1) == 6
    store.close()
    _assert_verifies(cfg)


def test_crc_check_can_be_disabled(cfg, tmp_path):
    io = FaultyFileIO()
    store = _open(cfg, io)
    results = _fill(store, 5)
    store.close()
    path = os.path.join(cfg.store_path_root_dir, "commitlog", f"{0:020d}")
    io.flip_bit(path, results[2].phys_offset + 100, 0)
    lax = StoreConfig(max_hash_slot_num=64, max_index_num=256, store_path_root_dir=cfg.store_path_root_dir, mapped_file_size_commitlog=CL_SIZE,
                      mapped_file_size_consumequeue=CQ_SIZE, check_crc_on_recover=False)
    store = _open(lax, io)
    assert store.recovery_report.commitlog_end == results[-1].phys_offset + results[-1].size
    store.close()


def test_lost_unsynced_tail(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    kept = _fill(store, 20)
    store.flush()
    flushed = store.flushed_offset
    _fill(store, 30)                      # rolls into new files, never synced
    store.dispatch()
    store.flush_consumequeues()           # CQ entries durable, their records not
    store.abandon()
    io.crash(lose_unsynced=True)
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.abnormal and rep.commitlog_end == flushed
    assert rep.consumequeue_entries_truncated == 30
    for r in kept:
        rec = decode_record(store.read_record(r.phys_offset), check_crc=True)
        assert (rec.phys_offset, rec.queue_offset) == (r.phys_offset, r.queue_offset)
    assert store.max_queue_offset("T", 0) == 10
    store.close()
    _assert_verifies(cfg)


def test_missing_consumequeue_tail_is_rebuilt_normal(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 8, qids=1)
    store.close()
    cq_file = os.path.join(cfg.store_path_root_dir, "consumequeue", "T", "0", f"{0:020d}")
    with open(cq_file, "r+b") as f:
        f.seek(5 * 20)
        f.write(bytes(3 * 20))
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.consumequeue_entries_rebuilt == 3
    assert store.max_queue_offset("T", 0) == 8
    assert store.get_message("T", 0, 5, 32).message_count == 3
    store.close()
    _assert_verifies(cfg)


def test_lost_consumequeues_are_rebuilt_after_crash(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 40, qids=3)
    store.flush()
    store.dispatch()                      # CQ written but never synced
    store.abandon()
    io.crash(lose_unsynced=True)
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.abnormal and rep.truncated_bytes == 0
    assert rep.consumequeue_entries_rebuilt == 40
    assert [store.max_queue_offset("T", q) for q in range(3)] == [14, 13, 13]
    store.close()
    _assert_verifies(cfg)


def test_consumequeue_entries_past_the_end_are_truncated(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 4, qids=1)
    end = store.committed_offset
    store.close()
    cq_file = os.path.join(cfg.store_path_root_dir, "consumequeue", "T", "0", f"{0:020d}")
    with open(cq_file, "r+b") as f:
        f.seek(4 * 20)
        f.write(struct.pack(">qiq", end, 100, 0) + struct.pack(">qiq", end + 100, 100, 0))
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.consumequeue_entries_truncated == 2
    assert store.max_queue_offset("T", 0) == 4
    store.close()


def test_empty_commitlog_destroys_consumequeues(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 4)
    store.close()
    cl_dir = os.path.join(cfg.store_path_root_dir, "commitlog")
    for name in os.listdir(cl_dir):
        os.unlink(os.path.join(cl_dir, name))
    store = _open(cfg, io)
    assert store.queues() == {}
    assert any("empty" in r for r in store.recovery_report.reasons)
    assert store.append([_req()])[0].queue_offset == 0
    store.close()


def test_prepared_next_file_survives_recovery(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 3)
    assert store.prepare_next_file()
    store.close()
    store = _open(cfg, io)
    assert store.recovery_report.truncated_bytes == 0
    _fill(store, 60)
    store.close()
    _assert_verifies(cfg)


@pytest.mark.parametrize("missing", [1, 5])
def test_write_torn_inside_properties_is_detected(cfg, missing):
    """The body CRC does not cover the properties: a tear there must still be caught."""
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 3)
    store.flush()
    torn = store.append([_req("T", 0)])[0]
    store.abandon()
    cl_file = os.path.join(cfg.store_path_root_dir, "commitlog", f"{0:020d}")
    io.crash(lose_unsynced=False, torn_keep_bytes=torn.size - missing, torn_path=cl_file)
    store = _open(cfg, io)
    assert store.recovery_report.commitlog_end == torn.phys_offset
    assert any("torn" in r for r in store.recovery_report.reasons)
    store.close()


def test_wrong_file_size_refuses_to_start_and_releases_the_lock(cfg):
    from rocketpy.errors import CorruptStoreError

    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 3)
    store.close()
    path = os.path.join(cfg.store_path_root_dir, "commitlog", f"{0:020d}")
    with open(path, "r+b") as f:
        f.truncate(CL_SIZE - 1)
    with pytest.raises(CorruptStoreError, match=f"{0:020d}"):
        _open(cfg, io)
    with open(path, "r+b") as f:
        f.truncate(CL_SIZE)
    store = _open(cfg, io)                # the failed attempt released the lock
    assert store.max_queue_offset("T", 0) == 2
    store.close()


def test_retention_and_disk_full(cfg):
    import time

    from rocketpy.errors import DiskFullError

    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 100)
    store.dispatch()
    store.flush()
    files = len(store.commitlog.mfq.files)
    now = time.time_ns() // 1_000_000
    usage = [0.5]
    store.disk_usage_ratio = lambda: usage[0]          # type: ignore[method-assign]
    assert store.delete_expired_files(now, force=True) == 0, "files are younger than 72 h"
    usage[0] = 0.95                                     # above the warning level: writes refused
    deleted = store.delete_expired_files(now)
    assert deleted == min(10, files - 1), "above the forcible ratio, age does not matter"
    with pytest.raises(DiskFullError):
        store.append([_req()])
    usage[0] = 0.5
    store.delete_expired_files(now)
    store.append([_req()])
    assert store.min_queue_offset("T", 0) > 0
    store.close()
    _assert_verifies(cfg)


def test_abnormal_start_file_follows_the_checkpoint(cfg, tmp_path):
    from rocketpy.store.commitlog import CommitLog
    from rocketpy.store.consumequeue import ConsumeQueueSet
    from rocketpy.store.recovery import choose_abnormal_start, recover

    io = FaultyFileIO()
    clock = FakeClock()
    store = FileStore.open(cfg, io, clock)
    stamps = []
    for _ in range(100):
        stamps.append(store.append([_req("T", 0)])[0])
        clock.advance(1000)
    store.close()
    root = cfg.store_path_root_dir
    log = CommitLog(os.path.join(root, "commitlog"), CL_SIZE, io)
    log.load()
    assert len(log.mfq.files) >= 4
    third = log.mfq.files[2]
    first_ts = log.first_store_timestamp(third)
    assert choose_abnormal_start(log, first_ts) == 2
    assert choose_abnormal_start(log, first_ts - 1) == 1
    assert choose_abnormal_start(log, 0) == 0
    assert choose_abnormal_start(log, None) == 0
    log.close()
    # the consume queue lost its tail; abnormal recovery from file 2 rebuilds it
    cq_file = os.path.join(root, "consumequeue", "T", "0", f"{80 * 20 // CQ_SIZE * CQ_SIZE:020d}")
    with open(cq_file, "r+b") as f:
        f.seek((80 * 20) % CQ_SIZE)
        f.write(bytes(CQ_SIZE - (80 * 20) % CQ_SIZE))
    log = CommitLog(os.path.join(root, "commitlog"), CL_SIZE, io)
    cqs = ConsumeQueueSet(io, os.path.join(root, "consumequeue"), CQ_SIZE)
    report = recover(log, cqs, abnormal=True, checkpoint_min_ms=first_ts)
    assert report.abnormal and report.truncated_bytes == 0
    assert report.consumequeue_entries_rebuilt == 20
    assert log.queue_offsets[("T", 0)] == 100
    log.close()
    cqs.close()


def test_queue_whose_messages_were_all_lost_is_dropped(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    _fill(store, 4, qids=1)
    store.flush()
    store.append([_req("LOST", 3)])
    store.dispatch()
    store.flush_consumequeues()
    store.abandon()
    io.crash(lose_unsynced=True)
    store = _open(cfg, io)
    assert store.queues() == {"T": [0]}
    assert not os.path.exists(os.path.join(cfg.store_path_root_dir, "consumequeue", "LOST"))
    assert any("LOST-3" in r for r in store.recovery_report.reasons)
    store.close()


# --- torn ConsumeQueue tail entries (checked against the CommitLog record they point at) ---------

TAGS_A = 65                               # java_string_hash("A"): the tags code _req records carry
BIG = b"m" * 1000                         # TOTALSIZE > 255: a tear inside the size field changes it


def _cq_entry_pos(cfg: StoreConfig, topic: str, qid: int, offset: int) -> tuple[str, int]:
    pos = offset * 20
    return (os.path.join(cfg.store_path_root_dir, "consumequeue", topic, str(qid), f"{pos // CQ_SIZE * CQ_SIZE:020d}"),
            pos % CQ_SIZE)


def _cq_entry(cfg: StoreConfig, topic: str, qid: int, offset: int) -> tuple[int, int, int]:
    path, pos = _cq_entry_pos(cfg, topic, qid, offset)
    with open(path, "rb") as f:
        f.seek(pos)
        return struct.unpack(">qiq", f.read(20))


def _write_cq_entry(cfg: StoreConfig, topic: str, qid: int, offset: int, raw: bytes) -> None:
    path, pos = _cq_entry_pos(cfg, topic, qid, offset)
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(raw)


def _assert_found(store: FileStore, topic: str, qid: int, offset: int, phys: int) -> None:
    got = store.get_message(topic, qid, offset, 1)
    assert got.status.name == "FOUND", got.status
    rec = decode_record(got.records[0], check_crc=True)
    assert (rec.phys_offset, rec.queue_offset) == (phys, offset)


def test_torn_consumequeue_entry_with_wrong_size_is_rebuilt(cfg):
    io = FaultyFileIO()
    store = _open(cfg, io)
    for _ in range(3):
        store.append([_req("T", 0, BIG)])
    store.dispatch()
    last = store.append([_req("T", 0, BIG)])[0]
    store.flush()
    store.dispatch()                      # the last pwrite: one 20-byte entry, never synced
    store.abandon()
    path, _ = _cq_entry_pos(cfg, "T", 0, 3)
    io.crash(lose_unsynced=False, torn_keep_bytes=11, torn_path=path)
    torn = _cq_entry(cfg, "T", 0, 3)
    assert torn[0] == last.phys_offset and 0 < torn[1] != last.size and torn[2] == 0, torn
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.abnormal and rep.commitlog_end == last.phys_offset + last.size and rep.truncated_bytes == 0
    assert any("torn" in r for r in rep.reasons), rep.reasons
    assert rep.consumequeue_entries_truncated == 1
    assert store.max_queue_offset("T", 0) == 4
    assert _cq_entry(cfg, "T", 0, 3) == (last.phys_offset, last.size, TAGS_A)
    _assert_found(store, "T", 0, 3, last.phys_offset)
    store.close()
    _assert_verifies(cfg)


@pytest.mark.parametrize("wrong", ["other_queue", "inside_record", "earlier_record", "wrong_tags"])
def test_consumequeue_tail_entry_with_wrong_phys_or_tags_is_rebuilt(cfg, wrong):
    io = FaultyFileIO()
    store = _open(cfg, io)
    results = _fill(store, 8)             # T-0 and T-1 alternate; same sizes and tags
    store.close()
    last0 = results[6]                    # T-0 offset 3
    phys, tags = {"other_queue": (results[7].phys_offset, TAGS_A),   # a real record of the same size
                  "inside_record": (last0.phys_offset + 8, TAGS_A),
                  "earlier_record": (results[4].phys_offset, TAGS_A),
                  "wrong_tags": (last0.phys_offset, TAGS_A + 1)}[wrong]
    _write_cq_entry(cfg, "T", 0, 3, struct.pack(">qiq", phys, last0.size, tags))
    store = _open(cfg, io)                # a normal start: dispatch resumes where the queues end
    rep = store.recovery_report
    assert not rep.abnormal and rep.truncated_bytes == 0
    assert rep.consumequeue_entries_truncated == 1 and rep.consumequeue_entries_rebuilt == 1, rep
    assert _cq_entry(cfg, "T", 0, 3) == (last0.phys_offset, last0.size, TAGS_A)
    assert _cq_entry(cfg, "T", 1, 3) == (results[7].phys_offset, results[7].size, TAGS_A)
    _assert_found(store, "T", 0, 3, last0.phys_offset)
    assert store.max_queue_offset("T", 0) == 4 and store.max_queue_offset("T", 1) == 4
    store.close()
    _assert_verifies(cfg)


def test_torn_entry_behind_another_queue_is_rebuilt_at_its_offset(cfg):
    """Queue B is far ahead and the checkpoint lets abnormal recovery start files later than A's
    torn entry: dispatch must still go back to the end of A's last good entry."""
    from rocketpy.store.checkpoint import StoreCheckpoint
    from rocketpy.store.commitlog import CommitLog
    from rocketpy.store.recovery import choose_abnormal_start

    io = FaultyFileIO()
    clock = FakeClock()
    store = FileStore.open(cfg, io, clock)
    a = [store.append([_req("A", 0, BIG)])[0] for _ in range(3)]
    store.dispatch()
    for _ in range(60):
        clock.advance(1000)
        store.append([_req("B", 0, b"b" * 200)])
    store.flush()
    store.dispatch()
    store.flush_consumequeues()           # checkpoint: everything up to now is on disk
    store.abandon()                       # crash: the abort marker stays
    root = cfg.store_path_root_dir
    log = CommitLog(os.path.join(root, "commitlog"), CL_SIZE, io)
    log.load()
    cp = StoreCheckpoint(os.path.join(root, "checkpoint"), io=io)
    start_file = log.mfq.files[choose_abnormal_start(log, cp.min_timestamp())]
    assert start_file.file_start > a[2].phys_offset, "the crash scan starts after A's last record"
    cp.close()
    log.close()
    good = struct.pack(">qiq", a[2].phys_offset, a[2].size, TAGS_A)
    _write_cq_entry(cfg, "A", 0, 2, good[:11] + bytes(9))      # torn mid-write: wrong size, no tags
    store = FileStore.open(cfg, io, clock)
    rep = store.recovery_report
    assert rep.abnormal and rep.truncated_bytes == 0
    assert rep.consumequeue_entries_truncated == 1 and rep.consumequeue_entries_rebuilt == 1, rep
    assert _cq_entry(cfg, "A", 0, 2) == (a[2].phys_offset, a[2].size, TAGS_A)
    _assert_found(store, "A", 0, 2, a[2].phys_offset)
    assert store.max_queue_offset("A", 0) == 3 and store.max_queue_offset("B", 0) == 60
    assert store.append([_req("A", 0, BIG)])[0].queue_offset == 3
    store.close()
    _assert_verifies(cfg)


def test_valid_tails_and_entries_below_the_first_file_are_kept(cfg):
    """Tail validation drops nothing on a healthy store, including a queue whose records retention
    deleted (its entries point below the CommitLog's first file and cannot be checked)."""
    import time

    io = FaultyFileIO()
    store = _open(cfg, io)
    store.append([_req("OLD", 0, BIG)])
    _fill(store, 60)
    store.dispatch()
    store.flush()
    store.disk_usage_ratio = lambda: 0.95          # type: ignore[method-assign]
    assert store.delete_expired_files(time.time_ns() // 1_000_000) > 0
    assert store.min_phys_offset > 0
    store.abandon()
    store = _open(cfg, io)
    rep = store.recovery_report
    assert rep.abnormal and rep.consumequeue_entries_truncated == 0
    assert not any("torn" in r for r in rep.reasons), rep.reasons
    assert store.max_queue_offset("OLD", 0) == 1
    store.close()
