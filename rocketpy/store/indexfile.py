"""IndexFile and IndexService: the key -> phys offset hash index (RocketMQ's IndexFile/IndexService).

One file (storage-format.md §5), named yyyyMMddHHmmssSSS by local creation time::

    +0                      header, 40 bytes
        +0  beginTimestamp  int64   store time of the first entry
        +8  endTimestamp    int64   store time of the last entry
        +16 beginPhyOffset  int64
        +24 endPhyOffset    int64   phys offset of the last indexed record (its start)
        +32 hashSlotCount   int32   slots in use
        +36 indexCount      int32   next entry number; starts at 1 (entry 0 unused)
    +40                     slot table: slot_count x int32 (latest entry number, 0 = empty)
    +40 + slots*4           entries: entry_count x 20 bytes
        +0  keyHash   int32     |JavaStringHashCode(key)|
        +4  phys      int64
        +12 timeDiff  int32     (storeTimestamp - beginTimestamp) // 1000, seconds
        +16 prev      int32     previous entry number in the same slot chain (0 = end)

Keys are "<topic>#<UNIQ_KEY>" and "<topic>#<word>" for each KEYS word. Writes go
through the FileIO seam with pwrite (entry first, then slot, then header, so a
reader following a slot always finds a written entry); reads use pread.
"""

from __future__ import annotations

import datetime
import logging
import os
import struct
from collections.abc import Sequence

from rocketpy import limits
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.protocol.message import TRANSACTION_ROLLBACK, index_key_hash, transaction_type
from rocketpy.store.io import FileIO, RealFileIO, write_all

log = logging.getLogger("rocketpy.store")

HEADER = struct.Struct(">qqqqii")
SLOT = struct.Struct(">i")
ENTRY = struct.Struct(">iqii")
HEADER_SIZE = HEADER.size
SLOT_SIZE = SLOT.size
ENTRY_SIZE = ENTRY.size
INDEX_FILE_NAME_LENGTH = 17
INT32_MAX = (1 << 31) - 1
assert HEADER_SIZE == 40 and ENTRY_SIZE == 20


def index_file_size(slot_count: int, entry_count: int) -> int:
    return HEADER_SIZE + slot_count * SLOT_SIZE + entry_count * ENTRY_SIZE


def index_file_name(now_ms: int) -> str:
    """yyyyMMddHHmmssSSS in local time (RocketMQ's UtilAll.timeMillisToHumanString)."""
    dt = datetime.datetime.fromtimestamp(now_ms / 1000)
    return dt.strftime("%Y%m%d%H%M%S") + f"{now_ms % 1000:03d}"


def index_file_name_ms(name: str) -> int:
    dt = datetime.datetime.strptime(name[:14], "%Y%m%d%H%M%S")
    return int(dt.timestamp()) * 1000 + int(name[14:17])


def build_key(topic: str, key: str) -> str:
    return f"{topic}#{key}"


