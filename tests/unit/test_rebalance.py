"""Allocation strategies against the results RocketMQ's own classes give, and the rebalance diff."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rocketpy.client.process_queue import ProcessQueue
from rocketpy.client.rebalance import (
    AllocateMessageQueueAveragely,
    AllocateMessageQueueAveragelyByCircle,
    AllocateMessageQueueByConfig,
    AllocateMessageQueueByMachineRoom,
    AllocateMessageQueueConsistentHash,
    AllocateStrategy,
    RebalanceImpl,
    md5_hash,
    queue_to_string,
)
from rocketpy.protocol.bodies import MessageQueue

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "rebalance" / "allocate_strategies.json").read_text())


def _strategy(case: dict[str, Any]) -> AllocateStrategy:
    name, param = case["strategy"], case["param"]
    if name == "AVG":
        return AllocateMessageQueueAveragely()
    if name == "AVG_BY_CIRCLE":
        return AllocateMessageQueueAveragelyByCircle()
    if name == "CONSISTENT_HASH":
        return AllocateMessageQueueConsistentHash(param)
    if name == "MACHINE_ROOM":
        return AllocateMessageQueueByMachineRoom(param)
    raise AssertionError(name)


def test_the_table_covers_every_strategy() -> None:
    assert {c["strategy"] for c in CASES} == {"AVG", "AVG_BY_CIRCLE", "CONSISTENT_HASH", "MACHINE_ROOM"}
    assert len(CASES) > 200


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['strategy']}-{c['param']}-{len(c['queues'])}q-{len(c['cids'])}c")
def test_allocation_matches_rocketmq(case: dict[str, Any]) -> None:
    strategy = _strategy(case)
    queues = [MessageQueue(t, b, q) for t, b, q in case["queues"]]
    for cid, expected in case["result"].items():
        got = strategy.allocate("GID_TEST", cid, queues, case["cids"])
        assert [queues.index(mq) for mq in got] == expected, cid


@pytest.mark.parametrize("strategy", [AllocateMessageQueueAveragely(), AllocateMessageQueueAveragelyByCircle(),
                                      AllocateMessageQueueConsistentHash()], ids=lambda s: s.name)
def test_every_queue_has_exactly_one_owner(strategy: AllocateStrategy) -> None:
    queues = [MessageQueue("T", b, q) for b in ("broker-a", "broker-b") for q in range(8)]
    cids = sorted(f"127.0.0.1@{i}" for i in range(3))
    owned = [mq for cid in cids for mq in strategy.allocate("G", cid, queues, cids)]
    assert sorted(owned, key=queue_to_string) == sorted(queues, key=queue_to_string)


def test_a_client_missing_from_the_list_gets_nothing_and_bad_input_raises() -> None:
    queues = [MessageQueue("T", "b", 0)]
    assert AllocateMessageQueueAveragely().allocate("G", "other", queues, ["a"]) == []
    with pytest.raises(ValueError, match="client id"):
        AllocateMessageQueueAveragely().allocate("G", "", queues, ["a"])
    with pytest.raises(ValueError, match="no message queues"):
        AllocateMessageQueueAveragely().allocate("G", "a", [], ["a"])
    with pytest.raises(ValueError, match="virtual nodes"):
        AllocateMessageQueueConsistentHash(-1)


def test_md5_hash_is_the_first_four_digest_bytes() -> None:
    # md5("") = d41d8cd98f00b204e9800998ecf8427e
    assert md5_hash("") == 0xD41D8CD9


def test_by_config_returns_its_queues_that_exist() -> None:
    queues = [MessageQueue("T", "b", q) for q in range(4)]
    strategy = AllocateMessageQueueByConfig([MessageQueue("T", "b", 3), MessageQueue("T", "b", 1)])
    assert strategy.allocate("G", "x", queues, ["x", "y"]) == [queues[1], queues[3]]
    assert strategy.allocate("G", "y", queues, ["x", "y"]) == [queues[1], queues[3]]


# --- rebalance diff --------------------------------------------------------------------------


class FakeOwner:
    def __init__(self, queues: list[MessageQueue], cids: list[str], *, lockable: set[MessageQueue] | None = None,
                 committed: dict[MessageQueue, int] | None = None) -> None:
        self.queues = queues
        self.cids = cids
        self.lockable = lockable
        self.committed = committed or {}
        self.removed: list[MessageQueue] = []
        self.pulls: list[tuple[MessageQueue, int]] = []
        self.keep: set[MessageQueue] = set()

    async def subscribe_queues(self, topic: str) -> list[MessageQueue]:
        return [mq for mq in self.queues if mq.topic == topic]

    async def find_consumer_ids(self, topic: str) -> list[str]:
        return list(self.cids)

    async def compute_pull_from_where(self, mq: MessageQueue) -> int:
        return self.committed.get(mq, 0)

    async def remove_unnecessary_queue(self, mq: MessageQueue, pq: ProcessQueue) -> bool:
        if mq in self.keep:
            return False
        self.removed.append(mq)
        return True

    async def lock_queue(self, mq: MessageQueue) -> bool:
        return self.lockable is None or mq in self.lockable

    def dispatch_pull(self, mq: MessageQueue, pq: ProcessQueue, next_offset: int) -> None:
        self.pulls.append((mq, next_offset))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_rebalance_adds_then_gives_queues_away_when_a_member_joins() -> None:
    queues = [MessageQueue("T", "b", q) for q in range(4)]
    owner = FakeOwner(queues, ["c1"], committed={queues[2]: 17})
    rb: RebalanceImpl[MessageQueue] = RebalanceImpl("G", "c1", owner, AllocateMessageQueueAveragely())
    assert _run(rb.do_rebalance(["T"])) is True
    assert sorted(rb.process_queue_table, key=queue_to_string) == queues
    assert (queues[2], 17) in owner.pulls and len(owner.pulls) == 4
    owner.cids = ["c1", "c2"]
    pq3 = rb.process_queue_table[queues[3]]
    assert _run(rb.do_rebalance(["T"])) is True
    assert list(rb.process_queue_table) == queues[:2]
    assert owner.removed == queues[2:] and pq3.dropped
    assert _run(rb.do_rebalance(["T"])) is False   # stable


def test_rebalance_keeps_a_queue_the_owner_cannot_release_yet() -> None:
    queues = [MessageQueue("T", "b", q) for q in range(2)]
    owner = FakeOwner(queues, ["c1"])
    rb: RebalanceImpl[MessageQueue] = RebalanceImpl("G", "c1", owner, AllocateMessageQueueAveragely())
    _run(rb.do_rebalance(["T"]))
    owner.cids, owner.keep = ["c1", "c2"], {queues[1]}
    _run(rb.do_rebalance(["T"]))
    assert queues[1] in rb.process_queue_table and not rb.process_queue_table[queues[1]].dropped


def test_orderly_rebalance_skips_queues_it_cannot_lock() -> None:
    queues = [MessageQueue("T", "b", q) for q in range(3)]
    owner = FakeOwner(queues, ["c1"], lockable={queues[0], queues[2]})
    rb: RebalanceImpl[MessageQueue] = RebalanceImpl("G", "c1", owner, AllocateMessageQueueAveragely(), orderly=True)
    _run(rb.do_rebalance(["T"]))
    assert sorted(rb.process_queue_table, key=queue_to_string) == [queues[0], queues[2]]
    assert all(pq.locked for pq in rb.process_queue_table.values())


def test_broadcasting_takes_every_queue_whatever_the_group() -> None:
    queues = [MessageQueue("T", "b", q) for q in range(3)]
    owner = FakeOwner(queues, ["c1", "c2", "c3"])
    rb: RebalanceImpl[MessageQueue] = RebalanceImpl("G", "c2", owner, AllocateMessageQueueAveragely(),
                                                    broadcasting=True)
    _run(rb.do_rebalance(["T"]))
    assert len(rb.process_queue_table) == 3


def test_a_pull_expired_queue_is_replaced_and_an_unsubscribed_topic_dropped() -> None:
    now = [1_000_000]
    queues = [MessageQueue("T", "b", 0), MessageQueue("U", "b", 0)]
    owner = FakeOwner(queues, ["c1"])
    rb: RebalanceImpl[MessageQueue] = RebalanceImpl("G", "c1", owner, AllocateMessageQueueAveragely(),
                                                    clock_ms=lambda: now[0])
    _run(rb.do_rebalance(["T", "U"]))
    old = rb.process_queue_table[queues[0]]
    now[0] += 121_000   # no pull for longer than PULL_MAX_IDLE_TIME_MS
    for pq in rb.process_queue_table.values():
        if pq is not old:
            pq.last_pull_timestamp_ms = now[0]
    _run(rb.do_rebalance(["T"]))
    assert old.dropped and rb.process_queue_table[queues[0]] is not old
    assert queues[1] not in rb.process_queue_table
