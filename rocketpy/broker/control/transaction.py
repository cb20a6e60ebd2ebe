"""Transactional messages in control: the check-back service, and the arbiter that lets each half
message be ended once.

RocketMQ's TransactionalMessageServiceImpl.check, TransactionalMessageCheckService and
DefaultTransactionalMessageCheckListener, reworked for a control process that reads the store
but does not write it (remoting-protocol.md §9.8, §11.8):

- A half message sits in RMQ_SYS_TRANS_HALF_TOPIC queue 0 (the send path put it there). An
  END_TRANSACTION that commits or rolls back puts an op message into RMQ_SYS_TRANS_OP_HALF_TOPIC
  queue 0: tag "d", body = the half's queue offset as decimal text. A half with an op message is
  *resolved*.
- Every transactionCheckInterval a pass reads the op queue from where it stopped, then walks the
  half queue from the progress offset. A half not resolved and older than transactionTimeOut (or
  its CHECK_IMMUNITY_TIME_IN_SECONDS) gets CHECK_TRANSACTION_STATE, oneway, on one live
  connection of its producer group (PGROUP), through the worker holding that connection. After
  transactionCheckMax checks (or once older than fileReservedTime) it is discarded: a log line,
  and it is *closed* — no op message, since control puts nothing.
- The progress offset moves past contiguous resolved and closed halves. Where RocketMQ re-appends
  a half to the half queue at every check (so its cursor can move and TRANSACTION_CHECK_TIMES
  rides in the message), this keeps the check counts in a small state file instead.

State file `config/transactionCheck.json` (written atomically: persist.safe_write)::

    {"halfProgress": 12, "opProgress": 7,
     "checkTimes": {"13": 2}, "closed": {"15": "discarded"}}

`opProgress` is the first op message that may still name a half at or above `halfProgress`, so
after a restart the resolved set is rebuilt by reading the op queue from there. The check counts
and the closed set only hold offsets at or above `halfProgress`. The progress is also recorded as
the consumer offset of group CID_RMQ_SYS_TRANS (what RocketMQ operators look at).

Ending a half once: a worker serving END_TRANSACTION asks `claim` first. Control runs one event
loop, so two END_TRANSACTIONs for one half (a commit and its duplicate, on two workers) are
decided in order: the first is granted; any other is refused while the first holds the claim, and
after it the half is resolved (its op message) or closed. The claim ends with `done` (the worker
reports the op message's queue offset), when the worker's connection to control goes away, or
after TRANSACTION_END_CLAIM_TIMEOUT_MS. A claim also first catches up on the op queue, so a control
that restarted knows every op message already stored.

A worker killed between storing the committed message and storing its op message leaves the half
unresolved: the next check-back asks the producer again, and the worker serving the answer finds
the committed copy (handlers/transaction.py) and stores only the op message. Without the IndexFile
(messageIndexEnable=false) that answer stores the message a second time, as RocketMQ would.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from rocketpy import limits
from rocketpy.broker.control.clients import ClientChannel, ProducerManager, Push
from rocketpy.broker.control.persist import load_json, write_json
from rocketpy.broker.reading import FollowingReader
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.errors import ProtocolError
from rocketpy.ipc.control_block import ControlBlock
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import as_int, as_map, as_obj, as_str
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.headers import CheckTransactionStateRequestHeader
from rocketpy.protocol.message import (
    PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS,
    PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_TRANSACTION_CHECK_TIMES,
    PROPERTY_UNIQ_KEY,
    MessageRecord,
    decode_record,
    encode_record,
    format_properties,
)
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand, encode_frame
from rocketpy.store.api import GetResult, GetStatus

log = logging.getLogger("rocketpy.broker.control")

HALF_TOPIC = t.RMQ_SYS_TRANS_HALF_TOPIC
OP_TOPIC = t.RMQ_SYS_TRANS_OP_HALF_TOPIC
HALF_QUEUE_ID = 0                    # RocketMQ 4.x: one half queue; its op queue has the same id
REMOVE_TAG = "d"                     # TransactionalMessageUtil.REMOVETAG
STATE_FILE = "transactionCheck.json"

CLOSED_DISCARDED = "discarded"       # checked transactionCheckMax times, or older than fileReservedTime
CLOSED_ENDED = "ended"               # ended by END_TRANSACTION but its op message could not be stored
CLOSED_GONE = "gone"                 # no longer in the store (retention), or unreadable

_SKIP_STATUSES = frozenset({GetStatus.NO_MATCHED_MESSAGE, GetStatus.MESSAGE_WAS_REMOVING, GetStatus.OFFSET_FOUND_NULL})


class QueueSource(Protocol):
    """Reads one ConsumeQueue of the store, as far as it is dispatched."""

    def read(self, topic: str, queue_id: int, queue_offset: int, max_count: int) -> GetResult: ...


class StoreQueueSource:
    """Control's QueueSource: read-only maps, bounded by the published committed and max offsets."""

    def __init__(self, reader: FollowingReader, queue_table: QueueTable, control_block: ControlBlock) -> None:
        self.reader = reader
        self.queue_table = queue_table
        self.control_block = control_block

    def read(self, topic: str, queue_id: int, queue_offset: int, max_count: int) -> GetResult:
        entry = self.queue_table.get(topic, queue_id)
        max_offset = entry[0] if entry is not None else 0
        return self.reader.get().get_message(topic, queue_id, queue_offset, max_count, None,
                                             committed_offset=self.control_block.committed_offset,
                                             max_queue_offset=max_offset)


