"""MemoryStore: api.MessageStore in plain Python structures, the oracle of the file store.

Same semantics as the file store, byte for byte where it matters: records roll
into simulated CommitLog files of config.mapped_file_size_commitlog bytes with
the same 8-byte blank rule, so phys offsets equal the file store's; queue
offsets are dense; PREPARED/ROLLBACK records take no queue offset and get no
ConsumeQueue entry; reads follow the §9.3 status table with ConsumeQueue files
of config.mapped_file_size_consumequeue bytes bounding one scan; retention
deletes whole simulated files through store.retention.
"""

from __future__ import annotations

import bisect
import dataclasses
import struct
from collections.abc import Callable, Sequence

from rocketpy import limits
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import StoreConfig
from rocketpy.errors import MessageIllegalError
from rocketpy.protocol.message import (
    BODYCRC_POS,
    MAGIC_POS,
    MESSAGE_MAGIC,
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_KEYS,
    PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY,
    RECORD_FIXED_SIZE_V4,
    SYSFLAG_POS,
    TRANSACTION_ROLLBACK,
    decode_record,
    gets_queue_entry,
    host_sizes,
    patch_record,
    tags_code,
    transaction_type,
)
from rocketpy.store.api import AppendResult, GetResult, GetStatus, PutRequest
from rocketpy.store.retention import DiskGuard, RetentionPolicy, apply_retention, local_hour

SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
BLANK_SIZE = limits.COMMITLOG_BLANK_SIZE_MIN
_I32 = struct.Struct(">i")
assert BODYCRC_POS == MAGIC_POS + 4


def _body_len(data: bytes | bytearray, sys_flag: int) -> int:
    born, store = host_sizes(sys_flag)
    return int(_I32.unpack_from(data, 84 + (born - 4) + (store - 4))[0])


@dataclasses.dataclass(slots=True)
class _SimFile:
    start: int
    write_pos: int = 0          # relative; a blank marker counts as written
    mtime_ms: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    phys: int
    size: int
    tags_code: int
    store_timestamp: int


@dataclasses.dataclass(slots=True)
class _Queue:
    entries: list[_Entry] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class _Indexed:
    phys: int
    store_timestamp: int
    keys: frozenset[str]


