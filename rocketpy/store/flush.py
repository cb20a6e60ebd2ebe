"""Flush policies, pure: they decide, the writer does the fdatasync (storage-format.md §9).

ASYNC_FLUSH (RocketMQ's FlushRealTimeService): every `flush_interval_ms`, flush
if at least `least_pages` 4 KiB pages are dirty; at least every
`thorough_interval_ms`, flush whatever is dirty.

SYNC_FLUSH (RocketMQ's GroupCommitService): each put that waits registers
"flushed offset >= end of my record" with a deadline `sync_flush_timeout_ms`
ahead. After a flush, every waiter whose end is covered completes PUT_OK; a
waiter past its deadline completes FLUSH_DISK_TIMEOUT (its message stays
stored). One fdatasync covers every waiter appended before it: that is the
group commit.

Both take times from the caller (an injected clock), so the tests are tables
driven by a FakeClock, without sleeping.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Generic, TypeVar

from rocketpy import limits

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class FlushDecision:
    flush: bool
    thorough: bool            # flush regardless of the page threshold
    next_check_ms: int        # when to ask again (monotonic ms)


class AsyncFlushPolicy:
    """When the ASYNC_FLUSH writer should fdatasync the CommitLog."""

    def __init__(self, *, interval_ms: int = limits.FLUSH_INTERVAL_COMMITLOG_MS_DEFAULT,
                 least_pages: int = limits.FLUSH_COMMITLOG_LEAST_PAGES_DEFAULT,
                 thorough_interval_ms: int = limits.FLUSH_COMMITLOG_THOROUGH_INTERVAL_MS_DEFAULT,
                 page_size: int = limits.PAGE_SIZE) -> None:
        assert interval_ms > 0 and least_pages >= 0 and thorough_interval_ms >= 0 and page_size > 0
        self.interval_ms = interval_ms
        self.least_pages = least_pages
        self.thorough_interval_ms = thorough_interval_ms
        self.page_size = page_size

    def dirty_pages(self, committed: int, flushed: int) -> int:
        """Whole pages crossed since the last flush (RocketMQ's isAbleFlush arithmetic)."""
        assert committed >= flushed
        return committed // self.page_size - flushed // self.page_size

    def decide(self, now_ms: int, committed: int, flushed: int, last_flush_ms: int,
               last_thorough_ms: int) -> FlushDecision:
        """Flush now? last_flush_ms / last_thorough_ms: monotonic times of the last flush / full flush."""
        next_check = max(now_ms, last_flush_ms + self.interval_ms)
        if committed <= flushed:
            return FlushDecision(False, False, now_ms + self.interval_ms)
        thorough = now_ms - last_thorough_ms >= self.thorough_interval_ms
        if thorough:
            return FlushDecision(True, True, now_ms + self.interval_ms)
        if now_ms - last_flush_ms < self.interval_ms:
            return FlushDecision(False, False, next_check)
        if self.dirty_pages(committed, flushed) >= self.least_pages:
            return FlushDecision(True, False, now_ms + self.interval_ms)
        return FlushDecision(False, False, now_ms + self.interval_ms)


class FlushOutcome(enum.Enum):
    PUT_OK = "PUT_OK"
    FLUSH_DISK_TIMEOUT = "FLUSH_DISK_TIMEOUT"


@dataclasses.dataclass(frozen=True, slots=True)
class _Waiter(Generic[T]):
    end_offset: int
    deadline_ms: int
    token: T


class GroupCommit(Generic[T]):
    """SYNC_FLUSH waiters; `token` is whatever the writer needs to answer the put.

    Waiters arrive in append order, so their end offsets and deadlines are both
    non-decreasing and completing them only ever pops from the front.
    """

    def __init__(self, *, timeout_ms: int = limits.SYNC_FLUSH_TIMEOUT_MS_DEFAULT) -> None:
        assert timeout_ms > 0
        self.timeout_ms = timeout_ms
        self._waiters: collections.deque[_Waiter[T]] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def submit(self, end_offset: int, now_ms: int, token: T) -> None:
        if self._waiters:
            last = self._waiters[-1]
            assert end_offset >= last.end_offset, "waiters arrive in append order"
            deadline = max(now_ms + self.timeout_ms, last.deadline_ms)
        else:
            deadline = now_ms + self.timeout_ms
        self._waiters.append(_Waiter(end_offset, deadline, token))

    @property
    def needs_flush_to(self) -> int | None:
        """The end offset the newest waiter needs, or None when nobody waits."""
        return self._waiters[-1].end_offset if self._waiters else None

    @property
    def next_deadline_ms(self) -> int | None:
        return self._waiters[0].deadline_ms if self._waiters else None

    def on_flushed(self, flushed_offset: int, now_ms: int) -> list[tuple[T, FlushOutcome]]:
        """After a flush: covered waiters complete PUT_OK, expired ones FLUSH_DISK_TIMEOUT."""
        out: list[tuple[T, FlushOutcome]] = []
        waiters = self._waiters
        while waiters and waiters[0].end_offset <= flushed_offset:
            out.append((waiters.popleft().token, FlushOutcome.PUT_OK))
        out.extend(self.expire(now_ms))
        return out

    def expire(self, now_ms: int) -> list[tuple[T, FlushOutcome]]:
        out: list[tuple[T, FlushOutcome]] = []
        waiters = self._waiters
        while waiters and waiters[0].deadline_ms <= now_ms:
            out.append((waiters.popleft().token, FlushOutcome.FLUSH_DISK_TIMEOUT))
        return out
