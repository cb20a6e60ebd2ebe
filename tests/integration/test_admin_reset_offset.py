"""`rocketpy admin offset reset`: offsets moved to the first message stored at or after a time.

The broker side of INVOKE_BROKER_TO_RESET_OFFSET (222) comes with branch `filter`. With no
consumer online the admin client moves the committed offsets itself (mqadmin's
resetOffsetByTimeOld), which works against any broker; with a consumer online the broker must
push RESET_CONSUMER_CLIENT_OFFSET to it, which this file checks once the broker answers 222.
"""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from rocketpy.cli.app import app
from rocketpy.protocol.admin_bodies import parse_fastjson
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

TOPIC = "ResetT"
GROUP = "ResetG"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("admin-reset")) as c:
        yield c


def admin(c, *args: str) -> dict:
    result = CliRunner().invoke(app, ["admin", *args, "-n", c.namesrv_addr, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _prepare(c) -> int:
    """Topic with 1 queue: 3 messages, a pause, 3 more; the group committed at 6. Returns the
    store time of the 4th message (RocketMQ's search by time picks the nearest message, so the
    exact time of the first late one is what lands on offset 3)."""
    admin(c, "topic", "create", TOPIC, "-c", "DefaultCluster", "--queues", "1")
    wait_for(lambda: TOPIC in admin(c, "topic", "list"), 20, "the topic route")
    for i in range(3):
        admin(c, "message", "send", "-t", TOPIC, "--body", f"early {i}")
    first = wait_for(lambda: admin(c, "topic", "status", TOPIC)[0]["lastUpdateTimestamp"], 20, "a store time")
    wait_for(lambda: int(time.time() * 1000) > first + 5, 5, "the clock to move past the early messages")
    for i in range(3):
        admin(c, "message", "send", "-t", TOPIC, "--body", f"late {i}")
    wait_for(lambda: admin(c, "topic", "status", TOPIC)[0]["maxOffset"] == 6, 20, "6 messages")
    with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as client:
        resp = client.request(RequestCode.UPDATE_CONSUMER_OFFSET, {
            "consumerGroup": GROUP, "topic": TOPIC, "queueId": 0, "commitOffset": 6})
        assert resp.code == ResponseCode.SUCCESS
    wait_for(lambda: admin(c, "consumer", "progress", "-g", GROUP, "-t", TOPIC)["queues"][0]["consumerOffset"] == 6,
             20, "the committed offset")
    result = CliRunner().invoke(app, ["consume", "-t", TOPIC, "-n", c.namesrv_addr, "--json"])
    stored = {m["queueOffset"]: m["storeTimestamp"] for m in map(json.loads, result.stdout.splitlines())}
    assert stored[3] > stored[2]
    return stored[3]


def test_reset_offline_group_by_time(running) -> None:
    between = _prepare(running)
    doc = admin(running, "offset", "reset", "-g", GROUP, "-t", TOPIC, "--time", str(between))
    assert [(q["queueId"], q["offset"]) for q in doc["queues"]] == [(0, 3)]
    progress = admin(running, "consumer", "progress", "-g", GROUP, "-t", TOPIC)
    assert progress["queues"][0]["consumerOffset"] == 3 and progress["totalLag"] == 3
    doc = admin(running, "offset", "reset", "-g", GROUP, "-t", TOPIC, "--time", "0")
    assert [q["offset"] for q in doc["queues"]] == [0]


def test_reset_tells_online_consumers(running) -> None:
    """Needs the broker side (branch `filter`): the consumer gets RESET_CONSUMER_CLIENT_OFFSET."""
    with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as consumer:
        hb = {"clientID": "127.0.0.1@reset-test", "producerDataSet": [], "consumerDataSet": [{
            "groupName": GROUP, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "subscriptionDataSet": [{"topic": TOPIC,
                                                                                     "subString": "*"}]}]}
        assert consumer.request(RequestCode.HEART_BEAT, None, json.dumps(hb).encode()).code == ResponseCode.SUCCESS
        with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as probe:
            answer = probe.request(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, {
                "topic": TOPIC, "group": GROUP, "timestamp": 0, "isForce": "true"})
        assert answer.code == ResponseCode.SUCCESS, answer.remark
        push = consumer.read_frame(timeout_s=10)
        while push.code != RequestCode.RESET_CONSUMER_CLIENT_OFFSET:
            push = consumer.read_frame(timeout_s=10)
        table = parse_fastjson(push.body)["offsetTable"]
        assert list(table.values()) == [0]
