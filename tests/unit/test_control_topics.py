"""TopicConfigManager and SubscriptionGroupManager: system topics, admin rules, auto-create."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig, SubscriptionGroupManager
from rocketpy.broker.control.topics import TopicConfigManager, TopicRefused
from rocketpy.clock import FakeClock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.protocol.bodies import TopicConfig, TopicFilterType


def _manager(tmp_path: Path, clock: FakeClock | None = None, **broker: object) -> TopicConfigManager:
    cfg = BrokerConfig(broker_cluster_name="C1", broker_name="b1", **broker)  # type: ignore[arg-type]
    m = TopicConfigManager(str(tmp_path), cfg, StoreConfig(store_path_root_dir=str(tmp_path)),
                           clock=clock or FakeClock())
    m.load()
    return m


def test_system_topics(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    expect = {
        "SELF_TEST_TOPIC": (1, 6), "TBW102": (8, 7), "BenchmarkTest": (1024, 6), "C1": (16, 7),
        "b1": (1, 7), "OFFSET_MOVED_EVENT": (1, 6), "SCHEDULE_TOPIC_XXXX": (18, 6), "C1_REPLY_TOPIC": (1, 6),
    }
    for name, (queues, perm) in expect.items():
        tc = m.get(name)
        assert tc is not None, name
        assert (tc.read_queue_nums, tc.write_queue_nums, tc.perm) == (queues, queues, perm), name
    assert m.get("RMQ_SYS_TRACE_TOPIC") is None
    on_disk = json.loads((tmp_path / "topics.json").read_text())
    assert set(on_disk["topicConfigTable"]) == set(expect)
    assert on_disk["dataVersion"]["counter"] == 1


def test_system_topics_follow_config(tmp_path: Path) -> None:
    m = _manager(tmp_path, auto_create_topic_enable=False, cluster_topic_enable=False,
                 broker_topic_enable=False, trace_topic_enable=True, default_topic_queue_nums=4)
    assert m.get("TBW102") is None
    assert m.get("C1").perm == 1  # type: ignore[union-attr]
    assert m.get("b1").perm == 1  # type: ignore[union-attr]
    assert m.get("RMQ_SYS_TRACE_TOPIC") is not None


def test_tbw102_from_file_loses_inherit_when_auto_create_is_off(tmp_path: Path) -> None:
    _manager(tmp_path)
    m = _manager(tmp_path, auto_create_topic_enable=False)
    assert m.get("TBW102").perm == 6  # type: ignore[union-attr]
    assert m.create_from_template("NewT", "TBW102", 4) is None


def test_update_and_create_rules(tmp_path: Path) -> None:
    clock = FakeClock()
    changes: list[int] = []
    m = _manager(tmp_path, clock)
    m.on_change = lambda: changes.append(m.data_version.counter)
    before = m.data_version
    clock.advance(5)
    m.update_and_create(TopicConfig("TopicA", 4, 4, 6, TopicFilterType.MULTI_TAG))
    assert m.data_version.counter == before.counter + 1
    assert m.data_version.timestamp == clock.now_ms()
    assert changes == [m.data_version.counter]
    for name in ("TBW102", "SCHEDULE_TOPIC_XXXX", "C1", "b1", "C1_REPLY_TOPIC", "rmq_sys_x"):
        with pytest.raises(TopicRefused, match=rf"The topic\[{name}\] is conflict with system topic\."):
            m.update_and_create(TopicConfig(name, 1, 1))
    for bad in ("", "a b", "x" * 128, "t/1"):
        with pytest.raises(TopicRefused):
            m.update_and_create(TopicConfig(bad, 1, 1))
    assert len(changes) == 1
    # persisted: a new manager sees it
    m2 = _manager(tmp_path)
    assert m2.get("TopicA") == TopicConfig("TopicA", 4, 4, 6, TopicFilterType.MULTI_TAG)
    assert m2.data_version.counter > m.data_version.counter - 1


def test_delete(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    m.update_and_create(TopicConfig("TopicA", 4, 4))
    assert m.delete("TopicA")
    assert not m.delete("TopicA")
    with pytest.raises(TopicRefused):
        m.delete("TBW102")
    assert _manager(tmp_path).get("TopicA") is None


def test_auto_create_from_template(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    tc = m.create_from_template("NewTopic", "TBW102", 4)
    assert tc == TopicConfig("NewTopic", 4, 4, 6)
    assert m.create_from_template("NewTopic", "TBW102", 16) is tc  # exists: unchanged
    assert m.create_from_template("Big", "TBW102", 100).write_queue_nums == 8  # type: ignore[union-attr]
    assert m.create_from_template("X", "NoSuchTemplate", 4) is None
    m.update_and_create(TopicConfig("Plain", 4, 4, 6))
    assert m.create_from_template("Y", "Plain", 4) is None        # no PERM_INHERIT
    m.update_and_create(TopicConfig("Tpl", 2, 2, 7, TopicFilterType.MULTI_TAG))
    assert m.create_from_template("Z", "Tpl", 4) == TopicConfig("Z", 2, 2, 6, TopicFilterType.MULTI_TAG)
    assert m.create_from_template("bad name", "TBW102", 4) is None
    assert m.create_from_template("rmq_sys_q", "TBW102", 4) is None


def test_retry_and_dlq_topics(tmp_path: Path) -> None:
    m = _manager(tmp_path)
    assert m.create_retry_topic("G1", 3) == TopicConfig("%RETRY%G1", 3, 3, 6)
    assert m.create_dlq_topic("G1") == TopicConfig("%DLQ%G1", 1, 1, 6)
    counter = m.data_version.counter
    m.create_retry_topic("G1", 3)
    assert m.data_version.counter == counter


def test_groups_auto_create_and_persist(tmp_path: Path) -> None:
    g = SubscriptionGroupManager(str(tmp_path), clock=FakeClock())
    g.load()
    assert g.get("TOOLS_CONSUMER") is not None
    cfg = g.find_or_create("CG1")
    assert cfg == SubscriptionGroupConfig("CG1")
    g.update(SubscriptionGroupConfig("CG2", retry_queue_nums=2, notify_consumer_ids_changed_enable=False))
    g2 = SubscriptionGroupManager(str(tmp_path), auto_create=False)
    g2.load()
    assert g2.get("CG2").retry_queue_nums == 2  # type: ignore[union-attr]
    assert g2.get("CG2").notify_consumer_ids_changed_enable is False  # type: ignore[union-attr]
    assert g2.find_or_create("CG3") is None
    doc = json.loads((tmp_path / "subscriptionGroup.json").read_text())
    assert doc["subscriptionGroupTable"]["CG1"] == {
        "groupName": "CG1", "consumeEnable": True, "consumeFromMinEnable": True,
        "consumeBroadcastEnable": True, "retryQueueNums": 1, "retryMaxTimes": 16, "brokerId": 0,
        "whichBrokerWhenConsumeSlowly": 1, "notifyConsumerIdsChangedEnable": True}


def test_groups_read_java_file(tmp_path: Path) -> None:
    (tmp_path / "subscriptionGroup.json").write_text(
        '{"dataVersion":{"counter":3,"timestamp":1700000000000},"subscriptionGroupTable":{'
        '"CG1":{"groupName":"CG1","consumeEnable":true,"retryQueueNums":4,"retryMaxTimes":16,'
        '"brokerId":0,"whichBrokerWhenConsumeSlowly":1,"notifyConsumerIdsChangedEnable":false}}}')
    g = SubscriptionGroupManager(str(tmp_path))
    g.load()
    assert g.get("CG1") == SubscriptionGroupConfig("CG1", retry_queue_nums=4,
                                                   notify_consumer_ids_changed_enable=False)
    assert g.data_version.counter == 3
