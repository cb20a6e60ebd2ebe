"""Counters a broker process keeps on its hot path and ships to control once a second.

Counting is a dict increment and a list increment (no locks, no objects per
message); `take()` returns the interval's delta as a JSON body and starts a new
interval, so control adds deltas and a lost shipment loses one second of
counts, never corrupts a total. Topic (and group) cardinality is bounded: past
METRICS_TOPIC_SERIES_MAX the rest is counted under "_other".
"""

from __future__ import annotations

from typing import Any

import orjson

from rocketpy import limits
from rocketpy.metrics.prom import LATENCY_BUCKETS_US, bucket_index, new_buckets

OTHER = "_other"


class Histogram:
    __slots__ = ("counts", "sum_us")

    def __init__(self) -> None:
        self.counts = new_buckets()
        self.sum_us = 0.0

    def observe_s(self, seconds: float) -> None:
        us = seconds * 1e6
        self.counts[bucket_index(us)] += 1
        self.sum_us += us

    def add(self, counts: list[int], sum_us: float) -> None:
        if len(counts) != len(self.counts):
            return                       # another layout (a mixed-version broker): drop, never raise
        for i, c in enumerate(counts):
            self.counts[i] += int(c)
        self.sum_us += float(sum_us)

    @property
    def total(self) -> int:
        return sum(self.counts)


def _bounded_key(table: dict[Any, list[int]], key: Any) -> Any:
    if key in table or len(table) < limits.METRICS_TOPIC_SERIES_MAX:
        return key
    return OTHER if not isinstance(key, tuple) else (OTHER,) * len(key)


class ProcessStats:
    """One process's counters for the current interval."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._reset()

    def _reset(self) -> None:
        self.put: dict[str, list[int]] = {}                   # topic -> [messages, bytes]
        self.get: dict[tuple[str, str], list[int]] = {}       # (group, topic) -> [messages, bytes]
        self.put_latency = Histogram()
        self.pull_latency = Histogram()
        self.flush_latency = Histogram()

    def observe_put(self, topic: str, msgs: int, nbytes: int, latency_s: float) -> None:
        row = self.put.get(topic)
        if row is None:
            row = self.put.setdefault(_bounded_key(self.put, topic), [0, 0])
        row[0] += msgs
        row[1] += nbytes
        self.put_latency.observe_s(latency_s)

    def observe_pull(self, group: str, topic: str, msgs: int, nbytes: int, latency_s: float) -> None:
        key = (group, topic)
        row = self.get.get(key)
        if row is None:
            row = self.get.setdefault(_bounded_key(self.get, key), [0, 0])
        row[0] += msgs
        row[1] += nbytes
        self.pull_latency.observe_s(latency_s)

    def observe_flush(self, latency_s: float) -> None:
        self.flush_latency.observe_s(latency_s)

    def empty(self) -> bool:
        return not (self.put or self.get or self.put_latency.total or self.pull_latency.total
                    or self.flush_latency.total)

    def take(self) -> bytes | None:
        """The interval's counts as a STATS body (None when nothing happened); starts a new interval."""
        if self.empty():
            return None
        doc = {"role": self.role, "put": self.put, "get": [[g, t, *v] for (g, t), v in self.get.items()],
               "putLatency": [self.put_latency.counts, self.put_latency.sum_us],
               "pullLatency": [self.pull_latency.counts, self.pull_latency.sum_us],
               "flushLatency": [self.flush_latency.counts, self.flush_latency.sum_us],
               "buckets": len(LATENCY_BUCKETS_US)}
        self._reset()
        return orjson.dumps(doc)
