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

Keys are "<topic>#<UNIQ_KEY>" and "<topic>#<word>" for each KEYS word.

Writing (one writer: the dispatcher, or the store during recovery). The writer keeps
the newest file's slot table and header in memory and puts keys into them at memory
speed; new entries go to an in-memory buffer. `flush_batch()` (end of every
dispatch_range, before the ConsumeQueues commit) then writes, through the FileIO
seam with pwrite and in this order:

1. the batch's entries - they are contiguous, so one pwrite;
2. the slots the batch changed (sorted, nearby ones coalesced into one pwrite);
3. the header.

So a reader (another process, pread) that finds a slot value finds that entry
complete, and one that finds a header finds every entry and slot it counts. A
writer killed between the steps leaves slots or entries past the header's
indexCount: the next writer repairs such slots when it opens the file (walks them
back along the entries' prev links, which were written first) and overwrites the
entries. Queries in the writing process see the unflushed batch too.

Reading (`IndexService(..., read_only=True)`, the broker's workers) never creates,
truncates or deletes: `refresh()` re-lists the directory, and every query re-reads
each file's header.
"""

from __future__ import annotations

import datetime
import logging
import os
import struct
import sys
from array import array
from collections.abc import Sequence

from rocketpy import limits
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.protocol.message import (
    TRANSACTION_ROLLBACK,
    index_key_hash,
    java_string_hash,
    transaction_type,
)
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

# flush_batch writes two changed slots with one pwrite when at most this many bytes lie between
# them (the bytes in between are rewritten with the values they already have: one writer).
SLOT_COALESCE_GAP_BYTES = 4096
_MASK32 = 0xFFFFFFFF
_KEY_PREFIX_CACHE_MAX = limits.INDEX_KEY_PREFIX_CACHE_MAX
_LONG_KEY_BYTES = 16            # keys this long hash their head through a cache (UNIQ_KEY: 32 hex)
_SWAP = sys.byteorder == "little"   # the in-memory slot table is native int32; the file big-endian
_entry_pack = ENTRY.pack


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


# --- key hashing -------------------------------------------------------------------------------
#
# Java's String.hashCode is the polynomial sum(c_i * 31^(n-1-i)) mod 2^32, so
#     hash("topic#" + key) = hash("topic#") * 31^len(key) + hash(key)   (mod 2^32)
# KeyHasher caches hash("topic#") per topic and 31^n. A short ASCII key is hashed byte by byte;
# a long one (>= 16 bytes) as hash(head) * 31^8 + tail, with hash(head) - all but the last 8
# bytes - cached: a producer's UNIQ_KEYs (32 hex digits) share their first 24 (address, pid,
# class loader hash, high half of the time) for about a minute. ascii_hash goes two bytes at a
# time (a 65536-entry table of c0*31 + c1 over the bytes read as native 16-bit units). Measured
# (bench, 2-core box under load): ~1.0 us for a UNIQ_KEY, ~0.75 us for an 11-char key, against
# ~3.8 us for java_string_hash of the whole "topic#key".

_POW31: list[int] = [1]
_PAIR_TABLE: list[int] = []


def _pow31(n: int) -> int:
    pows = _POW31
    while len(pows) <= n:
        pows.append(pows[-1] * 31 & _MASK32)
    return pows[n]


def _pair_table() -> list[int]:
    if not _PAIR_TABLE:
        if sys.byteorder == "little":
            _PAIR_TABLE.extend((u & 0xFF) * 31 + (u >> 8) for u in range(65536))
        else:
            _PAIR_TABLE.extend((u >> 8) * 31 + (u & 0xFF) for u in range(65536))
    return _PAIR_TABLE


def ascii_hash(data: bytes) -> int:
    """Java's String.hashCode of an ASCII string given as bytes, unsigned (mod 2^32)."""
    table = _PAIR_TABLE or _pair_table()
    if len(data) & 1:
        h = data[0]
        units = memoryview(data)[1:].cast("H")
    else:
        h = 0
        units = memoryview(data).cast("H")
    for u in units:
        h = h * 961 + table[u]
    return h & _MASK32


class KeyHasher:
    """index_key_hash(topic + "#" + key), fast; see the comment above."""

    __slots__ = ("_topics", "_heads")

    def __init__(self) -> None:
        self._topics: dict[str, int] = {}
        self._heads: dict[bytes, int] = {}

    def __call__(self, topic: str, key: str) -> int:
        """The IndexFile keyHash of "<topic>#<key>" (index_key_hash)."""
        prefix = self._topics.get(topic)
        if prefix is None:
            if len(self._topics) >= _KEY_PREFIX_CACHE_MAX:
                self._topics.clear()
            prefix = self._topics[topic] = java_string_hash(topic + "#") & _MASK32
        if key.isascii():
            data = key.encode()
            n = len(data)
            if n >= _LONG_KEY_BYTES:
                head = data[:-8]
                h = self._heads.get(head)
                if h is None:
                    if len(self._heads) >= _KEY_PREFIX_CACHE_MAX:
                        self._heads.clear()
                    h = self._heads[head] = ascii_hash(head)
                table = _PAIR_TABLE or _pair_table()
                a, b, c, d = memoryview(data)[-8:].cast("H")
                h = (((h * 961 + table[a]) * 961 + table[b]) * 961 + table[c]) * 961 + table[d]
            else:
                h = 0
                for ch in data:
                    h = h * 31 + ch
        else:
            # UTF-16 code units, as Java counts them (surrogatepass: a lone surrogate is one unit)
            n = len(key.encode("utf-16-be", "surrogatepass")) // 2
            h = java_string_hash(key)
        h = (prefix * (_POW31[n] if n < len(_POW31) else _pow31(n)) + h) & _MASK32
        if h & 0x80000000:                      # negative as an int32: |h|, Integer.MIN_VALUE -> 0
            h = (1 << 32) - h
            if h == 0x80000000:
                h = 0
        return h


_pow31(256)


# --- one file ----------------------------------------------------------------------------------

class IndexFile:
    """One index file. Use `IndexFile.create(...)` / `IndexFile.open(...)`, then
    `put_key(key, phys, store_ts) -> bool` (False when full), `flush_batch()` and
    `select(key, max_num, begin_ms, end_ms, out)`; `flush()`, `close()`, `destroy()`.

    A writable file keeps its slot table (native int32s) and header in memory
    from its first put on; see the module docstring for when and in which order they
    reach the file. A read-only file (`open(..., writable=False)`) re-reads its header
    with `reload_header()` and reads slots and entries with pread.
    """

    def __init__(self, path: str, fd: int, io: FileIO, slot_count: int, entry_count: int,
                 header: tuple[int, int, int, int, int, int], *, writable: bool = True) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self._fd = fd
        self._io = io
        self.writable = writable
        self.slot_count = slot_count
        self.entry_count = entry_count
        (self.begin_timestamp, self.end_timestamp, self.begin_phys_offset, self.end_phys_offset,
         self.hash_slot_count, self.index_count) = header
        self._entries_pos = HEADER_SIZE + slot_count * SLOT_SIZE
        # writer state: the slot table (None until the first put), the slots changed since the
        # last flush_batch, the entries from number _pending_first on not yet written
        self._table: array[int] | None = None
        self._dirty_slots: set[int] = set()
        self._pending = bytearray()
        self._pending_first = self.index_count
        self._dirty = False

    @classmethod
    def create(cls, path: str, io: FileIO, slot_count: int, entry_count: int, *,
               prev_end_timestamp: int = 0, prev_end_phys_offset: int = 0) -> IndexFile:
        """A new file whose begin/end fields start at the previous file's end values.

        Sparse (ftruncate), as RocketMQ's mapped index files are: zero-filling the default
        420 MB would stall the dispatcher for about a second at every roll.
        """
        fd = io.open(path, create=True)
        try:
            io.ftruncate(fd, index_file_size(slot_count, entry_count))
        except BaseException:
            io.close(fd)
            raise
        f = cls(path, fd, io, slot_count, entry_count,
                (prev_end_timestamp, prev_end_timestamp, prev_end_phys_offset, prev_end_phys_offset, 0, 1))
        f._table = array("i", [0]) * slot_count          # a new file's slots are all 0
        f._write_header()
        return f

    @classmethod
    def open(cls, path: str, io: FileIO, slot_count: int, entry_count: int, *,
             writable: bool = True) -> IndexFile | None:
        """Open an existing file; None (file closed) when its size or header make no sense."""
        fd = io.open(path, writable=writable)
        try:
            size = io.file_size(fd)
            header = HEADER.unpack(io.pread(fd, HEADER_SIZE, 0)) if size >= HEADER_SIZE else None
        except BaseException:
            io.close(fd)
            raise
        if (size != index_file_size(slot_count, entry_count) or header is None
                or not 1 <= header[5] <= entry_count or not 0 <= header[4] <= slot_count):
            io.close(fd)
            return None
        return cls(path, fd, io, slot_count, entry_count, header, writable=writable)

    @property
    def is_full(self) -> bool:
        return self.index_count >= self.entry_count

    def reload_header(self) -> bool:
        """Read-only files: pick up the writer's latest header; False when it makes no sense."""
        raw = self._io.pread(self._fd, HEADER_SIZE, 0)
        if len(raw) != HEADER_SIZE:
            return False
        header = HEADER.unpack(raw)
        if not 1 <= header[5] <= self.entry_count:
            return False
        (self.begin_timestamp, self.end_timestamp, self.begin_phys_offset, self.end_phys_offset,
         self.hash_slot_count, self.index_count) = header
        return True

    def _write_header(self) -> None:
        write_all(self._io, self._fd, HEADER.pack(
            self.begin_timestamp, self.end_timestamp, self.begin_phys_offset, self.end_phys_offset,
            self.hash_slot_count, self.index_count), 0)

    def _read_slot(self, slot: int) -> int:
        table = self._table
        if table is not None:
            return table[slot]
        raw = self._io.pread(self._fd, SLOT_SIZE, HEADER_SIZE + slot * SLOT_SIZE)
        return int(SLOT.unpack(raw)[0]) if len(raw) == SLOT_SIZE else 0

    def _read_entry(self, n: int) -> tuple[int, int, int, int]:
        if n >= self._pending_first and self._pending:
            off = (n - self._pending_first) * ENTRY_SIZE
            if off + ENTRY_SIZE <= len(self._pending):
                key_hash, phys, time_diff, prev = ENTRY.unpack_from(self._pending, off)
                return int(key_hash), int(phys), int(time_diff), int(prev)
        raw = self._io.pread(self._fd, ENTRY_SIZE, self._entries_pos + n * ENTRY_SIZE)
        if len(raw) != ENTRY_SIZE:
            return (0, 0, -1, 0)
        key_hash, phys, time_diff, prev = ENTRY.unpack(raw)
        return int(key_hash), int(phys), int(time_diff), int(prev)

    def _load_table(self) -> array[int]:
        """The slot table of a file opened for writing, with slots a writer killed mid-batch left
        pointing past indexCount walked back to committed entries (they are rewritten by the
        next flush_batch, before the header)."""
        size = self.slot_count * SLOT_SIZE
        raw = self._io.pread(self._fd, size, HEADER_SIZE)
        table = array("i")
        table.frombytes(raw if len(raw) == size else raw + bytes(size - len(raw)))
        if _SWAP:
            table.byteswap()
        count = self.index_count
        if table and (max(table) >= count or min(table) < 0):
            repaired = 0
            for slot, n in enumerate(table):
                if 0 <= n < count:
                    continue
                guard = 0
                while n >= count and guard < self.entry_count:
                    prev = self._read_entry(n)[3]
                    n = prev if 0 <= prev < n else 0
                    guard += 1
                if n < 0 or n >= count:
                    n = 0
                table[slot] = n
                self._dirty_slots.add(slot)
                repaired += 1
            self._dirty = True
            log.warning("index: %s: %d slot(s) pointed past the last written entry %d (a writer "
                        "stopped mid-batch); walked back", self.path, repaired, count - 1)
        return table

    def put_key(self, key: str, phys_offset: int, store_timestamp: int) -> bool:
        """Add one entry (in memory until flush_batch); False when the file is full."""
        return self.put_hash(index_key_hash(key), phys_offset, store_timestamp)

    def put_hash(self, key_hash: int, phys_offset: int, store_timestamp: int) -> bool:
        """put_key with the key's index hash already computed (KeyHasher)."""
        n = self.index_count
        if n >= self.entry_count:
            return False
        table = self._table
        if table is None:
            assert self.writable, f"{self.path} is open read-only"
            table = self._table = self._load_table()
            self._pending_first = n
        slot = key_hash % self.slot_count
        prev = table[slot]
        if prev <= 0 or prev > n:
            prev = 0
            self.hash_slot_count += 1
        time_diff = self._time_diff_locked(n, phys_offset, store_timestamp)
        self._pending += _entry_pack(key_hash, phys_offset, time_diff, prev)
        table[slot] = n
        self._dirty_slots.add(slot)
        self.index_count = n + 1
        self.end_phys_offset = phys_offset
        self.end_timestamp = store_timestamp
        self._dirty = True
        return True

    def _time_diff_locked(self, n: int, phys_offset: int, store_timestamp: int) -> int:
        """The entry's timeDiff in seconds, clamped to int32; the first entry opens the file's range."""
        if n <= 1:
            self.begin_timestamp = store_timestamp
            self.begin_phys_offset = phys_offset
            return 0
        return max(0, min((store_timestamp - self.begin_timestamp) // 1000, INT32_MAX))

    def put_hashes(self, key_hashes: Sequence[int], phys_offset: int, store_timestamp: int) -> bool:
        """put_hash for every key of one record; False (nothing put) unless all of them fit."""
        n = self.index_count
        if n + len(key_hashes) > self.entry_count:
            return False
        table = self._table
        if table is None:
            assert self.writable, f"{self.path} is open read-only"
            table = self._table = self._load_table()
            self._pending_first = n
        time_diff = self._time_diff_locked(n, phys_offset, store_timestamp)
        slot_count = self.slot_count
        pending = self._pending
        dirty = self._dirty_slots
        used = 0
        for key_hash in key_hashes:
            slot = key_hash % slot_count
            prev = table[slot]
            if prev <= 0 or prev > n:
                prev = 0
                used += 1
            pending += _entry_pack(key_hash, phys_offset, time_diff, prev)
            table[slot] = n
            dirty.add(slot)
            n += 1
        self.index_count = n
        self.hash_slot_count += used
        self.end_phys_offset = phys_offset
        self.end_timestamp = store_timestamp
        self._dirty = True
        return True

    def flush_batch(self) -> None:
        """Write what the puts since the last call changed: entries, then slots, then header."""
        if not self._dirty:
            return
        io, fd = self._io, self._fd
        if self._pending:
            write_all(io, fd, self._pending, self._entries_pos + self._pending_first * ENTRY_SIZE)
            self._pending = bytearray()
        self._pending_first = self.index_count
        if self._dirty_slots:
            table = self._table
            assert table is not None
            slots = sorted(self._dirty_slots)
            gap = SLOT_COALESCE_GAP_BYTES // SLOT_SIZE
            start = end = slots[0]
            for slot in [*slots[1:], -1]:
                if slot < 0 or slot - end > gap:
                    run = table[start:end + 1]
                    if _SWAP:
                        run.byteswap()
                    write_all(io, fd, memoryview(run).cast("B"), HEADER_SIZE + start * SLOT_SIZE)
                    start = slot
                end = slot
            self._dirty_slots.clear()
        self._write_header()
        self._dirty = False

    def release_table(self) -> None:
        """Write the batch and drop the in-memory slot table (a full file gets no more puts)."""
        self.flush_batch()
        self._table = None

    def time_matched(self, begin_ms: int, end_ms: int) -> bool:
        return ((begin_ms < self.begin_timestamp and end_ms > self.end_timestamp)
                or self.begin_timestamp <= begin_ms <= self.end_timestamp
                or self.begin_timestamp <= end_ms <= self.end_timestamp)

    def select(self, key: str, max_num: int, begin_ms: int, end_ms: int, out: list[int]) -> None:
        """Append phys offsets of entries for key with time in [begin_ms, end_ms] to out.

        Walks the slot chain newest first; stops at prev 0, an invalid prev (not
        below the current entry, which also rules out loops) or an entry older than begin_ms.
        A read-only file also follows slots past the header's indexCount (the writer
        writes the header last; an entry is complete before a slot points at it).
        """
        if self.index_count <= 1:
            return
        key_hash = index_key_hash(key)
        n = self._read_slot(key_hash % self.slot_count)
        limit = self.index_count if self.writable else self.entry_count
        if n <= 0 or n >= limit:
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
        assert self.writable, f"{self.path} is open read-only"
        self.flush_batch()
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
        if self._table is not None:
            self._table = array("i")
            self._table.frombytes(bytes(table))
            if _SWAP:
                self._table.byteswap()
        self.index_count = self._pending_first = keep
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
        """flush_batch, then fdatasync."""
        if self.writable:
            self.flush_batch()
            self._io.fdatasync(self._fd)

    def close(self) -> None:
        """Write any unflushed batch (no fdatasync) and close."""
        if self._fd >= 0:
            try:
                if self.writable:
                    self.flush_batch()
            finally:
                fd, self._fd = self._fd, -1
                self._table = None
                self._io.close(fd)

    def destroy(self) -> None:
        self._dirty = False                  # nothing worth writing into a file about to go
        self._pending = bytearray()
        self.close()
        self._io.unlink(self.path)


# --- the service -------------------------------------------------------------------------------

class IndexService:
    """All index files of a store (RocketMQ's IndexService); one writer (the dispatcher).

    Usage::

        index = IndexService(root + "/index", slot_count=..., entry_count=..., clock=clock, io=io)
        index.load()                                  # open existing files (oldest first)
        index.drop_files_newer_than(checkpoint.index_msg_timestamp)   # abnormal recovery only
        index.truncate_after(commitlog_end)           # recovery: forget entries past the log end
        index.put_keys(topic, keys_str, uniq_key, phys, store_ts, sys_flag=0)   # dispatch
        index.flush_batch()                           # after each dispatched batch (module docstring)
        index.query(topic, key, max_num, begin_ms, end_ms) -> [phys, ...]  # newest first, unsorted
        index.flush() -> index timestamp for the checkpoint; index.delete_files_below(min_phys)

    `max_phys_offset` is the phys offset of the last indexed record: records
    below it are skipped on re-dispatch (the record at it is re-indexed, as in RocketMQ).
    `add(...)` is the same as put_keys with KEYS already split (store.recovery.IndexSink).

    read_only=True: a reader in another process (StoreReader). It never creates, writes,
    truncates or deletes files; `refresh()` re-lists the directory and `query` re-reads
    each file's header.
    """

    def __init__(self, dir_path: str, *, slot_count: int = limits.INDEX_HASH_SLOT_COUNT_DEFAULT,
                 entry_count: int = limits.INDEX_ENTRY_COUNT_DEFAULT, clock: Clock = SYSTEM_CLOCK,
                 io: FileIO | None = None, read_only: bool = False) -> None:
        assert slot_count > 0 and entry_count > 1
        self.dir_path = dir_path
        self.slot_count = slot_count
        self.entry_count = entry_count
        self.clock = clock
        self.io: FileIO = io if io is not None else RealFileIO()
        self.read_only = read_only
        self.files: list[IndexFile] = []
        # endTimestamp of the newest index file known to be on disk (checkpoint's indexMsgTimestamp)
        self.flushed_timestamp = 0
        self._hash = KeyHasher()
        if not read_only:
            self.io.makedirs(dir_path)

    # --- lifecycle -------------------------------------------------------------------------

    def _names(self) -> list[str]:
        if self.read_only and not self.io.exists(self.dir_path):
            return []
        return sorted(name for name in self.io.listdir(self.dir_path)
                      if len(name) == INDEX_FILE_NAME_LENGTH and name.isdigit())

    def load(self) -> list[str]:
        """Open every index file (oldest first); returns names of unusable files it deleted
        (a reader skips them and deletes nothing)."""
        self.close()
        if self.read_only:
            self.refresh()
            return []
        deleted: list[str] = []
        for name in self._names():
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

    def refresh(self) -> None:
        """Reader: see files the writer created and forget files it deleted. A file that cannot
        be opened yet (being created and zero-filled) is tried again next time."""
        assert self.read_only, "refresh is for readers; the writer knows its files"
        names = self._names()
        present = set(names)
        kept: list[IndexFile] = []
        for f in self.files:
            if f.name in present:
                kept.append(f)
            else:
                f.close()
        known = {f.name for f in kept}
        for name in names:
            if name in known:
                continue
            try:
                f2 = IndexFile.open(os.path.join(self.dir_path, name), self.io, self.slot_count,
                                    self.entry_count, writable=False)
            except FileNotFoundError:
                continue
            if f2 is not None:
                kept.append(f2)
        kept.sort(key=lambda f: f.name)
        self.files = kept

    def drop_files_newer_than(self, index_msg_timestamp: int) -> list[str]:
        """Abnormal recovery: delete files whose endTimestamp > the checkpoint's index timestamp."""
        self._check_writer()
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
        self._check_writer()
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
        """Close every file (a writer writes its unflushed batch first, without fdatasync); an
        error closing one does not leave the others open."""
        first: OSError | None = None
        for f in self.files:
            try:
                f.close()
            except OSError as exc:
                first = first or exc
        self.files = []
        if first is not None:
            raise first

    def _check_writer(self) -> None:
        if self.read_only:
            raise PermissionError(f"index {self.dir_path} is open read-only")

    # --- writing -----------------------------------------------------------------------------

    @property
    def max_phys_offset(self) -> int:
        return self.files[-1].end_phys_offset if self.files else 0

    @property
    def last_update_timestamp(self) -> int:
        return self.files[-1].end_timestamp if self.files else 0

    def _new_file(self) -> IndexFile:
        self._check_writer()
        now = self.clock.now_ms()
        prev = self.files[-1] if self.files else None
        if prev is not None:
            now = max(now, index_file_name_ms(prev.name) + 1)
            prev.release_table()             # its last batch reaches the file before the next begins
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
        topic, _, word = key.partition("#")
        self._put_hash(self._hash(topic, word), phys_offset, store_timestamp)

    def _put_hash(self, key_hash: int, phys_offset: int, store_timestamp: int) -> None:
        files = self.files
        f = files[-1] if files and not files[-1].is_full else self._new_file()
        ok = f.put_hash(key_hash, phys_offset, store_timestamp)
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
        """Index one record (in memory until flush_batch); returns how many entries it added."""
        files = self.files
        f = files[-1] if files else None
        if f is not None and phys_offset < f.end_phys_offset:
            return 0                         # already indexed (re-dispatch)
        hasher = self._hash
        hashes = [hasher(topic, uniq_key)] if uniq_key else []
        for word in keys:
            if word:
                hashes.append(hasher(topic, word))
        if f is None or not f.put_hashes(hashes, phys_offset, store_timestamp):
            for key_hash in hashes:          # rolls to a new file on the way
                self._put_hash(key_hash, phys_offset, store_timestamp)
        return len(hashes)

    def flush_batch(self) -> None:
        """Write the entries, slots and header the puts since the last call changed (in that
        order: module docstring). dispatch_range calls it at its end."""
        if self.files:
            self.files[-1].flush_batch()

    def flush(self) -> int:
        """flush_batch and fdatasync the newest file; returns the index timestamp the checkpoint
        may record."""
        if self.files and not self.read_only:
            self.files[-1].flush()
            self.flushed_timestamp = max(self.flushed_timestamp, self.files[-1].end_timestamp)
        return self.flushed_timestamp

    # --- reading ------------------------------------------------------------------------------

    def query(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int) -> list[int]:
        """Phys offsets indexed under topic#key with store time in [begin_ms, end_ms].

        Newest files first, at most min(max_num, INDEX_QUERY_RESULTS_MAX), duplicates
        removed; hash collisions are possible, so the caller re-checks keys, and sorts.
        A reader re-reads each file's header first (call `refresh()` to see new files).
        """
        max_num = max(0, min(max_num, limits.INDEX_QUERY_RESULTS_MAX))
        full_key = build_key(topic, key)
        out: list[int] = []
        for f in reversed(self.files):
            if len(out) >= max_num:
                break
            if self.read_only and not f.reload_header():
                continue
            if f.time_matched(begin_ms, end_ms):
                f.select(full_key, max_num, begin_ms, end_ms, out)
            if f.begin_timestamp < begin_ms:
                break
        return list(dict.fromkeys(out))

    def last_update(self) -> tuple[int, int]:
        """(endTimestamp, endPhyOffset) of the newest file: QUERY_MESSAGE's indexLastUpdate*."""
        if not self.files:
            return 0, 0
        f = self.files[-1]
        if self.read_only:
            f.reload_header()
        return f.end_timestamp, f.end_phys_offset

    # --- retention ----------------------------------------------------------------------------

    def delete_files_below(self, phys_offset: int) -> list[str]:
        """Delete files whose endPhyOffset < phys_offset, oldest first, never the newest."""
        self._check_writer()
        deleted: list[str] = []
        while len(self.files) > 1 and self.files[0].end_phys_offset < phys_offset:
            f = self.files.pop(0)
            f.destroy()
            deleted.append(f.name)
        return deleted