class MemoryStore:
    """The reference store. `MemoryStore(config, clock, disk_usage=lambda: 0.0)`; then the
    api.MessageStore methods. `truncate(phys_end)` cuts it to a recovered prefix (test oracle)."""

    def __init__(self, config: StoreConfig, clock: Clock = SYSTEM_CLOCK, *,
                 disk_usage: Callable[[], float] = lambda: 0.0) -> None:
        self.config = config
        self.clock = clock
        self.file_size = config.mapped_file_size_commitlog
        self.cq_entries_per_file = config.mapped_file_size_consumequeue // limits.CONSUMEQUEUE_ENTRY_SIZE
        self.record_size_max = config.max_message_size + limits.MESSAGE_RECORD_OVERHEAD_MAX
        self.delay_levels_ms = config.delay_levels_ms
        self.disk_usage = disk_usage
        self.policy = RetentionPolicy(config)
        self.guard = DiskGuard(config)
        self._files: list[_SimFile] = []
        self._records: dict[int, bytes] = {}
        self._record_starts: list[int] = []             # sorted phys offsets of live records
        self._next_queue_offset: dict[tuple[str, int], int] = {}
        self._queues: dict[tuple[str, int], _Queue] = {}
        self._index: list[_Indexed] = []
        self._committed = 0
        self._flushed = 0
        self._dispatched = 0
        self._last_store_timestamp = 0

    # --- writing -------------------------------------------------------------------------------

    def _check(self, req: PutRequest) -> None:
        data = req.data
        n = len(data)
        if n < RECORD_FIXED_SIZE_V4:
            raise MessageIllegalError(f"record of {n} bytes is shorter than the fixed header")
        size = _I32.unpack_from(data, 0)[0]
        magic = _I32.unpack_from(data, MAGIC_POS)[0] & 0xFFFFFFFF
        sys_flag = _I32.unpack_from(data, SYSFLAG_POS)[0]
        if size != n or magic != MESSAGE_MAGIC:
            raise MessageIllegalError(f"record size field {size} / magic 0x{magic:08X} do not match "
                                      f"its {n} bytes")
        if n > self.record_size_max or _body_len(data, sys_flag) > self.config.max_message_size:
            raise MessageIllegalError(f"message of {n} bytes exceeds maxMessageSize "
                                      f"{self.config.max_message_size}")

    def append(self, group: Sequence[PutRequest]) -> list[AppendResult]:
        self.guard.check_writable()
        if not group:
            return []
        for req in group:
            self._check(req)
        total = sum(len(r.data) for r in group)
        if total + BLANK_SIZE > self.file_size:
            raise MessageIllegalError(f"a group of {total} bytes does not fit one CommitLog file of "
                                      f"{self.file_size} bytes")
        now = self.clock.now_ms()
        store_ts = max(now, self._last_store_timestamp)
        f = self._current_file()
        pos = self._committed
        if total + BLANK_SIZE > f.start + self.file_size - pos:
            f.write_pos = self.file_size                   # the blank marker fills the rest
            f.mtime_ms = now
            f = _SimFile(f.start + self.file_size)
            self._files.append(f)
            pos = f.start
        results: list[AppendResult] = []
        offsets = dict(self._next_queue_offset)
        for req in group:
            data = bytearray(req.data)
            sys_flag = _I32.unpack_from(data, SYSFLAG_POS)[0]
            if gets_queue_entry(sys_flag):
                key = (req.topic, req.queue_id)
                qoff = offsets.get(key, 0)
                offsets[key] = qoff + 1
            else:
                qoff = 0
            patch_record(data, 0, queue_offset=qoff, phys_offset=pos, store_timestamp=store_ts)
            patch_record(req.data, 0, queue_offset=qoff, phys_offset=pos, store_timestamp=store_ts)
            self._records[pos] = bytes(data)
            self._record_starts.append(pos)
            results.append(AppendResult(pos, len(data), qoff, store_ts))
            pos += len(data)
        self._next_queue_offset = offsets
        f.write_pos = pos - f.start
        f.mtime_ms = now
        self._committed = pos
        self._last_store_timestamp = store_ts
        return results

    def _current_file(self) -> _SimFile:
        if not self._files:
            self._files.append(_SimFile(self._committed - self._committed % self.file_size))
        return self._files[-1]

    @property
    def committed_offset(self) -> int:
        return self._committed

    @property
    def flushed_offset(self) -> int:
        return self._flushed

    @property
    def dispatched_offset(self) -> int:
        return self._dispatched

    def flush(self) -> int:
        self._flushed = self._committed
        return self._flushed

    def dispatch(self) -> int:
        i = bisect.bisect_left(self._record_starts, self._dispatched)
        for phys in self._record_starts[i:]:
            self._dispatch_one(phys, self._records[phys])
        self._dispatched = self._committed
        return self._dispatched

    def _dispatch_one(self, phys: int, data: bytes) -> None:
        rec = decode_record(data)
        props = rec.property_map()
        if gets_queue_entry(rec.sys_flag):
            code = tags_code(props.get(PROPERTY_TAGS))
            if (rec.topic == SCHEDULE_TOPIC and PROPERTY_DELAY_TIME_LEVEL in props
                    and 0 <= rec.queue_id < len(self.delay_levels_ms)):
                code = rec.store_timestamp + self.delay_levels_ms[rec.queue_id]
            q = self._queues.setdefault((rec.topic, rec.queue_id), _Queue())
            assert len(q.entries) == rec.queue_offset, "queue offsets are dense"
            q.entries.append(_Entry(phys, len(data), code, rec.store_timestamp))
        if self.config.message_index_enable and transaction_type(rec.sys_flag) != TRANSACTION_ROLLBACK:
            keys = {w for w in props.get(PROPERTY_KEYS, "").split(" ") if w}
            uniq = props.get(PROPERTY_UNIQ_KEY)
            if uniq:
                keys.add(uniq)
            if keys:
                self._index.append(_Indexed(phys, rec.store_timestamp, frozenset(keys)))

    # --- reading -------------------------------------------------------------------------------

    def read_record(self, phys_offset: int) -> bytes | None:
        if phys_offset < self.min_phys_offset or phys_offset >= self._committed:
            return None
        return self._records.get(phys_offset)

    def _min_offset(self, q: _Queue) -> int:
        min_phys = self.min_phys_offset
        lo, hi = 0, len(q.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if q.entries[mid].phys >= min_phys:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def get_message(self, topic: str, queue_id: int, queue_offset: int, max_msg_nums: int,
                    tag_codes: frozenset[int] | None = None) -> GetResult:
        q = self._queues.get((topic, queue_id))
        if q is None:
            return GetResult(GetStatus.NO_MATCHED_LOGIC_QUEUE, 0, 0, 0)
        min_offset, max_offset = self._min_offset(q), len(q.entries)
        if max_offset == 0:
            return GetResult(GetStatus.NO_MESSAGE_IN_QUEUE, 0, min_offset, max_offset)
        if queue_offset < min_offset:
            return GetResult(GetStatus.OFFSET_TOO_SMALL, min_offset, min_offset, max_offset)
        if queue_offset == max_offset:
            return GetResult(GetStatus.OFFSET_OVERFLOW_ONE, queue_offset, min_offset, max_offset)
        if queue_offset > max_offset:
            return GetResult(GetStatus.OFFSET_OVERFLOW_BADLY, max_offset, min_offset, max_offset)
        max_msg_nums = max(1, min(max_msg_nums, limits.PULL_MSG_NUMS_MAX))
        scan = max(limits.PULL_CONSUMEQUEUE_SCAN_BYTES_MIN,
                   max_msg_nums * limits.CONSUMEQUEUE_ENTRY_SIZE) // limits.CONSUMEQUEUE_ENTRY_SIZE
        file_end = (queue_offset // self.cq_entries_per_file + 1) * self.cq_entries_per_file
        stop = min(max_offset, file_end, queue_offset + scan)
        status = GetStatus.NO_MATCHED_MESSAGE
        records: list[bytes] = []
        offsets: list[int] = []
        total = 0
        scanned = 0
        for qoff in range(queue_offset, stop):
            e = q.entries[qoff]
            if records and (len(records) >= max_msg_nums
                            or total + e.size > limits.PULL_TRANSFER_BYTES_MAX_IN_MEMORY
                            or len(records) >= limits.PULL_TRANSFER_COUNT_MAX_IN_MEMORY):
                break
            scanned += 1
            if tag_codes is not None and _int32(e.tags_code) not in tag_codes:
                continue
            data = self.read_record(e.phys)
            if data is None:
                if not records:
                    status = GetStatus.MESSAGE_WAS_REMOVING
                continue
            records.append(data)
            offsets.append(qoff)
            total += e.size
            status = GetStatus.FOUND
        return GetResult(status, queue_offset + scanned, min_offset, max_offset, records, offsets)

    def max_queue_offset(self, topic: str, queue_id: int) -> int:
        q = self._queues.get((topic, queue_id))
        return len(q.entries) if q is not None else 0

    def min_queue_offset(self, topic: str, queue_id: int) -> int:
        q = self._queues.get((topic, queue_id))
        return self._min_offset(q) if q is not None else 0

    def search_offset_by_time(self, topic: str, queue_id: int, timestamp_ms: int) -> int:
        """First entry stored exactly at timestamp_ms, else the nearer neighbour (ties: earlier)."""
        q = self._queues.get((topic, queue_id))
        if q is None:
            return 0
        lo, hi = self._min_offset(q), len(q.entries)
        if lo >= hi:
            return 0
        times = [e.store_timestamp for e in q.entries[lo:hi]]
        i = bisect.bisect_left(times, timestamp_ms)
        if i < len(times) and times[i] == timestamp_ms:
            return lo + i
        if i == 0:
            return lo
        if i == len(times):
            return hi - 1
        return lo + i - 1 if timestamp_ms - times[i - 1] <= times[i] - timestamp_ms else lo + i

    def earliest_store_time(self, topic: str, queue_id: int) -> int:
        q = self._queues.get((topic, queue_id))
        if q is None:
            return -1
        m = self._min_offset(q)
        return q.entries[m].store_timestamp if m < len(q.entries) else -1

    def query_by_key(self, topic: str, key: str, max_num: int, begin_ms: int, end_ms: int
                     ) -> list[int]:
        """Newest min(max_num, 64) live records of topic with key in KEYS or UNIQ_KEY, sorted."""
        max_num = max(0, min(max_num, limits.INDEX_QUERY_RESULTS_MAX))
        hits: list[int] = []
        for item in reversed(self._index):
            if len(hits) >= max_num:
                break
            if key in item.keys and begin_ms <= item.store_timestamp <= end_ms:
                data = self.read_record(item.phys)
                if data is not None and decode_record(data).topic == topic:
                    hits.append(item.phys)
        return sorted(hits)

    def queues(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic, qid in sorted(self._queues):
            out.setdefault(topic, []).append(qid)
        return out

    @property
    def min_phys_offset(self) -> int:
        return self._files[0].start if self._files else 0

    # --- retention -----------------------------------------------------------------------------

    def delete_expired_files(self, now_ms: int, *, force: bool = False) -> int:
        """Retention over whole simulated files; never past min(dispatched, flushed)."""
        limit = min(self._dispatched, self._flushed)
        files = [(f"{f.start:020d}", f.mtime_ms, self.file_size) for f in self._files
                 if f.start + self.file_size <= limit]
        if self._files and (not files or files[-1][0] != f"{self._files[-1].start:020d}"):
            last = self._files[-1]
            files.append((f"{last.start:020d}", last.mtime_ms, self.file_size))   # the newest stays
        deleted = apply_retention(self.policy, self.guard, files=files, delete_file=self._delete_file,
                                  now_ms=now_ms, usage_ratio=self.disk_usage(),
                                  local_hour=local_hour(now_ms), force=force)
        return len(deleted)

    def _delete_file(self, name: str) -> bool:
        f = self._files[0]
        assert f"{f.start:020d}" == name, "retention deletes the oldest file first"
        end = f.start + self.file_size
        i = bisect.bisect_left(self._record_starts, end)
        for phys in self._record_starts[:i]:
            del self._records[phys]
        del self._record_starts[:i]
        self._files.pop(0)
        return True

    def close(self) -> None:
        pass

    # --- oracle support ---------------------------------------------------------------------

    def record_boundaries(self) -> set[int]:
        """Phys offsets a recovered file store may legally end at."""
        out = {self.min_phys_offset, self._committed}
        for phys in self._record_starts:
            out.add(phys)
            out.add(phys + len(self._records[phys]))
        for f in self._files:
            out.add(f.start)
            out.add(f.start + self.file_size)
        return out

    def truncate(self, phys_end: int) -> None:
        """Forget every record that does not end at or before phys_end (a recovered prefix);
        like a recovered file store, everything kept counts as flushed."""
        i = bisect.bisect_left(self._record_starts, phys_end)
        while i > 0 and self._record_starts[i - 1] + len(self._records[self._record_starts[i - 1]]) > phys_end:
            i -= 1
        for phys in self._record_starts[i:]:
            del self._records[phys]
        del self._record_starts[i:]
        self._committed = phys_end
        self._flushed = phys_end                          # recovery leaves the prefix on disk
        self._dispatched = min(self._dispatched, phys_end)
        self._files = [f for f in self._files if f.start < phys_end or f.start == phys_end]
        if not self._files or self._files[-1].start + self.file_size <= phys_end:
            self._files.append(_SimFile(phys_end - phys_end % self.file_size))
        last = self._files[-1]
        last.write_pos = phys_end - last.start
        self._index = [e for e in self._index if e.phys < phys_end]
        for key, q in list(self._queues.items()):
            q.entries = [e for e in q.entries if e.phys + e.size <= phys_end]
            if not q.entries:
                del self._queues[key]
        # queues whose records were deleted by retention keep counting from their entries
        offsets = {key: len(q.entries) for key, q in self._queues.items()}
        self._last_store_timestamp = 0
        for phys in self._record_starts:
            rec = decode_record(self._records[phys])
            self._last_store_timestamp = max(self._last_store_timestamp, rec.store_timestamp)
            if gets_queue_entry(rec.sys_flag):
                key = (rec.topic, rec.queue_id)
                offsets[key] = max(offsets.get(key, 0), rec.queue_offset + 1)
        self._next_queue_offset = offsets

    def live_records(self) -> list[tuple[int, bytes]]:
        return [(p, self._records[p]) for p in self._record_starts]


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value

