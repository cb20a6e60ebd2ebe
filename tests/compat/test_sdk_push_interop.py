"""Interop: messages sent by the unmodified RocketMQ C++ client (`rocketmq==0.4.4`) are consumed
by the SDK's push consumer with tags, keys, user properties and bodies (compressed ones too) intact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rocketpy.client.message import MessageExt
from rocketpy.client.push_consumer import ConsumeConcurrentlyStatus, PushConsumer
from rocketpy.protocol.bodies import ConsumeFromWhere
from tests.compat.test_cpp_client import BIG_BODY_CHARS, SEND_OK, Clients, create_topic
from tests.support.cluster import Cluster, cluster, wait_for
from tests.support.sdk_consume import Seen

WAIT_S = 45.0


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("sdk-interop")) as c:
        yield c


def test_cpp_producer_to_sdk_push_consumer(clients: Clients, running: Cluster) -> None:
    topic = "CppToSdkPush"
    create_topic(running, topic)
    sends = [{"mode": mode, "topic": topic, "tags": tag, "keys": f"key-{i} k2-{i}", "body": f"body-{i}",
              "props": {"idx": str(i), "scenario": "cpp-to-sdk"}}
             for i, (mode, tag) in enumerate([("sync", "TagA"), ("async", "TagB"), ("oneway", "TagA"),
                                              ("sync", "TagC"), ("sync", "TagB")])]
    sends.append({"mode": "orderly", "topic": topic, "tags": "TagA", "keys": "key-5", "arg": "7",
                  "body": "body-5", "props": {"idx": "5", "scenario": "cpp-to-sdk"}})
    sends.append({"mode": "sync", "topic": topic, "tags": "TagB", "keys": "key-6", "body": "x" * BIG_BODY_CHARS,
                  "props": {"idx": "6", "scenario": "cpp-to-sdk"}})
    results = clients.produce("CppInteropPG", sends)
    assert all(r.get("status") in (SEND_OK, None) and "error" not in r for r in results), results

    seen = Seen()

    def listener(msgs: list[MessageExt], ctx: object) -> ConsumeConcurrentlyStatus:
        seen.add("sdk", msgs)
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    expected = {i for i in range(7) if i != 3}           # TagC is filtered out
    with PushConsumer("CppInteropCG", running.namesrv_addr, instance_name="interop", rebalance_interval_ms=1000,
                      consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as consumer:
        consumer.subscribe(topic, "TagA || TagB")
        consumer.register_message_listener(listener)
        consumer.start()
        wait_for(lambda: {int(m.properties.get("idx", "-1")) for _, m in seen.log} >= expected, WAIT_S,
                 "every TagA/TagB message from the C++ producer")
    by_idx = {int(m.properties["idx"]): m for _, m in seen.log}
    assert set(by_idx) == expected
    for i, m in by_idx.items():
        spec = sends[i]
        assert m.topic == topic and m.tags == spec["tags"]
        assert m.keys == spec["keys"].split(" ")
        assert m.user_properties == {"idx": str(i), "scenario": "cpp-to-sdk"}
        assert m.body.decode() == spec["body"]
        assert m.uniq_key and m.msg_id == m.uniq_key
