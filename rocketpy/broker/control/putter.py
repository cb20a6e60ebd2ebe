"""Control's own puts: messages control makes itself (the delay scheduler's re-puts) go to the writer
through control's put ring, exactly as a worker's sends do (`broker/putwire.py`).

The writer drains this ring with the workers' and answers on control's response ring, ringing
control's response doorbell (also after each flush). A put resolves to a `PutOutcome`:

| outcome | when |
|---|---|
| stored (PUT_OK) | the writer appended it; with `wait_flushed` only once the published flushed offset covers it |
| refused (status) | the writer refused it (illegal, disk full, I/O error, stale generation): not stored |
| unknown | the writer restarted (generation changed) or did not answer within CONTROL_PUT_TIMEOUT_MS: the record may or may not be in the log |

An unknown outcome is why a re-put carries a mark naming its source: the caller can look in the
log (from `low_phys`, the committed offset when the put was sent) before it tries again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import logging
import time
from collections import deque

from rocketpy import limits
from rocketpy.broker.putwire import (
    FLAG_WAIT,
    RESPONSE_SIZE,
    PutResponse,
    PutStatus,
    encode_put_request_parts,
)
from rocketpy.broker.records import host_bytes, host_flags, record_parts, topic_part
from rocketpy.errors import ProtocolError
from rocketpy.ipc.control_block import ControlBlock
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.ring import RingConsumer, RingMessageTooLarge, RingProducer

log = logging.getLogger("rocketpy.broker.control")


class PutResult(enum.Enum):
    STORED = "stored"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class PutOutcome:
    result: PutResult
    reason: str = ""
    phys_offset: int = 0          # where the record starts (STORED)
    end_phys_offset: int = 0      # durable once the flushed offset reaches this (STORED)
    queue_offset: int = 0
    low_phys: int = 0             # the committed offset when the put was sent: the record, if any, is after it


@dataclasses.dataclass(slots=True)
class _Pending:
    future: asyncio.Future[PutOutcome]
    generation: int
    low_phys: int
    sent_at: float
    wait_flushed: bool


class ControlPutter:
    """The put ring to the writer and the response ring back, for control's asyncio loop."""

    def __init__(self, put_ring: RingProducer, response_ring: RingConsumer, writer_bell: Doorbell,
                 response_bell: Doorbell, control_block: ControlBlock, *, store_host: str, store_port: int,
                 max_message_size: int) -> None:
        self.put_ring = put_ring
        self.response_ring = response_ring
        self.writer_bell = writer_bell
        self.response_bell = response_bell
        self.control_block = control_block
        self.store_ip, self.store_v6 = host_bytes(store_host)
        self.store_port = store_port
        self.max_message_size = max_message_size
        self.pending: dict[int, _Pending] = {}
        self.flush_waiters: deque[tuple[_Pending, PutOutcome]] = deque()
        # Ids continue across control restarts, so a stale response never matches a new put.
        self._ids = itertools.count(time.time_ns())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def settle(self, timeout_ms: int = limits.CONTROL_PUT_TIMEOUT_MS) -> bool:
        """Wait until the writer took every put an earlier control incarnation left in the ring, so a
        scan of the CommitLog after this sees them all; False when the writer did not within timeout_ms.

        The writer publishes its committed offset at the end of the turn that drained the ring, a
        few milliseconds later: one idle interval after the ring is empty covers it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while self.put_ring.used():
            if loop.time() >= deadline:
                log.warning("the writer has not taken control's earlier puts within %d ms", timeout_ms)
                return False
            self.writer_bell.ring()
            await asyncio.sleep(limits.SCHEDULE_IDLE_WAIT_MS / 1000)
        if self.put_ring.used() == 0 and self.response_ring.used():
            await asyncio.sleep(limits.SCHEDULE_IDLE_WAIT_MS / 1000)
        return True

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.response_ring.drain()     # answers meant for an earlier control incarnation
        self.response_bell.clear()
        loop.add_reader(self.response_bell.fd, self._on_bell)
        self._timer = loop.create_task(self._watch(), name="control-put-watch")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.response_bell.fd)
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
        self._fail_all(PutResult.UNKNOWN, "control is stopping")

    # --- puts ----------------------------------------------------------------------------

    def put(self, topic: str, queue_id: int, body: bytes, props: str, *, flag: int = 0, sys_flag: int = 0,
            born_timestamp_ms: int, born_host: str, born_port: int, reconsume_times: int = 0,
            wait_flushed: bool = False) -> asyncio.Future[PutOutcome]:
        """Encode and put one record; props are stored as given."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PutOutcome] = loop.create_future()
        props_b = props.encode()
        if len(body) > self.max_message_size or len(props_b) > limits.PROPERTIES_SIZE_MAX:
            future.set_result(PutOutcome(PutResult.REFUSED, f"message of {len(body)} body bytes and "
                                         f"{len(props_b)} property bytes is over the limits"))
            return future
        try:
            born_ip, born_v6 = host_bytes(born_host)
        except ValueError:
            born_ip, born_v6 = bytes(4), False
        sys_flag = host_flags(sys_flag, born_v6, self.store_v6)
        parts, size = record_parts(body, topic_part(topic), props_b, queue_id, flag, sys_flag, born_timestamp_ms,
                                   born_ip, born_port, self.store_ip, self.store_port, reconsume_times)
        request_id = next(self._ids)
        committed, _flushed, _ts, generation, _min, _flags = self.control_block.writer_fields()
        head = encode_put_request_parts(request_id, int(generation), FLAG_WAIT if wait_flushed else 0, 1,
                                        queue_id, sys_flag, topic.encode(), size)
        try:
            accepted = self.put_ring.put_parts([head, *parts])
        except RingMessageTooLarge as exc:
            future.set_result(PutOutcome(PutResult.REFUSED, str(exc)))
            return future
        if not accepted:
            self.writer_bell.ring()
            future.set_result(PutOutcome(PutResult.REFUSED, "control's put ring is full"))
            return future
        self.pending[request_id] = _Pending(future, int(generation), int(committed), time.monotonic(),
                                            wait_flushed)
        self.writer_bell.ring()
        return future

    # --- answers --------------------------------------------------------------------------

    def _on_bell(self) -> None:
        self.response_bell.clear()
        self.drain()

    def drain(self) -> int:
        """Resolve every put answered on the response ring and every flush waiter now covered."""
        msgs = self.response_ring.drain()
        for msg in msgs:
            if len(msg) != RESPONSE_SIZE:
                log.error("skipping a put response of %d bytes on control's response ring", len(msg))
                continue
            try:
                response = PutResponse.decode(msg)
            except (ProtocolError, ValueError) as exc:
                log.error("skipping a bad put response on control's response ring: %s", exc)
                continue
            put = self.pending.pop(response.request_id, None)
            if put is None:
                continue
            if response.status is PutStatus.PUT_OK:
                outcome = PutOutcome(PutResult.STORED, "", response.first_phys_offset, response.end_phys_offset,
                                     response.first_queue_offset, put.low_phys)
                if put.wait_flushed:
                    self.flush_waiters.append((put, outcome))
                else:
                    _resolve(put, outcome)
            else:
                _resolve(put, PutOutcome(PutResult.REFUSED, response.status.name, low_phys=put.low_phys))
        self._check_flushed()
        return len(msgs)

    def _check_flushed(self) -> None:
        waiters = self.flush_waiters
        if not waiters:
            return
        flushed = self.control_block.flushed_offset
        while waiters and waiters[0][1].end_phys_offset <= flushed:
            put, outcome = waiters.popleft()
            _resolve(put, outcome)

    async def _watch(self) -> None:
        """Fail puts a restarted writer will never answer, and puts left unanswered too long."""
        while True:
            await asyncio.sleep(limits.SCHEDULE_IDLE_WAIT_MS / 1000)
            self.drain()
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        generation = int(self.control_block.writer_fields()[3])
        deadline = now - limits.CONTROL_PUT_TIMEOUT_MS / 1000
        for rid, put in list(self.pending.items()):
            if put.generation != generation or put.sent_at <= deadline:
                del self.pending[rid]
                why = "the writer restarted" if put.generation != generation else "the writer did not answer"
                _resolve(put, PutOutcome(PutResult.UNKNOWN, why, low_phys=put.low_phys))
        waiters = self.flush_waiters
        while waiters and (waiters[0][0].generation != generation or waiters[0][0].sent_at <= deadline):
            put, outcome = waiters.popleft()
            # Stored by a writer that has since restarted, or never flushed in time: recovery may have cut it.
            _resolve(put, dataclasses.replace(outcome, result=PutResult.UNKNOWN,
                                              reason="the put was not flushed before the writer restarted"))

    def _fail_all(self, result: PutResult, reason: str) -> None:
        for put in self.pending.values():
            _resolve(put, PutOutcome(result, reason, low_phys=put.low_phys))
        self.pending.clear()
        for put, _outcome in self.flush_waiters:
            _resolve(put, PutOutcome(result, reason, low_phys=put.low_phys))
        self.flush_waiters.clear()

    @property
    def in_flight(self) -> int:
        return len(self.pending) + len(self.flush_waiters)


def _resolve(put: _Pending, outcome: PutOutcome) -> None:
    if not put.future.done():
        put.future.set_result(outcome)
