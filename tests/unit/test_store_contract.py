"""The store contract (store.api.MessageStore), run on the memory store and the file store.

Tiny files so that rolls happen: CommitLog 4096 bytes, ConsumeQueue 10 entries,
index 16 slots / 64 entries.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rocketpy.clock import FakeClock
from rocketpy.config import StoreConfig
from rocketpy.errors import MessageIllegalError
from rocketpy.protocol.message import (
    TRANSACTION_COMMIT,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    decode_record,
    tags_code,
)
from rocketpy.store.api import GetStatus, PutRequest
from rocketpy.store.memory_store import MemoryStore
from tests.support.store_helpers import TINY_COMMITLOG_FILE_SIZE, make_record, tiny_config

FILE = TINY_COMMITLOG_FILE_SIZE
FAR = 1 << 62
HOUR_MS = 3_600_000


def _file_store_cls() -> Any:
    try:
        from rocketpy.store.file_store import FileStore
    except ImportError as exc:                     # the file engine is not there yet
        pytest.skip(f"file store not importable: {exc}")
    return FileStore


class Harness:
    def __init__(self, kind: str, root: str) -> None:
        self.kind = kind
        self.root = root
        self.clock = FakeClock(now_ms=time.time_ns() // 1_000_000)
        self.config: StoreConfig = tiny_config(root)
        self.store: Any = self._open()

    def _open(self) -> Any:
        if self.kind == "memory":
            return MemoryStore(self.config, self.clock)
        store = _file_store_cls().open(self.config, None, self.clock)
        # Both stores see an empty disk: the host's real usage (above diskMaxUsedSpaceRatio on a
        # crowded machine) would otherwise make the file store delete files at any hour.
        store.disk_usage_ratio = lambda: 0.0
        return store

    def reopen(self) -> Any:
        self.store.close()
        self.store = self._open()
        return self.store


@pytest.fixture(params=["memory", "file"])
def harness(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Harness]:
    h = Harness(request.param, os.path.join(tmp_path, "store"))
    yield h
    h.store.close()


@pytest.fixture
def store(harness: Harness) -> Any:
    return harness.store


def body_for(total_size: int, topic: str = "T", props_len: int = 0) -> bytes:
    """A body that makes the record exactly total_size bytes (no properties)."""
    return b"x" * (total_size - 91 - len(topic.encode()) - props_len)


def put(store: Any, *reqs: PutRequest) -> list[Any]:
    return list(store.append(list(reqs)))


def test_append_assigns_offsets_and_reads_back(store: Any, harness: Harness) -> None:
    r1 = make_record("T", 0, b"hello", tags="TagA", keys="k1", uniq_key="U1")
    r2 = make_record("T", 0, b"world")
    ts = harness.clock.now_ms()
    res = put(store, r1) + put(store, r2)
    assert [r.phys_offset for r in res] == [0, len(r1.data)]
    assert [r.queue_offset for r in res] == [0, 1]
    assert [r.size for r in res] == [len(r1.data), len(r2.data)]
    assert res[0].store_timestamp == ts
    assert store.committed_offset == len(r1.data) + len(r2.data)
    for req, r in zip((r1, r2), res, strict=True):
        raw = store.read_record(r.phys_offset)
        assert raw == bytes(req.data)                  # the request was patched in place
        rec = decode_record(raw, check_crc=True)
        assert (rec.phys_offset, rec.queue_offset, rec.store_timestamp) == (r.phys_offset, r.queue_offset, ts)
    assert store.read_record(store.committed_offset) is None
    assert store.read_record(10 * FILE) is None


def test_store_timestamp_never_goes_backwards(store: Any, harness: Harness) -> None:
    a = put(store, make_record("T", 0, b"a"))[0]
    harness.clock.set_now_ms(harness.clock.now_ms() - 5000)
    b = put(store, make_record("T", 0, b"b"))[0]
    assert b.store_timestamp >= a.store_timestamp


def test_dense_queue_offsets_per_queue_and_transactions(store: Any) -> None:
    out = put(store, make_record("T", 0, b"a"), make_record("T", 1, b"b"), make_record("U", 0, b"c"),
              make_record("T", 0, b"d"))
    assert [r.queue_offset for r in out] == [0, 0, 0, 1]
    prep = put(store, make_record("T", 0, b"p", sys_flag=TRANSACTION_PREPARED))[0]
    rb = put(store, make_record("T", 0, b"r", sys_flag=TRANSACTION_ROLLBACK))[0]
    commit = put(store, make_record("T", 0, b"c", sys_flag=TRANSACTION_COMMIT))[0]
    assert (prep.queue_offset, rb.queue_offset, commit.queue_offset) == (0, 0, 2)
    store.dispatch()
    assert store.max_queue_offset("T", 0) == 3
    got = store.get_message("T", 0, 0, 32)
    assert got.status is GetStatus.FOUND
    assert [decode_record(r).body for r in got.records] == [b"a", b"d", b"c"]
    assert list(got.queue_offsets) == [0, 1, 2]
    assert store.queues() == {"T": [0, 1], "U": [0]}


def test_roll_with_blank(store: Any) -> None:
    size = 1000
    res = [put(store, make_record("T", 0, body_for(size)))[0] for _ in range(5)]
    # 4 records fill 4000 bytes; the 5th needs 1000 + 8 > 96 left: blank, next file
    assert [r.phys_offset for r in res] == [0, 1000, 2000, 3000, FILE]
    assert store.committed_offset == FILE + size
    assert store.read_record(4000) is None
    store.dispatch()
    got = store.get_message("T", 0, 0, 32)
    assert [len(r) for r in got.records] == [size] * 5 and list(got.queue_offsets) == [0, 1, 2, 3, 4]


def test_record_that_leaves_exactly_eight_bytes(store: Any) -> None:
    half = (FILE - 8) // 2
    a = put(store, make_record("T", 0, body_for(half)), make_record("T", 0, body_for(half)))
    assert a[1].phys_offset == half and store.committed_offset == FILE - 8
    b = put(store, make_record("T", 0, b"x"))[0]
    assert b.phys_offset == FILE


def test_group_is_all_or_nothing_in_one_file(store: Any) -> None:
    put(store, make_record("T", 0, body_for(2000)))
    group = [make_record("T", 0, body_for(1000)) for _ in range(3)]
    res = put(store, *group)
    assert [r.phys_offset for r in res] == [FILE, FILE + 1000, FILE + 2000]
    assert [r.queue_offset for r in res] == [1, 2, 3]


def test_oversize_is_illegal(store: Any, harness: Harness) -> None:
    with pytest.raises(MessageIllegalError):
        put(store, make_record("T", 0, b"x" * (harness.config.max_message_size + 1)))
    with pytest.raises(MessageIllegalError):
        put(store, *[make_record("T", 0, body_for(1500)) for _ in range(3)])   # group > one file
    bad = make_record("T", 0, b"abc")
    bad.data[0:4] = (len(bad.data) + 1).to_bytes(4, "big")
    with pytest.raises(MessageIllegalError):
        put(store, bad)
    assert store.committed_offset == 0
    ok = put(store, make_record("T", 0, b"fine"))[0]
    assert (ok.phys_offset, ok.queue_offset) == (0, 0)
    assert put(store) == []


def test_get_message_statuses(store: Any) -> None:
    assert store.get_message("T", 0, 0, 32).status is GetStatus.NO_MATCHED_LOGIC_QUEUE
    for i in range(3):
        put(store, make_record("T", 0, b"m%d" % i, tags="TagA" if i != 1 else "TagB"))
    assert store.max_queue_offset("T", 0) == 0              # not dispatched yet
    assert store.dispatch() == store.committed_offset == store.dispatched_offset
    assert (store.min_queue_offset("T", 0), store.max_queue_offset("T", 0)) == (0, 3)
    assert (store.min_queue_offset("X", 0), store.max_queue_offset("X", 0)) == (0, 0)

    found = store.get_message("T", 0, 0, 32)
    assert (found.status, found.next_begin_offset, found.min_offset, found.max_offset) == (
        GetStatus.FOUND, 3, 0, 3)
    assert found.message_count == 3
    for raw, qoff in zip(found.records, found.queue_offsets, strict=True):
        assert bytes(raw) == store.read_record(decode_record(raw).phys_offset)
        assert decode_record(raw).queue_offset == qoff

    one = store.get_message("T", 0, 1, 1)
    assert (one.status, one.next_begin_offset, one.message_count) == (GetStatus.FOUND, 2, 1)

    over_one = store.get_message("T", 0, 3, 32)
    assert (over_one.status, over_one.next_begin_offset) == (GetStatus.OFFSET_OVERFLOW_ONE, 3)
    badly = store.get_message("T", 0, 9, 32)
    assert (badly.status, badly.next_begin_offset) == (GetStatus.OFFSET_OVERFLOW_BADLY, 3)

    only_b = store.get_message("T", 0, 0, 32, frozenset({tags_code("TagB")}))
    assert only_b.status is GetStatus.FOUND and list(only_b.queue_offsets) == [1]
    assert only_b.next_begin_offset == 3
    none = store.get_message("T", 0, 0, 32, frozenset({tags_code("TagZ")}))
    assert (none.status, none.next_begin_offset, none.message_count) == (GetStatus.NO_MATCHED_MESSAGE, 3, 0)


def test_one_read_stops_at_the_consumequeue_file_end(store: Any) -> None:
    for i in range(15):
        put(store, make_record("T", 0, b"%d" % i))
    store.dispatch()
    got = store.get_message("T", 0, 5, 32)
    assert (got.status, got.next_begin_offset, got.message_count) == (GetStatus.FOUND, 10, 5)
    rest = store.get_message("T", 0, 10, 32)
    assert (rest.next_begin_offset, rest.message_count) == (15, 5)


def test_search_offset_by_time_and_earliest(store: Any, harness: Harness) -> None:
    assert store.search_offset_by_time("T", 0, 0) == 0
    assert store.earliest_store_time("T", 0) == -1
    t0 = harness.clock.now_ms()
    for _ in range(6):
        put(store, make_record("T", 0, b"x"))
        harness.clock.advance(1000)
    store.dispatch()
    assert store.earliest_store_time("T", 0) == t0
    cases = {t0: 0, t0 + 3000: 3, t0 - 50_000: 0, t0 + 99_000: 5, t0 + 1400: 1, t0 + 1600: 2,
             t0 + 2500: 2}                                  # a tie goes to the earlier one
    for ts, expected in cases.items():
        assert store.search_offset_by_time("T", 0, ts) == expected, ts


def test_query_by_key_and_uniq_key(store: Any) -> None:
    a = put(store, make_record("T", 0, b"a", keys="order-1 user-7", uniq_key="UNIQ-A"))[0]
    b = put(store, make_record("T", 1, b"b", keys="order-2 user-7", uniq_key="UNIQ-B"))[0]
    put(store, make_record("Other", 0, b"c", keys="user-7"))
    r = put(store, make_record("T", 0, b"r", keys="user-7", sys_flag=TRANSACTION_ROLLBACK))[0]
    store.dispatch()
    assert store.query_by_key("T", "user-7", 32, 0, FAR) == [a.phys_offset, b.phys_offset]
    assert r.phys_offset not in store.query_by_key("T", "user-7", 32, 0, FAR)
    assert store.query_by_key("T", "order-2", 32, 0, FAR) == [b.phys_offset]
    assert store.query_by_key("T", "UNIQ-A", 32, 0, FAR) == [a.phys_offset]
    assert store.query_by_key("T", "nope", 32, 0, FAR) == []
    assert store.query_by_key("T", "user-7", 1, 0, FAR) == [b.phys_offset]   # newest first, capped


def test_query_by_key_across_index_files(store: Any) -> None:
    offsets = [put(store, make_record("T", 0, b"m", keys=f"k{i % 3} all"))[0].phys_offset
               for i in range(80)]                     # > 64 entries: the index rolls
    store.dispatch()
    assert store.query_by_key("T", "k1", 64, 0, FAR) == offsets[1::3]
    assert store.query_by_key("T", "all", 64, 0, FAR) == offsets[-64:]


def _fill_files(store: Any, n_files: int) -> list[Any]:
    out = []
    for _ in range(n_files * 4):
        out += put(store, make_record("T", 0, body_for(1000), keys="k"))
    store.flush()
    store.dispatch()
    return out


def test_retention_deletes_oldest_expired_files(store: Any, harness: Harness) -> None:
    res = _fill_files(store, 3)                    # files at 0, 4096, 8192
    assert store.min_phys_offset == 0
    now = harness.clock.now_ms()
    assert store.delete_expired_files(now, force=True) == 0          # nothing expired yet
    later = max(now, time.time_ns() // 1_000_000) + 73 * HOUR_MS
    assert store.delete_expired_files(later, force=False) == 0       # not a delete hour
    assert store.delete_expired_files(later, force=True) == 2        # never the newest
    assert store.min_phys_offset == 2 * FILE
    assert store.read_record(0) is None and store.read_record(FILE) is None
    assert store.read_record(2 * FILE) is not None
    assert store.min_queue_offset("T", 0) == 8 and store.max_queue_offset("T", 0) == 12
    small = store.get_message("T", 0, 0, 32)
    assert (small.status, small.next_begin_offset) == (GetStatus.OFFSET_TOO_SMALL, 8)
    ok = store.get_message("T", 0, 8, 32)
    assert (ok.status, ok.message_count, ok.next_begin_offset) == (GetStatus.FOUND, 2, 10)  # CQ file end
    assert store.earliest_store_time("T", 0) == res[8].store_timestamp
    assert store.query_by_key("T", "k", 64, 0, FAR) == [r.phys_offset for r in res[8:]]
    nxt = put(store, make_record("T", 0, b"after"))[0]
    assert nxt.queue_offset == 12


def test_retention_keeps_unflushed_or_undispatched_data(store: Any, harness: Harness) -> None:
    for _ in range(12):
        put(store, make_record("T", 0, body_for(1000)))
    later = max(harness.clock.now_ms(), time.time_ns() // 1_000_000) + 73 * HOUR_MS
    assert store.delete_expired_files(later, force=True) == 0        # neither flushed nor dispatched


def test_reopen_gives_identical_reads(harness: Harness) -> None:
    if harness.kind != "file":
        pytest.skip("only the file store persists")
    store = harness.store
    res = []
    for i in range(30):
        res += put(store, make_record("T", i % 3, b"m%d" % i * 20, tags="TagA", keys=f"k{i}"))
    store.flush()
    store.dispatch()
    before = {q: store.get_message("T", q, 0, 64) for q in range(3)}
    again = harness.reopen()
    assert not again.recovery_report.abnormal and again.recovery_report.truncated_bytes == 0
    assert again.committed_offset == res[-1].phys_offset + res[-1].size
    for r in res:
        assert again.read_record(r.phys_offset) is not None
    for q in range(3):
        got = again.get_message("T", q, 0, 64)
        assert [bytes(x) for x in got.records] == [bytes(x) for x in before[q].records]
        assert again.max_queue_offset("T", q) == 10
    assert again.query_by_key("T", "k7", 32, 0, FAR) == [res[7].phys_offset]
    nxt = put(again, make_record("T", 0, b"next"))[0]
    assert nxt.queue_offset == 10 and nxt.phys_offset == res[-1].phys_offset + res[-1].size


def _set_disk_usage(harness: Harness, usage: float) -> None:
    if harness.kind == "memory":
        harness.store.disk_usage = lambda: usage
    else:
        harness.store.disk_usage_ratio = lambda: usage


def test_disk_full_refuses_writes_with_hysteresis(store: Any, harness: Harness) -> None:
    from rocketpy.errors import DiskFullError

    put(store, make_record("T", 0, b"a"))
    now = harness.clock.now_ms()
    for usage, refused in [(0.95, True), (0.87, True), (0.85, False), (0.89, False), (0.91, True),
                           (0.10, False)]:
        _set_disk_usage(harness, usage)
        store.delete_expired_files(now)
        if refused:
            with pytest.raises(DiskFullError):
                put(store, make_record("T", 0, b"refused"))
        else:
            put(store, make_record("T", 0, b"accepted"))
    store.dispatch()
    assert store.max_queue_offset("T", 0) == 4


def test_forcible_clean_ignores_age(store: Any, harness: Harness) -> None:
    _fill_files(store, 3)
    _set_disk_usage(harness, 0.86)
    assert store.delete_expired_files(harness.clock.now_ms()) == 2     # young files go too
    assert store.min_phys_offset == 2 * FILE
