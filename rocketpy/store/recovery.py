"""Store recovery and the dispatch loop it shares with the running store (storage-format.md §6, §7.3).

Recovery runs before any writer or reader exists and is the only code that
truncates store files. Order:

1. load ConsumeQueues; each queue's end is its first invalid entry (a torn
   CQ tail is zeroed);
2. scan the CommitLog - normal (no abort marker): from the third-last file;
   abnormal: from the newest file whose first record was stored before the
   checkpoint's minimum stamp - 3 s (else the first file) - validating magic,
   size agreement, PHYSICALOFFSET and (checkCRCOnRecover) the body CRC;
3. cut at the first invalid record: later files deleted, the tail of the last
   file zeroed. A corrupt record in the middle ends the log there too, as in
   RocketMQ, and the report says how much valid-looking data went with it;
4. drop ConsumeQueue (and index) entries pointing at or after the new end,
   then each queue's tail entries that disagree with the record they point at
   (a CQ write torn mid-entry keeps phys >= 0 and size > 0 but a wrong size,
   phys or tags code; see consumequeue_entry_check);
5. re-dispatch: abnormal - every record from the scan start (entries already
   present are skipped); normal - from the highest offset any queue covers;
   either way no higher than the end of the last entry kept in a queue whose
   torn tail was dropped, so the dropped entries are rebuilt;
6. rebuild the topic-queue offset table from the ConsumeQueues' max offsets
   and correct each queue's min offset against the CommitLog's first file.

The result is an api.RecoveryReport naming every cut.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from rocketpy import limits
from rocketpy.config import parse_message_delay_level
from rocketpy.protocol.message import (
    RECORD_FIXED_SIZE_V4,
    TRANSACTION_ROLLBACK,
    java_string_hash,
    transaction_type,
)
from rocketpy.store.api import RecoveryReport
from rocketpy.store.commitlog import (
    Blank,
    CommitLog,
    Corrupt,
    End,
    Record,
    TornTail,
    check_record,
    dispatch_fields,
    parse_fields,
)
from rocketpy.store.consumequeue import ConsumeQueue, ConsumeQueueSet, EntryCheck

log = logging.getLogger("rocketpy.store")

SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
_TAGS_KEY = b"TAGS\x01"
_KEYS_KEY = b"KEYS\x01"
_UNIQ_KEY = b"UNIQ_KEY\x01"

# progress(done_bytes, total_bytes) of a recovery; see recover().
ProgressCallback = Callable[[int, int], None]


class IndexSink(Protocol):
    """What dispatch needs of the index (an adapter over store.indexfile.IndexService)."""

    @property
    def max_phys_offset(self) -> int:
        """Start of the last indexed record (0 when empty): later records need indexing."""

    def add(self, topic: str, keys: Sequence[str], uniq_key: str | None, phys_offset: int,
            store_timestamp: int) -> int:
        """Index one record; returns how many index entries were written."""

    def truncate_after(self, phys_offset: int) -> None:
        """Forget entries pointing at or after phys_offset."""

    def flush_batch(self) -> None:
        """Write the entries added since the last call (IndexService.flush_batch)."""


def get_property(props: bytes, key_with_sep: bytes) -> bytes | None:
    """Value of one property in a raw `k\\x01v\\x02...` string, without parsing the rest."""
    i = props.find(key_with_sep)
    while i >= 0:
        if i == 0 or props[i - 1] == 2:
            start = i + len(key_with_sep)
            j = props.find(b"\x02", start)
            return props[start:j if j >= 0 else len(props)]
        i = props.find(key_with_sep, i + 1)
    return None


def parse_delay_levels_ms(text: str) -> tuple[int, ...]:
    """messageDelayLevel ('1s 5s 1m 2h ...') -> delay per level in ms (ConfigError when bad)."""
    return parse_message_delay_level(text)


@dataclasses.dataclass(slots=True)
class DispatchStats:
    end_offset: int
    consumequeue_entries: int = 0
    index_entries: int = 0
    last_store_timestamp: int = 0


class _Caches:
    """Topic names and tag hashes seen by dispatch (few distinct values, many records)."""

    SIZE_MAX = 65_536

    def __init__(self) -> None:
        self.topics: dict[bytes, str] = {}
        self.tags: dict[bytes, int] = {}

    def topic(self, raw: bytes) -> str:
        name = self.topics.get(raw)
        if name is None:
            if len(self.topics) >= self.SIZE_MAX:
                self.topics.clear()
            name = self.topics[raw] = raw.decode("utf-8", "replace")
        return name

    def tags_code(self, raw: bytes) -> int:
        code = self.tags.get(raw)
        if code is None:
            if len(self.tags) >= self.SIZE_MAX:
                self.tags.clear()
            code = self.tags[raw] = java_string_hash(raw.decode("utf-8", "replace"))
        return code


_CACHES = _Caches()


def dispatch_range(commitlog: CommitLog, cqs: ConsumeQueueSet, index: IndexSink | None,
                   from_phys: int, limit: int, *, delay_levels_ms: Sequence[int] = (),
                   trusted: bool = True, progress: Callable[[int], None] | None = None) -> DispatchStats:
    """Derive ConsumeQueue and index entries for the records in [from_phys, limit).

    Entries already present are skipped, so dispatching a range twice is harmless.
    Returns where dispatch stopped (limit, unless the log is damaged before it).
    trusted: the range was validated already (recovery's scan, or the writer's
    committed offset), so only magic and sizes are checked again.
    progress: called with the phys offset reached, at most once per PROGRESS_STEP_BYTES
    (recovery's re-dispatch of a large store; the dispatcher passes none).
    """
    stats = DispatchStats(from_phys)
    index_from = index.max_phys_offset if index is not None else 0
    caches = _CACHES
    queues: dict[tuple[str, int], ConsumeQueue] = {}
    next_report = from_phys + limits.PROGRESS_STEP_BYTES
    for item in commitlog.scan(from_phys, limit, trusted=trusted):
        if isinstance(item, Record):
            phys = item.phys_offset
            if progress is not None and phys >= next_report:
                progress(phys)
                next_report = phys + limits.PROGRESS_STEP_BYTES
            size, queue_id, queue_offset, sys_flag, store_ts, raw_topic, props = dispatch_fields(
                item.data, 0)
            topic = caches.topic(raw_topic)
            if not sys_flag & 0x4:                     # NOT and COMMIT get a queue entry
                if topic == SCHEDULE_TOPIC and 0 <= queue_id < len(delay_levels_ms):
                    tags = store_ts + delay_levels_ms[queue_id]
                else:
                    raw = get_property(props, _TAGS_KEY)
                    tags = caches.tags_code(raw) if raw else 0
                key = (topic, queue_id)
                cq = queues.get(key)
                if cq is None:
                    cq = queues[key] = cqs.get_or_create(topic, queue_id)
                if cq.put(queue_offset, phys, size, tags):
                    stats.consumequeue_entries += 1
            if (index is not None and (phys > index_from or index_from == 0)
                    and transaction_type(sys_flag) != TRANSACTION_ROLLBACK):
                raw_keys = get_property(props, _KEYS_KEY)
                raw_uniq = get_property(props, _UNIQ_KEY)
                if raw_keys or raw_uniq:
                    keys = [k for k in raw_keys.decode("utf-8", "replace").split(" ") if k] if raw_keys else []
                    uniq = raw_uniq.decode("utf-8", "replace") if raw_uniq else None
                    stats.index_entries += index.add(topic, keys, uniq, phys, store_ts)
            stats.end_offset = phys + size
            stats.last_store_timestamp = store_ts
        elif isinstance(item, Blank):
            stats.end_offset = item.phys_offset + item.size
        else:
            stats.end_offset = item.phys_offset
            if not isinstance(item, End):
                log.error("dispatch stopped at phys %d: %s", item.phys_offset, item.reason)
            break
    if index is not None:
        # Before the queues: once a queue entry is in a file, so are the record's index entries
        # (a dispatcher killed in between resumes at the queues' end and never misses keys).
        index.flush_batch()
    cqs.commit_all()
    return stats


def consumequeue_entry_check(commitlog: CommitLog, limit: int) -> EntryCheck:
    """A check that a ConsumeQueue entry agrees with the CommitLog record it points at.

    Valid: phys is the start of a record wholly below limit (its PHYSICALOFFSET field says
    so and its lengths agree), the record's TOTALSIZE is the entry's size, the record gets a
    queue entry (NOT/COMMIT) of this topic, queue id and queue offset, and - except for
    SCHEDULE_TOPIC_XXXX, whose tags code is a delivery time - the tags code is the hash of
    its TAGS. An entry below the CommitLog's first file cannot be checked (retention deleted
    the record) and counts as valid. Used on queues' tails only (ConsumeQueue.validate_tail).
    """
    caches = _CACHES

    def check(topic: str, queue_id: int, queue_offset: int, phys: int, size: int, tags_code: int) -> bool:
        if phys < commitlog.min_phys_offset:
            return phys >= 0
        if size < RECORD_FIXED_SIZE_V4 or phys + size > limit:
            return False
        data = commitlog.read_record(phys, limit)
        if data is None or len(data) != size:
            return False
        if check_record(data, 0, size, phys, check_crc=False) is not None:
            return False
        _size, rec_qid, rec_qoff, sys_flag, _ts, raw_topic, props = dispatch_fields(data, 0)
        if sys_flag & 0x4 or rec_qid != queue_id or rec_qoff != queue_offset:
            return False
        if caches.topic(raw_topic) != topic:
            return False
        if topic != SCHEDULE_TOPIC:
            raw = get_property(props, _TAGS_KEY)
            if tags_code != (caches.tags_code(raw) if raw else 0):
                return False
        return True

    return check


def choose_abnormal_start(commitlog: CommitLog, checkpoint_min_ms: int | None) -> int:
    """Index of the file abnormal recovery starts at (§7.3)."""
    files = commitlog.mfq.files
    if checkpoint_min_ms is None:
        return 0
    for idx in range(len(files) - 1, -1, -1):
        ts = commitlog.first_store_timestamp(files[idx])
        if ts is not None and ts <= checkpoint_min_ms:
            return idx
    return 0


def recover(commitlog: CommitLog, cqs: ConsumeQueueSet, *, abnormal: bool, check_crc: bool = True,
            checkpoint_min_ms: int | None = None, index: IndexSink | None = None,
            delay_levels_ms: Sequence[int] = (), progress: ProgressCallback | None = None) -> RecoveryReport:
    """Bring CommitLog, ConsumeQueues and index to a consistent state; see the module docstring.

    commitlog and cqs must be constructed writable and not yet loaded.
    checkpoint_min_ms: min(physic, logics) stamp - 3 s of the checkpoint, if there is one.
    progress(done_bytes, total_bytes): the bytes of the CommitLog scan, then of the re-dispatch.
    The total starts as the scan's range and grows once, by the re-dispatch range, when that is
    known; done never goes back; the last call is (total, total). At most one call per
    PROGRESS_STEP_BYTES of each phase, so the broker can log a large recovery's progress.
    """
    reasons: list[str] = []
    commitlog.load()
    cq_dropped = cqs.load(thorough=abnormal)
    if cq_dropped:
        reasons.append(f"consume queues: {cq_dropped} torn entries dropped")
    files = commitlog.mfq.files
    if not files:
        destroyed = cqs.destroy_all()
        if destroyed:
            reasons.append(f"CommitLog is empty: {destroyed} consume queue file(s) deleted")
        if index is not None:
            index.truncate_after(0)
        commitlog.set_end(0, 0)
        commitlog.queue_offsets.clear()
        if progress is not None:
            progress(0, 0)
        return RecoveryReport(abnormal=abnormal, commitlog_end=0, truncated_bytes=0,
                              reasons=tuple(reasons), consumequeue_entries_truncated=cq_dropped)

    if abnormal:
        start_idx = choose_abnormal_start(commitlog, checkpoint_min_ms)
    else:
        start_idx = max(0, len(files) - limits.RECOVERY_TAIL_FILE_COUNT)
    scan_start = files[start_idx].file_start
    end = scan_start
    last_ts = 0
    bad: TornTail | Corrupt | None = None
    scan_total = files[-1].file_end - scan_start
    next_report = scan_start + limits.PROGRESS_STEP_BYTES
    for item in commitlog.scan(scan_start, check_crc=check_crc):
        if progress is not None and item.phys_offset >= next_report:
            progress(item.phys_offset - scan_start, scan_total)
            next_report = item.phys_offset + limits.PROGRESS_STEP_BYTES
        if isinstance(item, Record):
            end = item.phys_offset + item.size
            last_ts = parse_fields(item.data, 0, item.phys_offset).store_timestamp
        elif isinstance(item, Blank):
            end = item.phys_offset + item.size
        else:
            end = item.phys_offset
            if not isinstance(item, End):
                bad = item
            break

    removed, deleted = commitlog.mfq.truncate_dirty(end, thorough=abnormal or bad is not None)
    if isinstance(bad, TornTail):
        reasons.append(f"CommitLog: torn record at phys {bad.phys_offset} ({bad.reason}); "
                       f"{removed} byte(s) dropped")
    elif isinstance(bad, Corrupt):
        reasons.append(f"CommitLog: corrupt record in the middle of the log at phys {bad.phys_offset} "
                       f"({bad.reason}); as RocketMQ does, the log ends there: {removed} byte(s) "
                       "dropped, including any valid records after it")
    elif removed:
        reasons.append(f"CommitLog: {removed} byte(s) of partial or unsynced data after the end at "
                       f"phys {end} dropped")
    if deleted:
        reasons.append(f"CommitLog: deleted {len(deleted)} file(s) past the end: "
                       + ", ".join(p.rsplit("/", 1)[-1] for p in deleted))
    # What recovery keeps may still be only in the page cache (a kill -9 keeps it there): make it
    # durable before the checkpoint or anyone else relies on it.
    commitlog.mfq.sync_range(scan_start, end)
    commitlog.set_end(end, last_ts)

    cq_truncated = cqs.truncate_phys_at(end)
    if cq_truncated:
        reasons.append(f"consume queues: {cq_truncated} entries pointing at or past phys {end} dropped")
    cq_torn, rebuild_from = cqs.validate_tails(consumequeue_entry_check(commitlog, end))
    if rebuild_from is not None:
        rebuild_from = max(rebuild_from, commitlog.min_phys_offset)
        reasons.append(f"consume queues: {cq_torn} tail entries disagreeing with their CommitLog record "
                       f"(torn writes) dropped; dispatched again from phys {rebuild_from}")
    if index is not None:
        index.truncate_after(end)

    if abnormal:
        dispatch_from = scan_start
    else:
        dispatch_from = max(min(cqs.max_phys_covered(), end), commitlog.min_phys_offset)
    if rebuild_from is not None:
        dispatch_from = min(dispatch_from, rebuild_from)
    if index is not None:
        dispatch_from = min(dispatch_from, max(index.max_phys_offset, commitlog.min_phys_offset))
    dispatch_progress: Callable[[int], None] | None = None
    if progress is not None:
        total = scan_total + max(0, end - dispatch_from)
        progress(scan_total, total)

        def dispatch_progress(phys: int) -> None:
            progress(scan_total + phys - dispatch_from, total)

    stats = dispatch_range(commitlog, cqs, index, dispatch_from, end, delay_levels_ms=delay_levels_ms,
                           progress=dispatch_progress)
    if progress is not None:
        progress(total, total)
    cqs.flush_all()
    dropped = cqs.drop_empty()
    if dropped:
        reasons.append("consume queues left empty deleted: "
                       + ", ".join(f"{topic}-{qid}" for topic, qid in dropped))

    commitlog.queue_offsets.clear()
    for cq in cqs:
        commitlog.queue_offsets[(cq.topic, cq.queue_id)] = cq.max_offset
    cqs.correct_min_offsets(commitlog.min_phys_offset)

    report = RecoveryReport(
        abnormal=abnormal, commitlog_end=end, truncated_bytes=removed,
        deleted_files=tuple(deleted), reasons=tuple(reasons),
        consumequeue_entries_truncated=cq_truncated + cq_dropped + cq_torn,
        consumequeue_entries_rebuilt=stats.consumequeue_entries,
        index_entries_rebuilt=stats.index_entries)
    for line in reasons:
        log.warning("recovery: %s", line)
    log.info("recovery (%s): CommitLog [%d, %d), %d consume queue entries and %d index entries rebuilt",
             "abnormal" if abnormal else "normal", commitlog.min_phys_offset, end,
             stats.consumequeue_entries, stats.index_entries)
    return report
