"""The CommitLog: every message of every topic, appended in arrival order (storage-format.md §3).

A CommitLog is a MappedFileQueue of equal files. Records never span two
files: when a group (+ the 8-byte end marker) does not fit the bytes left in
the current file, an 8-byte BLANK marker is written there and the group starts
the next file::

    file k                                              file k+1
    +--------+--------+-----+--------+----------------+ +--------+----
    | record | record | ... | record |BLANK|  zeros   | | record | ...
    +--------+--------+-----+--------+----------------+ +--------+----
                                      ^ TOTALSIZE = bytes left, MAGIC = BLANK

`scan()` walks the log and yields a result per position - `Record`, `Blank`,
`End` (a zero area: where writing stopped), `TornTail` (an invalid record
followed by zeros: a write cut short) or `Corrupt` (an invalid record followed
by more data) - so recovery and `rocketpy store verify` share one walker and
no caller interprets sentinels.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import struct
import zlib
from collections.abc import Iterator, Sequence

from rocketpy import limits
from rocketpy.errors import DiskFullError, MessageIllegalError, StoreError
from rocketpy.protocol.message import (
    BLANK_MAGIC,
    MESSAGE_MAGIC,
    RECORD_FIXED_SIZE_V4,
    SysFlag,
    gets_queue_entry,
)
from rocketpy.store.api import AppendResult, PutRequest
from rocketpy.store.io import FileIO, zero_fill
from rocketpy.store.mapped_file import MappedFile, MappedFileQueue

log = logging.getLogger("rocketpy.store")

# +0 TOTALSIZE int32, +4 MAGICCODE uint32
_SIZE_MAGIC = struct.Struct(">iI")
# +0 TOTALSIZE, +4 MAGICCODE, +36 SYSFLAG, +84 BODYLEN (IPv4 hosts): what append checks per record
_HEAD_CHECK = struct.Struct(">iI28xi44xi")
# +20 QUEUEOFFSET int64, +28 PHYSICALOFFSET int64
_QOFF_POFF = struct.Struct(">qq")
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U8 = struct.Struct(">b")
_I16 = struct.Struct(">h")

BLANK_SIZE = limits.COMMITLOG_BLANK_SIZE_MIN
SYSFLAG_POS = 36
QUEUEOFFSET_POS = 20
BODYCRC_POS = 8
QUEUEID_POS = 12
_V4_STORE_TS_POS = 56
_V4_BODYLEN_POS = 84
_HOST_V6_EXTRA = 12
_ZERO8 = bytes(8)
# Plain ints: IntFlag arithmetic costs a microsecond per operation on the hot path.
_BORN_V6 = int(SysFlag.BORNHOST_V6)
_STORE_V6 = int(SysFlag.STOREHOST_V6)
_HOST_V6_MASK = _BORN_V6 | _STORE_V6
# NOT (0) and COMMIT (8) get a queue offset; PREPARED (4) and ROLLBACK (12) have bit 4 set.
_TX_PREPARED_BIT = 0x4
assert all(gets_queue_entry(f) == (not f & _TX_PREPARED_BIT) for f in (0x0, 0x4, 0x8, 0xC))


# --- scan results -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A valid message record; data is a view of the map (valid while the file lives)."""

    phys_offset: int
    size: int
    data: memoryview


@dataclasses.dataclass(frozen=True, slots=True)
class Blank:
    """End-of-file marker: the rest of the file is unused."""

    phys_offset: int
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class End:
    """Where the written data stops (a zero area or the read limit)."""

    phys_offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class TornTail:
    """An invalid record followed by zeros: a write that was cut short."""

    phys_offset: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Corrupt:
    """An invalid record followed by more data: damage in the middle of the log."""

    phys_offset: int
    reason: str


ScanItem = Record | Blank | End | TornTail | Corrupt


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFields:
    """The fields the dispatcher needs, parsed once from a stored record."""

    phys_offset: int
    size: int
    queue_id: int
    queue_offset: int
    sys_flag: int
    store_timestamp: int
    topic: str
    properties: bytes


