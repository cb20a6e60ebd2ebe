"""Store model: a hypothesis state machine over FileStore on FaultyFileIO, MemoryStore as oracle.

Invariants (STYLE.md "store model"):
- every record acknowledged before an fdatasync (phys end <= flushed offset at the
  crash) is readable after recovery at the same phys and queue offset, byte for byte;
- no torn or corrupt record is ever returned (every record read passes its CRC and
  equals the oracle's bytes);
- queue offsets are dense: min..max-1 are all readable;
- after recovery the store agrees with the oracle cut to the surviving prefix.

Replay a failure with the printed `@reproduce_failure` blob or `--hypothesis-seed`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rocketpy.clock import FakeClock
from rocketpy.errors import MessageIllegalError
from rocketpy.protocol.message import (
    TRANSACTION_COMMIT,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    decode_record,
    tags_code,
)
from rocketpy.store.memory_store import MemoryStore
from tests.support.store_helpers import copy_request, make_record, tiny_config

file_store = pytest.importorskip("rocketpy.store.file_store")
io_module = pytest.importorskip("rocketpy.store.io")

TOPICS = ("A", "B")
QUEUES = (0, 1, 2)
TAGS = (None, "TagA", "TagB")
FAR = 1 << 62
HOUR_MS = 3_600_000

body_sizes = st.one_of(st.integers(0, 200), st.integers(900, 1100), st.integers(1800, 1950))
items = st.tuples(st.sampled_from(TOPICS), st.sampled_from(QUEUES), body_sizes,
                  st.sampled_from([0, 0, 0, TRANSACTION_PREPARED, TRANSACTION_COMMIT, TRANSACTION_ROLLBACK]),
                  st.sampled_from(TAGS), st.sampled_from([None, "k1", "k2 k3"]))


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="rocketpy-model-")
        self.clock = FakeClock(now_ms=time.time_ns() // 1_000_000)
        self.config = tiny_config(self.root)
        self.io: Any = io_module.FaultyFileIO()
        self.store: Any = self._open_store()
        self.oracle = MemoryStore(self.config, self.clock)
        self.crashed_once = False
        self.serial = 0

    def _open_store(self) -> Any:
        store = file_store.FileStore.open(self.config, self.io, self.clock)
        # The oracle sees an empty disk; so must the file store, whatever the host's real usage
        # (above diskMaxUsedSpaceRatio it would delete files the oracle keeps).
        store.disk_usage_ratio = lambda: 0.0
        return store

    @initialize()
    def start(self) -> None:
        assert self.store.committed_offset == 0

    def teardown(self) -> None:
        try:
            self.store.abandon()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- rules -------------------------------------------------------------------------------

    @rule(group=st.lists(items, min_size=1, max_size=3), advance_ms=st.integers(0, 1500))
    def append(self, group: list[tuple[str, int, int, int, str | None, str | None]], advance_ms: int) -> None:
        self.clock.advance(advance_ms)
        reqs = []
        for topic, qid, size, flag, tags, keys in group:
            self.serial += 1
            reqs.append(make_record(topic, qid, b"%06d" % self.serial + b"b" * size, tags=tags,
                                    keys=keys, uniq_key=f"U{self.serial}", sys_flag=flag))
        try:
            expected = self.oracle.append([copy_request(r) for r in reqs])
        except MessageIllegalError:
            with pytest.raises(MessageIllegalError):
                self.store.append(reqs)
            return
        got = self.store.append(reqs)
        assert got == expected, (got, expected)
        assert self.store.committed_offset == self.oracle.committed_offset

    @rule()
    def flush(self) -> None:
        assert self.store.flush() == self.store.committed_offset
        self.oracle.flush()

    @rule()
    def dispatch(self) -> None:
        assert self.store.dispatch() == self.oracle.dispatch()

    @rule(lose_unsynced=st.booleans(), torn=st.one_of(st.none(), st.integers(1, 300)))
    def crash(self, lose_unsynced: bool, torn: int | None) -> None:
        synced = self.store.flushed_offset
        committed = self.store.committed_offset
        self.io.crash(lose_unsynced=lose_unsynced, torn_keep_bytes=torn)
        self.store.abandon()
        self.io = io_module.FaultyFileIO()
        self.store = self._open_store()
        self.crashed_once = True
        report = self.store.recovery_report
        end = self.store.committed_offset
        assert report.abnormal
        assert end >= synced, f"recovery lost fdatasync'd data: end {end} < flushed {synced} ({report})"
        if not lose_unsynced and torn is None:
            assert end == committed, f"page-cache data lost without a power cut ({report})"
        assert end <= committed
        assert end in self.oracle.record_boundaries(), f"recovered end {end} is inside a record"
        self.oracle.truncate(end)
        self.oracle.dispatch()
        self.store.dispatch()
        self.check_everything()

    @precondition(lambda self: self.oracle.live_records())
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        phys, raw = data.draw(st.sampled_from(self.oracle.live_records()))
        assert self.store.read_record(phys) == raw

    @rule(topic=st.sampled_from(TOPICS), qid=st.sampled_from(QUEUES), offset_delta=st.integers(-2, 12),
          max_nums=st.integers(1, 40), tags=st.sampled_from([None, "TagA", "TagB"]))
    def get_message(self, topic: str, qid: int, offset_delta: int, max_nums: int, tags: str | None) -> None:
        offset = max(0, self.oracle.min_queue_offset(topic, qid) + offset_delta)
        codes = frozenset({tags_code(tags)}) if tags else None
        self.compare_get(topic, qid, offset, max_nums, codes)

    @rule(force=st.booleans())
    def expire(self, force: bool) -> None:
        later = max(self.clock.now_ms(), time.time_ns() // 1_000_000) + 73 * HOUR_MS
        assert self.store.delete_expired_files(later, force=force) == \
            self.oracle.delete_expired_files(later, force=force)
        assert self.store.min_phys_offset == self.oracle.min_phys_offset

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def offsets_agree(self) -> None:
        assert self.store.committed_offset == self.oracle.committed_offset
        assert self.store.dispatched_offset == self.oracle.dispatched_offset
        for topic in TOPICS:
            for qid in QUEUES:
                assert self.store.max_queue_offset(topic, qid) == self.oracle.max_queue_offset(topic, qid)
                assert self.store.min_queue_offset(topic, qid) == self.oracle.min_queue_offset(topic, qid)

    # --- helpers -----------------------------------------------------------------------------

    def compare_get(self, topic: str, qid: int, offset: int, max_nums: int,
                    codes: frozenset[int] | None) -> Any:
        got = self.store.get_message(topic, qid, offset, max_nums, codes)
        want = self.oracle.get_message(topic, qid, offset, max_nums, codes)
        have = (got.status, got.next_begin_offset, got.min_offset, got.max_offset)
        expect = (want.status, want.next_begin_offset, want.min_offset, want.max_offset)
        assert have == expect, (topic, qid, offset, have, expect)
        assert list(got.queue_offsets) == list(want.queue_offsets)
        for raw, expected in zip(got.records, want.records, strict=True):
            decode_record(raw, check_crc=True)        # never a torn or corrupt record
            assert bytes(raw) == expected
        return got

    def check_everything(self) -> None:
        self.offsets_agree()
        for phys, raw in self.oracle.live_records():
            assert self.store.read_record(phys) == raw, f"record at {phys} differs after recovery"
        for topic in TOPICS:
            for qid in QUEUES:
                lo = self.oracle.min_queue_offset(topic, qid)
                hi = self.oracle.max_queue_offset(topic, qid)
                seen: list[int] = []
                offset = lo
                while offset < hi:                   # dense: every offset in [min, max) readable
                    got = self.compare_get(topic, qid, offset, 32, None)
                    seen += list(got.queue_offsets)
                    assert got.next_begin_offset > offset
                    offset = got.next_begin_offset
                assert seen == list(range(lo, hi))
        for key in ("k1", "k3"):
            for topic in TOPICS:
                hits = self.store.query_by_key(topic, key, 64, 0, FAR)
                if not self.crashed_once:
                    assert hits == self.oracle.query_by_key(topic, key, 64, 0, FAR)
                for phys in hits:                    # after a crash the index may have holes,
                    raw = self.store.read_record(phys)   # but never points at the wrong record
                    assert raw is not None
                    assert key in decode_record(raw).keys

    @rule()
    def check(self) -> None:
        self.check_everything()


StoreModel.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_store_model = StoreModel.TestCase


def test_regression_torn_consumequeue_entry(tmp_path: Any) -> None:
    """Found by StoreModel: the last pwrite is a ConsumeQueue entry, torn after 11 bytes."""
    state = StoreModel()
    try:
        state.start()
        state.append(advance_ms=132, group=[("A", 0, 1810, TRANSACTION_COMMIT, "TagA", None)])
        state.flush()
        state.append(advance_ms=119, group=[("A", 2, 1076, TRANSACTION_ROLLBACK, "TagA", "k2 k3"),
                                            ("B", 2, 1854, TRANSACTION_PREPARED, "TagA", "k2 k3")])
        state.flush()
        state.append(advance_ms=440, group=[("A", 2, 1008, TRANSACTION_PREPARED, "TagB", "k1")])
        state.dispatch()
        state.crash(lose_unsynced=True, torn=11)
    finally:
        state.teardown()