class IndexFile:
    """One index file. Use `IndexFile.create(...)` / `IndexFile.open(...)`, then
    `put_key(key, phys, store_ts) -> bool` (False when full) and
    `select(key, max_num, begin_ms, end_ms, out)`; `flush()`, `close()`, `destroy()`."""

    def __init__(self, path: str, fd: int, io: FileIO, slot_count: int, entry_count: int,
                 header: tuple[int, int, int, int, int, int]) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self._fd = fd
        self._io = io
        self.slot_count = slot_count
        self.entry_count = entry_count
        (self.begin_timestamp, self.end_timestamp, self.begin_phys_offset, self.end_phys_offset,
         self.hash_slot_count, self.index_count) = header
        self._entries_pos = HEADER_SIZE + slot_count * SLOT_SIZE

    @classmethod
    def create(cls, path: str, io: FileIO, slot_count: int, entry_count: int, *,
               prev_end_timestamp: int = 0, prev_end_phys_offset: int = 0) -> IndexFile:
        """A new zero-filled file whose begin/end fields start at the previous file's end values."""
        fd = io.open(path, create=True, size=index_file_size(slot_count, entry_count))
        f = cls(path, fd, io, slot_count, entry_count,
                (prev_end_timestamp, prev_end_timestamp, prev_end_phys_offset, prev_end_phys_offset, 0, 1))
        f._write_header()
        return f

    @classmethod
    def open(cls, path: str, io: FileIO, slot_count: int, entry_count: int) -> IndexFile | None:
        """Open an existing file; None (file closed) when its size or header make no sense."""
        fd = io.open(path, writable=True)
        size = io.file_size(fd)
        header = HEADER.unpack(io.pread(fd, HEADER_SIZE, 0)) if size >= HEADER_SIZE else None
        if (size != index_file_size(slot_count, entry_count) or header is None
                or not 1 <= header[5] <= entry_count or not 0 <= header[4] <= slot_count):
            io.close(fd)
            return None
        return cls(path, fd, io, slot_count, entry_count, header)

    @property
    def is_full(self) -> bool:
        return self.index_count >= self.entry_count

    def _write_header(self) -> None:
        write_all(self._io, self._fd, HEADER.pack(
            self.begin_timestamp, self.end_timestamp, self.begin_phys_offset, self.end_phys_offset,
            self.hash_slot_count, self.index_count), 0)

    def _read_slot(self, slot: int) -> int:
        return int(SLOT.unpack(self._io.pread(self._fd, SLOT_SIZE, HEADER_SIZE + slot * SLOT_SIZE))[0])

    def _read_entry(self, n: int) -> tuple[int, int, int, int]:
        raw = self._io.pread(self._fd, ENTRY_SIZE, self._entries_pos + n * ENTRY_SIZE)
        if len(raw) != ENTRY_SIZE:
            return (0, 0, -1, 0)
        key_hash, phys, time_diff, prev = ENTRY.unpack(raw)
        return int(key_hash), int(phys), int(time_diff), int(prev)

    def put_key(self, key: str, phys_offset: int, store_timestamp: int) -> bool:
        """Add one entry; False when the file is full (roll to a new one)."""
        if self.is_full:
            return False
        key_hash = index_key_hash(key)
        slot = key_hash % self.slot_count
        slot_value = self._read_slot(slot)
        if slot_value <= 0 or slot_value > self.index_count:
            slot_value = 0
        if self.index_count <= 1:
            self.begin_timestamp = store_timestamp
            self.begin_phys_offset = phys_offset
            time_diff = 0
        else:
            time_diff = min(max((store_timestamp - self.begin_timestamp) // 1000, 0), INT32_MAX)
        n = self.index_count
        write_all(self._io, self._fd, ENTRY.pack(key_hash, phys_offset, time_diff, slot_value),
                  self._entries_pos + n * ENTRY_SIZE)
        write_all(self._io, self._fd, SLOT.pack(n), HEADER_SIZE + slot * SLOT_SIZE)
        if slot_value == 0:
            self.hash_slot_count += 1
        self.index_count += 1
        self.end_phys_offset = phys_offset
        self.end_timestamp = store_timestamp
        self._write_header()
        return True

    def time_matched(self, begin_ms: int, end_ms: int) -> bool:
        return ((begin_ms < self.begin_timestamp and end_ms > self.end_timestamp)
                or self.begin_timestamp <= begin_ms <= self.end_timestamp
                or self.begin_timestamp <= end_ms <= self.end_timestamp)

    def select(self, key: str, max_num: int, begin_ms: int, end_ms: int, out: list[int]) -> None:
        """Append phys offsets of entries for key with time in [begin_ms, end_ms] to out.

        Walks the slot chain newest first; stops at prev 0, an invalid prev (not
        below the current entry, which also rules out loops) or an entry older than begin_ms.
        """
        key_hash = index_key_hash(key)
        n = self._read_slot(key_hash % self.slot_count)
        if n <= 0 or n >= self.index_count or self.index_count <= 1:
            return
        while len(out) < max_num:
            key_hash_read, phys, time_diff, prev = self._read_entry(n)
            if time_diff < 0:
                break
            time_read = self.begin_timestamp + time_diff * 1000
            if key_hash_read == key_hash and begin_ms <= time_read <= end_ms:
                out.append(phys)
            if prev <= 0 or prev >= n or time_read < begin_ms:
                break
            n = prev

    def truncate_after(self, phys_offset: int) -> int:
        """Forget entries with phys >= phys_offset (entries are in phys order, so a suffix).

        Slots pointing into the dropped suffix are walked back to their first kept
        entry. Returns how many entries were dropped.
        """
        lo, hi = 1, self.index_count
        while lo < hi:                      # first entry with phys >= phys_offset
            mid = (lo + hi) // 2
            if self._read_entry(mid)[1] >= phys_offset:
                hi = mid
            else:
                lo = mid + 1
        keep = lo
        dropped = self.index_count - keep
        if dropped <= 0:
            return 0
        table = bytearray(self._io.pread(self._fd, self.slot_count * SLOT_SIZE, HEADER_SIZE))
        used = 0
        for slot in range(self.slot_count):
            n = SLOT.unpack_from(table, slot * SLOT_SIZE)[0]
            guard = 0
            while n >= keep and guard < self.entry_count:
                prev = self._read_entry(n)[3]
                n = prev if 0 < prev < n else 0
                guard += 1
            if n < 0 or n >= self.index_count:
                n = 0
            SLOT.pack_into(table, slot * SLOT_SIZE, n)
            used += n > 0
        write_all(self._io, self._fd, table, HEADER_SIZE)
        self.index_count = keep
        self.hash_slot_count = used
        if keep <= 1:
            self.end_timestamp, self.end_phys_offset = self.begin_timestamp, self.begin_phys_offset
        else:
            _, phys, time_diff, _ = self._read_entry(keep - 1)
            self.end_phys_offset = phys
            self.end_timestamp = self.begin_timestamp + max(time_diff, 0) * 1000
        self._write_header()
        return dropped

    def flush(self) -> None:
        self._io.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._io.close(fd)

    def destroy(self) -> None:
        self.close()
        self._io.unlink(self.path)


class IndexService:
    """All index files of a store (RocketMQ's IndexService); one writer (the dispatcher).

    Usage::

        index = IndexService(root + "/index", slot_count=..., entry_count=..., clock=clock, io=io)
        index.load()                                  # open existing files (oldest first)
        index.drop_files_newer_than(checkpoint.index_msg_timestamp)   # abnormal recovery only
        index.truncate_after(commitlog_end)           # recovery: forget entries past the log end
        index.put_keys(topic, keys_str, uniq_key, phys, store_ts, sys_flag=0)   # dispatch
        index.query(topic, key, max_num, begin_ms, end_ms) -> [phys, ...]  # newest first, unsorted
        index.flush() -> index timestamp for the checkpoint; index.delete_files_below(min_phys)

    `max_phys_offset` is the phys offset of the last indexed record: records
    below it are skipped on re-dispatch (the record at it is re-indexed, as in RocketMQ).
    `add(...)` is the same as put_keys with KEYS already split (store.recovery.IndexSink).
    """

    def __init__(self, dir_path: str, *, slot_count: int = limits.INDEX_HASH_SLOT_COUNT_DEFAULT,
                 entry_count: int = limits.INDEX_ENTRY_COUNT_DEFAULT, clock: Clock = SYSTEM_CLOCK,
                 io: FileIO | None = None) -> None:
        assert slot_count > 0 and entry_count > 1
        self.dir_path = dir_path
        self.slot_count = slot_count
        self.entry_count = entry_count
        self.clock = clock
        self.io: FileIO = io if io is not None else RealFileIO()
        self.files: list[IndexFile] = []
        # endTimestamp of the newest index file known to be on disk (checkpoint's indexMsgTimestamp)
        self.flushed_timestamp = 0
        self.io.makedirs(dir_path)

    # --- lifecycle -------------------------------------------------------------------------

    def load(self) -> list[str]:
        """Open every index file (oldest first); returns names of unusable files it deleted."""
        self.close()
        deleted: list[str] = []
        for name in sorted(self.io.listdir(self.dir_path)):
            if len(name) != INDEX_FILE_NAME_LENGTH or not name.isdigit():
                continue
            path = os.path.join(self.dir_path, name)
            f = IndexFile.open(path, self.io, self.slot_count, self.entry_count)
            if f is None:
                log.warning("index: %s has a wrong size or header for %d slots / %d entries; deleted "
                            "(index data is derived, queries for its keys may miss)",
                            path, self.slot_count, self.entry_count)
                self.io.unlink(path)
                deleted.append(name)
                continue
            self.files.append(f)
        return deleted

    def drop_files_newer_than(self, index_msg_timestamp: int) -> list[str]:
        """Abnormal recovery: delete files whose endTimestamp > the checkpoint's index timestamp."""
        kept: list[IndexFile] = []
        deleted: list[str] = []
        for f in self.files:
            if f.end_timestamp > index_msg_timestamp:
                f.destroy()
                deleted.append(f.name)
            else:
                kept.append(f)
        self.files = kept
        return deleted

    def truncate_after(self, phys_offset: int) -> None:
        """Forget entries pointing at or after phys_offset: files that begin there are deleted,
        the file that straddles it keeps only its entries below it."""
        while self.files and self.files[-1].begin_phys_offset >= phys_offset:
            f = self.files.pop()
            log.info("index: deleting %s (begins at phys %d >= %d)", f.path, f.begin_phys_offset,
                     phys_offset)
            f.destroy()
        if self.files and self.files[-1].end_phys_offset >= phys_offset:
            dropped = self.files[-1].truncate_after(phys_offset)
            log.info("index: dropped %d entries at or after phys %d from %s", dropped, phys_offset,
                     self.files[-1].path)

    def close(self) -> None:
        """Close every file; an error closing one does not leave the others open."""
        first: OSError | None = None
        for f in self.files:
            try:
                f.close()
            except OSError as exc:
                first = first or exc
        self.files = []
        if first is not None:
            raise first

    # --- writing -----------------------------------------------------------------------------

    @property
    def max_phys_offset(self) -> int:
        return self.files[-1].end_phys_offset if self.files else 0

    @property
    def last_update_timestamp(self) -> int:
        return self.files[-1].end_timestamp if self.files else 0

    def _new_file(self) -> IndexFile:
        now = self.clock.now_ms()
        prev = self.files[-1] if self.files else None
        if prev is not None:
            now = max(now, index_file_name_ms(prev.name) + 1)
        name = index_file_name(now)
        while prev is not None and name <= prev.name or self.io.exists(os.path.join(self.dir_path, name)):
            now += 1
            name = index_file_name(now)
        f = IndexFile.create(os.path.join(self.dir_path, name), self.io, self.slot_count,
                             self.entry_count,
                             prev_end_timestamp=prev.end_timestamp if prev else 0,
                             prev_end_phys_offset=prev.end_phys_offset if prev else 0)
        if prev is not None:
            prev.flush()                     # RocketMQ flushes the full file in the background
            self.flushed_timestamp = max(self.flushed_timestamp, prev.end_timestamp)
        self.files.append(f)
        return f

    def _put(self, key: str, phys_offset: int, store_timestamp: int) -> None:
        f = self.files[-1] if self.files and not self.files[-1].is_full else self._new_file()
        ok = f.put_key(key, phys_offset, store_timestamp)
        assert ok, "a fresh index file accepts a key"

    def put_keys(self, topic: str, keys_str: str | None, uniq_key: str | None, phys_offset: int,
                 store_timestamp: int, *, sys_flag: int = 0) -> int:
        """Index topic#UNIQ_KEY and topic#word for each KEYS word; returns entries written."""
        words = [w for w in keys_str.split(" ") if w] if keys_str else []
        if transaction_type(sys_flag) == TRANSACTION_ROLLBACK:
            return 0
        return self.add(topic, words, uniq_key, phys_offset, store_timestamp)

    def add(self, topic: str, keys: Sequence[str], uniq_key: str | None, phys_offset: int,
            store_timestamp: int) -> int:
        if self.files and phys_offset < self.files[-1].end_phys_offset:
            return 0                         # already indexed (re-dispatch)
        n = 0
        if uniq_key:
            self._put(build_key(topic, uniq_key), phys_offset, store_timestamp)
            n += 1
        for word in keys:
            if word:
                self._put(build_key(topic, word), phys_offset, store_timestamp)
                n += 1
        return n

    def flush(self) -> int:
        """fdatasync the newest file; returns the index timestamp the checkpoint may record."""
        if self.files:
            self.files[-1].flush()
            self.flushed_timestamp = max(self.flushed_timestamp, self.files[-1].end_timestamp)
        return self.flushed_timestamp

    # --- reading ------------------------------------------------------------------------------

    def query(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int) -> list[int]:
        """Phys offsets indexed under topic#key with store time in [begin_ms, end_ms].

        Newest files first, at most min(max_num, INDEX_QUERY_RESULTS_MAX), duplicates
        removed; hash collisions are possible, so the caller re-checks keys, and sorts.
        """
        max_num = max(0, min(max_num, limits.INDEX_QUERY_RESULTS_MAX))
        full_key = build_key(topic, key)
        out: list[int] = []
        for f in reversed(self.files):
            if len(out) >= max_num:
                break
            if f.time_matched(begin_ms, end_ms):
                f.select(full_key, max_num, begin_ms, end_ms, out)
            if f.begin_timestamp < begin_ms:
                break
        return list(dict.fromkeys(out))

    # --- retention ----------------------------------------------------------------------------

    def delete_files_below(self, phys_offset: int) -> list[str]:
        """Delete files whose endPhyOffset < phys_offset, oldest first, never the newest."""
        deleted: list[str] = []
        while len(self.files) > 1 and self.files[0].end_phys_offset < phys_offset:
            f = self.files.pop(0)
            f.destroy()
            deleted.append(f.name)
        return deleted