def _layout(sys_flag: int) -> tuple[int, int]:
    """(store timestamp position, body length position) for a sysFlag."""
    if not sys_flag & _HOST_V6_MASK:
        return _V4_STORE_TS_POS, _V4_BODYLEN_POS
    born_extra = _HOST_V6_EXTRA if sys_flag & _BORN_V6 else 0
    store_extra = _HOST_V6_EXTRA if sys_flag & _STORE_V6 else 0
    return _V4_STORE_TS_POS + born_extra, _V4_BODYLEN_POS + born_extra + store_extra


def check_record(buf: memoryview | bytes | bytearray, pos: int, avail: int, phys_offset: int,
                 *, check_crc: bool) -> str | None:
    """Why the MESSAGE-magic record at pos is invalid, or None when it is valid.

    avail = bytes readable from pos (to the file end). Checks the size agreement of
    TOTALSIZE with the body, topic and properties lengths, the PHYSICALOFFSET field
    and, if asked, the body CRC.
    """
    size = _I32.unpack_from(buf, pos)[0]
    if size < RECORD_FIXED_SIZE_V4 or size > avail:
        return f"record size {size} outside {RECORD_FIXED_SIZE_V4}..{avail}"
    sys_flag = _I32.unpack_from(buf, pos + SYSFLAG_POS)[0]
    _, body_len_pos = _layout(sys_flag)
    body_len = _I32.unpack_from(buf, pos + body_len_pos)[0]
    body_pos = body_len_pos + 4
    if body_len < 0 or body_pos + body_len + 3 > size:
        return f"body length {body_len} does not fit record size {size}"
    topic_len = _U8.unpack_from(buf, pos + body_pos + body_len)[0]
    props_len_pos = body_pos + body_len + 1 + topic_len
    if topic_len <= 0 or props_len_pos + 2 > size:
        return f"topic length {topic_len} does not fit record size {size}"
    props_len = _I16.unpack_from(buf, pos + props_len_pos)[0]
    if props_len < 0 or props_len_pos + 2 + props_len != size:
        return f"record size {size} disagrees with its fields (properties length {props_len})"
    stored_phys = _I64.unpack_from(buf, pos + 28)[0]
    if stored_phys != phys_offset:
        return f"PHYSICALOFFSET field {stored_phys} != position {phys_offset}"
    if check_crc:
        crc = _I32.unpack_from(buf, pos + BODYCRC_POS)[0]
        actual = zlib.crc32(buf[pos + body_pos:pos + body_pos + body_len]) & 0x7FFFFFFF
        if actual != crc:
            return f"body CRC {actual:#x} != stored {crc:#x}"
    return None


def tail_looks_torn(buf: memoryview | bytes | bytearray, pos: int, size: int) -> bool:
    """True when a record's last meaningful byte is zero: a write cut short over zeros.

    The body CRC does not cover topic and properties, so a write torn inside them
    passes every other check. A whole record never ends in a zero byte: properties
    end in a value character or a separator, and with no properties the record ends
    in the 2-byte length 0 after a topic whose last character is never NUL.
    """
    props_len = _I16.unpack_from(buf, pos + size - 2)[0]
    if props_len == 0:
        return buf[pos + size - 3] == 0
    return buf[pos + size - 1] == 0


# +0 TOTALSIZE, +12 QUEUEID, +20 QUEUEOFFSET, +36 SYSFLAG, +56 STORETIMESTAMP, +84 BODYLEN (IPv4)
_DISPATCH_V4 = struct.Struct(">i8xi4xq8xi16xq20xi")
assert _DISPATCH_V4.size == 88


