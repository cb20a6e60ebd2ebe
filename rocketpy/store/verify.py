"""Read-only store verifier (an `fsck` for a store directory) and the readers behind `rocketpy store dump`.

It judges the files at the format level (reference/storage-format.md §1-5) and
deliberately uses none of the engine's classes, only `protocol.message` and the
layout facts, so it can judge the engine. It opens every file read-only
(`mmap.ACCESS_READ`) and never writes, truncates or locks anything.

What it checks:

- CommitLog (§2, §3): every file the same size, a 20-digit name equal to its
  start offset, names contiguous; records walked from the first file: magic
  MESSAGE or BLANK, TOTALSIZE agrees with the fields, body CRC, PHYSICALOFFSET
  equals the record's real position, queue offsets consecutive per queue, a
  BLANK marker filling the end of every file but the last, zeros after the
  last record (non-zero bytes there are a torn tail).
- ConsumeQueue (§4): same file rules (size a multiple of 20); every entry up
  to the queue's written end (RocketMQ's blank fill entries, phys 0 / size
  0x7FFFFFFF, skipped) points at a record start with the entry's size, the
  directory's topic and queue id, QUEUEOFFSET equal to the entry number and
  the entry's tagsCode (not for SCHEDULE_TOPIC_XXXX, whose tagsCode is a
  delivery time); every NOT/COMMIT record below the dispatched end has exactly
  one entry.
- IndexFile (§5): header sanity, slots and chain links in range, entries at
  record starts whose keys hash to the entry's keyHash, and every key of a
  record inside the indexed range present.

Findings are `Problem`s (file, position in that file, kind, one sentence);
observations that are not wrong (abort marker, dispatch lag) are `notes`.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import mmap
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rocketpy import limits
from rocketpy.errors import ProtocolError, StoreError
from rocketpy.protocol import message as m

COMMITLOG_DIR = "commitlog"
CONSUMEQUEUE_DIR = "consumequeue"
INDEX_DIR = "index"
CHECKPOINT_FILE = "checkpoint"
ABORT_FILE = "abort"
LOCK_FILE = "lock"
PROC_LOCKS = "/proc/locks"
OFFSET_NAME_DIGITS = 20
INDEX_NAME_DIGITS = 17
SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
CQ_BLANK_SIZE = 0x7FFFFFFF
CHECKPOINT_USED_SIZE = 24

# +0 phys int64 | +8 size int32 | +12 tagsCode int64
_CQ_ENTRY = struct.Struct(">qiq")
# +0 beginTimestamp | +8 endTimestamp | +16 beginPhyOffset | +24 endPhyOffset | +32 hashSlotCount | +36 indexCount
_INDEX_HEADER = struct.Struct(">qqqqii")
# +0 keyHash int32 | +4 phys int64 | +12 timeDiff int32 | +16 prev int32
_INDEX_ENTRY = struct.Struct(">iqii")
_I32 = struct.Struct(">i")
# +0 TOTALSIZE int32 | +4 MAGICCODE uint32
_RECORD_PREFIX = struct.Struct(">iI")
_CHECKPOINT = struct.Struct(">qqq")
_MESSAGE_MAGIC_BYTES = m.MESSAGE_MAGIC.to_bytes(4, "big")
_BLANK_MAGIC_BYTES = m.BLANK_MAGIC.to_bytes(4, "big")
_ZERO_CHUNK_SIZE = 1 << 20
_INT32_MAX = (1 << 31) - 1
# Above this many index entries the key-coverage check (a set of every entry) is skipped.
INDEX_COVERAGE_ENTRIES_MAX = 5_000_000
PROBLEMS_PER_KIND_DEFAULT = 200

assert _CQ_ENTRY.size == limits.CONSUMEQUEUE_ENTRY_SIZE
assert _INDEX_HEADER.size == 40 and _INDEX_ENTRY.size == 20
assert _RECORD_PREFIX.size == limits.COMMITLOG_BLANK_SIZE_MIN


class UnreadableStoreError(StoreError):
    """The directory is missing, not a directory, unreadable, or holds no store."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in one file. `file` is relative to the store root; `file_pos` a byte in it."""

    file: str
    file_pos: int
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}@{self.file_pos}: {self.what}: {self.detail}"


@dataclasses.dataclass(slots=True)
class Counters:
    commitlog_files: int = 0
    records: int = 0
    record_bytes: int = 0
    blanks: int = 0
    blank_bytes: int = 0
    queue_records: int = 0            # NOT/COMMIT records (they need a ConsumeQueue entry)
    consumequeues: int = 0
    cq_files: int = 0
    cq_entries: int = 0
    cq_blank_entries: int = 0
    cq_expired_entries: int = 0       # point below the CommitLog's first file (retention)
    index_files: int = 0
    index_entries: int = 0


@dataclasses.dataclass(slots=True)
class VerifyResult:
    root: str
    problems: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    counters: Counters = dataclasses.field(default_factory=Counters)
    suppressed: dict[str, int] = dataclasses.field(default_factory=dict)
    commitlog_file_size: int = 0
    commitlog_min_offset: int = 0     # start of the first CommitLog file
    commitlog_end_offset: int = 0     # end of the last valid record
    dispatched_offset: int = 0        # max phys+size over all ConsumeQueue entries
    abort_present: bool = False
    checkpoint: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.suppressed

    @property
    def problem_count(self) -> int:
        return len(self.problems) + sum(self.suppressed.values())

    def summary(self) -> str:
        c = self.counters
        verdict = "OK" if self.ok else f"{self.problem_count} PROBLEM(S)"
        return (f"{verdict}: {self.root}: {c.commitlog_files} commitlog files, {c.records} records "
                f"({c.record_bytes} bytes), {c.blanks} blanks, log [{self.commitlog_min_offset}, "
                f"{self.commitlog_end_offset}), {c.consumequeues} queues / {c.cq_entries} cq entries "
                f"(dispatched to {self.dispatched_offset}), {c.index_files} index files / "
                f"{c.index_entries} index entries")

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "problem_count": self.problem_count,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "suppressed": dict(self.suppressed),
            "notes": list(self.notes),
            "counters": dataclasses.asdict(self.counters),
            "commitlog_file_size": self.commitlog_file_size,
            "commitlog_min_offset": self.commitlog_min_offset,
            "commitlog_end_offset": self.commitlog_end_offset,
            "dispatched_offset": self.dispatched_offset,
            "abort_present": self.abort_present,
            "checkpoint": self.checkpoint,
        }


# --- read-only files -------------------------------------------------------------


class _Segment:
    """One file of a mapped file queue, mapped read-only (or empty)."""

    __slots__ = ("path", "rel", "base", "size", "mm")

    def __init__(self, path: Path, rel: str, base: int) -> None:
        self.path = path
        self.rel = rel
        self.base = base
        with open(path, "rb") as f:
            self.size = os.fstat(f.fileno()).st_size
            self.mm: mmap.mmap | None = (
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None)

    @property
    def buf(self) -> mmap.mmap | bytes:
        return self.mm if self.mm is not None else b""

    def close(self) -> None:
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:      # a view is still alive somewhere; the GC unmaps it
                pass
            self.mm = None


