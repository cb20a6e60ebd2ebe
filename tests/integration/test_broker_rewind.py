"""Rewind through a real broker: INVOKE_BROKER_TO_RESET_OFFSET finds each queue's offset by store
time, keeps smaller committed offsets unless forced, writes the offset table and pushes
RESET_CONSUMER_CLIENT_OFFSET to the group's live consumer (also without one)."""

from __future__ import annotations

import time

import orjson
import pytest

from rocketpy.protocol.bodies import MessageQueue
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.reset_offset import decode_reset_offset_body
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

TOPIC = "RewindTopic"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("broker-rewind")) as c:
        yield c


def connect(c) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)


def commit(client: RemotingTestClient, group: str, queue_id: int, offset: int) -> None:
    r = client.request(RequestCode.UPDATE_CONSUMER_OFFSET, {"consumerGroup": group, "topic": TOPIC,
                                                           "queueId": queue_id, "commitOffset": offset})
    assert r.code == ResponseCode.SUCCESS


def committed(client: RemotingTestClient, group: str, queue_id: int) -> int:
    r = client.request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": group, "topic": TOPIC,
                                                          "queueId": queue_id})
    assert r.code == ResponseCode.SUCCESS, r.remark
    return int(r.ext_fields["offset"])


def reset(client: RemotingTestClient, group: str, timestamp: int, force: bool) -> dict[int, int]:
    r = client.request(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET,
                       {"topic": TOPIC, "group": group, "timestamp": timestamp, "isForce": force})
    assert r.code == ResponseCode.SUCCESS, r.remark
    table = decode_reset_offset_body(r.body)
    assert {mq.broker_name for mq in table} == {"broker-a"} and {mq.topic for mq in table} == {TOPIC}
    return {mq.queue_id: offset for mq, offset in table.items()}


def pulled(client: RemotingTestClient, offset: int, count: int) -> list | None:  # type: ignore[type-arg]
    r = pull(client, TOPIC, 0, offset)
    got = records(r) if r.code == ResponseCode.SUCCESS else []
    return got if len(got) == count else None


def test_rewind_by_store_time(running):
    with connect(running) as admin, connect(running) as consumer:
        for i in range(4):
            assert send(admin, TOPIC, b"early-%d" % i, queue_id=0).code == ResponseCode.SUCCESS
        first = wait_for(lambda: pulled(admin, 0, 4), 20, "4 early messages")
        last_early_ms = max(m.store_timestamp for m in first)
        wait_for(lambda: time.time() * 1000 > last_early_ms + 20, 5, "the clock to move past the early batch")
        for i in range(3):
            assert send(admin, TOPIC, b"late-%d" % i, queue_id=0).code == ResponseCode.SUCCESS
        late = wait_for(lambda: pulled(admin, 4, 3), 20, "3 late messages")
        late_ms = min(m.store_timestamp for m in late)
        assert late_ms > last_early_ms
        # queue 0 consumed to its end, queue 1 (empty) at 0
        commit(admin, "G-rewind", 0, 7)
        commit(admin, "G-rewind", 1, 0)
        # a live consumer of the group on its own connection
        hb = orjson.dumps({"clientID": "127.0.0.1@rewind", "consumerDataSet": [{
            "groupName": "G-rewind", "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": TOPIC, "subString": "*"}]}]})
        assert consumer.request(RequestCode.HEART_BEAT, body=hb).code == ResponseCode.SUCCESS

        table = reset(admin, "G-rewind", late_ms, force=False)
        assert table[0] == 4 and table[1] == 0 and len(table) == 4       # every write queue
        assert committed(admin, "G-rewind", 0) == 4
        push = consumer.read_frame(10)
        while push.code != RequestCode.RESET_CONSUMER_CLIENT_OFFSET:    # skip NOTIFY_CONSUMER_IDS_CHANGED
            push = consumer.read_frame(10)
        assert push.is_oneway and push.ext_fields["group"] == "G-rewind" and push.ext_fields["topic"] == TOPIC
        assert decode_reset_offset_body(push.body)[MessageQueue(TOPIC, "broker-a", 0)] == 4

        # not forced: a later timestamp does not move the group forward; forced it does
        assert reset(admin, "G-rewind", -1, force=False)[0] == 4
        assert reset(admin, "G-rewind", -1, force=True)[0] == 7
        assert committed(admin, "G-rewind", 0) == 7
        # back to the beginning of time: the first message
        assert reset(admin, "G-rewind", 1, force=True)[0] == 0


def test_rewind_without_a_live_consumer_and_refusals(running):
    with connect(running) as admin:
        assert send(admin, TOPIC, b"x", queue_id=2).code == ResponseCode.SUCCESS
        commit(admin, "G-offline", 2, 1)
        table = reset(admin, "G-offline", 1, force=True)
        assert table[2] == 0 and committed(admin, "G-offline", 2) == 0
        r = admin.request(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET,
                          {"topic": "NoSuchTopic", "group": "G-offline", "timestamp": -1, "isForce": True})
        assert r.code == ResponseCode.SYSTEM_ERROR and "no topic in this broker" in r.remark
        r = admin.request(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET,
                          {"topic": TOPIC, "group": "G-never", "timestamp": -1, "isForce": True})
        assert r.code == ResponseCode.SYSTEM_ERROR and "G-never" in r.remark