def dispatch_fields(buf: memoryview, pos: int) -> tuple[int, int, int, int, int, bytes, bytes]:
    """(size, queue_id, queue_offset, sys_flag, store_timestamp, topic bytes, properties bytes)
    of a record: the dispatcher's hot path, one unpack for an all-IPv4 record."""
    size, queue_id, queue_offset, sys_flag, store_ts, body_len = _DISPATCH_V4.unpack_from(buf, pos)
    if sys_flag & _HOST_V6_MASK:
        ts_pos, body_len_pos = _layout(sys_flag)
        store_ts = _I64.unpack_from(buf, pos + ts_pos)[0]
        body_len = _I32.unpack_from(buf, pos + body_len_pos)[0]
        p = pos + body_len_pos + 4 + body_len
    else:
        p = pos + 88 + body_len
    topic_len = buf[p]
    topic = bytes(buf[p + 1:p + 1 + topic_len])
    p += 1 + topic_len
    props = bytes(buf[p + 2:pos + size])
    return size, queue_id, queue_offset, sys_flag, store_ts, topic, props


def parse_fields(buf: memoryview | bytes | bytearray, pos: int, phys_offset: int) -> RecordFields:
    """Dispatcher view of a record already validated by the scan."""
    size = _I32.unpack_from(buf, pos)[0]
    queue_id = _I32.unpack_from(buf, pos + QUEUEID_POS)[0]
    queue_offset = _I64.unpack_from(buf, pos + QUEUEOFFSET_POS)[0]
    sys_flag = _I32.unpack_from(buf, pos + SYSFLAG_POS)[0]
    ts_pos, body_len_pos = _layout(sys_flag)
    store_ts = _I64.unpack_from(buf, pos + ts_pos)[0]
    body_len = _I32.unpack_from(buf, pos + body_len_pos)[0]
    p = pos + body_len_pos + 4 + body_len
    topic_len = buf[p]
    topic = bytes(buf[p + 1:p + 1 + topic_len]).decode("utf-8", "replace")
    p += 1 + topic_len
    props_len = _I16.unpack_from(buf, p)[0]
    props = bytes(buf[p + 2:p + 2 + props_len])
    return RecordFields(phys_offset, size, queue_id, queue_offset, sys_flag, store_ts, topic, props)


