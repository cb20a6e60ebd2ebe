"""GET_CONSUME_STATS (208) as control computes it (RocketMQ AdminBrokerProcessor.getConsumeStats).

Control owns what the answer is made of: the group's committed offsets, its
subscriptions and the topic table; the queue table gives each queue's max
offset. The last consume time (store time of the message at consumerOffset-1)
needs a read of the CommitLog, which control does not map: control fills it
only when the group is caught up (then it is the queue's last store time,
published by the dispatcher) and the worker that relays the answer fills the
rest from its read-only maps (`broker/handlers/admin_stats.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rocketpy.protocol.admin_bodies import ConsumeStats, OffsetWrapper, TopicOffset, TopicStatsTable
from rocketpy.protocol.bodies import MessageQueue

if TYPE_CHECKING:
    from rocketpy.broker.control.server import ControlServer

TOPIC_GROUP_SEPARATOR = "@"


def topics_of_group(server: ControlServer, group: str) -> list[str]:
    """ConsumerOffsetManager.whichTopicByConsumer: topics the group has committed offsets for."""
    suffix = TOPIC_GROUP_SEPARATOR + group
    return sorted(k[:-len(suffix)] for k in server.offsets.table if k.endswith(suffix))


def consume_stats(server: ControlServer, group: str, topic: str | None,
                  group_tps: Callable[[str, str], float] | None = None) -> ConsumeStats:
    topics = [topic] if topic else topics_of_group(server, group)
    info = server.consumers.get(group)
    subscriptions = info.subscriptions if info is not None else {}
    rows: list[tuple[MessageQueue, OffsetWrapper]] = []
    tps = 0.0
    for name in topics:
        config = server.topics.get(name)
        if config is None:
            continue
        if subscriptions and name not in subscriptions:
            continue                     # online, but not subscribed to this topic (Java skips it)
        for queue_id in range(config.read_queue_nums):
            entry = server.queue_table.get(name, queue_id) if server.queue_table is not None else None
            broker_offset, last_store_ts = (entry[0], entry[2]) if entry is not None else (0, 0)
            consumer_offset = max(0, server.offsets.query(group, name, queue_id) or 0)
            last_ts = last_store_ts if 0 < consumer_offset == broker_offset else 0
            rows.append((MessageQueue(name, server.broker.broker_name, queue_id),
                         OffsetWrapper(max(0, broker_offset), consumer_offset, last_ts)))
        if group_tps is not None:
            tps += group_tps(group, name)
    return ConsumeStats(tuple(rows), tps)


def topic_stats(server: ControlServer, topic: str) -> TopicStatsTable | None:
    """GET_TOPIC_STATS_INFO: per write queue min/max offset and the store time of its last message
    (the dispatcher publishes all three in the queue table); None when the topic does not exist."""
    config = server.topics.get(topic)
    if config is None:
        return None
    rows = []
    for queue_id in range(config.write_queue_nums):
        entry = server.queue_table.get(topic, queue_id) if server.queue_table is not None else None
        max_offset, min_offset, last_ts = entry if entry is not None else (0, 0, 0)
        rows.append((MessageQueue(topic, server.broker.broker_name, queue_id),
                     TopicOffset(max(0, min_offset), max(0, max_offset), last_ts if max_offset > 0 else 0)))
    return TopicStatsTable(tuple(rows))
