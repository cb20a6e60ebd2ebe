"""ProcessQueue: the messages pulled from one queue and not yet consumed (RocketMQ's ProcessQueue).

Messages are kept by queue offset. Only the lowest offset still held may be committed:
a message at offset 7 finishing before the one at offset 5 must not let a restart skip 5,
so `remove_messages` answers the lowest offset still in flight (or one past the highest
pulled when none is left). The cached count and body bytes drive the pull flow control.

For orderly consumers, `take_messages` moves messages into a "consuming" map so a
failed batch can be put back in place (`make_messages_consume_again`) and a successful
one committed (`commit`); `locked` and `last_lock_timestamp_ms` mirror the broker's lock.

A ProcessQueue belongs to one asyncio loop: every method is called from that loop, so it
needs no lock (the Java class guards the same state with a read-write lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from rocketpy.limits import (
    PULL_MAX_IDLE_TIME_MS,
    REBALANCE_LOCK_MAX_LIVE_TIME_MS,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class QueuedMessage(Protocol):
    """What a process queue reads of a message (the SDK's `MessageExt` has it)."""

    @property
    def queue_offset(self) -> int: ...
    @property
    def body(self) -> bytes: ...


M = TypeVar("M", bound=QueuedMessage)


class ProcessQueue:
    """The in-flight messages of one message queue held by this consumer."""

    def __init__(self, *, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or now_ms
        self._msgs: dict[int, QueuedMessage] = {}       # queue offset -> message, not yet consumed
        self._sorted: list[int] | None = []             # cache of sorted(self._msgs); None = stale
        self._consuming: dict[int, QueuedMessage] = {}  # orderly: taken, not yet committed
        self.msg_count = 0                              # messages held (both maps)
        self.msg_size = 0                               # their body bytes
        self.queue_offset_max = -1                      # highest offset ever put
        self.consuming = False                          # a consume task owns this queue's messages
        self.dropped = False
        self.locked = False
        self.last_lock_timestamp_ms = 0
        self.last_pull_timestamp_ms = self._clock_ms()
        self.last_consume_timestamp_ms = self._clock_ms()
        self.consume_start_ms: dict[int, int] = {}      # offset -> when a listener got it (timeouts)

    # --- pulled messages in -------------------------------------------------------------

    def put_messages(self, msgs: Iterable[QueuedMessage]) -> bool:
        """Add pulled messages (a duplicate offset is ignored). True when the caller must start a
        consume task: there are messages and none is running (ProcessQueue.putMessage)."""
        for msg in msgs:
            offset = msg.queue_offset
            if offset in self._msgs or offset in self._consuming:
                continue
            self._msgs[offset] = msg
            self._sorted = None
            self.msg_count += 1
            self.msg_size += len(msg.body or b"")
            self.queue_offset_max = max(self.queue_offset_max, offset)
        if self._msgs and not self.consuming:
            self.consuming = True
            return True
        return False

    # --- concurrent consumers -------------------------------------------------------------

    def remove_messages(self, msgs: Sequence[QueuedMessage]) -> int:
        """Forget consumed messages; returns the offset that may be committed (the lowest one still
        held, else one past the highest pulled), or -1 when nothing was held."""
        self.last_consume_timestamp_ms = self._clock_ms()
        if not self._msgs:
            return -1
        for msg in msgs:
            prev = self._msgs.pop(msg.queue_offset, None)
            if prev is not None:
                self._sorted = None
                self.msg_count -= 1
                self.msg_size -= len(prev.body or b"")
                self.consume_start_ms.pop(msg.queue_offset, None)
        if self.msg_count == 0:
            self.msg_size = 0
        first = self.first_offset()
        return first if first is not None else self.queue_offset_max + 1

    def first_offset(self) -> int | None:
        offsets = self._offsets()
        return offsets[0] if offsets else None

    def max_span(self) -> int:
        """Distance between the lowest and highest held offsets (consumeConcurrentlyMaxSpan)."""
        offsets = self._offsets()
        return offsets[-1] - offsets[0] if offsets else 0

    def messages(self) -> list[QueuedMessage]:
        """Held messages in offset order (not the orderly consuming ones)."""
        return [self._msgs[o] for o in self._offsets()]

    def mark_consume_start(self, msgs: Iterable[QueuedMessage]) -> None:
        now = self._clock_ms()
        for msg in msgs:
            self.consume_start_ms[msg.queue_offset] = now

    def expired_messages(self, timeout_ms: int, limit: int) -> list[QueuedMessage]:
        """The lowest held messages whose listener started more than `timeout_ms` ago, stopping at
        the first one that has not (ProcessQueue.cleanExpiredMsg looks at the head only)."""
        now = self._clock_ms()
        result: list[QueuedMessage] = []
        for offset in self._offsets()[:limit]:
            started = self.consume_start_ms.get(offset)
            if started is None or now - started <= timeout_ms:
                break
            result.append(self._msgs[offset])
        return result

    # --- orderly consumers --------------------------------------------------------------------

    def take_messages(self, batch_size: int) -> list[QueuedMessage]:
        """Move up to `batch_size` lowest messages into the consuming map. An empty answer also
        ends the consume task's turn (`consuming` goes False), as in ProcessQueue.takeMessages."""
        now = self._clock_ms()
        self.last_consume_timestamp_ms = now
        taken = []
        for offset in self._offsets()[:batch_size]:
            msg = self._msgs.pop(offset)
            self._consuming[offset] = msg
            taken.append(msg)
        if taken:
            self._sorted = None
        else:
            self.consuming = False
        return taken

    def commit(self) -> int:
        """Forget the consuming messages; returns the next offset to commit, -1 if there were none."""
        if not self._consuming:
            return -1
        last = max(self._consuming)
        self.msg_count -= len(self._consuming)
        self.msg_size -= sum(len(m.body or b"") for m in self._consuming.values())
        self._consuming.clear()
        if self.msg_count == 0:
            self.msg_size = 0
        return last + 1

    def make_messages_consume_again(self, msgs: Iterable[QueuedMessage]) -> None:
        """Put taken messages back in place (a SUSPEND_CURRENT_QUEUE_A_MOMENT answer)."""
        for msg in msgs:
            if self._consuming.pop(msg.queue_offset, None) is not None:
                self._msgs[msg.queue_offset] = msg
                self._sorted = None

    def rollback(self) -> None:
        """Every consuming message back into the held map."""
        self.make_messages_consume_again(list(self._consuming.values()))

    def is_lock_expired(self, now_ms_: int | None = None) -> bool:
        now = self._clock_ms() if now_ms_ is None else now_ms_
        return now - self.last_lock_timestamp_ms > REBALANCE_LOCK_MAX_LIVE_TIME_MS

    # --- pulls ---------------------------------------------------------------------------

    def is_pull_expired(self, now_ms_: int | None = None) -> bool:
        """No pull for PULL_MAX_IDLE_TIME_MS: the pull loop died; rebalance replaces the queue."""
        now = self._clock_ms() if now_ms_ is None else now_ms_
        return now - self.last_pull_timestamp_ms > PULL_MAX_IDLE_TIME_MS

    def has_consuming(self) -> bool:
        return bool(self._consuming)

    def _offsets(self) -> list[int]:
        if self._sorted is None:
            self._sorted = sorted(self._msgs)
        return self._sorted

    def __repr__(self) -> str:
        return (f"ProcessQueue(count={self.msg_count}, size={self.msg_size}, max={self.queue_offset_max}, "
                f"dropped={self.dropped}, locked={self.locked})")