class CommitLog:
    """RocketMQ's CommitLog: one writer appends groups; readers read up to committed_offset.

    The writer owns committed_offset, flushed_offset and the topic-queue offset
    table. Readers (other processes) construct it with writable=False and pass the
    published committed offset as `limit` to the read methods.
    """

    def __init__(self, dir_path: str, file_size: int, io: FileIO, *,
                 max_message_size: int = limits.MESSAGE_SIZE_MAX_DEFAULT,
                 writable: bool = True) -> None:
        assert file_size % 8 == 0 and file_size >= 4096
        self.mfq = MappedFileQueue(io, dir_path, file_size, writable=writable)
        self.io = io
        self.file_size = file_size
        self.max_message_size = max_message_size
        self.record_size_max = max_message_size + limits.MESSAGE_RECORD_OVERHEAD_MAX
        self.writable = writable
        self.committed_offset = 0
        self.flushed_offset = 0
        self.last_store_timestamp = 0
        self.flushed_store_timestamp = 0
        # (topic, queue id) -> next queue offset; rebuilt from ConsumeQueues at start.
        self.queue_offsets: dict[tuple[str, int], int] = {}
        self._failed: str | None = None
        # A failed write may leave part of a group behind the committed offset; it is zeroed
        # before the next append so a later crash cannot resurrect it.
        self._zero_pending: tuple[MappedFile, int, int] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def load(self) -> None:
        self.mfq.load()

    def set_end(self, end: int, last_store_timestamp: int) -> None:
        """Recovery's verdict: the valid log ends at end (all of it on disk)."""
        assert end >= 0
        self.committed_offset = self.flushed_offset = end
        self.last_store_timestamp = self.flushed_store_timestamp = last_store_timestamp

    def close(self) -> None:
        self.mfq.close()

    @property
    def min_phys_offset(self) -> int:
        return self.mfq.min_offset

    @property
    def failed(self) -> str | None:
        """Why the log refuses writes after an fdatasync error, or None."""
        return self._failed

    # --- append ---------------------------------------------------------------------------

    def _reject(self, req: PutRequest) -> MessageIllegalError:
        """The precise reason a request failed the fast checks in append."""
        data = req.data
        n = len(data)
        if n < RECORD_FIXED_SIZE_V4:
            return MessageIllegalError(f"record of {n} bytes is shorter than the fixed header")
        total, magic = _SIZE_MAGIC.unpack_from(data, 0)
        if total != n or magic != MESSAGE_MAGIC:
            return MessageIllegalError(
                f"record TOTALSIZE {total}/magic {magic:#x} disagree with its {n} bytes")
        if n > self.record_size_max:
            return MessageIllegalError(
                f"record of {n} bytes exceeds maxMessageSize {self.max_message_size} + 64 KiB")
        body_len = _I32.unpack_from(data, _layout(_I32.unpack_from(data, SYSFLAG_POS)[0])[1])[0]
        return MessageIllegalError(
            f"message body of {body_len} bytes exceeds maxMessageSize {self.max_message_size}")

    def append(self, group: Sequence[PutRequest], now_ms: int) -> list[AppendResult]:
        """Append a group contiguously in one file (all or nothing); returns one result per record.

        Patches QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP in the requests' buffers.
        The hot path: one header unpack per record to check it, two packs to patch it,
        one pwrite per file for the whole group.
        """
        assert self.writable, "a reader CommitLog cannot append"
        if self._failed is not None:
            raise StoreError(f"CommitLog refuses writes after an I/O error ({self._failed}); restart the "
                             "broker so recovery can check the log")
        if not group:
            return []
        if self._zero_pending is not None:
            self._clear_failed_write()
        total = 0
        for req in group:
            total += len(req.data)
        if total + BLANK_SIZE > self.file_size:
            raise MessageIllegalError(
                f"a group of {total} bytes does not fit one CommitLog file of {self.file_size} bytes")
        pos = self.committed_offset
        mf = self._file_for(pos)
        left = mf.file_end - pos
        assert left >= BLANK_SIZE, "a file always keeps room for the end marker"
        blank_needed = total + BLANK_SIZE > left
        if blank_needed:
            pos = mf.file_end
        store_ts = now_ms if now_ms > self.last_store_timestamp else self.last_store_timestamp
        # One pass checks and patches each record; a bad record raises before anything is
        # written or any queue offset is taken (patched buffers of a failed group are garbage).
        unpack_head = _HEAD_CHECK.unpack_from
        unpack_i32 = _I32.unpack_from
        pack_qoff_phys = _QOFF_POFF.pack_into
        pack_i64 = _I64.pack_into
        new_result = tuple.__new__
        max_body = self.max_message_size
        max_record = self.record_size_max
        table = self.queue_offsets
        assigned: dict[tuple[str, int], int] = {}
        results: list[AppendResult] = []
        last_topic: str | None = None
        last_qid = -1
        key: tuple[str, int] = ("", -1)
        qoff = 0
        phys = pos
        for req in group:
            data = req.data
            n = len(data)
            if n < RECORD_FIXED_SIZE_V4:
                raise self._reject(req)
            size, magic, sys_flag, body_len = unpack_head(data, 0)
            if sys_flag & _HOST_V6_MASK:
                ts_pos, body_len_pos = _layout(sys_flag)
                body_len = unpack_i32(data, body_len_pos)[0]
            else:
                ts_pos = _V4_STORE_TS_POS
            if size != n or magic != MESSAGE_MAGIC or n > max_record or body_len > max_body:
                raise self._reject(req)
            if sys_flag & _TX_PREPARED_BIT:          # PREPARED and ROLLBACK take no queue offset
                pack_qoff_phys(data, QUEUEOFFSET_POS, 0, phys)
                pack_i64(data, ts_pos, store_ts)
                results.append(new_result(AppendResult, (phys, n, 0, store_ts)))
            else:
                if req.topic is last_topic and req.queue_id == last_qid:
                    qoff += 1                        # runs of one queue skip the lookups
                else:
                    if last_topic is not None:
                        assigned[key] = qoff + 1
                    key = (req.topic, req.queue_id)
                    last_topic, last_qid = req.topic, req.queue_id
                    found = assigned.get(key)
                    qoff = found if found is not None else table.get(key, 0)
                pack_qoff_phys(data, QUEUEOFFSET_POS, qoff, phys)
                pack_i64(data, ts_pos, store_ts)
                results.append(new_result(AppendResult, (phys, n, qoff, store_ts)))
            phys += n
        if last_topic is not None:
            assigned[key] = qoff + 1
        if blank_needed:
            self._write(mf, mf.file_size - left, _SIZE_MAGIC.pack(left, BLANK_MAGIC))
            self.committed_offset = pos
            mf = self._file_for(pos)
        payload = group[0].data if len(group) == 1 else b"".join([r.data for r in group])
        self._write(mf, pos - mf.file_start, payload)
        assert phys == pos + total
        table.update(assigned)
        self.committed_offset = phys
        self.last_store_timestamp = store_ts
        return results

    def _file_for(self, pos: int) -> MappedFile:
        try:
            return self.mfq.file_for_write(pos)
        except OSError as exc:
            raise self._io_error("create the next CommitLog file", exc) from exc

    def _write(self, mf: MappedFile, file_pos: int, data: bytes | bytearray | memoryview) -> None:
        try:
            mf.write(file_pos, data)
        except OSError as exc:
            self._zero_pending = (mf, file_pos, min(mf.file_size, file_pos + len(data)))
            try:
                self._clear_failed_write()
            except StoreError:
                pass
            raise self._io_error(f"write {len(data)} bytes to {mf.path}", exc) from exc

    def _clear_failed_write(self) -> None:
        """Zero what a failed write may have left past the committed offset."""
        assert self._zero_pending is not None
        mf, start, end = self._zero_pending
        if mf.fd < 0:
            self._zero_pending = None
            return
        try:
            # Synced: a later write torn over durable garbage could pass every record check.
            zero_fill(self.io, mf.fd, start, end)
            mf.sync()
        except OSError as exc:
            raise self._io_error(f"clear a failed write in {mf.path}", exc) from exc
        self._zero_pending = None

    @staticmethod
    def _io_error(what: str, exc: OSError) -> StoreError:
        if exc.errno == errno.ENOSPC:
            return DiskFullError(f"disk full: could not {what}; free space or delete old files")
        return StoreError(f"I/O error: could not {what}: {exc}")

    @property
    def needs_next_file(self) -> bool:
        """True when the file after the write position's file does not exist yet (cheap check)."""
        files = self.mfq.files
        return not files or files[-1].file_start <= self.committed_offset

    def prepare_next_file(self) -> bool:
        """Zero-fill the next file ahead of time (call it off the hot path when needs_next_file).

        Creates the file holding the write position if it is missing, else the one after it.
        """
        assert self.writable
        try:
            if self.mfq.find(self.committed_offset) is None:
                self.mfq.file_for_write(self.committed_offset)
                return True
            return self.mfq.prepare_next_file(self.committed_offset)
        except OSError as exc:
            raise self._io_error("prepare the next CommitLog file", exc) from exc

    def prepare_next_file_step(self, step_bytes: int = limits.COMMITLOG_WARMUP_STEP_SIZE) -> bool:
        """One bounded step of zero-filling the next file (the writer's idle turns); True when ready."""
        assert self.writable
        try:
            if self.mfq.find(self.committed_offset) is None:
                self.mfq.file_for_write(self.committed_offset)
                return False
            return self.mfq.warm_next_file_step(self.committed_offset, step_bytes)
        except OSError as exc:
            raise self._io_error("prepare the next CommitLog file", exc) from exc

    # --- flush -------------------------------------------------------------------------------

    def flush(self) -> int:
        """fdatasync everything appended so far; returns the new flushed offset.

        An fdatasync error poisons the log: the kernel may have dropped the dirty
        pages, so nothing after flushed_offset can be trusted until recovery runs.
        """
        assert self.writable
        if self._failed is not None:
            raise StoreError(f"CommitLog flush refused after an I/O error ({self._failed}); restart")
        end = self.committed_offset
        if end > self.flushed_offset:
            ts = self.last_store_timestamp
            try:
                self.mfq.sync_range(self.flushed_offset, end)
            except OSError as exc:
                self._failed = f"fdatasync: {exc}"
                log.error("CommitLog fdatasync failed at flushed=%d committed=%d: %s",
                          self.flushed_offset, end, exc)
                raise StoreError(f"fdatasync of the CommitLog failed ({exc}); the broker must restart "
                                 "and recover") from exc
            assert end >= self.flushed_offset
            self.flushed_offset = end
            self.flushed_store_timestamp = ts
        return self.flushed_offset

    # --- read ---------------------------------------------------------------------------------

    def read_record(self, phys_offset: int, limit: int | None = None) -> memoryview | None:
        """The record at phys_offset as a view of the map, or None (blank, deleted, past limit)."""
        lim = self.committed_offset if limit is None else limit
        head = self.mfq.read(phys_offset, 8, lim)
        if head is None:
            if self.writable or not 0 <= phys_offset < lim:
                return None
            self.mfq.refresh()             # a reader follows files the writer created since
            head = self.mfq.read(phys_offset, 8, lim)
            if head is None:
                return None
        size, magic = _SIZE_MAGIC.unpack_from(head, 0)
        if magic != MESSAGE_MAGIC or size < RECORD_FIXED_SIZE_V4:
            if self.writable or not 0 <= phys_offset < lim:
                return None
            # A reader asked for a committed record and sees no record: its map may be of a file
            # recovery deleted (and the new writer created again); look at the directory again.
            self.mfq.refresh()
            head = self.mfq.read(phys_offset, 8, lim)
            if head is None:
                return None
            size, magic = _SIZE_MAGIC.unpack_from(head, 0)
            if magic != MESSAGE_MAGIC or size < RECORD_FIXED_SIZE_V4:
                return None
        return self.mfq.read(phys_offset, size, lim)

    def store_timestamp_at(self, phys_offset: int, limit: int | None = None) -> int | None:
        rec = self.read_record(phys_offset, limit)
        if rec is None:
            return None
        sys_flag = _I32.unpack_from(rec, SYSFLAG_POS)[0]
        return int(_I64.unpack_from(rec, _layout(sys_flag)[0])[0])

    def first_store_timestamp(self, mf: MappedFile) -> int | None:
        """Store time of a file's first record if that record is wholly valid (CRC included).

        Abnormal recovery starts at a file whose first record was flushed: RocketMQ only checks
        the magic, but a torn first record can carry a half-written store time that looks old.
        """
        view = mf.view()
        size, magic = _SIZE_MAGIC.unpack_from(view, 0)
        if magic != MESSAGE_MAGIC or size < RECORD_FIXED_SIZE_V4 or size > mf.file_size:
            return None
        if check_record(view, 0, mf.file_size, mf.file_start, check_crc=True) is not None:
            return None
        if tail_looks_torn(view, 0, size):
            return None
        sys_flag = _I32.unpack_from(view, SYSFLAG_POS)[0]
        ts = int(_I64.unpack_from(view, _layout(sys_flag)[0])[0])
        return ts if ts > 0 else None

    def scan(self, from_phys: int, limit: int | None = None, *, check_crc: bool = False,
             trusted: bool = False) -> Iterator[ScanItem]:
        """Walk the log from from_phys (a record boundary) and yield what lies there.

        Stops after the first End, TornTail or Corrupt. With limit, an End is
        yielded at the first record boundary at or past limit. trusted (the
        dispatcher, below the committed offset the writer published) checks only
        magic and size bounds; recovery checks every field.
        """
        mfq = self.mfq
        pos = from_phys
        while True:
            if limit is not None and pos >= limit:
                yield End(pos)
                return
            mf = mfq.find(pos)
            if mf is None and not self.writable and limit is not None:
                mfq.refresh()              # a reader follows files the writer created since
                mf = mfq.find(pos)
            if mf is None:
                yield End(pos)
                return
            view = mf.view()
            fpos = pos - mf.file_start
            file_size = mf.file_size
            while fpos < file_size:
                phys = mf.file_start + fpos
                if limit is not None and phys >= limit:
                    yield End(phys)
                    return
                avail = file_size - fpos
                if avail < 8:
                    yield self._bad(view, fpos, fpos + avail, phys, f"{avail} stray bytes at file end")
                    return
                size, magic = _SIZE_MAGIC.unpack_from(view, fpos)
                if magic == MESSAGE_MAGIC:
                    if trusted and RECORD_FIXED_SIZE_V4 <= size <= avail:
                        reason = None
                    else:
                        reason = check_record(view, fpos, avail, phys, check_crc=check_crc)
                    if reason is not None:
                        end = fpos + size if RECORD_FIXED_SIZE_V4 <= size <= avail else fpos + 8
                        yield self._bad(view, fpos, end, phys, reason)
                        return
                    if limit is not None and phys + size > limit:
                        yield End(phys)
                        return
                    if check_crc and tail_looks_torn(view, fpos, size):
                        # Only the last record can be torn: one followed by more data is whole.
                        nxt = bytes(view[fpos + size:fpos + size + 8])
                        if len(nxt) < 8 or nxt == _ZERO8:
                            yield TornTail(phys, "record ends in zero bytes (write cut short)")
                            return
                    yield Record(phys, size, view[fpos:fpos + size])
                    fpos += size
                elif magic == BLANK_MAGIC:
                    if size != avail:
                        yield self._bad(view, fpos, fpos + 8, phys,
                                        f"end marker claims {size} bytes, {avail} left in the file")
                        return
                    yield Blank(phys, size)
                    fpos = file_size
                elif size == 0 and magic == 0:
                    yield End(phys)
                    return
                else:
                    yield self._bad(view, fpos, fpos + 8, phys, f"bad magic {magic:#010x}")
                    return
            pos = mf.file_end

    @staticmethod
    def _bad(view: memoryview, fpos: int, after: int, phys: int, reason: str) -> TornTail | Corrupt:
        """Torn if the bytes right after the bad record are zero (or the file ends), else corrupt."""
        tail = bytes(view[after:after + 8])
        if len(tail) < 8 or tail == _ZERO8:
            return TornTail(phys, reason)
        return Corrupt(phys, reason)

    def iter_records(self, from_phys: int, limit: int | None = None, *, check_crc: bool = False
                     ) -> Iterator[Record]:
        """Valid records from from_phys up to limit (committed offset by default), blanks skipped."""
        lim = self.committed_offset if limit is None and self.writable else limit
        for item in self.scan(from_phys, lim, check_crc=check_crc):
            if isinstance(item, Record):
                yield item
            elif not isinstance(item, Blank):
                return

    # --- retention -------------------------------------------------------------------------

    def delete_files_before(self, phys_offset: int, max_count: int = limits.DELETE_FILES_PER_PASS_MAX
                            ) -> list[str]:
        """Delete files wholly below phys_offset, oldest first, never the file being written."""
        count = 0
        for mf in self.mfq.files[:-1]:
            if mf.file_end > phys_offset or mf.file_end > self.committed_offset or count >= max_count:
                break
            count += 1
        return self.mfq.delete_first(count)