def _first_nonzero(buf: mmap.mmap | bytes, start: int, end: int) -> int:
    """Position of the first non-zero byte in buf[start:end], or -1."""
    pos = start
    while pos < end:
        n = min(end - pos, _ZERO_CHUNK_SIZE)
        chunk = buf[pos:pos + n]
        rest = chunk.lstrip(b"\x00")
        if rest:
            return pos + n - len(rest)
        pos += n
    return -1


def _last_nonzero(buf: mmap.mmap | bytes, start: int, end: int) -> int:
    """Position of the last non-zero byte in buf[start:end], or -1."""
    pos = end
    while pos > start:
        n = min(pos - start, _ZERO_CHUNK_SIZE)
        chunk = buf[pos - n:pos]
        rest = chunk.rstrip(b"\x00")
        if rest:
            return pos - n + len(rest) - 1
        pos -= n
    return -1


def _list_offset_files(directory: Path, rel_dir: str, problems: _Problems
                       ) -> list[tuple[int, Path, str]]:
    """20-digit files of a mapped file queue, sorted by start offset; other names are problems."""
    out: list[tuple[int, Path, str]] = []
    for entry in sorted(directory.iterdir()):
        rel = f"{rel_dir}/{entry.name}"
        if not entry.is_file():
            problems.add(rel, 0, "file-name", "a directory or special file sits among the "
                         "store files; remove it, RocketMQ refuses to load the queue")
            continue
        if len(entry.name) != OFFSET_NAME_DIGITS or not entry.name.isdigit():
            problems.add(rel, 0, "file-name", f"name {entry.name!r} is not a {OFFSET_NAME_DIGITS}-digit "
                         "start offset; RocketMQ refuses to load the queue")
            continue
        out.append((int(entry.name), entry, rel))
    out.sort()
    return out


def _common_size(sizes: list[int]) -> int:
    if not sizes:
        return 0
    counts = collections.Counter(sizes)
    return max(counts, key=lambda s: (counts[s], s == sizes[0]))


class _Problems:
    """Problem list with a cap per kind, so a lost ConsumeQueue does not print a million lines."""

    def __init__(self, result: VerifyResult, per_kind: int) -> None:
        self.result = result
        self.per_kind = per_kind
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, file: str, file_pos: int, what: str, detail: str) -> None:
        self.counts[what] += 1
        if self.counts[what] > self.per_kind:
            self.result.suppressed[what] = self.result.suppressed.get(what, 0) + 1
            return
        self.result.problems.append(Problem(file, file_pos, what, detail))


# --- CommitLog probing -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeRecord:
    """A well-formed record; `crc_ok` is False when its body no longer matches BODYCRC."""

    record: m.MessageRecord
    size: int
    crc_ok: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeBlank:
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeEnd:
    """Eight zero bytes (or fewer than eight bytes left): no record starts here."""


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeBad:
    what: str
    detail: str


Probe = ProbeRecord | ProbeBlank | ProbeEnd | ProbeBad


def probe_record(buf: mmap.mmap | bytes, file_pos: int, file_size: int, base: int, *,
                 check_crc: bool = True) -> Probe:
    """Judge what starts at file_pos of a CommitLog file: a record, a blank, the end, or bad bytes."""
    phys = base + file_pos
    if file_size - file_pos < limits.COMMITLOG_BLANK_SIZE_MIN:
        return ProbeEnd()
    total, magic = _RECORD_PREFIX.unpack_from(buf, file_pos)
    if total == 0 and magic == 0:
        return ProbeEnd()
    if magic == m.BLANK_MAGIC:
        left = file_size - file_pos
        if total != left:
            return ProbeBad("blank", f"blank marker at phys {phys} says {total} bytes but "
                            f"{left} bytes are left in the file")
        return ProbeBlank(total)
    if magic != m.MESSAGE_MAGIC:
        return ProbeBad("bad-magic", f"magic 0x{magic:08X} at phys {phys} is neither MESSAGE "
                        "nor BLANK")
    if total < m.RECORD_FIXED_SIZE_V4 or total > file_size - file_pos:
        return ProbeBad("bad-size", f"TOTALSIZE {total} at phys {phys} is below "
                        f"{m.RECORD_FIXED_SIZE_V4} or runs past the file end")
    try:
        with memoryview(buf) as view:
            rec = m.decode_record(view, file_pos)
    except ProtocolError as exc:
        return ProbeBad("size-mismatch", f"record at phys {phys} (file position {file_pos}) does "
                        f"not parse: {exc}")
    if rec.size != total:
        return ProbeBad("size-mismatch", f"record at phys {phys}: TOTALSIZE {total} disagrees "
                        f"with its fields ({rec.size})")
    crc_ok = not check_crc or m.body_crc(rec.body) == rec.body_crc
    return ProbeRecord(rec, total, crc_ok)


def crc_detail(phys: int, rec: m.MessageRecord) -> str:
    return (f"BODYCRC of the record at phys {phys} is 0x{rec.body_crc:08X}, the body hashes to "
            f"0x{m.body_crc(rec.body):08X} (bit rot or a torn write)")


def _resync(buf: mmap.mmap | bytes, start: int, file_size: int, base: int) -> int:
    """The next position after start where a plausible record or blank begins, or -1.

    A record is plausible when its PHYSICALOFFSET field names its own position,
    a blank when its size reaches exactly the file end.
    """
    candidates: list[int] = []
    for magic_bytes in (_MESSAGE_MAGIC_BYTES, _BLANK_MAGIC_BYTES):
        pos = start + 4
        while True:
            hit = buf.find(magic_bytes, pos, file_size)
            if hit < 0:
                break
            at = hit - 4
            pos = hit + 1
            if at <= start:
                continue
            probe = probe_record(buf, at, file_size, base, check_crc=False)
            if isinstance(probe, ProbeRecord) and probe.record.phys_offset == base + at:
                candidates.append(at)
                break
            if isinstance(probe, ProbeBlank):
                candidates.append(at)
                break
    return min(candidates) if candidates else -1


# --- the verifier ----------------------------------------------------------------------


