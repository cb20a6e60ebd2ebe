"""ConsumeQueue entries, rolls, pre-fill, truncation, time search; FileStore.get_message statuses."""

from __future__ import annotations

import struct
import time

import pytest

from rocketpy.clock import FakeClock
from rocketpy.config import StoreConfig
from rocketpy.protocol.message import (
    MessageRecord,
    decode_record,
    encode_record,
    format_properties,
    tags_code,
)
from rocketpy.store.api import GetStatus, PutRequest
from rocketpy.store.consumequeue import BLANK_ENTRY, ENTRY, ConsumeQueue, ConsumeQueueSet
from rocketpy.store.file_store import FileStore
from rocketpy.store.io import RealFileIO

CQ_FILE_SIZE = 10 * 20


def _cq(tmp_path, *, writable=True) -> ConsumeQueue:
    cq = ConsumeQueue(RealFileIO(), str(tmp_path / "cq" / "T" / "0"), "T", 0, CQ_FILE_SIZE,
                      writable=writable)
    cq.load()
    return cq


def _fill(cq: ConsumeQueue, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        assert cq.put(i, 1000 + 100 * i, 100, i)
    cq.commit()


def test_put_commit_read_and_roll(tmp_path):
    cq = _cq(tmp_path)
    assert cq.put(0, 1000, 100, 7)
    assert cq.max_offset == 0, "staged entries are invisible until commit"
    cq.commit()
    _fill(cq, 24, start=1)
    assert cq.max_offset == 25 and len(cq.mfq.files) == 3
    assert cq.entry(12) == (1000 + 1200, 100, 12)
    view = cq.entries(7, 100)
    assert view is not None and len(view) == 3 * 20, "never past the end of the file"
    assert [e[0] for e in ENTRY.iter_unpack(view)] == [1700, 1800, 1900]
    assert cq.entries(20, 100) is not None and len(cq.entries(20, 100)) == 5 * 20
    assert cq.entries(25, 1) is None
    assert cq.entries(3, 5, limit_offset=5) is not None and len(cq.entries(3, 5, limit_offset=5)) == 40
    assert cq.max_phys == 1000 + 2400 + 100
    assert not cq.put(3, 1300, 100, 3), "an entry already present is skipped"
    cq.close()


def test_reload_finds_the_end_and_drops_torn_entries(tmp_path):
    cq = _cq(tmp_path)
    _fill(cq, 13)
    cq.close()
    cq = _cq(tmp_path)
    assert cq.max_offset == 13 and cq.max_phys == 1000 + 1200 + 100
    # a torn entry after the end: size 0 ends the queue; the garbage after is zeroed
    f = cq.mfq.files[1]
    RealFileIO().pwrite(f.fd, struct.pack(">qiq", 5000, 0, 0) + b"\x07" * 20, 3 * 20)
    cq.close()
    cq = _cq(tmp_path)
    assert cq.max_offset == 13
    assert bytes(cq.mfq.files[1].read(60, 40)) == bytes(40)
    cq.close()


def test_prefill_when_first_created_at_nonzero_offset(tmp_path):
    cq = _cq(tmp_path)
    assert cq.put(13, 5000, 100, 0)
    cq.commit()
    assert cq.mfq.files[0].file_start == 200
    assert bytes(cq.mfq.files[0].read(0, 20)) == BLANK_ENTRY
    assert cq.min_offset == 13 and cq.max_offset == 14
    cq.close()
    cq = _cq(tmp_path)
    assert cq.max_offset == 14
    assert cq.correct_min_offset(0) == 13, "blank entries are never readable"
    cq.close()


def test_gap_is_filled_with_blanks(tmp_path):
    cq = _cq(tmp_path)
    _fill(cq, 2)
    assert cq.put(4, 9000, 100, 0)
    cq.commit()
    assert cq.gap_entries == 2 and cq.max_offset == 5
    cq.close()


def test_truncate_phys_at(tmp_path):
    cq = _cq(tmp_path)
    _fill(cq, 25)
    assert cq.truncate_phys_at(1000 + 100 * 12) == 13
    assert cq.max_offset == 12 and len(cq.mfq.files) == 2
    assert cq.max_phys == 1000 + 1100 + 100
    assert cq.truncate_phys_at(10**9) == 0
    _fill(cq, 3, start=12)
    assert cq.max_offset == 15
    cq.close()


def test_correct_min_offset_and_delete_files(tmp_path):
    cq = _cq(tmp_path)
    _fill(cq, 25)
    assert cq.correct_min_offset(1000 + 100 * 13 + 1) == 14
    deleted = cq.delete_files_below(1000 + 100 * 13 + 1)
    assert len(deleted) == 1 and cq.min_offset == 14
    assert cq.entry(3) is None
    cq.close()


def test_search_offset_by_time(tmp_path):
    cq = _cq(tmp_path)
    times = {1000 + 100 * i: 10_000 + 10 * i for i in range(25)}   # phys -> store time
    times[1000 + 100 * 7] = 10_060                                  # a duplicate time
    _fill(cq, 25)
    t = times.get
    assert cq.search_offset_by_time(10_050, t) == 5
    assert cq.search_offset_by_time(10_060, t) == 6, "the earliest of equal times"
    assert cq.search_offset_by_time(10_054, t) == 5, "nearer neighbour"
    assert cq.search_offset_by_time(10_056, t) == 6
    assert cq.search_offset_by_time(10_085, t) == 8, "ties go to the earlier"
    assert cq.search_offset_by_time(0, t) == 0
    assert cq.search_offset_by_time(99_999, t) == 24
    empty = ConsumeQueue(RealFileIO(), str(tmp_path / "e"), "E", 0, CQ_FILE_SIZE)
    empty.load()
    assert empty.search_offset_by_time(1, t) == 0
    cq.close()


def test_set_lists_and_loads_queues(tmp_path):
    root = str(tmp_path / "consumequeue")
    cqs = ConsumeQueueSet(RealFileIO(), root, CQ_FILE_SIZE)
    cqs.load()
    for topic, qid in (("A", 0), ("A", 3), ("%RETRY%g", 0)):
        cqs.get_or_create(topic, qid).put(0, 10, 10, 0)
    cqs.commit_all()
    assert cqs.queues() == {"%RETRY%g": [0], "A": [0, 3]}
    assert cqs.max_phys_covered() == 20
    cqs.close()
    again = ConsumeQueueSet(RealFileIO(), root, CQ_FILE_SIZE)
    again.load()
    assert again.queues() == {"%RETRY%g": [0], "A": [0, 3]}
    assert again.get("A", 3).max_offset == 1
    reader = ConsumeQueueSet(RealFileIO(), root, CQ_FILE_SIZE, writable=False)
    assert reader.get("B", 0) is None
    rq = reader.get("A", 3)
    assert rq is not None and rq.entries(0, 1, limit_offset=1) is not None
    assert rq.entries(0, 1, limit_offset=0) is None
    again.close()
    reader.close()


# --- get_message through the FileStore ------------------------------------------------------


def _req(topic: str, qid: int, tags: str | None = None) -> PutRequest:
    props = format_properties({"TAGS": tags}) if tags else ""
    rec = MessageRecord(topic=topic, body=b"b" * 50, queue_id=qid, properties=props)
    return PutRequest(topic, qid, 0, encode_record(rec))


@pytest.fixture
def store(tmp_path):
    cfg = StoreConfig(max_hash_slot_num=64, max_index_num=256, store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=4096,
                      mapped_file_size_consumequeue=CQ_FILE_SIZE, file_reserved_time_hours=0)
    s = FileStore(cfg, clock=FakeClock())
    yield s
    s.close()


def test_get_message_found_and_filtered(store):
    for i in range(30):
        store.append([_req("T", 0, "A" if i % 2 else "B")])
    store.dispatch()
    res = store.get_message("T", 0, 0, 32)
    assert res.status is GetStatus.FOUND
    assert res.message_count == 10 and res.next_begin_offset == 10, "one CQ file per call"
    assert list(res.queue_offsets) == list(range(10))
    assert all(isinstance(r, memoryview) for r in res.records), "zero copy"
    assert decode_record(res.records[4]).queue_offset == 4
    res = store.get_message("T", 0, 10, 3)
    assert res.message_count == 3 and res.next_begin_offset == 13
    res = store.get_message("T", 0, 10, 32, frozenset({tags_code("A")}))
    assert res.status is GetStatus.FOUND and list(res.queue_offsets) == [11, 13, 15, 17, 19]
    assert res.next_begin_offset == 20
    res = store.get_message("T", 0, 0, 32, frozenset({tags_code("C")}))
    assert res.status is GetStatus.NO_MATCHED_MESSAGE and res.next_begin_offset == 10


def test_get_message_offset_statuses(store):
    for _ in range(5):
        store.append([_req("T", 0)])
    res = store.get_message("T", 0, 0, 32)
    assert res.status is GetStatus.NO_MATCHED_LOGIC_QUEUE and res.next_begin_offset == 0
    store.dispatch()
    assert (store.get_message("T", 0, 5, 32).status, store.get_message("T", 0, 5, 32).next_begin_offset
            ) == (GetStatus.OFFSET_OVERFLOW_ONE, 5)
    res = store.get_message("T", 0, 9, 32)
    assert (res.status, res.next_begin_offset, res.max_offset) == (GetStatus.OFFSET_OVERFLOW_BADLY, 5, 5)
    store.cqs.get_or_create("E", 0)
    res = store.get_message("E", 0, 3, 32)
    assert (res.status, res.next_begin_offset) == (GetStatus.NO_MESSAGE_IN_QUEUE, 0)
    assert store.get_message("X", 1, 0, 32).status is GetStatus.NO_MATCHED_LOGIC_QUEUE


def test_get_message_too_small_and_removing_and_found_null(store, tmp_path):
    for _ in range(60):
        store.append([_req("T", 0)])
    store.dispatch()
    store.flush()
    # CommitLog files deleted but the queue's min offset not yet corrected: MESSAGE_WAS_REMOVING
    store.commitlog.delete_files_before(4096)
    res = store.get_message("T", 0, 0, 32)
    assert res.status is GetStatus.MESSAGE_WAS_REMOVING and res.next_begin_offset == 10
    # retention corrects min offsets: OFFSET_TOO_SMALL
    assert store.delete_expired_files(time.time_ns() // 1_000_000 + 10**9, force=True) >= 1
    min_offset = store.min_queue_offset("T", 0)
    assert min_offset > 0
    res = store.get_message("T", 0, 0, 32)
    assert (res.status, res.next_begin_offset) == (GetStatus.OFFSET_TOO_SMALL, min_offset)
    assert store.get_message("T", 0, min_offset, 32).status is GetStatus.FOUND


def test_get_message_offset_found_null(store):
    for _ in range(25):
        store.append([_req("T", 0)])
    store.dispatch()
    # a consume-queue file missing under a readable offset: OFFSET_FOUND_NULL, skip to the next file
    cq = store.cqs.get("T", 0)
    cq.mfq.files.pop(0).destroy()
    res = store.get_message("T", 0, 3, 32)
    assert (res.status, res.next_begin_offset) == (GetStatus.OFFSET_FOUND_NULL, 10)
    assert store.get_message("T", 0, 10, 32).status is GetStatus.FOUND


def test_queue_offsets_and_times(store):
    clock = store.clock
    for _ in range(12):
        store.append([_req("T", 1)])
        clock.advance(10)
    store.dispatch()
    assert store.max_queue_offset("T", 1) == 12 and store.min_queue_offset("T", 1) == 0
    assert store.max_queue_offset("T", 9) == 0 and store.min_queue_offset("T", 9) == 0
    first = store.earliest_store_time("T", 1)
    assert first == 1_700_000_000_000
    assert store.earliest_store_time("T", 9) == -1
    assert store.search_offset_by_time("T", 1, first + 50) == 5
    assert store.search_offset_by_time("T", 9, first) == 0
    assert store.queues() == {"T": [1]}
    assert store.read_record(0) is not None and store.read_record(1) is None


def test_dispatch_tags_codes_and_is_idempotent(store):
    from rocketpy.store.recovery import dispatch_range

    store.append([_req("T", 0, "TagA"), _req("T", 0), _req("SCHEDULE_TOPIC_XXXX", 2)])
    store.dispatch()
    cq = store.cqs.get("T", 0)
    assert cq.entry(0)[2] == 2598919 and cq.entry(1)[2] == 0
    sched = store.cqs.get("SCHEDULE_TOPIC_XXXX", 2).entry(0)
    assert sched[2] == store.clock.now_ms() + 10_000, "delivery time = store time + level 3 delay"
    stats = dispatch_range(store.commitlog, store.cqs, None, 0, store.committed_offset)
    assert stats.consumequeue_entries == 0 and stats.end_offset == store.committed_offset
    assert store.max_queue_offset("T", 0) == 2


def test_store_reader_follows_published_offsets(store):
    from rocketpy.store.file_store import StoreReader

    for i in range(25):
        store.append([_req("T", 0, "A" if i % 2 else "B")])
    store.dispatch()
    reader = StoreReader(store.config)
    published_max = 12                         # the dispatcher has published 12 entries so far
    res = reader.get_message("T", 0, 10, 32, None, committed_offset=store.committed_offset,
                             max_queue_offset=published_max)
    assert res.status is GetStatus.FOUND and list(res.queue_offsets) == [10, 11]
    res = reader.get_message("T", 0, 12, 32, None, committed_offset=store.committed_offset,
                             max_queue_offset=published_max)
    assert res.status is GetStatus.OFFSET_OVERFLOW_ONE
    for _ in range(40):                        # the writer rolls into new files
        store.append([_req("T", 0, "A")])
    store.dispatch()
    res = reader.get_message("T", 0, 60, 32, frozenset({tags_code("A")}),
                             committed_offset=store.committed_offset, max_queue_offset=65)
    assert res.status is GetStatus.FOUND and list(res.queue_offsets) == list(range(60, 65))
    assert bytes(res.records[0]) == store.read_record(decode_record(res.records[0]).phys_offset)
    assert reader.get_message("X", 0, 0, 1, None, committed_offset=1, max_queue_offset=1).status \
        is GetStatus.NO_MATCHED_LOGIC_QUEUE
    # retention on the writer side: the reader's min offset follows
    store.flush()
    store.delete_expired_files(time.time_ns() // 1_000_000 + 10**9, force=True)
    reader.refresh()                           # readers look again after retention ran
    res = reader.get_message("T", 0, 0, 32, None, committed_offset=store.committed_offset,
                             max_queue_offset=65)
    assert res.status is GetStatus.OFFSET_TOO_SMALL
    assert res.next_begin_offset == store.min_queue_offset("T", 0)
    reader.close()


def test_reload_with_empty_trailing_files_finds_the_lost_tail(tmp_path):
    """A crash can lose the tail of one file while later files exist, created but empty."""
    cq = _cq(tmp_path)
    _fill(cq, 40)                                   # files 0..3, full
    for mf in cq.mfq.files[1:]:                     # lose everything after entry 12
        RealFileIO().pwrite(mf.fd, bytes(CQ_FILE_SIZE), 0)
    RealFileIO().pwrite(cq.mfq.files[1].fd, ENTRY.pack(1000 + 1000, 100, 10) + ENTRY.pack(2100, 100, 11)
                        + ENTRY.pack(2200, 100, 12), 0)
    cq.close()
    cq = _cq(tmp_path)
    assert cq.max_offset == 13
    assert len(cq.mfq.files) == 2
    cq.close()
