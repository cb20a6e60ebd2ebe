"""Delayed messages through a real broker: parked in SCHEDULE_TOPIC_XXXX, re-put to their real topic
and queue by control's delay scheduler when due, exactly once across restarts of the broker and
of its children. Short delay levels ("1s 2s 3s") keep the tests fast."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.message import MessageRecord
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import Cluster, cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

LEVELS = "1s 2s 3s"
SCHEDULE = "SCHEDULE_TOPIC_XXXX"


def connect(c: Cluster) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)


def pull_all(client: RemotingTestClient, topic: str, queue_id: int) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    offset = 0
    while True:
        r = pull(client, topic, queue_id, offset, max_msgs=32)
        if r.code != ResponseCode.SUCCESS:
            return out
        got = records(r)
        out += got
        offset = int(r.ext_str("nextBeginOffset") or 0)
        if not got:
            return out


def send_delayed(client: RemotingTestClient, topic: str, body: bytes, level: int, queue_id: int = 1) -> None:
    reply = send(client, topic, body, tags="T", keys=body.decode(), props={"DELAY": str(level)}, queue_id=queue_id)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    assert reply.ext_str("queueId") == str(queue_id)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("delay"), namesrv=False, messageDelayLevel=LEVELS) as c:
        yield c


def test_a_delayed_message_is_not_pullable_before_its_time_and_arrives_in_its_real_queue(running):
    with connect(running) as c:
        sent_at = time.time()
        send_delayed(c, "DelayTopic", b"d1", 2, queue_id=1)
        assert pull(c, "DelayTopic", 1, 0).code != ResponseCode.SUCCESS or not pull_all(c, "DelayTopic", 1)
        parked = wait_for(lambda: pull_all(c, SCHEDULE, 1), 10, "the message to be parked at level 2")
        props = parked[0].property_map()
        assert (props["REAL_TOPIC"], props["REAL_QID"], props["DELAY"]) == ("DelayTopic", "1", "2")
        assert pull_all(c, "DelayTopic", 1) == []
        got = wait_for(lambda: pull_all(c, "DelayTopic", 1), 15, "the delayed message to arrive")
        arrived_at = time.time()
        msg = got[0]
        props = msg.property_map()
        assert msg.body == b"d1" and msg.topic == "DelayTopic" and msg.queue_id == 1
        assert props["REAL_TOPIC"] == "DelayTopic" and props["REAL_QID"] == "1" and "DELAY" not in props
        assert props["TAGS"] == "T" and props["KEYS"] == "d1"
        assert msg.born_timestamp == parked[0].born_timestamp and msg.store_timestamp >= parked[0].store_timestamp
        # Not before its level's delay (store times are the broker's own clock).
        assert msg.store_timestamp - parked[0].store_timestamp >= 2000
        assert arrived_at - sent_at >= 2.0
        assert len(got) == 1


def test_levels_past_the_highest_are_capped_and_each_level_keeps_its_order(running):
    with connect(running) as c:
        for i in range(5):
            send_delayed(c, "DelayOrder", b"o%d" % i, 1, queue_id=0)
        send_delayed(c, "DelayOrder", b"capped", 40, queue_id=2)
        parked = wait_for(lambda: pull_all(c, SCHEDULE, 2), 10, "the capped message at the highest level")
        assert parked[-1].property_map()["DELAY"] == "3"
        got = wait_for(lambda: len(r := pull_all(c, "DelayOrder", 0)) == 5 and r, 15, "five level-1 messages")
        assert [m.body for m in got] == [b"o%d" % i for i in range(5)]
        capped = wait_for(lambda: pull_all(c, "DelayOrder", 2), 15, "the capped message")
        assert [m.body for m in capped] == [b"capped"]


def _delay_offsets(c: Cluster) -> dict[str, int]:
    path = c.store_dir / "config" / "delayOffset.json"
    try:
        return json.loads(path.read_text())["offsetTable"]
    except (OSError, ValueError, KeyError):
        return {}


def _respawned(c: Cluster, name: str, old_pid: int) -> bool:
    try:
        return c.broker_child(name).pid != old_pid
    except AssertionError:             # between the death and the respawn
        return False


def _restart_scenario(tmp_path, how: str) -> None:
    """Messages parked on every level; the broker (or a child) stops hard or cleanly while some are
    due and some not; after the restart every message arrives exactly once."""
    with cluster(tmp_path, namesrv=False, messageDelayLevel=LEVELS, flushDiskType="ASYNC_FLUSH") as c:
        bodies: list[bytes] = []
        with connect(c) as client:
            for i in range(30):
                body = b"r%02d" % i
                send_delayed(client, "DelayRestart", body, 1 + i % 3, queue_id=0)
                bodies.append(body)
            # Some are delivered before the stop, some not yet.
            wait_for(lambda: pull_all(client, "DelayRestart", 0), 15, "first deliveries")
        if how in ("sigterm", "kill-broker", "stale-offsets"):
            if how == "stale-offsets":
                # A crash after re-puts and before their offsets were persisted, made certain: every
                # delivery is in the log, the file (Java's fastjson style, no scan position) says none.
                with connect(c) as client:
                    wait_for(lambda: len(pull_all(client, "DelayRestart", 0)) == 30, 20, "every delivery")
                assert c.broker.stop() == 0
                (c.store_dir / "config" / "delayOffset.json").write_text('{"offsetTable":{1:0,2:0,3:0}}')
            elif how == "sigterm":
                assert c.broker.stop() == 0
            else:
                c.broker.kill_tree()
            shutil.move(c.root / "broker.log", c.root / f"broker-before-{how}.log")
            c.start_broker()
        else:
            child = c.broker_child(how)
            os.kill(child.pid, signal.SIGKILL)
            wait_for(lambda: _respawned(c, how, child.pid), 30, f"the {how} to be respawned")
        with connect(c) as client:
            got = wait_for(lambda: len(r := pull_all(client, "DelayRestart", 0)) >= 30 and r, 30,
                           "every delayed message after the restart")
            # Let the scheduler run past every due entry again, then count.
            wait_for(lambda: _delay_offsets(c) == {"1": 10, "2": 10, "3": 10}, 15, "all offsets persisted")
            got = pull_all(client, "DelayRestart", 0)
        assert sorted(m.body for m in got) == sorted(bodies), "each delayed message exactly once"
        if how == "stale-offsets":
            assert "30 re-puts found in the CommitLog from 0" in c.broker.log()


@pytest.mark.parametrize("how", ["sigterm", "kill-broker", "control", "writer", "stale-offsets"])
def test_a_restart_with_delayed_messages_pending_loses_none_and_duplicates_none(tmp_path, how):
    _restart_scenario(tmp_path, how)
