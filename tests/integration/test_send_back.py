"""CONSUMER_SEND_MSG_BACK through a real broker: a failed message comes back from %RETRY%<group>
after an escalating delay with its reconsume times counted, ends in %DLQ%<group> past the group's
retryMaxTimes, and a broker restart in the middle of a retry neither loses nor repeats it."""

from __future__ import annotations

import json
import shutil

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import MessageRecord
from tests.integration.test_delay import _delay_offsets, pull_all
from tests.support.broker_ops import send
from tests.support.cluster import Cluster, cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

# Six 1 s levels: the retry levels 3, 4, 5 are all short and still visible in the DELAY property.
LEVELS = "1s 1s 1s 1s 1s 1s"
GROUP = "RetryGroup"


def connect(c: Cluster) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)


def create_group(client: RemotingTestClient, group: str, retry_max_times: int) -> None:
    body = SubscriptionGroupConfig(group_name=group, retry_max_times=retry_max_times).to_json()
    r = client.request(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)
    assert r.code == ResponseCode.SUCCESS, r.remark


def send_back(client: RemotingTestClient, msg: MessageRecord, *, delay_level: int = 0,
              group: str = GROUP, **extra: object) -> None:
    """As the C++ client sends it: offset and delayLevel as numbers, no originMsgId."""
    r = client.request(RequestCode.CONSUMER_SEND_MSG_BACK,
                       {"offset": str(msg.phys_offset), "group": group, "delayLevel": delay_level, **extra})
    assert r.code == ResponseCode.SUCCESS, r.remark


def wait_one(client: RemotingTestClient, topic: str, count: int, what: str) -> MessageRecord:
    got = wait_for(lambda: len(r := pull_all(client, topic, 0)) >= count and r, 20, what)
    assert len(got) == count, [m.body for m in got]
    return got[-1]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("sendback"), namesrv=False, messageDelayLevel=LEVELS) as c:
        yield c


def test_send_back_escalates_the_delay_counts_reconsume_times_and_ends_in_the_dlq(running):
    with connect(running) as c:
        create_group(c, GROUP, retry_max_times=2)
        reply = send(c, "BackTopic", b"fails", tags="T", keys="K1", queue_id=0)
        assert reply.code == ResponseCode.SUCCESS
        first_id = reply.ext_str("msgId")
        msg = wait_one(c, "BackTopic", 1, "the message")
        retry = "%RETRY%" + GROUP
        for attempt in range(2):
            send_back(c, msg)
            level_queue = 2 + attempt
            parked = wait_for(lambda q=level_queue: [m for m in pull_all(c, "SCHEDULE_TOPIC_XXXX", q)
                                                     if m.property_map().get("REAL_TOPIC") == retry],
                              10, "the parked retry")
            assert parked[-1].property_map()["DELAY"] == str(3 + attempt)        # 3 + reconsume times
            msg = wait_one(c, retry, attempt + 1, f"retry {attempt + 1}")
            props = msg.property_map()
            assert msg.body == b"fails" and msg.reconsume_times == attempt + 1
            assert props["RETRY_TOPIC"] == "BackTopic" and props["ORIGIN_MESSAGE_ID"] == first_id
            assert props["TAGS"] == "T" and props["KEYS"] == "K1" and "DELAY" not in props
        send_back(c, msg)                                   # reconsume times 2 >= retryMaxTimes 2
        dead = wait_one(c, "%DLQ%" + GROUP, 1, "the dead letter")
        props = dead.property_map()
        assert dead.reconsume_times == 3 and dead.body == b"fails"
        assert props["RETRY_TOPIC"] == "BackTopic" and props["ORIGIN_MESSAGE_ID"] == first_id
        assert "DELAY" not in props
        topics = json.loads(c.request(RequestCode.GET_ALL_TOPIC_CONFIG).body)["topicConfigTable"]
        assert (topics[retry]["perm"], topics[retry]["writeQueueNums"]) == (6, 1)
        assert (topics["%DLQ%" + GROUP]["perm"], topics["%DLQ%" + GROUP]["writeQueueNums"]) == (6, 1)


def test_a_negative_delay_level_or_the_header_limit_sends_straight_to_the_dlq(running):
    with connect(running) as c:
        group = "DirectDlq"
        create_group(c, group, retry_max_times=16)
        assert send(c, "DirectTopic", b"a", queue_id=0).code == 0
        assert send(c, "DirectTopic", b"b", queue_id=0).code == 0
        msgs = wait_for(lambda: len(r := pull_all(c, "DirectTopic", 0)) == 2 and r, 10, "two messages")
        send_back(c, msgs[0], delay_level=-1, group=group)
        send_back(c, msgs[1], group=group, maxReconsumeTimes=0)
        dead = wait_for(lambda: len(r := pull_all(c, "%DLQ%" + group, 0)) == 2 and r, 10, "two dead letters")
        assert sorted(m.body for m in dead) == [b"a", b"b"]


def test_send_back_of_an_offset_with_no_message_is_a_system_error(running):
    with connect(running) as c:
        r = c.request(RequestCode.CONSUMER_SEND_MSG_BACK, {"offset": "1", "group": GROUP, "delayLevel": 0})
        assert r.code == ResponseCode.SYSTEM_ERROR and "look message by offset failed, 1" in r.remark


def test_a_broker_restart_mid_retry_keeps_the_retry_once(tmp_path):
    with cluster(tmp_path, namesrv=False, messageDelayLevel="1s 1s 3s") as c:
        with connect(c) as client:
            create_group(client, GROUP, retry_max_times=5)
            assert send(client, "MidTopic", b"mid", queue_id=0).code == 0
            msg = wait_one(client, "MidTopic", 1, "the message")
            send_back(client, msg)                          # parked at level 3: 3 s
        c.broker.kill_tree()
        shutil.move(c.root / "broker.log", c.root / "broker-killed.log")
        c.start_broker()
        with connect(c) as client:
            retry = wait_one(client, "%RETRY%" + GROUP, 1, "the retry after the restart")
            assert retry.reconsume_times == 1 and retry.body == b"mid"
            wait_for(lambda: _delay_offsets(c).get("3") == 1, 10, "the level-3 offset persisted")
            assert len(pull_all(client, "%RETRY%" + GROUP, 0)) == 1
