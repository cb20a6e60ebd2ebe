"""Flush policies, table-driven with a fake clock; nothing sleeps."""

from __future__ import annotations

import pytest

from rocketpy.clock import FakeClock
from rocketpy.store.flush import AsyncFlushPolicy, FlushOutcome, GroupCommit

PAGE = 4096


@pytest.mark.parametrize(
    ("now", "committed", "flushed", "last_flush", "last_thorough", "flush", "thorough"),
    [
        # nothing dirty: never flush, even when the thorough interval passed
        (100_000, 10 * PAGE, 10 * PAGE, 0, 0, False, False),
        # interval not yet passed
        (400, 8 * PAGE, 0, 0, 0, False, False),
        # interval passed, enough pages
        (500, 4 * PAGE, 0, 0, 0, True, False),
        # interval passed, too few pages
        (500, 3 * PAGE + 100, 0, 0, 0, False, False),
        # thorough interval passed: any dirty byte is flushed
        (10_000, 1, 0, 9_900, 0, True, True),
        # page counting is by page boundaries crossed (RocketMQ's arithmetic)
        (600, 5 * PAGE + 1, PAGE - 1, 0, 0, True, False),
        (600, 4 * PAGE + 1, PAGE + 1, 0, 0, False, False),
    ],
)
def test_async_policy_table(now, committed, flushed, last_flush, last_thorough, flush, thorough):
    policy = AsyncFlushPolicy(interval_ms=500, least_pages=4, thorough_interval_ms=10_000)
    decision = policy.decide(now, committed, flushed, last_flush, last_thorough)
    assert (decision.flush, decision.thorough) == (flush, thorough)
    assert decision.next_check_ms > now or not decision.flush and decision.next_check_ms >= now


def test_async_policy_least_pages_zero_flushes_any_dirty_byte():
    policy = AsyncFlushPolicy(interval_ms=10, least_pages=0, thorough_interval_ms=10_000)
    assert policy.decide(10, 1, 0, 0, 0).flush


def test_async_policy_driven_by_fake_clock():
    clock = FakeClock()
    policy = AsyncFlushPolicy(interval_ms=500, least_pages=4, thorough_interval_ms=10_000)
    committed, flushed = 0, 0
    last_flush = last_thorough = clock.monotonic_ms()
    flushes = 0
    for _ in range(100):                  # 100 ticks of 200 ms, one page appended per tick
        clock.advance(200)
        committed += PAGE
        now = clock.monotonic_ms()
        d = policy.decide(now, committed, flushed, last_flush, last_thorough)
        if d.flush:
            flushed, last_flush, flushes = committed, now, flushes + 1
            if d.thorough:
                last_thorough = now
    assert flushed >= committed - 4 * PAGE
    assert 10 <= flushes <= 40


def test_group_commit_completes_covered_waiters():
    gc: GroupCommit[str] = GroupCommit(timeout_ms=5000)
    gc.submit(100, 0, "a")
    gc.submit(200, 1, "b")
    gc.submit(300, 2, "c")
    assert gc.needs_flush_to == 300 and len(gc) == 3
    assert gc.on_flushed(200, 10) == [("a", FlushOutcome.PUT_OK), ("b", FlushOutcome.PUT_OK)]
    assert gc.on_flushed(250, 20) == []
    assert gc.on_flushed(300, 30) == [("c", FlushOutcome.PUT_OK)]
    assert gc.needs_flush_to is None and gc.next_deadline_ms is None


def test_group_commit_timeouts():
    clock = FakeClock(monotonic_ms=1000)
    gc: GroupCommit[int] = GroupCommit(timeout_ms=5000)
    gc.submit(100, clock.monotonic_ms(), 1)
    clock.advance(3000)
    gc.submit(200, clock.monotonic_ms(), 2)
    assert gc.next_deadline_ms == 6000
    clock.advance(1999)
    assert gc.expire(clock.monotonic_ms()) == []
    clock.advance(1)
    assert gc.expire(clock.monotonic_ms()) == [(1, FlushOutcome.FLUSH_DISK_TIMEOUT)]
    # a flush covering an expired-but-not-yet-reaped waiter still says PUT_OK
    clock.advance(10_000)
    assert gc.on_flushed(200, clock.monotonic_ms()) == [(2, FlushOutcome.PUT_OK)]


def test_group_commit_flush_then_expire_in_one_call():
    gc: GroupCommit[int] = GroupCommit(timeout_ms=100)
    gc.submit(10, 0, 1)
    gc.submit(20, 0, 2)
    assert gc.on_flushed(10, 100) == [(1, FlushOutcome.PUT_OK), (2, FlushOutcome.FLUSH_DISK_TIMEOUT)]


def test_group_commit_rejects_out_of_order_waiters():
    gc: GroupCommit[int] = GroupCommit()
    gc.submit(10, 0, 1)
    with pytest.raises(AssertionError):
        gc.submit(5, 0, 2)