class _RecordTable:
    """Compact per-record columns of the walked CommitLog, in phys order."""

    def __init__(self) -> None:
        self.starts: array[int] = array("q")
        self.sizes: array[int] = array("i")
        self.queue_ids: array[int] = array("i")
        self.queue_offsets: array[int] = array("q")
        self.sys_flags: array[int] = array("i")
        self.tags: array[int] = array("q")
        self.store_ts: array[int] = array("q")
        self.topic_ids: array[int] = array("i")
        self.topics: list[str] = []
        self._topic_id: dict[str, int] = {}
        self.cq_hits = bytearray()

    def add(self, phys: int, rec: m.MessageRecord, size: int, tags_code: int) -> None:
        tid = self._topic_id.get(rec.topic)
        if tid is None:
            tid = self._topic_id[rec.topic] = len(self.topics)
            self.topics.append(rec.topic)
        self.starts.append(phys)
        self.sizes.append(size)
        self.queue_ids.append(rec.queue_id)
        self.queue_offsets.append(rec.queue_offset)
        self.sys_flags.append(rec.sys_flag)
        self.tags.append(tags_code)
        self.store_ts.append(rec.store_timestamp)
        self.topic_ids.append(tid)
        self.cq_hits.append(0)

    def find(self, phys: int) -> int:
        """Index of the record starting at phys, or -1."""
        i = bisect.bisect_left(self.starts, phys)
        if i < len(self.starts) and self.starts[i] == phys:
            return i
        return -1

    def containing(self, phys: int) -> int:
        """Index of the record whose bytes include phys, or -1."""
        i = bisect.bisect_right(self.starts, phys) - 1
        if i >= 0 and phys < self.starts[i] + self.sizes[i]:
            return i
        return -1


def _record_index_hashes(rec: m.MessageRecord) -> set[int]:
    """keyHash of every index key of a record (UNIQ_KEY and each KEYS word), §5."""
    props = rec.property_map()
    keys = [k for k in props.get(m.PROPERTY_KEYS, "").split(" ") if k]
    uniq = props.get(m.PROPERTY_UNIQ_KEY)
    if uniq:
        keys.append(uniq)
    return {m.index_key_hash(f"{rec.topic}#{k}") for k in keys}


@dataclasses.dataclass(slots=True)
class _IndexFacts:
    """What the index files claim, gathered before the CommitLog walk."""

    pairs: set[tuple[int, int]] = dataclasses.field(default_factory=set)   # (keyHash, phys)
    # phys -> [(rel, file_pos, keyHash, timeDiff, beginTimestamp, entry number)]
    entries: dict[int, list[tuple[str, int, int, int, int, int]]] = dataclasses.field(
        default_factory=dict)
    begin_phys: int = -1
    end_phys: int = -1
    coverage: bool = True


# progress(done_bytes, total_bytes) of the CommitLog walk; see verify_store.
ProgressCallback = Callable[[int, int], None]