@dataclasses.dataclass(frozen=True, slots=True)
class CheckPassResult:
    """What one pass did (for logs and tests)."""

    scanned: int
    checked: int
    discarded: int
    half_progress: int


@dataclasses.dataclass(slots=True)
class _Claim:
    worker_slot: int
    since_ms: int


class TransactionService:
    """Check-back passes, the claim arbiter, and their persisted state (see the module docstring)."""

    def __init__(self, config_dir: str, broker: BrokerConfig, store: StoreConfig, *,
                 source: QueueSource | None, producers: ProducerManager, push: Push,
                 clock: Clock = SYSTEM_CLOCK,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.path = os.path.join(config_dir, STATE_FILE)
        self.source = source
        self.producers = producers
        self.push = push
        self.clock = clock
        self.on_progress = on_progress
        self.timeout_ms = broker.transaction_timeout_ms
        self.check_max = broker.transaction_check_max
        self.file_reserved_ms = store.file_reserved_time_hours * 3_600_000
        self.half_progress = 0
        self.op_progress = 0
        self.op_read = 0                        # next op queue offset to read
        self.check_times: dict[int, int] = {}
        self.closed: dict[int, str] = {}
        self.resolved: dict[int, int] = {}      # half queue offset -> smallest op queue offset naming it
        self.claims: dict[int, _Claim] = {}
        self._opaque = 0
        self._dirty = False

    # --- state ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the state file (a missing file is a fresh broker); ProtocolError-free."""
        obj = load_json(self.path, _decode_state)
        if obj is None:
            return
        self.half_progress, self.op_progress, self.check_times, self.closed = obj
        self.op_read = self.op_progress
        self.resolved.clear()
        log.info("transaction check state: half progress %d, op progress %d, %d halves checked, %d closed",
                 self.half_progress, self.op_progress, len(self.check_times), len(self.closed))

    def persist(self) -> None:
        write_json(self.path, {
            "halfProgress": self.half_progress, "opProgress": self.op_progress,
            "checkTimes": {str(k): v for k, v in sorted(self.check_times.items())},
            "closed": {str(k): v for k, v in sorted(self.closed.items())}})
        self._dirty = False

    def persist_if_changed(self) -> None:
        if self._dirty:
            self.persist()

    # --- END_TRANSACTION arbiter ---------------------------------------------------------------

    def claim(self, half_offset: int, commit_log_offset: int, worker_slot: int) -> str | None:
        """None when this END_TRANSACTION may end the half; else why not (one sentence)."""
        self.catch_up_ops()
        where = f"half message at queue offset {half_offset} (commitLogOffset {commit_log_offset})"
        reason = self.closed.get(half_offset)
        if reason == CLOSED_DISCARDED:
            return (f"the transaction of the {where} was discarded after {self.check_max} check-backs "
                    "(transactionCheckMax) and can no longer be ended; send the message again")
        if half_offset < self.half_progress or half_offset in self.resolved or reason is not None:
            return f"the transaction of the {where} is already over (committed, rolled back or discarded)"
        now = self.clock.monotonic_ms()
        held = self.claims.get(half_offset)
        if held is not None and now - held.since_ms < limits.TRANSACTION_END_CLAIM_TIMEOUT_MS:
            return (f"the transaction of the {where} is being ended by another END_TRANSACTION right now; "
                    "nothing to do")
        self.claims[half_offset] = _Claim(worker_slot, now)
        return None

    def done(self, half_offset: int, op_offset: int | None) -> None:
        """The claimed END_TRANSACTION finished: op message at op_offset, -1 if the half was ended
        but its op message could not be stored, None if nothing was stored (claim let go)."""
        self.claims.pop(half_offset, None)
        if op_offset is None or half_offset < self.half_progress:
            return
        if op_offset < 0:
            self.closed[half_offset] = CLOSED_ENDED
            self.persist()                      # nothing else in the store says it was ended
            return
        self._resolve(half_offset, op_offset)

    def worker_gone(self, worker_slot: int) -> None:
        for offset in [o for o, c in self.claims.items() if c.worker_slot == worker_slot]:
            del self.claims[offset]

    # --- op queue -----------------------------------------------------------------------------

    def catch_up_ops(self, limit: int = limits.TRANSACTION_CHECK_OP_PER_PASS_MAX) -> int:
        """Read op messages from where the last read stopped (at most `limit`); the number read."""
        source = self.source
        if source is None:
            return 0
        read = 0
        while read < limit:
            result = source.read(OP_TOPIC, HALF_QUEUE_ID, self.op_read,
                                 min(limits.TRANSACTION_CHECK_READ_BATCH_MAX, limit - read))
            if result.status is GetStatus.FOUND:
                for op_offset, raw in zip(result.queue_offsets, result.records, strict=True):
                    self._take_op(op_offset, raw)
            elif result.status is GetStatus.OFFSET_OVERFLOW_BADLY:
                log.warning("op queue of %s ends at %d, before the %d already read (store lost its tail?); "
                            "reading on from its end", OP_TOPIC, result.next_begin_offset, self.op_read)
                self.op_read = result.next_begin_offset
                break
            elif result.status is not GetStatus.OFFSET_TOO_SMALL and result.status not in _SKIP_STATUSES:
                break                           # nothing more dispatched yet
            if result.next_begin_offset <= self.op_read:
                break
            read += result.next_begin_offset - self.op_read
            self.op_read = result.next_begin_offset
        return read

    def _take_op(self, op_offset: int, raw: bytes | memoryview) -> None:
        try:
            rec = decode_record(raw)
            half_offset = int(rec.body.decode("ascii"))
        except (ProtocolError, UnicodeDecodeError, ValueError) as exc:
            log.error("skipping op message at queue offset %d of %s: %s", op_offset, OP_TOPIC, exc)
            return
        if rec.tags != REMOVE_TAG:
            log.error("skipping op message at queue offset %d of %s: tag %r is not %r", op_offset, OP_TOPIC,
                      rec.tags, REMOVE_TAG)
            return
        if half_offset < self.half_progress:
            return
        self._resolve(half_offset, op_offset)

    # --- the check pass -------------------------------------------------------------------------

    def check_pass(self) -> CheckPassResult:
        """One pass over the unresolved half messages (bounded); persists what changed."""
        source = self.source
        if source is None:
            return CheckPassResult(0, 0, 0, self.half_progress)
        self.catch_up_ops()
        self._expire_claims()
        now = self.clock.now_ms()
        scanned = checked = discarded = 0
        offset = self.half_progress
        while scanned < limits.TRANSACTION_CHECK_HALF_PER_PASS_MAX:
            count = min(limits.TRANSACTION_CHECK_READ_BATCH_MAX, limits.TRANSACTION_CHECK_HALF_PER_PASS_MAX - scanned)
            result = source.read(HALF_TOPIC, HALF_QUEUE_ID, offset, count)
            status = result.status
            if status is GetStatus.OFFSET_TOO_SMALL:
                log.warning("half messages below queue offset %d are gone from the store (retention); "
                            "check progress moves from %d to there", result.next_begin_offset, self.half_progress)
                self._set_progress(max(self.half_progress, result.next_begin_offset))
                offset = self.half_progress
                continue
            if status is not GetStatus.FOUND and status not in _SKIP_STATUSES:
                break
            found = dict(zip(result.queue_offsets, result.records, strict=True))
            end = result.next_begin_offset
            if end <= offset:
                break
            for half_offset in range(offset, end):
                scanned += 1
                if half_offset in self.resolved or half_offset in self.closed:
                    continue
                raw = found.get(half_offset)
                if raw is None:
                    log.warning("half message at queue offset %d is not in the store any more (%s); closing it",
                                half_offset, status.value)
                    self._close(half_offset, CLOSED_GONE)
                    continue
                outcome = self._check_one(half_offset, raw, now)
                checked += outcome == "checked"
                discarded += outcome == "discarded"
            offset = end
        self._advance()
        self.persist_if_changed()
        return CheckPassResult(scanned, checked, discarded, self.half_progress)

    def _check_one(self, half_offset: int, raw: bytes | memoryview, now_ms: int) -> str:
        try:
            rec = decode_record(raw)
        except ProtocolError as exc:
            log.error("half message at queue offset %d is unreadable (%s); closing it", half_offset, exc)
            self._close(half_offset, CLOSED_GONE)
            return "closed"
        props = rec.property_map()
        age_ms = now_ms - rec.born_timestamp
        immunity_ms = self.timeout_ms
        immunity = props.get(PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS)
        if immunity is not None:
            try:
                seconds = int(immunity)
            except ValueError:
                seconds = -1
            if seconds >= 0:
                immunity_ms = seconds * 1000
        if 0 <= age_ms < immunity_ms:
            return "young"
        count = self.check_times.get(half_offset, 0)
        if count >= self.check_max or age_ms > self.file_reserved_ms:
            why = (f"checked {count} times (transactionCheckMax {self.check_max})" if count >= self.check_max
                   else "older than fileReservedTime")
            log.warning("discarding transactional half message: queue offset %d, commitLogOffset %d, topic %s, "
                        "producer group %s, msgId %s: %s without an answer", half_offset, rec.phys_offset,
                        props.get(PROPERTY_REAL_TOPIC), props.get(PROPERTY_PRODUCER_GROUP),
                        props.get(PROPERTY_UNIQ_KEY), why)
            self._close(half_offset, CLOSED_DISCARDED)
            return "discarded"
        real_topic = props.get(PROPERTY_REAL_TOPIC)
        real_qid = props.get(PROPERTY_REAL_QUEUE_ID, "")
        if not real_topic or not real_qid.isdigit():
            log.error("half message at queue offset %d lacks REAL_TOPIC/REAL_QID; closing it", half_offset)
            self._close(half_offset, CLOSED_GONE)
            return "closed"
        self.check_times[half_offset] = count + 1
        self._dirty = True
        props[PROPERTY_TRANSACTION_CHECK_TIMES] = str(count + 1)
        self._send_check(half_offset, dataclasses.replace(
            rec, topic=real_topic, queue_id=int(real_qid), properties=format_properties(props)), props)
        return "checked"

    def _send_check(self, half_offset: int, message: MessageRecord, props: dict[str, str]) -> bool:
        """CHECK_TRANSACTION_STATE to the most recently seen connection of the half's producer group."""
        group = props.get(PROPERTY_PRODUCER_GROUP, "")
        channel = _freshest(self.producers.channels(group)) if group else None
        if channel is None:
            log.warning("transaction check-back of half offset %d not sent: no live producer of group %r "
                        "(check %s of %d)", half_offset, group, props[PROPERTY_TRANSACTION_CHECK_TIMES],
                        self.check_max)
            return False
        uniq = props.get(PROPERTY_UNIQ_KEY)
        header = CheckTransactionStateRequestHeader(
            tran_state_table_offset=half_offset, commit_log_offset=message.phys_offset, msg_id=uniq,
            transaction_id=uniq, offset_msg_id=offset_msg_id(message.store_host, message.store_port,
                                                             message.phys_offset))
        self._opaque = (self._opaque + 1) & 0x7FFFFFFF
        # The body: the half as a pull response carries it, with its real topic and queue. Its
        # TOTALSIZE is the real size (Java writes 0 there and its decoder ignores it; ours checks it).
        cmd = RemotingCommand.request(RequestCode.CHECK_TRANSACTION_STATE, header.to_ext(),
                                      bytes(encode_record(message)), opaque=self._opaque, oneway=True)
        try:
            self.push(channel.worker_slot, channel.conn_id, encode_frame(cmd))
        except Exception:  # noqa: BLE001 - one bad push must not stop the pass
            log.exception("transaction check-back of half offset %d to %s failed", half_offset, channel.key)
            return False
        log.info("transaction check-back %s/%d: half offset %d, commitLogOffset %d, msgId %s, group %s, to %s",
                 props[PROPERTY_TRANSACTION_CHECK_TIMES], self.check_max, half_offset, message.phys_offset, uniq,
                 group, channel.client_id)
        return True

    # --- progress --------------------------------------------------------------------------------

    def _resolve(self, half_offset: int, op_offset: int) -> None:
        old = self.resolved.get(half_offset)
        self.resolved[half_offset] = op_offset if old is None else min(old, op_offset)
        if self.check_times.pop(half_offset, None) is not None:
            self._dirty = True

    def _close(self, half_offset: int, reason: str) -> None:
        self.closed[half_offset] = reason
        self.check_times.pop(half_offset, None)
        self._dirty = True

    def _advance(self) -> None:
        progress = self.half_progress
        while progress in self.resolved or progress in self.closed:
            progress += 1
        self._set_progress(progress)
        op_progress = min([self.op_read, *self.resolved.values()])
        if op_progress != self.op_progress:
            self.op_progress = op_progress
            self._dirty = True

    def _set_progress(self, progress: int) -> None:
        if progress == self.half_progress:
            return
        self.half_progress = progress
        for table in (self.resolved, self.closed, self.check_times):
            for offset in [o for o in table if o < progress]:
                del table[offset]
        self._dirty = True
        if self.on_progress is not None:
            self.on_progress(progress)

    def _expire_claims(self) -> None:
        now = self.clock.monotonic_ms()
        for offset, held in list(self.claims.items()):
            if now - held.since_ms >= limits.TRANSACTION_END_CLAIM_TIMEOUT_MS:
                log.warning("END_TRANSACTION of half offset %d by worker slot %d did not finish within %d ms; "
                            "letting go of it", offset, held.worker_slot, limits.TRANSACTION_END_CLAIM_TIMEOUT_MS)
                del self.claims[offset]


def _freshest(channels: list[ClientChannel]) -> ClientChannel | None:
    return max(channels, key=lambda ch: ch.last_update_ms, default=None)


def _decode_state(obj: Any) -> tuple[int, int, dict[int, int], dict[int, str]]:
    doc = as_obj(obj, STATE_FILE)
    half = as_int(doc.get("halfProgress", 0), "halfProgress", 0)
    op = as_int(doc.get("opProgress", 0), "opProgress", 0)
    checks = {as_int(k, "checkTimes key", 0): as_int(v, f"checkTimes[{k}]", 0)
              for k, v in as_map(doc.get("checkTimes"), "checkTimes").items()}
    closed = {as_int(k, "closed key", 0): as_str(v, f"closed[{k}]")
              for k, v in as_map(doc.get("closed"), "closed").items()}
    return half, op, checks, closed
