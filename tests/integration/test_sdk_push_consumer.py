"""The push consumer against a real NameServer and broker on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from rocketpy.client.message import MessageExt
from rocketpy.client.push_consumer import (
    AsyncPushConsumer,
    ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus,
    PushConsumer,
)
from rocketpy.protocol.bodies import ConsumeFromWhere
from tests.support.cluster import cluster, wait_for
from tests.support.sdk_consume import Seen, create_topic, produce

WAIT_S = 60.0
_FIRST = ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
FAST = {"rebalance_interval_ms": 1000, "persist_consumer_offset_interval_ms": 500}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("push")) as c:
        yield c


def _consumer(c, group: str, name: str, seen: Seen, **settings) -> PushConsumer:
    consumer = PushConsumer(group, c.namesrv_addr, instance_name=name, **{**FAST, **settings})

    def listener(msgs: list[MessageExt], ctx: ConsumeConcurrentlyContext) -> ConsumeConcurrentlyStatus:
        seen.add(name, msgs)
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    consumer.register_message_listener(listener)
    return consumer


def test_concurrent_consumer_gets_everything_with_tags_filtered(running):
    topic = "PushAll"
    create_topic(running, topic, 4)
    tags = ["TagA", "TagB", "TagC"]
    sent = produce(running, topic, (f"m{i}" for i in range(60)), 4, tags=(tags[i % 3] for i in range(60)),
                   props={"color": "blue"})
    wanted = [b for i, b in enumerate(sent) if i % 3 != 2]
    seen = Seen()
    with _consumer(running, "PushAllG", "c1", seen, consume_from_where=_FIRST) as consumer:
        consumer.subscribe(topic, "TagA || TagB")
        consumer.start()
        wait_for(lambda: seen.has_all(wanted), WAIT_S, "every TagA/TagB message")
    got = seen.bodies()
    assert set(got) == set(wanted)                    # no TagC
    msg = next(m for _, m in seen.log if m.body == b"m0")
    assert msg.topic == topic and msg.tags == "TagA" and msg.keys == ["k-m0"]
    assert msg.user_properties == {"color": "blue"}


def test_async_consumer_with_a_coroutine_listener(running):
    topic = "PushAsync"
    create_topic(running, topic, 2)
    sent = produce(running, topic, (f"a{i}" for i in range(20)), 2)
    got: list[str] = []

    async def main() -> None:
        async with AsyncPushConsumer("PushAsyncG", running.namesrv_addr, instance_name="a1",
                                     consume_from_where=_FIRST, **FAST) as consumer:
            async def listener(msgs: list[MessageExt], ctx: ConsumeConcurrentlyContext) -> ConsumeConcurrentlyStatus:
                await asyncio.sleep(0)
                got.extend(m.body.decode() for m in msgs)
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

            consumer.subscribe(topic)
            consumer.register_message_listener(listener)
            await consumer.start()
            deadline = time.monotonic() + WAIT_S
            while not set(sent) <= set(got):
                assert time.monotonic() < deadline, f"only {len(set(got))} of {len(sent)} consumed"
                await asyncio.sleep(0.05)

    asyncio.run(main())



def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_new_group_on_a_queue_still_holding_offset_zero_starts_there_whatever_consume_from_where(running):
    """RocketMQ's rule, kept by the broker and the client: consumeFromWhere applies only when the
    broker has no offset for the group, and a broker answers 0 (not "none") while the queue still
    holds its first message. So on a fresh topic FIRST, LAST and TIMESTAMP all see everything;
    tests/unit/test_push_consumer.py covers the choice when the broker answers "none"."""
    topic = "PushWhere"
    create_topic(running, topic, 2)
    old = produce(running, topic, (f"old{i}" for i in range(10)), 2)
    seen = {k: Seen() for k in ("first", "last", "ts")}
    consumers = {
        "first": _consumer(running, "WhereFirst", "w1", seen["first"], consume_from_where=_FIRST),
        "last": _consumer(running, "WhereLast", "w2", seen["last"],
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET),
        "ts": _consumer(running, "WhereTs", "w3", seen["ts"],
                        consume_from_where=ConsumeFromWhere.CONSUME_FROM_TIMESTAMP, consume_timestamp=_now_ms()),
    }
    try:
        for c in consumers.values():
            c.subscribe(topic)
            c.start()
        new = produce(running, topic, (f"new{i}" for i in range(4)), 2)
        for name, s in seen.items():
            wait_for(lambda s=s: s.has_all(old + new), WAIT_S, f"{name} to see everything")
    finally:
        for c in consumers.values():
            c.shutdown()


def _committed(c, group: str, topic: str, queue_id: int) -> int | None:
    from rocketpy.protocol.codes import RequestCode, ResponseCode
    from tests.support.remoting_client import RemotingTestClient
    with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as b:
        r = b.request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": group, "topic": topic, "queueId": queue_id})
        if r.code != ResponseCode.SUCCESS:
            return None
        return int(r.ext_fields["offset"])


def test_graceful_shutdown_commits_offsets_and_the_group_resumes(running):
    topic, group = "PushResume", "PushResumeG"
    create_topic(running, topic, 4)
    first = produce(running, topic, (f"r{i}" for i in range(40)), 4)
    seen1 = Seen()
    with _consumer(running, group, "s1", seen1, consume_from_where=_FIRST,
                   persist_consumer_offset_interval_ms=60_000) as c1:   # only the shutdown commits
        c1.subscribe(topic)
        c1.start()
        wait_for(lambda: seen1.has_all(first), WAIT_S, "the first batch")
    # committed at shutdown, before shutdown() returned
    assert [_committed(running, group, topic, q) for q in range(4)] == [10, 10, 10, 10]
    second = produce(running, topic, (f"s{i}" for i in range(8)), 4)
    seen2 = Seen()
    with _consumer(running, group, "s2", seen2, consume_from_where=_FIRST) as c2:
        c2.subscribe(topic)
        c2.start()
        wait_for(lambda: seen2.has_all(second), WAIT_S, "the second batch")
    assert set(seen2.bodies()) == set(second)       # nothing of the first batch again


@pytest.mark.parametrize("strategy_name", ["AVG", "AVG_BY_CIRCLE", "CONSISTENT_HASH", "CONFIG"])
def test_three_members_split_sixteen_queues(running, strategy_name):
    from rocketpy.client.message import MessageQueue
    from rocketpy.client.rebalance import (
        AllocateMessageQueueAveragely,
        AllocateMessageQueueAveragelyByCircle,
        AllocateMessageQueueByConfig,
        AllocateMessageQueueConsistentHash,
    )
    topic, group = f"Split{strategy_name}", f"Split{strategy_name}G"
    create_topic(running, topic, 16)

    def strategy(i: int):
        return {"AVG": AllocateMessageQueueAveragely(), "AVG_BY_CIRCLE": AllocateMessageQueueAveragelyByCircle(),
                "CONSISTENT_HASH": AllocateMessageQueueConsistentHash(),
                "CONFIG": AllocateMessageQueueByConfig(
                    [MessageQueue(topic, "broker-a", q) for q in range(16) if q % 3 == i])}[strategy_name]

    seen = Seen()
    members = [_consumer(running, group, f"{strategy_name.lower()}{i}", seen, allocate_strategy=strategy(i))
               for i in range(3)]
    all_queues = {MessageQueue(topic, "broker-a", q) for q in range(16)}

    def split() -> list[list[MessageQueue]]:
        return [[q for q in m.assigned_queues if q.topic == topic] for m in members]

    def one_owner_each() -> bool:
        parts = split()
        return all(parts) and sum(len(p) for p in parts) == 16 and set().union(*parts) == all_queues

    try:
        for m in members:
            m.subscribe(topic)
            m.start()
        wait_for(one_owner_each, WAIT_S, f"16 queues split among 3 members by {strategy_name}")
        sent = produce(running, topic, (f"{strategy_name}-{i}" for i in range(48)), 16)
        wait_for(lambda: seen.has_all(sent), WAIT_S, "every message consumed")
        parts = split()
        for name, part in zip((m.group for m in members), parts, strict=True):
            assert part, name
    finally:
        for m in members:
            m.shutdown()
    if strategy_name == "AVG":
        assert sorted(len(p) for p in parts) == [5, 5, 6]


def test_orderly_consumption_keeps_queue_order_while_a_member_joins_and_leaves(running):
    from rocketpy.client.push_consumer import ConsumeOrderlyContext, ConsumeOrderlyStatus
    topic, group = "PushOrderly", "PushOrderlyG"
    create_topic(running, topic, 4)
    seen = Seen()

    def orderly(name: str) -> PushConsumer:
        c = PushConsumer(group, running.namesrv_addr, instance_name=name, consume_from_where=_FIRST,
                         lock_interval_ms=1000, **FAST)

        def listener(msgs: list[MessageExt], ctx: ConsumeOrderlyContext) -> ConsumeOrderlyStatus:
            seen.add(name, msgs)
            time.sleep(0.002)          # a little work, so the rebalance lands mid-stream
            return ConsumeOrderlyStatus.SUCCESS

        c.subscribe(topic)
        c.register_orderly_listener(listener)
        return c

    n = 400
    sent = produce(running, topic, (f"{i % 4}:{i // 4}" for i in range(n)), 4)
    first = orderly("o1")
    second = orderly("o2")
    try:
        first.start()
        wait_for(lambda: len(seen.bodies("o1")) >= 40, WAIT_S, "o1 to consume")
        second.start()
        wait_for(lambda: len(seen.bodies("o2")) >= 10, WAIT_S, "o2 to take queues and consume")
        second.shutdown()
        more = produce(running, topic, (f"{i % 4}:{i // 4}" for i in range(n, n + 80)), 4)
        wait_for(lambda: seen.has_all(sent + more), WAIT_S, "every message")
    finally:
        second.shutdown()
        first.shutdown()
    # per queue, in arrival order: a message only ever comes after its predecessor was consumed
    consumed: dict[int, set[int]] = {q: set() for q in range(4)}
    for body in seen.bodies():
        q, seq = map(int, body.split(":"))
        assert seq == 0 or seq - 1 in consumed[q], f"queue {q}: {seq} consumed before {seq - 1}"
        consumed[q].add(seq)
    assert {"o1", "o2"} == {w for w, _ in seen.log}


def test_broadcasting_delivers_everything_to_every_member_with_local_offsets(running, tmp_path):
    from rocketpy.client.push_consumer import MessageModel
    topic, group = "PushBroadcast", "PushBroadcastG"
    create_topic(running, topic, 2)
    seen = Seen()
    members = [_consumer(running, group, f"b{i}", seen, message_model=MessageModel.BROADCASTING,
                         consume_from_where=_FIRST, offset_store_dir=str(tmp_path)) for i in range(2)]
    try:
        for m in members:
            m.subscribe(topic)
            m.start()
        sent = produce(running, topic, (f"b{i}" for i in range(20)), 2)
        for i in range(2):
            wait_for(lambda i=i: seen.has_all(sent, f"b{i}"), WAIT_S, f"member b{i} to get every message")
    finally:
        for m in members:
            m.shutdown()
    import json
    files = sorted(tmp_path.glob(f"*/{group}/offsets.json"))
    assert len(files) == 2
    for f in files:
        entries = json.loads(f.read_text())["offsetTable"]
        assert {(e["topic"], e["queueId"]): e["offset"] for e in entries} == {(topic, 0): 10, (topic, 1): 10}


def test_a_killed_member_s_queues_are_taken_over_with_nothing_lost(running, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.support.cluster import REPO
    topic, group = "PushKill", "PushKillG"
    create_topic(running, topic, 4)
    out = tmp_path / "victim.txt"
    victim = subprocess.Popen([sys.executable, "-m", "tests.support.push_consumer_proc", running.namesrv_addr,
                               group, topic, str(out), "victim"], cwd=REPO, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = Seen()
    survivor = _consumer(running, group, "survivor", seen, consume_from_where=_FIRST)
    try:
        def victim_lines() -> list[str]:
            return out.read_text().split() if out.exists() else []

        sent = produce(running, topic, (f"k{i}" for i in range(100)), 4)
        wait_for(lambda: len(victim_lines()) >= 10, WAIT_S, "the victim to consume")
        survivor.subscribe(topic)
        survivor.start()
        wait_for(lambda: 0 < len([q for q in survivor.assigned_queues if q.topic == topic]) < 4, WAIT_S,
                 "the queues to be shared")
        more = produce(running, topic, (f"k{i}" for i in range(100, 200)), 4)
        wait_for(lambda: len(set(victim_lines()) & set(more)) >= 5, WAIT_S, "the victim mid-stream")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        last = produce(running, topic, (f"k{i}" for i in range(200, 260)), 4)
        wait_for(lambda: len([q for q in survivor.assigned_queues if q.topic == topic]) == 4, WAIT_S,
                 "the survivor to take every queue")
        everything = set(sent + more + last)
        wait_for(lambda: everything <= set(victim_lines()) | set(seen.bodies()), WAIT_S,
                 "every message consumed by one member or the other")
    finally:
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
        survivor.shutdown()
