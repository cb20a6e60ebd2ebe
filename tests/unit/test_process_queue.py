"""ProcessQueue: the lowest-offset rule, flow-control counters, orderly take/commit/rollback, timeouts."""

from __future__ import annotations

import dataclasses

from rocketpy.client.process_queue import ProcessQueue
from rocketpy.limits import REBALANCE_LOCK_MAX_LIVE_TIME_MS


@dataclasses.dataclass
class Msg:
    queue_offset: int
    body: bytes = b"x" * 10


def msgs(*offsets: int) -> list[Msg]:
    return [Msg(o) for o in offsets]


def test_put_counts_and_asks_for_one_consume_task() -> None:
    pq = ProcessQueue()
    assert pq.put_messages(msgs(5, 6, 7)) is True
    assert pq.put_messages(msgs(8)) is False          # a task is already running
    assert pq.put_messages(msgs(8)) is False          # duplicate ignored
    assert (pq.msg_count, pq.msg_size, pq.queue_offset_max) == (4, 40, 8)
    assert pq.max_span() == 3


def test_only_the_lowest_unconsumed_offset_may_be_committed() -> None:
    pq = ProcessQueue()
    assert pq.remove_messages(msgs(1)) == -1          # nothing held yet
    batch = msgs(5, 6, 7)
    pq.put_messages(batch)
    assert pq.remove_messages([batch[2]]) == 5        # 7 done, 5 still in flight
    assert pq.remove_messages([batch[0]]) == 6
    assert pq.remove_messages([batch[1]]) == 8        # all done: one past the highest pulled
    assert (pq.msg_count, pq.msg_size) == (0, 0)


def test_orderly_take_commit_and_consume_again() -> None:
    pq = ProcessQueue()
    pq.put_messages(msgs(3, 4, 5))
    taken = pq.take_messages(2)
    assert [m.queue_offset for m in taken] == [3, 4]
    pq.make_messages_consume_again(taken)             # SUSPEND_CURRENT_QUEUE_A_MOMENT
    assert [m.queue_offset for m in pq.take_messages(2)] == [3, 4]
    assert pq.commit() == 5 and pq.msg_count == 1
    assert pq.commit() == -1
    assert [m.queue_offset for m in pq.take_messages(2)] == [5]
    pq.rollback()
    assert pq.msg_count == 1 and [m.queue_offset for m in pq.messages()] == [5]
    pq.take_messages(1)
    assert pq.commit() == 6
    assert pq.take_messages(1) == [] and pq.consuming is False   # the task's turn ends
    assert pq.put_messages(msgs(6)) is True


def test_expired_messages_are_found_from_the_head_only() -> None:
    now = [1000]
    pq = ProcessQueue(clock_ms=lambda: now[0])
    batch = msgs(1, 2, 3)
    pq.put_messages(batch)
    pq.mark_consume_start(batch[1:])                  # 1 has not started: nothing is expired
    now[0] += 10_000
    assert pq.expired_messages(5_000, 16) == []
    pq.mark_consume_start(batch[:1])
    now[0] += 10_000
    assert [m.queue_offset for m in pq.expired_messages(5_000, 16)] == [1, 2, 3]
    assert [m.queue_offset for m in pq.expired_messages(5_000, 2)] == [1, 2]


def test_lock_and_pull_expiry() -> None:
    now = [10_000_000]
    pq = ProcessQueue(clock_ms=lambda: now[0])
    pq.last_lock_timestamp_ms = now[0]
    assert not pq.is_lock_expired()
    now[0] += REBALANCE_LOCK_MAX_LIVE_TIME_MS + 1
    assert pq.is_lock_expired()
    assert not pq.is_pull_expired(pq.last_pull_timestamp_ms + 1000)
    assert pq.is_pull_expired(pq.last_pull_timestamp_ms + 200_000)
