"""The file store: CommitLog + ConsumeQueues + IndexFiles on disk (RocketMQ's DefaultMessageStore).

One object, one process, no threads: the broker's writer, dispatcher and
workers each drive the part they own (ARCHITECTURE.md); tests drive all of it.
Opening takes the `lock`, runs recovery (store.recovery, with the checkpoint
and index of store.checkpoint / store.indexfile) and then creates the `abort`
marker; a clean `close()` flushes everything, writes the checkpoint and removes
the marker, so the next open knows whether the last run crashed.

Layout under `store_path_root_dir` (storage-format.md §1)::

    commitlog/<20 digits>   consumequeue/<topic>/<qid>/<20 digits>   index/<17 digits>
    checkpoint              abort                                      lock
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from rocketpy import limits
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import StoreConfig
from rocketpy.errors import StoreError
from rocketpy.store.api import AppendResult, GetResult, GetStatus, PutRequest, RecoveryReport
from rocketpy.store.checkpoint import AbortMarker, StoreCheckpoint, StoreLock
from rocketpy.store.commitlog import CommitLog
from rocketpy.store.consumequeue import (
    BLANK_ENTRY_SIZE_FIELD,
    ENTRY,
    ENTRY_SIZE,
    ConsumeQueue,
    ConsumeQueueSet,
)
from rocketpy.store.indexfile import IndexService
from rocketpy.store.io import FileIO, RealFileIO
from rocketpy.store.recovery import ProgressCallback, dispatch_range, parse_delay_levels_ms, recover
from rocketpy.store.retention import (
    DiskGuard,
    RetentionPolicy,
    apply_retention,
    disk_usage_ratio,
    local_hour,
)

# A record (a view of the CommitLog map) -> deliver it? The broker's SQL92 filter.
RecordFilter = Callable[[memoryview], bool]

log = logging.getLogger("rocketpy.store")

COMMITLOG_DIR = "commitlog"
CONSUMEQUEUE_DIR = "consumequeue"
INDEX_DIR = "index"
CHECKPOINT_FILE = "checkpoint"
# A message more than this share of RAM behind the write position is "on disk" (RocketMQ's
# accessMessageInMemoryMaxRatio, 40 %): pulls of it use the smaller on-disk transfer limits.
ACCESS_MESSAGE_IN_MEMORY_MAX_RATIO_PERCENT = 40


def _physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 << 30


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def memory_window_bytes() -> int:
    """How far behind the write position a message still counts as in the page cache."""
    return _physical_memory_bytes() * ACCESS_MESSAGE_IN_MEMORY_MAX_RATIO_PERCENT // 100


def get_message(commitlog: CommitLog, cq: ConsumeQueue | None, queue_offset: int, max_msg_nums: int,
                tag_codes: frozenset[int] | None, *, committed_offset: int, memory_window: int,
                record_filter: RecordFilter | None = None) -> GetResult:
    """RocketMQ's DefaultMessageStore.getMessage over one queue (remoting-protocol.md §9.3).

    Reads at most one ConsumeQueue file of entries per call (>= 800 entries), applies
    the tag filter on tagsCode, and returns each record as a view of the CommitLog map.
    `cq.max_offset` bounds the entries read (a reader sets it from the dispatcher's
    published value) and committed_offset bounds the CommitLog.
    """
    if cq is None:
        return GetResult(GetStatus.NO_MATCHED_LOGIC_QUEUE, 0, 0, 0)
    min_offset, max_offset = cq.min_offset, cq.max_offset
    if max_offset == 0:
        return GetResult(GetStatus.NO_MESSAGE_IN_QUEUE, 0, min_offset, max_offset)
    if queue_offset < min_offset:
        return GetResult(GetStatus.OFFSET_TOO_SMALL, min_offset, min_offset, max_offset)
    if queue_offset == max_offset:
        return GetResult(GetStatus.OFFSET_OVERFLOW_ONE, queue_offset, min_offset, max_offset)
    if queue_offset > max_offset:
        return GetResult(GetStatus.OFFSET_OVERFLOW_BADLY, max_offset, min_offset, max_offset)
    max_msg_nums = max(1, min(max_msg_nums, limits.PULL_MSG_NUMS_MAX))
    scan_count = max(limits.PULL_CONSUMEQUEUE_SCAN_BYTES_MIN, max_msg_nums * ENTRY_SIZE) // ENTRY_SIZE
    entries = cq.entries(queue_offset, scan_count)
    if entries is None:
        return GetResult(GetStatus.OFFSET_FOUND_NULL, cq.next_file_offset(queue_offset),
                         min_offset, max_offset)
    min_phys = commitlog.min_phys_offset
    status = GetStatus.NO_MATCHED_MESSAGE
    records: list[memoryview] = []
    offsets: list[int] = []
    total_bytes = 0
    scanned = 0
    for phys, size, tags in ENTRY.iter_unpack(entries):
        if records:
            if len(records) >= max_msg_nums:
                break
            if committed_offset - phys > memory_window:          # cold data: smaller batches
                if (total_bytes + size > limits.PULL_TRANSFER_BYTES_MAX_ON_DISK
                        or len(records) >= limits.PULL_TRANSFER_COUNT_MAX_ON_DISK):
                    break
            elif (total_bytes + size > limits.PULL_TRANSFER_BYTES_MAX_IN_MEMORY
                  or len(records) >= limits.PULL_TRANSFER_COUNT_MAX_IN_MEMORY):
                break
        scanned += 1
        if (size == BLANK_ENTRY_SIZE_FIELD and phys == 0) or (
                tag_codes is not None and _int32(tags) not in tag_codes):
            if not records:
                status = GetStatus.NO_MATCHED_MESSAGE
            continue
        record = commitlog.read_record(phys, committed_offset) if phys >= min_phys else None
        if record is None or len(record) != size:
            if not records:
                status = GetStatus.MESSAGE_WAS_REMOVING
            continue
        if record_filter is not None and not record_filter(record):
            if not records:
                status = GetStatus.NO_MATCHED_MESSAGE
            continue
        records.append(record)
        offsets.append(queue_offset + scanned - 1)
        total_bytes += size
        status = GetStatus.FOUND
    return GetResult(status, queue_offset + scanned, min_offset, max_offset, records, offsets)


class FileStore:
    """api.MessageStore on disk. Construct (or `FileStore.open`) to recover and open for writing."""

    def __init__(self, config: StoreConfig, io: FileIO | None = None, clock: Clock = SYSTEM_CLOCK,
                 *, lock: StoreLock | None = None, recovery_progress: ProgressCallback | None = None) -> None:
        """`lock`: a StoreLock the caller already holds and keeps (the broker's supervisor holds
        one for its whole life, across reopenings); by default the store takes its own.
        `recovery_progress(done_bytes, total_bytes)`: see recovery.recover."""
        self.config = config
        self.io: FileIO = io if io is not None else RealFileIO()
        self.clock = clock
        root = config.store_path_root_dir
        self.root = root
        self.io.makedirs(root)
        self._owns_lock = lock is None
        if lock is None:
            lock = StoreLock(root)
            lock.acquire()
        assert lock.held, "FileStore needs the store lock held"
        self.lock = lock
        self.abort_marker = AbortMarker(root)
        self.commitlog = CommitLog(os.path.join(root, COMMITLOG_DIR), config.mapped_file_size_commitlog,
                                   self.io, max_message_size=config.max_message_size)
        self.cqs = ConsumeQueueSet(self.io, os.path.join(root, CONSUMEQUEUE_DIR),
                                   config.mapped_file_size_consumequeue)
        self.index: IndexService | None = None
        if config.message_index_enable:
            self.index = IndexService(os.path.join(root, INDEX_DIR), slot_count=config.max_hash_slot_num,
                                      entry_count=config.max_index_num, clock=clock, io=self.io)
        self.checkpoint: StoreCheckpoint | None = None
        self.delay_levels_ms = parse_delay_levels_ms(config.message_delay_level)
        self.retention = RetentionPolicy(config)
        self.disk_guard = DiskGuard(config)
        self._memory_window = memory_window_bytes()
        self._dispatched_store_timestamp = 0
        self._closed = False
        self._recovery_progress = recovery_progress
        try:
            self.recovery_report: RecoveryReport = self._recover()
            self._dispatched = self.commitlog.committed_offset
            self.abort_marker.create()
        except BaseException:
            self._release()
            raise

    def _recover(self) -> RecoveryReport:
        """Storage-format.md §7.3 order: checkpoint, index files, then store.recovery."""
        abnormal = self.abort_marker.present
        self.checkpoint = StoreCheckpoint(os.path.join(self.root, CHECKPOINT_FILE), io=self.io)
        checkpoint_min_ms: int | None = None
        if abnormal and self.checkpoint.valid:
            checkpoint_min_ms = self.checkpoint.min_timestamp()
        if self.index is not None:
            self.index.load()
            if abnormal:
                # Index files newer than the checkpoint may hold entries whose records were lost;
                # without a valid checkpoint every file goes and the index is rebuilt.
                stamp = self.checkpoint.index_msg_timestamp if self.checkpoint.valid else -1
                self.index.drop_files_newer_than(stamp)
        report = recover(self.commitlog, self.cqs, abnormal=abnormal,
                         check_crc=self.config.check_crc_on_recover,
                         checkpoint_min_ms=checkpoint_min_ms, index=self.index,
                         delay_levels_ms=self.delay_levels_ms, progress=self._recovery_progress)
        if self.index is not None:
            self.index.flush()
        self._write_checkpoint()
        return report

    @classmethod
    def open(cls, config: StoreConfig, io: FileIO | None = None, clock: Clock = SYSTEM_CLOCK, *,
             lock: StoreLock | None = None, recovery_progress: ProgressCallback | None = None) -> FileStore:
        """Recover the store under config.store_path_root_dir and open it for writing."""
        return cls(config, io, clock, lock=lock, recovery_progress=recovery_progress)

    def _write_checkpoint(self) -> None:
        """After recovery everything kept is on disk and dispatched: stamp it all."""
        cp = self.checkpoint
        assert cp is not None
        last = self.commitlog.last_store_timestamp
        self._dispatched_store_timestamp = last
        cp.physic_msg_timestamp = cp.logics_msg_timestamp = last
        if self.index is not None:
            cp.index_msg_timestamp = self.index.flushed_timestamp
        cp.flush()

    # --- writing -----------------------------------------------------------------------------

    def append(self, group: Sequence[PutRequest]) -> list[AppendResult]:
        self._check_open()
        self.disk_guard.check_writable()
        return self.commitlog.append(group, self.clock.now_ms())

    def prepare_next_file(self) -> bool:
        """Zero-fill the next CommitLog file ahead of time (call off the hot path)."""
        return self.commitlog.prepare_next_file()

    @property
    def committed_offset(self) -> int:
        return self.commitlog.committed_offset

    @property
    def flushed_offset(self) -> int:
        return self.commitlog.flushed_offset

    @property
    def dispatched_offset(self) -> int:
        return self._dispatched

    def flush(self) -> int:
        self._check_open()
        return self.commitlog.flush()

    def flush_consumequeues(self) -> None:
        """fdatasync the ConsumeQueues and the index, then write the checkpoint (the dispatcher's
        periodic "thorough" flush; the checkpoint only ever names data already on disk)."""
        self._check_open()
        dispatched_ts = self._dispatched_store_timestamp
        self.cqs.flush_all()
        if self.index is not None:
            self.index.flush()
        cp = self.checkpoint
        if cp is not None:
            cp.logics_msg_timestamp = max(cp.logics_msg_timestamp, dispatched_ts)
            cp.physic_msg_timestamp = max(cp.physic_msg_timestamp, self.commitlog.flushed_store_timestamp)
            if self.index is not None:
                cp.index_msg_timestamp = max(cp.index_msg_timestamp, self.index.flushed_timestamp)
            cp.flush()

    def dispatch(self) -> int:
        self._check_open()
        committed = self.commitlog.committed_offset
        if self._dispatched < committed:
            stats = dispatch_range(self.commitlog, self.cqs, self.index, self._dispatched, committed,
                                   delay_levels_ms=self.delay_levels_ms)
            assert stats.end_offset >= self._dispatched, "dispatch never goes backwards"
            self._dispatched = stats.end_offset
            if stats.last_store_timestamp:
                self._dispatched_store_timestamp = stats.last_store_timestamp
        return self._dispatched

    # --- reading -----------------------------------------------------------------------------

    def get_message(self, topic: str, queue_id: int, queue_offset: int, max_msg_nums: int,
                    tag_codes: frozenset[int] | None = None) -> GetResult:
        """Read dispatched messages (remoting-protocol.md §9.3 status table)."""
        return get_message(self.commitlog, self.cqs.get(topic, queue_id), queue_offset, max_msg_nums,
                           tag_codes, committed_offset=self.commitlog.committed_offset,
                           memory_window=self._memory_window)

    def read_record(self, phys_offset: int) -> bytes | None:
        view = self.commitlog.read_record(phys_offset)
        return bytes(view) if view is not None else None

    def read_record_view(self, phys_offset: int) -> memoryview | None:
        """Zero-copy variant of read_record (a view of the map)."""
        return self.commitlog.read_record(phys_offset)

    def max_queue_offset(self, topic: str, queue_id: int) -> int:
        cq = self.cqs.get(topic, queue_id)
        return cq.max_offset if cq is not None else 0

    def min_queue_offset(self, topic: str, queue_id: int) -> int:
        cq = self.cqs.get(topic, queue_id)
        return cq.min_offset if cq is not None else 0

    def search_offset_by_time(self, topic: str, queue_id: int, timestamp_ms: int) -> int:
        cq = self.cqs.get(topic, queue_id)
        if cq is None:
            return 0
        return cq.search_offset_by_time(timestamp_ms, self.commitlog.store_timestamp_at)

    def earliest_store_time(self, topic: str, queue_id: int) -> int:
        cq = self.cqs.get(topic, queue_id)
        if cq is None:
            return -1
        entry = cq.entry(cq.min_offset)
        if entry is None:
            return -1
        ts = self.commitlog.store_timestamp_at(entry[0])
        return ts if ts is not None else -1

    def query_by_key(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int
                     ) -> list[int]:
        if self.index is None:
            return []
        low, high = self.commitlog.min_phys_offset, self._dispatched
        return sorted(p for p in self.index.query(topic, key, max_num, begin_ms, end_ms)
                      if low <= p < high)

    def queues(self) -> dict[str, list[int]]:
        return self.cqs.queues()

    @property
    def min_phys_offset(self) -> int:
        return self.commitlog.min_phys_offset

    # --- retention ---------------------------------------------------------------------------

    def disk_usage_ratio(self) -> float:
        """Used share of the store's partition (statvfs); tests replace this method."""
        return disk_usage_ratio(self.root)

    def delete_expired_files(self, now_ms: int, *, force: bool = False) -> int:
        """Retention pass (RocketMQ's CleanCommitLogService; policy in store.retention).

        Deletes CommitLog files oldest first as RetentionPolicy plans, but never one holding
        data not yet flushed and dispatched; then the ConsumeQueue and index files below the
        new min offset. Updates the disk guard that makes append refuse writes.
        """
        self._check_open()
        files = self.commitlog.mfq.files
        listing = [(os.path.basename(mf.path), self.io.mtime_ms(mf.path), mf.file_size) for mf in files]
        limit = min(self._dispatched, self.commitlog.flushed_offset)

        def delete_file(name: str) -> bool:
            mfs = self.commitlog.mfq.files
            if len(mfs) < 2 or os.path.basename(mfs[0].path) != name or mfs[0].file_end > limit:
                return False
            return bool(self.commitlog.mfq.delete_first(1))

        if len(files) > 1 and files[0].file_end <= limit:
            # The queue entries of what goes must be on disk first: once the CommitLog file is
            # gone, a lost entry could not be rebuilt and its queue offsets would be reused.
            self.flush_consumequeues()
        deleted = apply_retention(self.retention, self.disk_guard, files=listing,
                                  delete_file=delete_file, now_ms=now_ms,
                                  usage_ratio=self.disk_usage_ratio(), local_hour=local_hour(now_ms),
                                  force=force)
        if deleted:
            log.info("retention: deleted %d CommitLog file(s); min offset now %d", len(deleted),
                     self.commitlog.min_phys_offset)
            self.cqs.delete_files_below(self.commitlog.min_phys_offset)
            if self.index is not None:
                self.index.delete_files_below(self.commitlog.min_phys_offset)
        return len(deleted)

    # --- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def close(self) -> None:
        """Flush everything, remove the abort marker (a clean stop), release the files."""
        if self._closed:
            return
        try:
            if self.commitlog.failed is None:
                self.dispatch()
                self.commitlog.flush()
                self.flush_consumequeues()
                self.abort_marker.remove()
        finally:
            self._closed = True
            self._release()

    def abandon(self) -> None:
        """Drop the store without any flush or marker removal (tests: what a kill -9 leaves)."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        closers = [self.commitlog.close, self.cqs.close]
        if self.index is not None:
            closers.append(self.index.close)
        if self.checkpoint is not None:
            closers.append(self.checkpoint.close)
        for closer in closers:
            try:
                closer()
            except OSError as exc:
                log.warning("closing store files: %s", exc)
        if self._owns_lock:
            self.lock.release()


class StoreReader:
    """Read-only access for worker processes: maps CommitLog and ConsumeQueue files read-only.

    The writer publishes the committed offset and the dispatcher each queue's max
    offset (control block); the reader never reads past either. Nothing here writes,
    locks or truncates.
    """

    def __init__(self, config: StoreConfig, io: FileIO | None = None) -> None:
        self.io: FileIO = io if io is not None else RealFileIO()
        root = config.store_path_root_dir
        self.commitlog = CommitLog(os.path.join(root, COMMITLOG_DIR), config.mapped_file_size_commitlog,
                                   self.io, max_message_size=config.max_message_size, writable=False)
        self.commitlog.load()
        self.cqs = ConsumeQueueSet(self.io, os.path.join(root, CONSUMEQUEUE_DIR),
                                   config.mapped_file_size_consumequeue, writable=False)
        self._memory_window = memory_window_bytes()
        # The dispatcher's index files, opened read-only on the first query.
        self.index: IndexService | None = None
        if config.message_index_enable:
            self.index = IndexService(os.path.join(root, INDEX_DIR), slot_count=config.max_hash_slot_num,
                                      entry_count=config.max_index_num, io=self.io, read_only=True)

    def get_message(self, topic: str, queue_id: int, queue_offset: int, max_msg_nums: int,
                    tag_codes: frozenset[int] | None, *, committed_offset: int, max_queue_offset: int,
                    record_filter: RecordFilter | None = None) -> GetResult:
        """FileStore.get_message, bounded by the published committed and max queue offsets."""
        cq = self.cqs.get(topic, queue_id)
        if cq is not None:
            files = self.commitlog.mfq.files
            if not files or files[-1].file_end < committed_offset:
                self.commitlog.mfq.refresh()
            cq.follow(max_queue_offset, self.commitlog.min_phys_offset)
        return get_message(self.commitlog, cq, queue_offset, max_msg_nums, tag_codes,
                           committed_offset=committed_offset, memory_window=self._memory_window,
                           record_filter=record_filter)

    def read_record(self, phys_offset: int, committed_offset: int) -> memoryview | None:
        return self.commitlog.read_record(phys_offset, committed_offset)

    def query_by_key(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int, *,
                     committed_offset: int | None = None) -> list[int]:
        """Phys offsets the index holds for topic#key with store time in [begin_ms, end_ms], sorted:
        at most min(max_num, 64), from the newest index files, all in [CommitLog min offset,
        committed_offset). Hash collisions are possible: the client re-checks keys."""
        index = self.index
        if index is None:
            return []
        index.refresh()                      # files the dispatcher created or retention deleted
        low = self.commitlog.min_phys_offset
        high = committed_offset if committed_offset is not None else 1 << 63
        return sorted(p for p in index.query(topic, key, max_num, begin_ms, end_ms) if low <= p < high)

    def index_last_update(self) -> tuple[int, int]:
        """(endTimestamp, endPhyOffset) of the newest index file (QUERY_MESSAGE's header)."""
        return self.index.last_update() if self.index is not None else (0, 0)

    def refresh(self) -> None:
        """Drop maps of files the writer deleted (retention) and see new ones."""
        self.commitlog.mfq.refresh()
        for cq in self.cqs:
            cq.mfq.refresh()

    def close(self) -> None:
        self.commitlog.close()
        self.cqs.close()
        if self.index is not None:
            self.index.close()