class _Verifier:
    def __init__(self, root: Path, *, check_crc: bool, index_slot_count: int | None,
                 index_entry_count: int | None, problems_per_kind: int,
                 progress: ProgressCallback | None = None) -> None:
        self.root = root
        self.progress = progress
        self.check_crc = check_crc
        self.index_slot_count = index_slot_count
        self.index_entry_count = index_entry_count
        self.result = VerifyResult(root=str(root))
        self.problems = _Problems(self.result, problems_per_kind)
        self.table = _RecordTable()
        self.segments: list[_Segment] = []
        self.index = _IndexFacts()

    # -- entry point --

    def run(self) -> VerifyResult:
        try:
            self._check_markers()
            self._open_commitlog()
            self._read_index()
            self._walk_commitlog()
            self._check_consumequeues()
            self._check_index_against_records()
            self._check_checkpoint_against_records()
        finally:
            for seg in self.segments:
                seg.close()
        return self.result

    # -- abort, checkpoint --

    def _check_markers(self) -> None:
        holder = lock_holder(self.root / LOCK_FILE)
        if holder is not None:
            self.result.notes.append(f"the store is in use (process {holder} holds its lock): a "
                                     "live store can show a torn tail or dispatch lag that is not "
                                     "damage; verify a stopped store or a copy")
        if (self.root / ABORT_FILE).exists():
            self.result.abort_present = True
            self.result.notes.append("abort marker present: the store is running or was not shut "
                                     "down cleanly; the next start runs abnormal recovery")
        cp = self.root / CHECKPOINT_FILE
        if not cp.exists():
            self.result.notes.append("no checkpoint file")
            return
        data = cp.read_bytes()
        if len(data) < CHECKPOINT_USED_SIZE:
            self.problems.add(CHECKPOINT_FILE, 0, "checkpoint-size",
                              f"checkpoint has {len(data)} bytes, fewer than the "
                              f"{CHECKPOINT_USED_SIZE} its three timestamps need")
            return
        physic, logics, index = _CHECKPOINT.unpack_from(data, 0)
        self.result.checkpoint = {"physic_msg_timestamp": physic,
                                  "logics_msg_timestamp": logics,
                                  "index_msg_timestamp": index}
        for name, value in self.result.checkpoint.items():
            if value < 0:
                self.problems.add(CHECKPOINT_FILE, 0, "checkpoint-value",
                                  f"{name} is negative ({value})")
        if len(data) >= CHECKPOINT_USED_SIZE + 4:
            # rocketpy appends crc32 of the stamps; RocketMQ leaves zeros there (both are fine)
            stored = int.from_bytes(data[CHECKPOINT_USED_SIZE:CHECKPOINT_USED_SIZE + 4], "big")
            if stored and stored != zlib.crc32(data[:CHECKPOINT_USED_SIZE]):
                self.result.notes.append("checkpoint CRC (rocketpy's extension) does not match "
                                         "its stamps: recovery treats the checkpoint as absent")

    # -- CommitLog --

    def _open_commitlog(self) -> None:
        cl_dir = self.root / COMMITLOG_DIR
        if not cl_dir.is_dir():
            self.result.notes.append("no commitlog directory: empty store")
            return
        files = _list_offset_files(cl_dir, COMMITLOG_DIR, self.problems)
        for base, path, rel in files:
            self.segments.append(_Segment(path, rel, base))
        sizes = [s.size for s in self.segments]
        file_size = _common_size(sizes)
        self.result.commitlog_file_size = file_size
        self.result.counters.commitlog_files = len(self.segments)
        if not self.segments:
            return
        self.result.commitlog_min_offset = self.segments[0].base
        for i, seg in enumerate(self.segments):
            if seg.size != file_size:
                self.problems.add(seg.rel, 0, "file-size", f"file has {seg.size} bytes, the other "
                                  f"CommitLog files {file_size}; RocketMQ refuses to load it")
            if file_size and seg.base % file_size:
                self.problems.add(seg.rel, 0, "file-name", f"start offset {seg.base} is not a "
                                  f"multiple of the file size {file_size}")
            if i and seg.base != self.segments[i - 1].base + file_size:
                prev = self.segments[i - 1]
                self.problems.add(seg.rel, 0, "file-gap", f"file starts at {seg.base}, the previous "
                                  f"one ends at {prev.base + file_size}: names are not contiguous")

    def _walk_commitlog(self) -> None:
        ended_at: tuple[_Segment, int] | None = None   # where the log ended (zero area)
        last_queue_offset: dict[tuple[str, int], int] = {}
        last_store_ts = -1
        ts_regressions = 0
        res = self.result
        progress = self.progress
        total = sum(seg.size for seg in self.segments)
        done_before = 0                   # bytes of the files already walked
        next_report = limits.PROGRESS_STEP_BYTES
        for seg_no, seg in enumerate(self.segments):
            buf = seg.buf
            pos = 0
            stop = False
            while pos < seg.size:
                if progress is not None and done_before + pos >= next_report:
                    progress(done_before + pos, total)
                    next_report = done_before + pos + limits.PROGRESS_STEP_BYTES
                probe = probe_record(buf, pos, seg.size, seg.base, check_crc=self.check_crc)
                if isinstance(probe, ProbeEnd):
                    if _first_nonzero(buf, pos, seg.size) < 0:
                        if ended_at is None:
                            ended_at = (seg, pos)
                        break
                    nxt = _resync(buf, pos, seg.size, seg.base)
                    if nxt >= 0:
                        self.problems.add(seg.rel, pos, "zero-gap",
                                          f"{nxt - pos} zero or garbage bytes at phys "
                                          f"{seg.base + pos} before the record at phys "
                                          f"{seg.base + nxt}; recovery would truncate the log here")
                        pos = nxt
                        continue
                    if self._later_records(seg_no):
                        self.problems.add(seg.rel, pos, "missing-blank",
                                          f"the file ends in zeros and garbage at phys "
                                          f"{seg.base + pos} without a BLANK marker, yet later "
                                          "files hold records; recovery would drop them")
                        break
                    self._torn_tail(seg, pos, seg_no)
                    stop = True
                    break
                if ended_at is not None:
                    end_seg, end_pos = ended_at
                    self.problems.add(end_seg.rel, end_pos, "missing-blank",
                                      f"the file ends in zeros at phys {end_seg.base + end_pos} "
                                      f"without a BLANK marker, yet records follow at phys "
                                      f"{seg.base + pos}; recovery would drop them")
                    ended_at = None
                if isinstance(probe, ProbeBlank):
                    res.counters.blanks += 1
                    res.counters.blank_bytes += probe.size
                    nz = _first_nonzero(buf, pos + limits.COMMITLOG_BLANK_SIZE_MIN, seg.size)
                    if nz >= 0:
                        self.problems.add(seg.rel, nz, "blank-not-zero",
                                          f"non-zero bytes at phys {seg.base + nz} inside the blank "
                                          f"area that starts at phys {seg.base + pos}")
                    res.commitlog_end_offset = seg.base + seg.size
                    break
                if isinstance(probe, ProbeBad):
                    nxt = _resync(buf, pos, seg.size, seg.base)
                    if nxt >= 0:
                        self.problems.add(seg.rel, pos, probe.what,
                                          f"{probe.detail}; {nxt - pos} bytes skipped to the next "
                                          "valid record")
                        pos = nxt
                        continue
                    if self._later_records(seg_no):
                        self.problems.add(seg.rel, pos, probe.what,
                                          f"{probe.detail}; the rest of the file is skipped")
                        break
                    self._torn_tail(seg, pos, seg_no, reason=probe.detail)
                    stop = True
                    break
                rec, size = probe.record, probe.size
                phys = seg.base + pos
                if not probe.crc_ok:
                    self.problems.add(seg.rel, pos, "crc", crc_detail(phys, rec))
                if rec.phys_offset != phys:
                    self.problems.add(seg.rel, pos, "phys-offset",
                                      f"record at phys {phys} says PHYSICALOFFSET {rec.phys_offset}")
                if seg.size - (pos + size) < limits.COMMITLOG_BLANK_SIZE_MIN:
                    self.problems.add(seg.rel, pos, "no-room-for-blank",
                                      f"record at phys {phys} ends {seg.size - pos - size} bytes "
                                      "before the file end; the writer must leave 8 for a blank")
                tags_code = m.tags_code(rec.tags)
                self.table.add(phys, rec, size, tags_code)
                res.counters.records += 1
                res.counters.record_bytes += size
                if m.gets_queue_entry(rec.sys_flag):
                    res.counters.queue_records += 1
                    key = (rec.topic, rec.queue_id)
                    prev = last_queue_offset.get(key)
                    if prev is not None and rec.queue_offset != prev + 1:
                        self.problems.add(seg.rel, pos, "queue-offset",
                                          f"record at phys {phys} of {rec.topic}:{rec.queue_id} has "
                                          f"QUEUEOFFSET {rec.queue_offset}, the previous one in that "
                                          f"queue {prev}")
                    last_queue_offset[key] = rec.queue_offset
                elif rec.queue_offset != 0:
                    self.problems.add(seg.rel, pos, "queue-offset",
                                      f"PREPARED/ROLLBACK record at phys {phys} has QUEUEOFFSET "
                                      f"{rec.queue_offset}, expected 0")
                if rec.store_timestamp < last_store_ts:
                    ts_regressions += 1
                last_store_ts = max(last_store_ts, rec.store_timestamp)
                if self.index.coverage and self.index.begin_phys <= phys <= self.index.end_phys \
                        and m.transaction_type(rec.sys_flag) != m.TRANSACTION_ROLLBACK:
                    self._check_record_indexed(seg, pos, phys, rec)
                pos += size
                res.commitlog_end_offset = phys + size
            else:
                # walked the whole file without a blank: only fine for the last file with data
                if ended_at is None and seg_no + 1 < len(self.segments):
                    ended_at = (seg, seg.size)
            done_before += seg.size
            if stop:
                break
            if progress is not None and done_before < total:
                progress(done_before, total)
                next_report = done_before + limits.PROGRESS_STEP_BYTES
        if progress is not None:
            progress(total, total)        # the rest (zeros, a cut tail) needs no walk
        if ts_regressions:
            res.notes.append(f"STORETIMESTAMP went backwards {ts_regressions} time(s) in append "
                             "order (wall clock stepped back?)")

    def _later_records(self, seg_no: int) -> bool:
        """Whether any later CommitLog file starts with a valid record."""
        for seg in self.segments[seg_no + 1:]:
            probe = probe_record(seg.buf, 0, seg.size, seg.base, check_crc=False)
            if isinstance(probe, (ProbeRecord, ProbeBlank)):
                return True
        return False

    def _torn_tail(self, seg: _Segment, end_pos: int, seg_no: int, reason: str = "") -> None:
        last = _last_nonzero(seg.buf, end_pos, seg.size)
        span = last + 1 - end_pos if last >= 0 else 0
        why = f" ({reason})" if reason else ""
        self.problems.add(seg.rel, end_pos, "torn-tail",
                          f"{span} bytes of non-zero data after the last valid record, from phys "
                          f"{seg.base + end_pos} to {seg.base + last}{why}; a torn write that "
                          "recovery truncates")
        for later in self.segments[seg_no + 1:]:
            nz = _first_nonzero(later.buf, 0, later.size)
            if nz >= 0:
                self.problems.add(later.rel, nz, "torn-tail",
                                  f"non-zero bytes at phys {later.base + nz} in a file after the "
                                  "end of the log")

    # -- ConsumeQueue --

    def _check_consumequeues(self) -> None:
        cq_root = self.root / CONSUMEQUEUE_DIR
        if not cq_root.is_dir():
            return
        queues: list[tuple[str, int, Path, str]] = []
        for topic_dir in sorted(cq_root.iterdir()):
            if not topic_dir.is_dir():
                self.problems.add(f"{CONSUMEQUEUE_DIR}/{topic_dir.name}", 0, "file-name",
                                  "a file where a topic directory belongs")
                continue
            for qid_dir in sorted(topic_dir.iterdir()):
                rel = f"{CONSUMEQUEUE_DIR}/{topic_dir.name}/{qid_dir.name}"
                if not qid_dir.is_dir() or not qid_dir.name.lstrip("-").isdigit():
                    self.problems.add(rel, 0, "file-name", "not a queue-id directory")
                    continue
                queues.append((topic_dir.name, int(qid_dir.name), qid_dir, rel))
        listed = [(q, _list_offset_files(q[2], q[3], self.problems)) for q in queues]
        all_sizes = [p.stat().st_size for _, files in listed for _, p, _ in files]
        cq_file_size = _common_size(all_sizes)
        for (topic, qid, _, rel), files in listed:
            self.result.counters.consumequeues += 1
            self._check_queue(topic, qid, rel, files, cq_file_size)
        self._check_missing_entries()

    def _check_queue(self, topic: str, qid: int, rel_dir: str, files: list[tuple[int, Path, str]],
                     file_size: int) -> None:
        res, table = self.result, self.table
        schedule = topic == SCHEDULE_TOPIC
        min_phys = res.commitlog_min_offset
        log_end = res.commitlog_end_offset
        prev_phys = -1
        ended: tuple[str, int] | None = None
        for i, (base, path, rel) in enumerate(files):
            seg = _Segment(path, rel, base)
            try:
                res.counters.cq_files += 1
                if seg.size != file_size or seg.size % limits.CONSUMEQUEUE_ENTRY_SIZE:
                    self.problems.add(rel, 0, "file-size", f"file has {seg.size} bytes; the "
                                      f"ConsumeQueue files have {file_size} (a multiple of 20)")
                if base % limits.CONSUMEQUEUE_ENTRY_SIZE or (file_size and base % file_size):
                    self.problems.add(rel, 0, "file-name", f"start offset {base} is not a multiple "
                                      f"of the file size {file_size}")
                if i and base != files[i - 1][0] + file_size:
                    self.problems.add(rel, 0, "file-gap", f"file starts at {base}, the previous one "
                                      f"ends at {files[i - 1][0] + file_size}")
                buf = seg.buf
                usable = seg.size - seg.size % limits.CONSUMEQUEUE_ENTRY_SIZE
                if ended is not None:
                    nz = _first_nonzero(buf, 0, seg.size)
                    if nz >= 0:
                        self.problems.add(rel, nz, "cq-torn-tail", f"non-zero bytes after the "
                                          f"queue's written end at {ended[0]}@{ended[1]}")
                    continue
                for file_pos in range(0, usable, limits.CONSUMEQUEUE_ENTRY_SIZE):
                    phys, size, tags = _CQ_ENTRY.unpack_from(buf, file_pos)
                    if phys < 0 or size <= 0:
                        ended = (rel, file_pos)
                        nz = _first_nonzero(buf, file_pos, seg.size)
                        if nz >= 0:
                            self.problems.add(rel, nz, "cq-torn-tail",
                                              f"non-zero bytes at {nz} after the queue's written "
                                              f"end at {file_pos}")
                        break
                    queue_offset = (base + file_pos) // limits.CONSUMEQUEUE_ENTRY_SIZE
                    if phys == 0 and size == CQ_BLANK_SIZE:
                        res.counters.cq_blank_entries += 1
                        continue
                    res.counters.cq_entries += 1
                    where = f"entry {queue_offset} of {topic}:{qid}"
                    if phys <= prev_phys:
                        self.problems.add(rel, file_pos, "cq-order", f"{where} points at phys {phys}, "
                                          f"not after the previous entry's {prev_phys}")
                    prev_phys = max(prev_phys, phys)
                    if phys < min_phys:
                        res.counters.cq_expired_entries += 1
                        continue
                    if phys + size > res.dispatched_offset:
                        res.dispatched_offset = phys + size
                    idx = table.find(phys)
                    if idx < 0:
                        if phys >= log_end:
                            self.problems.add(rel, file_pos, "cq-past-end",
                                              f"{where} points at phys {phys}, at or past the end "
                                              f"of the CommitLog ({log_end})")
                        else:
                            inside = table.containing(phys)
                            at = (f"inside the record at phys {table.starts[inside]}"
                                  if inside >= 0 else "not in any valid record")
                            self.problems.add(rel, file_pos, "cq-not-record-start",
                                              f"{where} points at phys {phys}, {at}")
                        continue
                    if self._check_entry(rel, file_pos, where, idx, phys, size, tags, topic, qid,
                                         queue_offset, schedule):
                        table.cq_hits[idx] = min(255, table.cq_hits[idx] + 1)
            finally:
                seg.close()

    def _check_entry(self, rel: str, file_pos: int, where: str, idx: int, phys: int, size: int,
                     tags: int, topic: str, qid: int, queue_offset: int, schedule: bool) -> bool:
        """Check one entry against its record; True when the entry belongs to the record's queue."""
        table = self.table
        rec_topic = table.topics[table.topic_ids[idx]]
        if table.sizes[idx] != size:
            self.problems.add(rel, file_pos, "cq-size", f"{where} says size {size}, the record at "
                              f"phys {phys} has {table.sizes[idx]}")
        same_queue = rec_topic == topic and table.queue_ids[idx] == qid
        if not same_queue:
            self.problems.add(rel, file_pos, "cq-queue", f"{where} points at a record of "
                              f"{rec_topic}:{table.queue_ids[idx]} (phys {phys})")
        if table.queue_offsets[idx] != queue_offset:
            self.problems.add(rel, file_pos, "cq-queue-offset", f"{where} points at phys {phys} "
                              f"whose QUEUEOFFSET is {table.queue_offsets[idx]}")
        if not schedule and table.tags[idx] != tags:
            self.problems.add(rel, file_pos, "cq-tags", f"{where} has tagsCode {tags}, the record "
                              f"at phys {phys} hashes to {table.tags[idx]}")
        if not m.gets_queue_entry(table.sys_flags[idx]):
            self.problems.add(rel, file_pos, "cq-transaction", f"{where} points at a PREPARED or "
                              f"ROLLBACK record (phys {phys}), which never get an entry")
        return same_queue

    def _check_missing_entries(self) -> None:
        table, res = self.table, self.result
        dispatched = res.dispatched_offset
        hi = bisect.bisect_left(table.starts, dispatched)
        for i in range(hi):
            if not m.gets_queue_entry(table.sys_flags[i]):
                continue
            hits = table.cq_hits[i]
            if hits == 1:
                continue
            phys = table.starts[i]
            seg = self._segment_of(phys)
            rel, file_pos = (seg.rel, phys - seg.base) if seg else (COMMITLOG_DIR, phys)
            queue = (f"{table.topics[table.topic_ids[i]]}:{table.queue_ids[i]} queue offset "
                     f"{table.queue_offsets[i]}")
            if hits == 0:
                self.problems.add(rel, file_pos, "cq-missing",
                                  f"record at phys {phys} ({queue}) has no ConsumeQueue entry "
                                  f"although dispatch reached phys {dispatched}")
            else:
                self.problems.add(rel, file_pos, "cq-duplicate",
                                  f"record at phys {phys} ({queue}) has {hits} ConsumeQueue entries")
        if dispatched < res.commitlog_end_offset and res.counters.queue_records:
            res.notes.append(f"dispatch lags the CommitLog: ConsumeQueues reach phys {dispatched}, "
                             f"the log ends at {res.commitlog_end_offset} (recovery re-dispatches)")

    def _segment_of(self, phys: int) -> _Segment | None:
        bases = [s.base for s in self.segments]
        i = bisect.bisect_right(bases, phys) - 1
        return self.segments[i] if i >= 0 else None

    # -- IndexFile --

    def _read_index(self) -> None:
        index_dir = self.root / INDEX_DIR
        if not index_dir.is_dir():
            self.index.coverage = False
            return
        names = sorted(index_dir.iterdir())
        for path in names:
            rel = f"{INDEX_DIR}/{path.name}"
            if not path.is_file() or len(path.name) != INDEX_NAME_DIGITS or not path.name.isdigit():
                self.problems.add(rel, 0, "file-name", f"name {path.name!r} is not a "
                                  f"{INDEX_NAME_DIGITS}-digit timestamp (yyyyMMddHHmmssSSS)")
                continue
            seg = _Segment(path, rel, 0)
            try:
                self.result.counters.index_files += 1
                self._read_index_file(seg)
            finally:
                seg.close()
        if not self.result.counters.index_entries or \
                self.result.counters.index_entries > INDEX_COVERAGE_ENTRIES_MAX:
            self.index.coverage = False
            if self.result.counters.index_entries:
                self.result.notes.append("too many index entries: key coverage not checked")

    def _read_index_file(self, seg: _Segment) -> None:
        rel, buf = seg.rel, seg.buf
        if seg.size < _INDEX_HEADER.size:
            self.problems.add(rel, 0, "index-size", f"file has {seg.size} bytes, less than the "
                              "40-byte header")
            return
        begin_ts, end_ts, begin_phys, end_phys, slots_used, count = _INDEX_HEADER.unpack_from(buf, 0)
        geometry = index_geometry(buf, seg.size, self.index_slot_count, self.index_entry_count)
        if geometry is None:
            self.problems.add(rel, 0, "index-size", f"cannot split {seg.size} bytes into header, "
                              "slots and entries; pass the store's maxHashSlotNum/maxIndexNum")
            return
        slot_count, entry_count = geometry
        if count < 1 or count > entry_count:
            self.problems.add(rel, 36, "index-header", f"indexCount {count} outside 1..{entry_count}")
            return
        used = count - 1
        if used and (begin_ts > end_ts or begin_phys > end_phys):
            self.problems.add(rel, 0, "index-header", f"begin (ts {begin_ts}, phys {begin_phys}) is "
                              f"after end (ts {end_ts}, phys {end_phys})")
        if slots_used < 0 or slots_used > min(slot_count, used):
            self.problems.add(rel, 32, "index-header", f"hashSlotCount {slots_used} outside "
                              f"0..{min(slot_count, used)}")
        entries_pos = _INDEX_HEADER.size + slot_count * 4
        slots = _int32_array(buf, _INDEX_HEADER.size, slot_count)
        nonempty = 0
        for s, value in enumerate(slots):
            if value == 0:
                continue
            nonempty += 1
            slot_pos = _INDEX_HEADER.size + s * 4
            if value < 0 or value >= count:
                self.problems.add(rel, slot_pos, "index-slot",
                                  f"slot {s} points at entry {value}, outside 1..{used}")
                continue
            key_hash = _INDEX_ENTRY.unpack_from(buf, entries_pos + value * 20)[0]
            if key_hash % slot_count != s:
                self.problems.add(rel, slot_pos, "index-slot",
                                  f"slot {s} points at entry {value} whose keyHash {key_hash} "
                                  f"belongs to slot {key_hash % slot_count}")
        if nonempty != slots_used:
            self.result.notes.append(f"{rel}: hashSlotCount {slots_used} but {nonempty} slots in use")
        for k in range(1, count):
            file_pos = entries_pos + k * 20
            key_hash, phys, time_diff, prev = _INDEX_ENTRY.unpack_from(buf, file_pos)
            self.result.counters.index_entries += 1
            if key_hash < 0 or prev < 0 or prev >= k or time_diff < 0:
                self.problems.add(rel, file_pos, "index-entry",
                                  f"entry {k}: keyHash {key_hash}, prev {prev}, timeDiff {time_diff}: "
                                  "negative or a link that does not point to an older entry")
                continue
            if prev and _INDEX_ENTRY.unpack_from(buf, entries_pos + prev * 20)[0] % slot_count \
                    != key_hash % slot_count:
                self.problems.add(rel, file_pos, "index-entry",
                                  f"entry {k} links to entry {prev} of another slot")
            self.index.pairs.add((key_hash, phys))
            self.index.entries.setdefault(phys, []).append(
                (rel, file_pos, key_hash, time_diff, begin_ts, k))
        if used:
            if self.index.begin_phys < 0 or begin_phys < self.index.begin_phys:
                self.index.begin_phys = begin_phys
            self.index.end_phys = max(self.index.end_phys, end_phys)
        tail = entries_pos + count * 20
        nz = _first_nonzero(buf, tail, seg.size)
        if nz >= 0:
            self.result.notes.append(f"{rel}: non-zero bytes at {nz} past indexCount {count} "
                                     "(an entry written before its header, after a crash)")

    def _check_record_indexed(self, seg: _Segment, pos: int, phys: int, rec: m.MessageRecord) -> None:
        for key_hash in _record_index_hashes(rec):
            if (key_hash, phys) not in self.index.pairs:
                self.problems.add(seg.rel, pos, "index-missing",
                                  f"record at phys {phys} ({rec.topic}) has a key (hash {key_hash}) "
                                  f"with no index entry, inside the indexed range "
                                  f"[{self.index.begin_phys}, {self.index.end_phys}]")

    def _check_index_against_records(self) -> None:
        min_phys = self.result.commitlog_min_offset
        for phys, entries in self.index.entries.items():
            if phys < min_phys:
                continue
            idx = self.table.find(phys)
            if idx < 0:
                for rel, file_pos, _, _, _, k in entries:
                    self.problems.add(rel, file_pos, "index-not-record-start",
                                      f"entry {k} points at phys {phys}, which is not a record start")
                continue
            seg = self._segment_of(phys)
            assert seg is not None
            rec = m.decode_record(seg.buf[phys - seg.base:phys - seg.base + self.table.sizes[idx]])
            hashes = _record_index_hashes(rec)
            store_ts = self.table.store_ts[idx]
            for rel, file_pos, key_hash, time_diff, begin_ts, k in entries:
                if key_hash not in hashes:
                    self.problems.add(rel, file_pos, "index-key",
                                      f"entry {k} has keyHash {key_hash}, but no key of the record "
                                      f"at phys {phys} hashes to it")
                if k > 1 and begin_ts > 0:
                    expected = min(max(int((store_ts - begin_ts) / 1000), 0), _INT32_MAX)
                    if expected != time_diff:
                        self.problems.add(rel, file_pos, "index-time",
                                          f"entry {k} has timeDiff {time_diff} s, the record at "
                                          f"phys {phys} was stored {expected} s after the file's "
                                          "beginTimestamp")

    def _check_checkpoint_against_records(self) -> None:
        cp = self.result.checkpoint
        if not cp or not self.table.store_ts:
            return
        newest = max(self.table.store_ts)
        if cp["physic_msg_timestamp"] > newest:
            self.result.notes.append(
                f"checkpoint physicMsgTimestamp {cp['physic_msg_timestamp']} is later than the "
                f"newest record's store time {newest}")


