"""ConsumeQueues: per (topic, queue id), fixed 20-byte entries pointing into the CommitLog (§4).

Entry n (queue offset n) is at byte 20·n of the queue's MappedFileQueue::

    +0  phys_offset  int64   CommitLog offset of the record
    +8  size         int32   record TOTALSIZE
    +12 tags_code    int64   tag hash (or delivery time for SCHEDULE_TOPIC_XXXX)

Directory: consumequeue/<topic>/<queue id>/<20-digit name>. A queue first
created at a non-zero queue offset is pre-filled with blank entries (phys 0,
size 0x7FFFFFFF, tags 0) from the start of its first file.

The dispatcher is the only writer; it calls `put` per record and `commit` once
per batch, so a batch costs one pwrite per file. Readers construct the set with
writable=False and pass the dispatcher's published max offset as `limit_offset`.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator

from rocketpy import limits
from rocketpy.errors import StoreError
from rocketpy.store.io import FileIO
from rocketpy.store.mapped_file import MappedFileQueue

log = logging.getLogger("rocketpy.store")

ENTRY = struct.Struct(">qiq")
ENTRY_SIZE = limits.CONSUMEQUEUE_ENTRY_SIZE
assert ENTRY.size == ENTRY_SIZE
BLANK_ENTRY_SIZE_FIELD = 0x7FFFFFFF
BLANK_ENTRY = ENTRY.pack(0, BLANK_ENTRY_SIZE_FIELD, 0)
# How far back from a queue's end tail validation looks for the last entry that agrees with the
# CommitLog: a crash tears at most the last pwrite of a queue, which is one dispatch batch.
TAIL_CHECK_ENTRIES_MAX = limits.CONSUMEQUEUE_TAIL_CHECK_ENTRIES_MAX

# (topic, queue id, queue offset, phys offset, size, tags code) -> True when the entry agrees with
# the CommitLog record it points at (store.recovery.consumequeue_entry_check builds one).
EntryCheck = Callable[[str, int, int, int, int, int], bool]


def is_blank_entry(phys_offset: int, size: int) -> bool:
    return phys_offset == 0 and size == BLANK_ENTRY_SIZE_FIELD


class ConsumeQueue:
    """One (topic, queue id) queue (RocketMQ's ConsumeQueue)."""

    def __init__(self, io: FileIO, dir_path: str, topic: str, queue_id: int, file_size: int, *,
                 writable: bool = True) -> None:
        assert file_size % ENTRY_SIZE == 0
        self.topic = topic
        self.queue_id = queue_id
        self.file_size = file_size
        self.writable = writable
        self.mfq = MappedFileQueue(io, dir_path, file_size, writable=writable)
        self.write_pos = 0            # byte position after the last committed entry
        self.flushed_pos = 0
        self.min_offset = 0           # lowest readable queue offset
        self.max_phys = 0             # phys + size of the last real entry
        self.pending = bytearray()    # entries put but not yet committed
        self.gap_entries = 0
        self._min_key: tuple[int, int, bool] | None = None

    # --- load -----------------------------------------------------------------------------

    def load(self, *, thorough: bool = True) -> int:
        """Open the files and, in writer mode, find the end; returns entries dropped as torn.

        thorough=False (clean stop before) does not read whole files looking for stray bytes.
        """
        self.mfq.load()
        if not self.mfq.files:
            return 0
        self.min_offset = self.mfq.min_offset // ENTRY_SIZE
        if not self.writable:
            return 0
        files = self.mfq.files
        # Trailing files whose first entry is empty hold nothing: a crash lost what was written
        # there. Count the third-last file from the last one with data, so a lost tail in an
        # earlier file is not skipped over.
        last_with_data = len(files) - 1
        while last_with_data > 0:
            phys, size, _ = ENTRY.unpack_from(files[last_with_data].view(), 0)
            if phys >= 0 and size > 0:
                break
            last_with_data -= 1
        start_idx = max(0, last_with_data + 1 - limits.RECOVERY_TAIL_FILE_COUNT)
        end = files[start_idx].file_start
        max_phys = 0
        for mf in files[start_idx:]:
            done = False
            for phys, size, _tags in ENTRY.iter_unpack(mf.view()):
                if phys < 0 or size <= 0:
                    done = True
                    break
                end += ENTRY_SIZE
                if not is_blank_entry(phys, size):
                    max_phys = phys + size
            if done:
                break
        removed, _deleted = self.mfq.truncate_dirty(end, thorough=thorough)
        if thorough:
            # After a crash, entries written before it may sit only in the page cache (kill -9):
            # recovery relies on them from here on, so they go to disk now.
            for mf in self.mfq.files:
                mf.sync()
        self.write_pos = self.flushed_pos = end
        self.max_phys = max_phys
        return (removed + ENTRY_SIZE - 1) // ENTRY_SIZE

    # --- offsets ----------------------------------------------------------------------------

    @property
    def max_offset(self) -> int:
        """Next queue offset to be written (committed entries only)."""
        return self.write_pos // ENTRY_SIZE

    def _read_entry(self, queue_offset: int) -> tuple[int, int, int] | None:
        view = self.mfq.read(queue_offset * ENTRY_SIZE, ENTRY_SIZE, self.write_pos)
        if view is None:
            return None
        phys, size, tags = ENTRY.unpack(view)
        return phys, size, tags

    def entry(self, queue_offset: int) -> tuple[int, int, int] | None:
        """(phys_offset, size, tags_code) of one committed entry, or None."""
        if queue_offset < self.min_offset:
            return None
        return self._read_entry(queue_offset)

    def entries(self, queue_offset: int, max_count: int, limit_offset: int | None = None
                ) -> memoryview | None:
        """Up to max_count entries from queue_offset as a view, never past the file or limit.

        None when the file holding queue_offset is gone (or queue_offset is at/past the limit).
        """
        limit = self.max_offset if limit_offset is None else limit_offset
        count = min(max_count, limit - queue_offset)
        if count <= 0 or queue_offset < 0:
            return None
        pos = queue_offset * ENTRY_SIZE
        mf = self.mfq.find(pos)
        if mf is None:
            return None
        count = min(count, (mf.file_end - pos) // ENTRY_SIZE)
        return mf.read(pos - mf.file_start, count * ENTRY_SIZE)

    def follow(self, max_offset: int, commitlog_min_phys: int) -> None:
        """Reader mode: adopt the dispatcher's published max offset, see its new or deleted files
        and keep min_offset corrected against the CommitLog's first file."""
        assert not self.writable, "the dispatcher owns a writable queue's end"
        files = self.mfq.files
        if max_offset > 0 and (not files or files[-1].file_end < max_offset * ENTRY_SIZE
                               or self._first_offset() > self.min_offset):
            self.mfq.refresh()
        self.write_pos = max_offset * ENTRY_SIZE
        key = (commitlog_min_phys, self.mfq.min_offset, bool(self.mfq.files))
        if key != self._min_key and self.mfq.files and max_offset > 0:
            self._min_key = key
            self.min_offset = self._bisect_phys(commitlog_min_phys, blanks_low=True)

    def next_file_offset(self, queue_offset: int) -> int:
        """Queue offset at the start of the file after the one holding queue_offset."""
        pos = queue_offset * ENTRY_SIZE
        return (pos - pos % self.file_size + self.file_size) // ENTRY_SIZE

    # --- write ------------------------------------------------------------------------------

    def put(self, queue_offset: int, phys_offset: int, size: int, tags_code: int) -> bool:
        """Stage one entry; False when it is already present (re-dispatch after recovery)."""
        assert self.writable
        pos = queue_offset * ENTRY_SIZE
        expected = self.write_pos + len(self.pending)
        if pos < expected:
            return False
        if pos > expected:
            if not self.mfq.files and not self.pending and self.write_pos == 0:
                # First entry of a queue whose earlier entries are gone: pre-fill its first file.
                file_start = pos - pos % self.file_size
                self.write_pos = self.flushed_pos = file_start
                self.pending += BLANK_ENTRY * ((pos - file_start) // ENTRY_SIZE)
                self.min_offset = queue_offset
            else:
                gap = (pos - expected) // ENTRY_SIZE
                log.error("consume queue %s-%d: gap of %d entries before offset %d (expected %d); "
                          "filling with blank entries", self.topic, self.queue_id, gap, queue_offset,
                          expected // ENTRY_SIZE)
                self.pending += BLANK_ENTRY * gap
                self.gap_entries += gap
        assert phys_offset >= self.max_phys, "entries follow CommitLog order"
        self.pending += ENTRY.pack(phys_offset, size, tags_code)
        self.max_phys = phys_offset + size
        return True

    def commit(self) -> None:
        """Write the staged entries: one pwrite per file."""
        pending = self.pending
        if not pending:
            return
        view = memoryview(pending)
        done = 0
        try:
            while done < len(view):
                pos = self.write_pos
                mf = self.mfq.file_for_write(pos)
                n = min(len(view) - done, mf.file_end - pos)
                mf.write(pos - mf.file_start, view[done:done + n])
                done += n
                self.write_pos = pos + n
        except OSError as exc:
            raise StoreError(f"consume queue {self.topic}-{self.queue_id}: write failed: {exc}") from exc
        finally:
            view.release()
            del pending[:done]

    def flush(self) -> None:
        if self.write_pos > self.flushed_pos:
            try:
                self.mfq.sync_range(self.flushed_pos, self.write_pos)
            except OSError as exc:
                raise StoreError(f"consume queue {self.topic}-{self.queue_id}: fdatasync failed: {exc}"
                                 ) from exc
            self.flushed_pos = self.write_pos

    # --- search and recovery -------------------------------------------------------------

    def _first_offset(self) -> int:
        return self.mfq.min_offset // ENTRY_SIZE

    def _bisect_phys(self, phys: int, *, blanks_low: bool) -> int:
        """First queue offset whose entry has phys_offset >= phys (blank entries sort lowest)."""
        lo, hi = self._first_offset(), self.max_offset
        while lo < hi:
            mid = (lo + hi) // 2
            entry = self._read_entry(mid)
            assert entry is not None
            p, size, _ = entry
            if blanks_low and is_blank_entry(p, size):
                p = -1
            if p >= phys:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def truncate_phys_at(self, phys_end: int) -> int:
        """Drop entries pointing at or after phys_end (recovery); returns how many."""
        assert self.writable and not self.pending
        if not self.mfq.files or self.max_offset == 0:
            return 0
        return self.truncate_to_offset(self._bisect_phys(phys_end, blanks_low=True))

    def truncate_to_offset(self, queue_offset: int) -> int:
        """Drop the entries at and after queue_offset (zeroed on disk, synced); returns how many.

        Only the owner of a writable queue calls this (recovery, the dispatcher's setup).
        max_phys becomes the end of the last kept entry's record (0 if that entry is blank).
        """
        assert self.writable and not self.pending
        if not self.mfq.files:
            return 0
        new_end = max(queue_offset, self._first_offset())
        removed = self.max_offset - new_end
        if removed <= 0:
            return 0
        self.mfq.truncate_dirty(new_end * ENTRY_SIZE)
        self.write_pos = self.flushed_pos = new_end * ENTRY_SIZE
        self.min_offset = min(self.min_offset, new_end)
        last = self._read_entry(new_end - 1) if new_end > self._first_offset() else None
        self.max_phys = last[0] + last[1] if last is not None and not is_blank_entry(last[0], last[1]) else 0
        return removed

    def validate_tail(self, check: EntryCheck, max_entries: int = TAIL_CHECK_ENTRIES_MAX) -> int:
        """Drop tail entries that disagree with the CommitLog (a torn write); returns how many.

        `load` keeps every entry with phys >= 0 and size > 0, so an entry torn mid-write (a
        crash, a kill -9 of the dispatcher) can survive with a wrong size, phys or tags code.
        Walks back from the end, at most max_entries, while an entry is invalid: it points
        below the end of the real entry before it (entries follow CommitLog order) or `check`
        rejects it. A blank entry ends the walk (it points at nothing). The caller must then
        dispatch again from `max_phys` (the end of the last entry kept) at the latest.
        """
        assert self.writable and not self.pending
        if not self.mfq.files:
            return 0
        end = self.max_offset
        first = self._first_offset()
        floor = max(first, end - max_entries)
        new_end = end
        while new_end > floor:
            n = new_end - 1
            entry = self._read_entry(n)
            assert entry is not None
            phys, size, tags = entry
            if is_blank_entry(phys, size):
                break
            prev = self._read_entry(n - 1) if n > first else None
            out_of_order = prev is not None and not is_blank_entry(prev[0], prev[1]) \
                and phys < prev[0] + prev[1]
            if not out_of_order and check(self.topic, self.queue_id, n, phys, size, tags):
                break
            new_end = n
        if new_end == end:
            return 0
        removed = self.truncate_to_offset(new_end)
        if new_end == floor and floor > first:
            # The entry now last was not checked: its end need not be a record boundary, so
            # dispatch must start from the CommitLog's first file (max_phys 0) to rebuild.
            log.error("consume queue %s-%d: the last %d entries all disagree with the CommitLog; "
                      "dropped them, earlier entries are kept unchecked", self.topic, self.queue_id,
                      removed)
            self.max_phys = 0
        log.warning("consume queue %s-%d: %d tail entr%s from offset %d disagree%s with the CommitLog "
                    "(torn write); dropped, to be dispatched again from phys %d", self.topic,
                    self.queue_id, removed, "y" if removed == 1 else "ies", new_end,
                    "s" if removed == 1 else "", self.max_phys)
        return removed

    def correct_min_offset(self, commitlog_min_phys: int) -> int:
        """min offset = first entry pointing at or after the CommitLog's min offset."""
        if not self.mfq.files:
            self.min_offset = self.max_offset
        else:
            self.min_offset = self._bisect_phys(commitlog_min_phys, blanks_low=True)
        return self.min_offset

    def search_offset_by_time(self, timestamp_ms: int, store_time_of: Callable[[int], int | None]
                              ) -> int:
        """Queue offset of the message stored at timestamp_ms, else the nearer neighbour (ties: the
        earlier one); 0 when the queue is empty (remoting-protocol.md §9.10)."""
        lo, hi = self.min_offset, self.max_offset - 1
        if hi < lo:
            return 0
        exact: int | None = None
        left: tuple[int, int] | None = None
        right: tuple[int, int] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            entry = self._read_entry(mid)
            ts = store_time_of(entry[0]) if entry is not None else None
            if ts is None:
                lo = mid + 1
                continue
            if ts == timestamp_ms:
                exact = mid
                hi = mid - 1
            elif ts < timestamp_ms:
                left = (mid, ts)
                lo = mid + 1
            else:
                right = (mid, ts)
                hi = mid - 1
        if exact is not None:
            return exact
        if left is not None and right is not None:
            return left[0] if timestamp_ms - left[1] <= right[1] - timestamp_ms else right[0]
        if left is not None:
            return left[0]
        if right is not None:
            return right[0]
        return 0

    def delete_files_below(self, commitlog_min_phys: int) -> list[str]:
        """Delete files whose last entry points below the CommitLog min offset (never the last)."""
        count = 0
        for mf in self.mfq.files[:-1]:
            last_pos = mf.file_end - ENTRY_SIZE
            if last_pos >= self.write_pos:
                break
            phys, _size, _ = ENTRY.unpack(mf.read(mf.file_size - ENTRY_SIZE, ENTRY_SIZE))
            if phys >= commitlog_min_phys:
                break
            count += 1
        deleted = self.mfq.delete_first(count)
        if deleted:
            self.min_offset = max(self.min_offset, self._first_offset())
        return deleted

    def close(self) -> None:
        self.mfq.close()


class ConsumeQueueSet:
    """All ConsumeQueues under consumequeue/, loaded lazily in reader mode."""

    def __init__(self, io: FileIO, root_dir: str, file_size: int, *, writable: bool = True) -> None:
        self.io = io
        self.root_dir = root_dir
        self.file_size = file_size
        self.writable = writable
        self._queues: dict[tuple[str, int], ConsumeQueue] = {}

    def _dir(self, topic: str, queue_id: int) -> str:
        return os.path.join(self.root_dir, topic, str(queue_id))

    def load(self, *, thorough: bool = True) -> int:
        """Writer: open every queue on disk and find each end; returns torn entries dropped."""
        if not self.io.exists(self.root_dir):
            if self.writable:
                self.io.makedirs(self.root_dir)
            return 0
        dropped = 0
        for topic in sorted(self.io.listdir(self.root_dir)):
            topic_dir = os.path.join(self.root_dir, topic)
            try:
                qids = self.io.listdir(topic_dir)
            except NotADirectoryError:
                continue
            for qid_name in qids:
                if not qid_name.isdigit():
                    continue
                cq = self._open(topic, int(qid_name))
                dropped += cq.load(thorough=thorough)
        return dropped

    def _open(self, topic: str, queue_id: int) -> ConsumeQueue:
        cq = ConsumeQueue(self.io, self._dir(topic, queue_id), topic, queue_id, self.file_size,
                          writable=self.writable)
        self._queues[(topic, queue_id)] = cq
        return cq

    def get(self, topic: str, queue_id: int) -> ConsumeQueue | None:
        cq = self._queues.get((topic, queue_id))
        if cq is None and not self.writable and self.io.exists(self._dir(topic, queue_id)):
            cq = self._open(topic, queue_id)
            cq.load()
        return cq

    def get_or_create(self, topic: str, queue_id: int) -> ConsumeQueue:
        cq = self._queues.get((topic, queue_id))
        if cq is None:
            assert self.writable
            cq = self._open(topic, queue_id)
            cq.load()
        return cq

    def __iter__(self) -> Iterator[ConsumeQueue]:
        return iter(list(self._queues.values()))

    def queues(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic, qid in sorted(self._queues):
            out.setdefault(topic, []).append(qid)
        return out

    def commit_all(self) -> None:
        for cq in self._queues.values():
            if cq.pending:
                cq.commit()

    def flush_all(self) -> None:
        for cq in self._queues.values():
            cq.flush()

    def max_phys_covered(self) -> int:
        return max((cq.max_phys for cq in self._queues.values()), default=0)

    def truncate_phys_at(self, phys_end: int) -> int:
        return sum(cq.truncate_phys_at(phys_end) for cq in self._queues.values())

    def validate_tails(self, check: EntryCheck) -> tuple[int, int | None]:
        """Drop every queue's torn tail entries (ConsumeQueue.validate_tail).

        Returns (entries dropped, lowest phys offset dispatch must resume from to rebuild them:
        the min over the queues that dropped entries of the end of their last kept entry, or
        None when nothing was dropped). Resuming lower is harmless: present entries are skipped.
        """
        dropped = 0
        resume: int | None = None
        for cq in self._queues.values():
            n = cq.validate_tail(check)
            if n:
                dropped += n
                resume = cq.max_phys if resume is None else min(resume, cq.max_phys)
        return dropped, resume

    def correct_min_offsets(self, commitlog_min_phys: int) -> None:
        for cq in self._queues.values():
            cq.correct_min_offset(commitlog_min_phys)

    def delete_files_below(self, commitlog_min_phys: int) -> list[str]:
        deleted: list[str] = []
        for cq in self._queues.values():
            deleted += cq.delete_files_below(commitlog_min_phys)
            cq.correct_min_offset(commitlog_min_phys)
        return deleted

    def drop_empty(self) -> list[tuple[str, int]]:
        """Delete queues left with no entries at all (recovery cut every entry they had):
        a queue whose messages were lost in a crash does not linger as an empty queue."""
        dropped: list[tuple[str, int]] = []
        for key, cq in list(self._queues.items()):
            if cq.max_offset != 0 or cq.pending:
                continue
            cq.mfq.delete_all()
            cq.close()
            del self._queues[key]
            for path in (self._dir(*key), os.path.join(self.root_dir, key[0])):
                try:
                    if not self.io.listdir(path):
                        self.io.rmdir(path)
                except OSError:
                    break
            dropped.append(key)
        if dropped:
            self.io.fsync_dir(self.root_dir)
        return dropped

    def destroy_all(self) -> int:
        """Delete every queue (the CommitLog is empty); returns files deleted."""
        count = 0
        for cq in self._queues.values():
            count += len(cq.mfq.delete_all())
            cq.close()
        self._queues.clear()
        return count

    def close(self) -> None:
        for cq in self._queues.values():
            cq.close()
        self._queues.clear()
