"""Latency fault tolerance — RocketMQ's MQFaultStrategy and LatencyFaultToleranceImpl.

After every send the producer reports how long it took (a failure counts as
`FAULT_ISOLATION_LATENCY_MS`). A latency at or above `FAULT_LATENCY_MAX_MS[i]` makes the
broker unavailable for `FAULT_NOT_AVAILABLE_DURATION_MS[i]`: sends under 550 ms never
penalise a broker, a failed one sidelines it for 10 minutes or until a send to it succeeds
again. Queue choice is round-robin over the queues of available brokers; when none is
available the least bad broker is used rather than failing.

RocketMQ ships this off (sendLatencyFaultEnable=false) and then only avoids the broker of
the previous attempt on a retry. We turn it on by default: with it off, every send that
lands on a dead broker pays a connect failure or timeout before its retry, for as long as
the NameServer still routes to that broker (up to 120 s); with it on, one failure steers
the following sends away. The cost is a dictionary lookup per send.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence

from rocketpy import limits
from rocketpy.client.message import MessageQueue
from rocketpy.clock import SYSTEM_CLOCK, Clock


@dataclasses.dataclass(slots=True)
class FaultItem:
    broker_name: str
    latency_ms: int
    available_from_ms: int


class LatencyFaultTolerance:
    """Which brokers are sidelined, and until when (monotonic ms)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._items: dict[str, FaultItem] = {}
        self._worst = itertools.count(random.randrange(1 << 16))

    def update(self, broker_name: str, latency_ms: int, not_available_ms: int) -> None:
        now = self._clock.monotonic_ms()
        item = self._items.get(broker_name)
        if item is None:
            self._items[broker_name] = FaultItem(broker_name, latency_ms, now + not_available_ms)
        else:
            item.latency_ms = latency_ms
            item.available_from_ms = now + not_available_ms

    def is_available(self, broker_name: str) -> bool:
        item = self._items.get(broker_name)
        return item is None or self._clock.monotonic_ms() >= item.available_from_ms

    def remove(self, broker_name: str) -> None:
        self._items.pop(broker_name, None)

    def pick_one_at_least(self) -> str | None:
        """A broker from the better half of the sidelined ones (the soonest available,
        then the fastest), rotating among them."""
        if not self._items:
            return None
        now = self._clock.monotonic_ms()
        ranked = sorted(self._items.values(),
                        key=lambda i: (now < i.available_from_ms, i.latency_ms, i.available_from_ms))
        half = len(ranked) // 2
        if half <= 0:
            return ranked[0].broker_name
        return ranked[next(self._worst) % half].broker_name


def not_available_duration_ms(latency_ms: int) -> int:
    """computeNotAvailableDuration: the penalty of the highest latency step reached."""
    for step_ms, duration_ms in zip(reversed(limits.FAULT_LATENCY_MAX_MS),
                                    reversed(limits.FAULT_NOT_AVAILABLE_DURATION_MS), strict=True):
        if latency_ms >= step_ms:
            return duration_ms
    return 0


class MQFaultStrategy:
    """Picks the queue of each send attempt."""

    def __init__(self, enabled: bool = True, clock: Clock = SYSTEM_CLOCK) -> None:
        self.enabled = enabled
        self.tolerance = LatencyFaultTolerance(clock)
        self._counters: dict[str, itertools.count[int]] = {}

    def _next(self, topic: str) -> int:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = itertools.count(random.randrange(1 << 16))
        return next(counter)

    def select(self, queues: Sequence[MessageQueue], last_broker: str | None = None) -> MessageQueue:
        """Round-robin over queues, skipping unavailable brokers (enabled) or the broker
        of the previous attempt (disabled)."""
        assert queues, "select needs at least one queue"
        topic = queues[0].topic
        n = len(queues)
        if self.enabled:
            start = self._next(topic)
            same_broker: MessageQueue | None = None
            for i in range(n):
                mq = queues[(start + i) % n]
                if self.tolerance.is_available(mq.broker_name):
                    if mq.broker_name != last_broker:
                        return mq
                    same_broker = same_broker or mq
            if same_broker is not None:
                return same_broker
            best = self.tolerance.pick_one_at_least()
            if best is not None:
                mine = [q for q in queues if q.broker_name == best]
                if mine:
                    return mine[self._next(topic) % len(mine)]
                self.tolerance.remove(best)
            return queues[self._next(topic) % n]
        start = self._next(topic)
        if last_broker is not None:
            for i in range(n):
                mq = queues[(start + i) % n]
                if mq.broker_name != last_broker:
                    return mq
        return queues[start % n]

    def update(self, broker_name: str, latency_ms: int, isolation: bool) -> None:
        """Record one attempt: its latency, or a failure (isolation)."""
        if not self.enabled:
            return
        latency = limits.FAULT_ISOLATION_LATENCY_MS if isolation else latency_ms
        self.tolerance.update(broker_name, latency, not_available_duration_ms(latency))
