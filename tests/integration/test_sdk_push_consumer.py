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

