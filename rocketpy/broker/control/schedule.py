"""The delay scheduler — RocketMQ's ScheduleMessageService, run inside control.

A delayed message is parked by the send path in SCHEDULE_TOPIC_XXXX queue level-1, and the
dispatcher writes its deliver time (store time + the level's delay) as the queue entry's
tagsCode. Here one cursor per level walks that queue: when the entry under the cursor is due,
the record is read, rebuilt as the real message (topic REAL_TOPIC, queue REAL_QID, DELAY
cleared, everything else kept: body, flag, sysFlag, born host and time, reconsume times) and put
through control's own put ring; the cursor advances only once the put is stored. A failed put is
retried later, never skipped. Entries retention removed, or records that cannot be read, are
skipped with a log line. A message whose REAL_TOPIC no longer exists is delivered anyway, as
RocketMQ does (the store needs no topic config), after an attempt to auto-create the topic by
the broker's rules so consumers can route to it; the attempt and its result are logged.

Cursors are persisted in `config/delayOffset.json` in RocketMQ's format
(`{"offsetTable":{"1":N,...}}`) plus one field of ours, `scanFromPhysOffset`. A restart neither
loses nor re-delivers a due message twice:

- each re-put carries the property RKPY_DELAY_SRC = "<level>:<schedule queue offset>";
- a persisted cursor only counts re-puts whose bytes are flushed, and `scanFromPhysOffset` is a
  CommitLog position at or before every re-put the persisted cursors do not count;
- at start (and when a put's outcome is unknown because the writer restarted) the CommitLog is
  scanned from there for marked records, and each level's cursor moves past what it finds.

So a crash between a re-put and the persist finds the re-put in the log and does not repeat it,
and a re-put lost with an unflushed tail is not counted and is delivered again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from rocketpy import limits
from rocketpy.broker.control import persist
from rocketpy.broker.control.putter import ControlPutter, PutOutcome, PutResult
from rocketpy.broker.reading import FollowingReader
from rocketpy.broker.records import SCHEDULE_TOPIC
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.errors import ProtocolError
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol.bodies import as_int, as_obj
from rocketpy.protocol.message import (
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    MessageRecord,
    decode_record,
    format_properties,
    parse_properties,
)
from rocketpy.store.commitlog import Record, dispatch_fields
from rocketpy.store.recovery import get_property

log = logging.getLogger("rocketpy.broker.control.schedule")

DELAY_OFFSET_FILE = "delayOffset.json"
PROPERTY_DELAY_SOURCE = "RKPY_DELAY_SRC"     # "<level>:<schedule queue offset>" on every re-put
_SOURCE_KEY = (PROPERTY_DELAY_SOURCE + "\x01").encode()
_SCHEDULE_TOPIC_B = SCHEDULE_TOPIC.encode()


# --- pure decisions ------------------------------------------------------------------------------


def deliver_at_ms(tags_code: int, now_ms: int, level_delay_ms: int) -> int:
    """When a schedule queue entry is due. Its tagsCode is store time + delay; one further away
    than now + delay was stored under a clock that has since gone back: due now
    (RocketMQ's correctDeliverTimestamp)."""
    if tags_code > now_ms + level_delay_ms:
        return now_ms
    return tags_code


def source_mark(level: int, queue_offset: int) -> str:
    return f"{level}:{queue_offset}"


def parse_source_mark(raw: bytes | str) -> tuple[int, int] | None:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    level, sep, offset = text.partition(":")
    if not sep or not level.isdigit() or not offset.isdigit():
        return None
    return int(level), int(offset)


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """The real message rebuilt from a parked one."""

    topic: str
    queue_id: int
    props: str


def delivery_of(record: MessageRecord, level: int, queue_offset: int) -> Delivery | None:
    """Topic REAL_TOPIC, queue REAL_QID, DELAY cleared, the source marked; None when the record
    does not say where it goes."""
    props = parse_properties(record.properties)
    topic = props.get(PROPERTY_REAL_TOPIC)
    qid_text = props.get(PROPERTY_REAL_QUEUE_ID, "")
    if not topic or not qid_text.lstrip("-").isdigit():
        return None
    props.pop(PROPERTY_DELAY_TIME_LEVEL, None)
    props[PROPERTY_DELAY_SOURCE] = source_mark(level, queue_offset)
    return Delivery(topic, int(qid_text), format_properties(props))


# --- persisted offsets ----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class DelayOffsets:
    offsets: dict[int, int]          # level -> next schedule queue offset to deliver
    scan_from_phys: int = 0

    def to_obj(self) -> dict[str, Any]:
        return {"offsetTable": {str(level): offset for level, offset in sorted(self.offsets.items())},
                "scanFromPhysOffset": self.scan_from_phys}

    @classmethod
    def from_obj(cls, obj: Any) -> DelayOffsets:
        doc = as_obj(obj, DELAY_OFFSET_FILE)
        table = as_obj(doc.get("offsetTable", {}), "offsetTable")
        offsets: dict[int, int] = {}
        for key, value in table.items():
            level = as_int(key, "offsetTable level", 1, limits.DELAY_LEVEL_COUNT_MAX)
            offsets[level] = as_int(value, f"offsetTable[{level}]", 0)
        scan_from = doc.get("scanFromPhysOffset", 0)
        return cls(offsets, as_int(scan_from, "scanFromPhysOffset", 0))


@dataclasses.dataclass(slots=True)
class _Level:
    level: int
    delay_ms: int
    offset: int = 0                   # next schedule queue offset to deliver
    retry_at_ms: int = 0              # after a failed put: not before this
    # Stored re-puts (and skips) not yet counted as durable: (offset after, end phys, low phys).
    unflushed: deque[tuple[int, int, int]] = dataclasses.field(default_factory=deque)
    durable_offset: int = 0
    in_flight_low_phys: int | None = None


class ScheduleService:
    """Per-level cursors over SCHEDULE_TOPIC_XXXX, re-putting due messages through control's ring."""

    def __init__(self, config_dir: str, levels_ms: tuple[int, ...], reader: FollowingReader,
                 queue_table: QueueTable, putter: ControlPutter, *, clock: Clock = SYSTEM_CLOCK,
                 ensure_topic: Callable[[str], None] | None = None) -> None:
        self.path = os.path.join(config_dir, DELAY_OFFSET_FILE)
        self.levels = [_Level(i + 1, delay) for i, delay in enumerate(levels_ms)]
        self.reader = reader
        self.queue_table = queue_table
        self.putter = putter
        self.clock = clock
        self.ensure_topic = ensure_topic or (lambda topic: None)
        self.scan_from_phys = 0
        self._persisted: DelayOffsets | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_persist_ms = 0
        self._generation = int(putter.control_block.writer_fields()[3])
        self.delivered = 0

    # --- lifecycle ------------------------------------------------------------------------------

    def load(self) -> None:
        """Cursors from delayOffset.json (a missing file starts every level at 0)."""
        loaded = persist.load_json(self.path, DelayOffsets.from_obj)
        if loaded is None:
            loaded = DelayOffsets({}, 0)
        for lv in self.levels:
            lv.offset = lv.durable_offset = loaded.offsets.get(lv.level, 0)
        self.scan_from_phys = loaded.scan_from_phys
        self._persisted = loaded
        extra = sorted(set(loaded.offsets) - {lv.level for lv in self.levels})
        if extra:
            log.warning("delayOffset.json has offsets of levels %s beyond the %d configured in messageDelayLevel; "
                        "messages parked at those levels are delivered at the highest level's delay",
                        extra, len(self.levels))

    def reconcile(self, from_phys: int) -> int:
        """Move cursors past re-puts already in the CommitLog from `from_phys`; returns how many."""
        store = self.reader.get()
        committed = self.reader.committed_offset
        start = max(from_phys, store.commitlog.min_phys_offset)
        if committed - start > limits.SCHEDULE_RECONCILE_SCAN_BYTES_MAX:
            log.warning("delay scheduler: %d CommitLog bytes to scan for re-puts since %d; scanning the last %d "
                        "only (older re-puts are taken as counted)", committed - start, start,
                        limits.SCHEDULE_RECONCILE_SCAN_BYTES_MAX)
            start = committed - limits.SCHEDULE_RECONCILE_SCAN_BYTES_MAX
            start = _next_record_boundary(store, start, committed)
        found = 0
        by_level = {lv.level: lv for lv in self.levels}
        for item in store.commitlog.scan(start, committed, trusted=True):
            if not isinstance(item, Record):
                continue
            _size, _qid, _qoff, _sys, _ts, raw_topic, props = dispatch_fields(item.data, 0)
            if raw_topic == _SCHEDULE_TOPIC_B:
                continue                      # a parked copy of a delivered message, not a re-put
            raw = get_property(bytes(props), _SOURCE_KEY)
            mark = parse_source_mark(raw) if raw else None
            if mark is None:
                continue
            lv = by_level.get(mark[0])
            if lv is not None and mark[1] >= lv.offset:
                lv.offset = mark[1] + 1
                lv.unflushed.append((lv.offset, item.phys_offset + item.size, item.phys_offset))
                found += 1
        if found:
            log.info("delay scheduler: %d re-puts found in the CommitLog from %d; cursors moved past them",
                     found, start)
        return found

    def start(self) -> None:
        self.reconcile(self.scan_from_phys)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="control-schedule")
        log.info("delay scheduler up: %d levels, offsets %s", len(self.levels),
                 {lv.level: lv.offset for lv in self.levels if lv.offset})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.persist(force=True)

    # --- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                wait_ms = await self.round()
                self.persist()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not stop delivery for good
                log.exception("delay scheduler round failed; retrying")
                wait_ms = limits.SCHEDULE_RETRY_WAIT_MS
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)
            except TimeoutError:
                pass

    def wake(self) -> None:
        self._wake.set()

    async def round(self) -> int:
        """Deliver what is due on every level; how long to wait before the next round (ms)."""
        self._check_writer_restart()
        wait_ms = limits.SCHEDULE_WAIT_MAX_MS
        for lv in self.levels:
            wait_ms = min(wait_ms, await self._deliver_level(lv))
        return max(1, min(wait_ms, limits.SCHEDULE_WAIT_MAX_MS))

    def _check_writer_restart(self) -> None:
        """After a writer restart, recovery may have cut re-puts that were not flushed: a level whose
        unflushed re-puts end past the recovered log goes back to its durable offset, and the log
        is searched for the re-puts that did survive."""
        generation = int(self.putter.control_block.writer_fields()[3])
        if generation == self._generation:
            return
        self._generation = generation
        committed = self.reader.committed_offset
        lows: list[int] = []
        for lv in self.levels:
            if any(end > committed for _off, end, _low in lv.unflushed):
                lows += [low for _off, _end, low in lv.unflushed]
                log.warning("delay level %d: the writer restarted with re-puts unflushed; back to offset %d",
                            lv.level, lv.durable_offset)
                lv.offset = lv.durable_offset
                lv.unflushed.clear()
        if lows:
            self.reconcile(min(lows))

    async def _deliver_level(self, lv: _Level) -> int:
        """Re-put this level's due entries in order; ms until it needs looking at again."""
        now = self.clock.now_ms()
        if lv.retry_at_ms > now:
            return lv.retry_at_ms - now
        queue_id = lv.level - 1
        for _ in range(limits.SCHEDULE_DELIVER_BATCH_MAX):
            published = self.queue_table.get(SCHEDULE_TOPIC, queue_id)
            if published is None or lv.offset >= published[0]:
                return limits.SCHEDULE_IDLE_WAIT_MS
            store = self.reader.get()
            cq = store.cqs.get(SCHEDULE_TOPIC, queue_id)
            if cq is None:
                return limits.SCHEDULE_IDLE_WAIT_MS
            cq.follow(published[0], store.commitlog.min_phys_offset)
            if lv.offset < cq.min_offset:
                log.warning("delay level %d: schedule entries %d..%d were removed by retention before delivery; "
                            "skipping to %d", lv.level, lv.offset, cq.min_offset - 1, cq.min_offset)
                self._advance(lv, cq.min_offset, 0, 0)
                continue
            entry = cq.entry(lv.offset)
            if entry is None:
                return limits.SCHEDULE_IDLE_WAIT_MS
            phys, size, tags_code = entry
            now = self.clock.now_ms()
            due = deliver_at_ms(tags_code, now, lv.delay_ms)
            if due > now:
                return due - now
            outcome = await self._deliver(lv, phys, size)
            if outcome is None:
                continue
            if outcome.result is PutResult.STORED:
                self._advance(lv, lv.offset + 1, outcome.end_phys_offset, outcome.low_phys)
                self.delivered += 1
                continue
            if outcome.result is PutResult.UNKNOWN:
                log.warning("delay level %d offset %d: re-put outcome unknown (%s); looking in the CommitLog "
                            "before trying again", lv.level, lv.offset, outcome.reason)
                self.reconcile(outcome.low_phys)
            else:
                log.warning("delay level %d offset %d: re-put refused (%s); retrying in %d ms", lv.level,
                            lv.offset, outcome.reason, limits.SCHEDULE_RETRY_WAIT_MS)
            lv.retry_at_ms = self.clock.now_ms() + limits.SCHEDULE_RETRY_WAIT_MS
            return limits.SCHEDULE_RETRY_WAIT_MS
        return 0

    async def _deliver(self, lv: _Level, phys: int, size: int) -> PutOutcome | None:
        """Re-put one parked message; None when the entry was skipped (unreadable)."""
        committed = self.reader.committed_offset
        view = self.reader.get().read_record(phys, committed)
        record: MessageRecord | None = None
        if view is not None and len(view) == size:
            try:
                record = decode_record(bytes(view))
            except ProtocolError:
                record = None
        delivery = delivery_of(record, lv.level, lv.offset) if record is not None else None
        if record is None or delivery is None:
            log.warning("delay level %d offset %d: parked record at phys %d (%d bytes) cannot be read or names "
                        "no real topic; skipped", lv.level, lv.offset, phys, size)
            self._advance(lv, lv.offset + 1, 0, 0)
            return None
        self.ensure_topic(delivery.topic)
        # Kept when the put is cancelled (control stopping): the persisted scan start then covers it.
        lv.in_flight_low_phys = committed
        outcome = await self.putter.put(
            delivery.topic, delivery.queue_id, record.body, delivery.props, flag=record.flag,
            sys_flag=record.sys_flag, born_timestamp_ms=record.born_timestamp, born_host=record.born_host,
            born_port=record.born_port, reconsume_times=record.reconsume_times)
        lv.in_flight_low_phys = None
        return outcome

    def _advance(self, lv: _Level, offset: int, end_phys: int, low_phys: int) -> None:
        lv.offset = offset
        lv.unflushed.append((offset, end_phys, low_phys))

    # --- persistence --------------------------------------------------------------------------------

    def durable_state(self) -> DelayOffsets:
        """Offsets whose re-puts are flushed, and where a scan for the others must start."""
        flushed = self.putter.control_block.flushed_offset
        scan_from = self.reader.committed_offset
        offsets: dict[int, int] = {}
        for lv in self.levels:
            pending = lv.unflushed
            while pending and pending[0][1] <= flushed:
                lv.durable_offset = pending.popleft()[0]
            if pending:
                scan_from = min(scan_from, *(low for _off, _end, low in pending))
            if lv.in_flight_low_phys is not None:
                scan_from = min(scan_from, lv.in_flight_low_phys)
            offsets[lv.level] = lv.durable_offset
        return DelayOffsets(offsets, scan_from)

    def persist(self, *, force: bool = False) -> bool:
        now = self.clock.now_ms()
        if not force and now - self._last_persist_ms < limits.SCHEDULE_PERSIST_INTERVAL_MS:
            return False
        self._last_persist_ms = now
        state = self.durable_state()
        if state == self._persisted:
            return False
        try:
            persist.write_json(self.path, state.to_obj())
        except OSError as exc:
            log.error("cannot persist %s: %s; retrying at the next interval", self.path, exc)
            return False
        self._persisted = state
        return True

    def offsets(self) -> dict[int, int]:
        return {lv.level: lv.offset for lv in self.levels}


def _next_record_boundary(store: Any, start: int, committed: int) -> int:
    """A record boundary at or after `start`: the start of the CommitLog file holding it."""
    mf = store.commitlog.mfq.find(start)
    if mf is None:
        return committed
    return min(committed, mf.file_start + mf.file_size)