def _int32_array(buf: mmap.mmap | bytes, pos: int, count: int) -> array[int]:
    """count big-endian int32 values from pos, without a Python loop."""
    out: array[int] = array("i")
    assert out.itemsize == 4
    out.frombytes(buf[pos:pos + count * 4])
    if sys.byteorder == "little":
        out.byteswap()
    return out


def index_geometry(buf: mmap.mmap | bytes, file_size: int, slot_count: int | None = None,
                   entry_count: int | None = None) -> tuple[int, int] | None:
    """(maxHashSlotNum, maxIndexNum) of an index file of file_size bytes, or None.

    The file does not record its geometry. Given counts are checked against the
    size; otherwise RocketMQ's defaults, then entries = 4 x slots (RocketMQ's
    ratio), then any split whose first entries and slots are consistent.
    """
    body = file_size - _INDEX_HEADER.size
    if body < 0:
        return None
    if slot_count is not None or entry_count is not None:
        if slot_count is None:
            assert entry_count is not None
            rest = body - entry_count * 20
            slot_count = rest // 4 if rest >= 0 and rest % 4 == 0 else -1
        if entry_count is None:
            rest = body - slot_count * 4
            entry_count = rest // 20 if rest >= 0 and rest % 20 == 0 else -1
        if slot_count > 0 and entry_count > 0 and slot_count * 4 + entry_count * 20 == body:
            return slot_count, entry_count
        return None
    count = _INDEX_HEADER.unpack_from(buf, 0)[5]
    candidates: list[tuple[int, int]] = []
    default = (limits.INDEX_HASH_SLOT_COUNT_DEFAULT, limits.INDEX_ENTRY_COUNT_DEFAULT)
    if default[0] * 4 + default[1] * 20 == body:
        candidates.append(default)
    if body % 84 == 0 and body:
        candidates.append((body // 84, body // 84 * 4))
    if count <= 1:
        # no entries: any split fits, and none is needed to check an empty file
        if candidates:
            return candidates[0]
        for slots in range(1, body // 4 + 1):
            if (body - slots * 4) % 20 == 0 and body - slots * 4 >= 20:
                return slots, (body - slots * 4) // 20
        return None
    for cand in candidates:
        if _geometry_plausible(buf, cand, count):
            return cand
    tried = 0
    for slots in range(1, body // 4 + 1):
        rest = body - slots * 4
        if rest % 20 or rest // 20 < count:
            continue
        tried += 1
        if tried > 200_000:
            break
        cand = (slots, rest // 20)
        if _geometry_plausible(buf, cand, count):
            return cand
    return None


def _geometry_plausible(buf: mmap.mmap | bytes, geometry: tuple[int, int], count: int) -> bool:
    slots, entries = geometry
    if count < 1 or count > entries:
        return False
    entries_pos = _INDEX_HEADER.size + slots * 4
    for k in range(1, min(count, 65)):
        key_hash, _, time_diff, prev = _INDEX_ENTRY.unpack_from(buf, entries_pos + k * 20)
        if key_hash < 0 or prev < 0 or prev >= k or time_diff < 0:
            return False
        if prev and _INDEX_ENTRY.unpack_from(buf, entries_pos + prev * 20)[0] % slots != key_hash % slots:
            return False
        head = _I32.unpack_from(buf, _INDEX_HEADER.size + (key_hash % slots) * 4)[0]
        if head < k or head >= count:
            return False
    return True


def lock_holder(lock_path: Path, proc_locks: str = PROC_LOCKS) -> int | None:
    """Pid holding a lock on the store's lock file, read passively from /proc/locks, or None."""
    try:
        st = os.stat(lock_path)
        text = Path(proc_locks).read_text()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:00:123456 0 EOF" (a "->" marks a blocked waiter)
        if len(parts) < 6 or parts[1] == "->":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return int(parts[4])
        except ValueError:
            continue
    return None


def verify_store(root: str | os.PathLike[str], *, check_crc: bool = True,
                 index_slot_count: int | None = None, index_entry_count: int | None = None,
                 problems_per_kind: int = PROBLEMS_PER_KIND_DEFAULT,
                 progress: ProgressCallback | None = None) -> VerifyResult:
    """Verify the store under root, read-only. Raises UnreadableStoreError if root is no store.

    progress(done_bytes, total_bytes), if given, follows the CommitLog walk (the part that
    grows with the store): done never goes back, total is the CommitLog files' size, the
    last call is (total, total), and calls are at most one per PROGRESS_STEP_BYTES plus one
    per file. A plain callable, so store/ stays free of terminal code.
    """
    path = _store_root(root)
    try:
        return _Verifier(path, check_crc=check_crc, index_slot_count=index_slot_count,
                         index_entry_count=index_entry_count,
                         problems_per_kind=problems_per_kind, progress=progress).run()
    except OSError as exc:
        raise UnreadableStoreError(f"cannot read the store under {path}: {exc}") from exc


def _store_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise UnreadableStoreError(f"{path} is not a directory; pass the store root "
                                   "(storePathRootDir)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UnreadableStoreError(f"{path} is not readable by this user")
    if not any((path / d).exists() for d in (COMMITLOG_DIR, CONSUMEQUEUE_DIR, INDEX_DIR,
                                             CHECKPOINT_FILE)):
        raise UnreadableStoreError(f"{path} holds no commitlog/, consumequeue/, index/ or "
                                   "checkpoint: not a store root")
    return path


# --- readers for `rocketpy store dump` ------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class QueueEntry:
    queue_offset: int
    phys_offset: int
    size: int
    tags_code: int


@dataclasses.dataclass(frozen=True, slots=True)
class IndexHit:
    file: str
    entry: int
    key_hash: int
    phys_offset: int
    store_time_ms: int        # beginTimestamp + timeDiff * 1000 (second precision)


class StoreReader:
    """Read-only access to a store's files for dumping; use as a context manager."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = _store_root(root)
        self.segments: list[_Segment] = []
        cl_dir = self.root / COMMITLOG_DIR
        if cl_dir.is_dir():
            for name in sorted(os.listdir(cl_dir)):
                if len(name) == OFFSET_NAME_DIGITS and name.isdigit():
                    self.segments.append(_Segment(cl_dir / name, f"{COMMITLOG_DIR}/{name}", int(name)))

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for seg in self.segments:
            seg.close()
        self.segments = []

    def _segment_of(self, phys: int) -> _Segment | None:
        for seg in self.segments:
            if seg.base <= phys < seg.base + seg.size:
                return seg
        return None

    def read_record(self, phys: int) -> m.MessageRecord | None:
        """The record starting at phys, or None if no valid record starts there."""
        seg = self._segment_of(phys)
        if seg is None:
            return None
        probe = probe_record(seg.buf, phys - seg.base, seg.size, seg.base, check_crc=False)
        return probe.record if isinstance(probe, ProbeRecord) else None

    def iter_commitlog(self, from_phys: int = 0) -> Iterator[tuple[int, Probe]]:
        """(phys, probe) for every record at or after from_phys; stops after the first non-record."""
        for seg in self.segments:
            if seg.base + seg.size <= from_phys:
                continue
            pos = 0
            while pos < seg.size:
                probe = probe_record(seg.buf, pos, seg.size, seg.base, check_crc=True)
                phys = seg.base + pos
                if isinstance(probe, ProbeRecord):
                    if phys >= from_phys:
                        yield phys, probe
                    pos += probe.size
                    continue
                if isinstance(probe, ProbeBlank):
                    if phys >= from_phys:
                        yield phys, probe
                    break
                yield phys, probe
                return

    def queue_entries(self, topic: str, queue_id: int, from_queue_offset: int = 0
                      ) -> Iterator[QueueEntry]:
        qdir = self.root / CONSUMEQUEUE_DIR / topic / str(queue_id)
        if not qdir.is_dir():
            raise UnreadableStoreError(f"no ConsumeQueue for {topic}:{queue_id} under {self.root}")
        files = sorted((int(n), qdir / n) for n in os.listdir(qdir)
                       if len(n) == OFFSET_NAME_DIGITS and n.isdigit())
        for base, path in files:
            size = path.stat().st_size
            if base + size <= from_queue_offset * limits.CONSUMEQUEUE_ENTRY_SIZE:
                continue
            seg = _Segment(path, "", base)
            try:
                start = max(0, from_queue_offset * limits.CONSUMEQUEUE_ENTRY_SIZE - base)
                for file_pos in range(start, size - limits.CONSUMEQUEUE_ENTRY_SIZE + 1,
                                      limits.CONSUMEQUEUE_ENTRY_SIZE):
                    phys, esize, tags = _CQ_ENTRY.unpack_from(seg.buf, file_pos)
                    if phys < 0 or esize <= 0:
                        return
                    yield QueueEntry((base + file_pos) // limits.CONSUMEQUEUE_ENTRY_SIZE, phys,
                                     esize, tags)
            finally:
                seg.close()

    def query_index(self, topic: str, key: str, *, slot_count: int | None = None,
                    entry_count: int | None = None) -> list[IndexHit]:
        """Every index entry whose keyHash matches topic#key, newest file first (no time bound)."""
        index_dir = self.root / INDEX_DIR
        if not index_dir.is_dir():
            return []
        key_hash = m.index_key_hash(f"{topic}#{key}")
        hits: list[IndexHit] = []
        for name in sorted(os.listdir(index_dir), reverse=True):
            if len(name) != INDEX_NAME_DIGITS or not name.isdigit():
                continue
            seg = _Segment(index_dir / name, f"{INDEX_DIR}/{name}", 0)
            try:
                if seg.size < _INDEX_HEADER.size:
                    continue
                geometry = index_geometry(seg.buf, seg.size, slot_count, entry_count)
                if geometry is None:
                    raise UnreadableStoreError(
                        f"cannot tell the slot and entry counts of {seg.rel}; pass --index-slots "
                        "and --index-entries")
                slots, _ = geometry
                begin_ts, _, _, _, _, count = _INDEX_HEADER.unpack_from(seg.buf, 0)
                entries_pos = _INDEX_HEADER.size + slots * 4
                k = _I32.unpack_from(seg.buf, _INDEX_HEADER.size + (key_hash % slots) * 4)[0]
                seen: set[int] = set()
                while 0 < k < count and k not in seen:
                    seen.add(k)
                    h, phys, time_diff, prev = _INDEX_ENTRY.unpack_from(seg.buf, entries_pos + k * 20)
                    if h == key_hash:
                        hits.append(IndexHit(seg.rel, k, h, phys, begin_ts + time_diff * 1000))
                    k = prev
            finally:
                seg.close()
        return hits


def record_fields(phys: int, rec: m.MessageRecord, *, body_preview_bytes: int = 64) -> dict[str, Any]:
    """A record as a flat dict for printing (JSON-safe)."""
    body = rec.body[:body_preview_bytes]
    if len(rec.body) > body_preview_bytes:
        # do not let the cut split a UTF-8 character
        for cut in range(min(3, len(body)) + 1):
            try:
                body[:len(body) - cut].decode()
                body = body[:len(body) - cut]
                break
            except UnicodeDecodeError:
                continue
    try:
        preview = body.decode()
        preview_kind = "text"
        if not all(ch.isprintable() or ch in "\t\n\r" for ch in preview):
            raise UnicodeDecodeError("utf-8", body, 0, len(body), "not printable")
    except UnicodeDecodeError:
        preview = body.hex()
        preview_kind = "hex"
    return {
        "phys_offset": phys,
        "size": rec.size,
        "topic": rec.topic,
        "queue_id": rec.queue_id,
        "queue_offset": rec.queue_offset,
        "sys_flag": rec.sys_flag,
        "flag": rec.flag,
        "born_timestamp": rec.born_timestamp,
        "born_host": f"{rec.born_host}:{rec.born_port}",
        "store_timestamp": rec.store_timestamp,
        "store_host": f"{rec.store_host}:{rec.store_port}",
        "reconsume_times": rec.reconsume_times,
        "prepared_transaction_offset": rec.prepared_transaction_offset,
        "body_crc": rec.body_crc,
        "body_length": len(rec.body),
        "body_preview": preview,
        "body_preview_kind": preview_kind,
        "properties": rec.property_map(),
    }
