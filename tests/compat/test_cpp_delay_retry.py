"""The unmodified C++ client (rocketmq==0.4.4) with delayed messages, retries and dead letters.

One NameServer + broker with short delay levels ("1s 2s 1s 1s 1s 1s": level 2 for the delayed
send, levels 3..5 for retries) serves the module. A producer sends with set_delay_time_level; a
push consumer receives the message only after its level's delay. A push consumer whose listener
answers RECONSUME_LATER makes the client send CONSUMER_SEND_MSG_BACK (to the message's store
host); the message comes back from %RETRY%<group> with its reconsume times counted and, past the
group's retryMaxTimes (set to 2 with UPDATE_AND_CREATE_SUBSCRIPTIONGROUP), lands in %DLQ%<group>.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.compat.test_cpp_client import (
    DELIVERY_WAIT_S,
    SEND_OK,
    Clients,
    broker_client,
    create_topic,
    stored,
)
from tests.support.cluster import Cluster, cluster, wait_for

LEVELS = "1s 2s 1s 1s 1s 1s"
DELAY_LEVEL = 2
DELAY_MS = 2000


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cpp-delay"), messageDelayLevel=LEVELS) as c:
        yield c


def test_a_delayed_message_arrives_after_its_levels_delay(running: Cluster, clients: Clients) -> None:
    topic = "CppDelayTopic"
    create_topic(running, topic)
    consumer = clients.consumer("cpp_delay_cg", topic)
    wait_for(lambda: consumer.has("started"), 30, "the consumer to start")
    sent_at = time.time()
    results = clients.produce("cpp_delay_pg", [
        {"mode": "sync", "topic": topic, "body": "later", "tags": "TagD", "keys": "kd", "delay_level": DELAY_LEVEL}])
    assert results[0]["status"] == SEND_OK, results
    got = wait_for(lambda: consumer.messages(), DELIVERY_WAIT_S, "the delayed message")
    msg = got[0]
    assert (msg["body"], msg["tags"], msg["keys"], msg["topic"]) == ("later", "TagD", "kd", topic)
    assert msg["at"] - sent_at >= DELAY_MS / 1000 - 0.05      # never before its time (same clock, ms rounding)
    # In the store: parked in the schedule topic's level-2 queue, re-put into its real queue after the delay.
    parked = stored(running, "SCHEDULE_TOPIC_XXXX", queues=DELAY_LEVEL)[DELAY_LEVEL - 1]
    real = [m for q in stored(running, topic).values() for m in q]
    assert [m.body for m in parked if m.property_map().get("REAL_TOPIC") == topic] == [b"later"]
    assert len(real) == 1 and real[0].store_timestamp - parked[-1].store_timestamp >= DELAY_MS
    assert real[0].property_map()["REAL_TOPIC"] == topic and "DELAY" not in real[0].property_map()
    assert len(consumer.messages()) == 1, clients.diagnostics()


def test_a_failing_listeners_message_comes_back_counted_and_ends_in_the_dlq(running: Cluster,
                                                                            clients: Clients) -> None:
    topic, group = "CppRetryTopic", "cpp_retry_cg"
    create_topic(running, topic)
    with broker_client(running) as b:
        body = SubscriptionGroupConfig(group_name=group, retry_max_times=2).to_json()
        r = b.request(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)
        assert r.code == ResponseCode.SUCCESS, r.remark
    consumer = clients.consumer(group, topic, fail=True)
    wait_for(lambda: consumer.has("started"), 30, "the consumer to start")
    results = clients.produce("cpp_retry_pg", [{"mode": "sync", "topic": topic, "body": "poison", "keys": "kp"}])
    assert results[0]["status"] == SEND_OK, results
    first_id = results[0]["msg_id"]
    deliveries = wait_for(lambda: len(m := consumer.messages()) >= 3 and m, DELIVERY_WAIT_S,
                          "the original and two retries")
    assert [d["reconsume_times"] for d in deliveries[:3]] == [0, 1, 2], clients.diagnostics()
    assert all(d["body"] == "poison" and d["topic"] == topic for d in deliveries[:3])
    dlq = f"%DLQ%{group}"
    dead = wait_for(lambda: stored(running, dlq, queues=1)[0], DELIVERY_WAIT_S, "the dead letter")
    assert len(dead) == 1 and dead[0].body == b"poison" and dead[0].reconsume_times == 3
    props = dead[0].property_map()
    assert props["RETRY_TOPIC"] == topic and props["KEYS"] == "kp"
    assert props["ORIGIN_MESSAGE_ID"] and props.get("UNIQ_KEY") == first_id
    retries = stored(running, f"%RETRY%{group}", queues=1)[0]
    assert [m.reconsume_times for m in retries] == [1, 2]
    assert len(consumer.messages()) == 3, "nothing is delivered from the DLQ"
