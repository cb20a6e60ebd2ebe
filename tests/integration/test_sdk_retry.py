"""Retry and dead-letter queue through the push consumer: a failed message comes back through
%RETRY%<group> with its reconsume count, and after max_reconsume_times lands in %DLQ%<group>.

Needs the broker side of CONSUMER_SEND_MSG_BACK and delayed delivery (branch `sched`); until
that is merged these tests fail, on purpose: they are the acceptance test of that work.
"""

from __future__ import annotations

import threading

import pytest

from rocketpy.client.message import Message, MessageExt
from rocketpy.client.producer import Producer
from rocketpy.client.push_consumer import ConsumeConcurrentlyStatus, PushConsumer
from rocketpy.protocol import message as pm
from rocketpy.protocol.bodies import ConsumeFromWhere
from rocketpy.protocol.codes import ResponseCode
from tests.support.broker_ops import pull, records
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient
from tests.support.sdk_consume import create_topic

WAIT_S = 45.0
# every delay level 1 s, so retries come back quickly (levels 3.. are used: 3 + reconsume times)
FAST_DELAYS = " ".join(["1s"] * 18)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("retry"), messageDelayLevel=FAST_DELAYS) as c:
        yield c


def _attempts_listener(fail_times: int | None, attempts: list[tuple[str, str, int]], lock: threading.Lock,
                       via_retry_topic: list[str] | None = None):
    def listener(msgs: list[MessageExt], ctx) -> ConsumeConcurrentlyStatus:
        msg = msgs[0]
        with lock:
            attempts.append((msg.body.decode(), msg.topic, msg.reconsume_times))
            if via_retry_topic is not None and pm.PROPERTY_RETRY_TOPIC in msg.properties:
                via_retry_topic.append(msg.body.decode())   # redelivered by the broker, not retried locally
        if msg.body.startswith(b"ok"):
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS
        if fail_times is not None and msg.reconsume_times >= fail_times:
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS
        return ConsumeConcurrentlyStatus.RECONSUME_LATER
    return listener


def _send(c, topic: str, bodies: list[str]) -> None:
    with Producer("RetryPG", namesrv_addr=c.namesrv_addr) as producer:
        producer.start()
        for body in bodies:
            producer.send(Message(topic, body.encode(), tags="T"))


def test_a_failed_message_comes_back_with_its_reconsume_count(running):
    topic, group = "RetryTopic", "RetryG"
    create_topic(running, topic, 2)
    attempts: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    consumer = PushConsumer(group, running.namesrv_addr, instance_name="r1", rebalance_interval_ms=1000,
                            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET)
    consumer.subscribe(topic)
    via_retry: list[str] = []
    consumer.register_message_listener(_attempts_listener(2, attempts, lock, via_retry))
    with consumer:
        consumer.start()
        _send(running, topic, ["ok-1", "fail-twice"])
        wait_for(lambda: ("fail-twice", topic, 2) in attempts, WAIT_S, "the third attempt of the failing message")
    tries = [(t, n) for b, t, n in attempts if b == "fail-twice"]
    assert tries[:3] == [(topic, 0), (topic, 1), (topic, 2)]     # the real topic each time, counted up
    assert [b for b, _, _ in attempts].count("ok-1") == 1
    assert via_retry.count("fail-twice") >= 2, "retries must come back through %RETRY%RetryG, not a local retry"


def test_past_max_reconsume_times_a_message_lands_in_the_dead_letter_queue(running):
    topic, group = "DlqTopic", "DlqG"
    create_topic(running, topic, 2)
    attempts: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    consumer = PushConsumer(group, running.namesrv_addr, instance_name="d1", rebalance_interval_ms=1000,
                            max_reconsume_times=2, consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET)
    consumer.subscribe(topic)
    consumer.register_message_listener(_attempts_listener(None, attempts, lock))
    with consumer:
        consumer.start()
        _send(running, topic, ["doomed"])
        wait_for(lambda: ("doomed", topic, 2) in attempts, WAIT_S, "the last attempt")

        def in_dlq() -> bool:
            with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as b:
                r = pull(b, f"%DLQ%{group}", 0, 0, group="DlqReader")
                return r.code == ResponseCode.SUCCESS and any(rec.body == b"doomed" for rec in records(r))

        wait_for(in_dlq, WAIT_S, "the message in %DLQ%DlqG")
    assert sorted(n for b, _, n in attempts if b == "doomed") == [0, 1, 2]
