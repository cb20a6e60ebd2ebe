"""TopicConfigManager: the broker's topic table, persisted in `config/topics.json`.

RocketMQ's TopicConfigManager: system topics at start (remoting-protocol.md
§11.6), UPDATE_AND_CREATE_TOPIC rules (§9.12), auto-create from a template
(TBW102, §11.4) and the on-demand `%RETRY%<group>` / `%DLQ%<group>` topics.
Every change bumps the table's DataVersion (counter + timestamp), is persisted
at once and reported to the `on_change` callback (which broadcasts
TOPICS_CHANGED to the workers and schedules a NameServer registration).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

from rocketpy.broker.control import persist
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.errors import ProtocolError, RocketpyError
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import DataVersion, TopicConfig, TopicConfigSerializeWrapper

log = logging.getLogger("rocketpy.broker.control")

TOPICS_FILE = "topics.json"
BENCHMARK_TOPIC_QUEUE_NUMS = 1024
CLUSTER_TOPIC_QUEUE_NUMS = 16


class TopicRefused(RocketpyError):
    """A topic request the rules refuse; the message is the response remark (SYSTEM_ERROR)."""


def delay_level_count(message_delay_level: str) -> int:
    return len(message_delay_level.split())


class TopicConfigManager:
    def __init__(self, config_dir: str, broker: BrokerConfig, store: StoreConfig, *,
                 clock: Clock = SYSTEM_CLOCK,
                 on_change: Callable[[], None] | None = None) -> None:
        self.path = os.path.join(config_dir, TOPICS_FILE)
        self.broker = broker
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self.table: dict[str, TopicConfig] = {}
        self.data_version = DataVersion()
        # names UPDATE_AND_CREATE_TOPIC refuses besides the fixed set (Java adds them at start)
        self.extra_system_topics = frozenset({
            broker.broker_cluster_name, broker.broker_name, t.reply_topic(broker.broker_cluster_name)})

    # --- load and persist -----------------------------------------------------------

    def system_topics(self) -> list[TopicConfig]:
        b = self.broker
        out = [TopicConfig(t.RMQ_SYS_SELF_TEST_TOPIC, 1, 1)]
        if b.auto_create_topic_enable:
            out.append(TopicConfig(t.AUTO_CREATE_TOPIC_KEY_TOPIC, b.default_topic_queue_nums,
                                   b.default_topic_queue_nums, t.PERM_READ_WRITE | t.PERM_INHERIT))
        out.append(TopicConfig(t.RMQ_SYS_BENCHMARK_TOPIC, BENCHMARK_TOPIC_QUEUE_NUMS, BENCHMARK_TOPIC_QUEUE_NUMS))
        cluster_perm = t.PERM_INHERIT | (t.PERM_READ_WRITE if b.cluster_topic_enable else 0)
        out.append(TopicConfig(b.broker_cluster_name, CLUSTER_TOPIC_QUEUE_NUMS, CLUSTER_TOPIC_QUEUE_NUMS,
                               cluster_perm))
        broker_perm = t.PERM_INHERIT | (t.PERM_READ_WRITE if b.broker_topic_enable else 0)
        out.append(TopicConfig(b.broker_name, 1, 1, broker_perm))
        out.append(TopicConfig(t.RMQ_SYS_OFFSET_MOVED_EVENT, 1, 1))
        levels = delay_level_count(self.store.message_delay_level)
        out.append(TopicConfig(t.RMQ_SYS_SCHEDULE_TOPIC, levels, levels))
        if b.trace_topic_enable:
            out.append(TopicConfig(t.RMQ_SYS_TRACE_TOPIC, 1, 1))
        out.append(TopicConfig(t.reply_topic(b.broker_cluster_name), 1, 1))
        return out

    def load(self) -> None:
        """System topics, overlaid by the file (as Java: constructor, then load); persisted."""
        self.table = {tc.topic_name: tc for tc in self.system_topics()}
        wrapper = persist.load_json(self.path, TopicConfigSerializeWrapper.from_obj)
        if wrapper is not None:
            self.table.update(wrapper.topic_config_table)
            self.data_version = wrapper.data_version
        tbw = self.table.get(t.AUTO_CREATE_TOPIC_KEY_TOPIC)
        if tbw is not None and not self.broker.auto_create_topic_enable and t.is_inherited(tbw.perm):
            self.table[tbw.topic_name] = dataclasses.replace(tbw, perm=tbw.perm & ~t.PERM_INHERIT)
        self.data_version = self.data_version.next(self.clock.now_ms())
        self.persist()
        log.info("topics loaded: %d topics, dataVersion counter %d", len(self.table), self.data_version.counter)

    def persist(self) -> None:
        persist.write_json(self.path, self.wrapper().to_obj())

    def wrapper(self) -> TopicConfigSerializeWrapper:
        return TopicConfigSerializeWrapper(dict(self.table), self.data_version)

    def _changed(self) -> None:
        self.data_version = self.data_version.next(self.clock.now_ms())
        self.persist()
        if self.on_change is not None:
            self.on_change()

    # --- lookups ------------------------------------------------------------------------

    def get(self, topic: str) -> TopicConfig | None:
        return self.table.get(topic)

    def is_system_topic(self, topic: str) -> bool:
        return t.is_system_topic(topic, self.extra_system_topics)

    # --- admin: UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER ----------------------

    def update_and_create(self, config: TopicConfig) -> None:
        """UPDATE_AND_CREATE_TOPIC; TopicRefused for a bad name or a system topic."""
        name = config.topic_name
        try:
            t.validate_topic(name)
        except ProtocolError as exc:
            raise TopicRefused(str(exc)) from None
        if self.is_system_topic(name):
            raise TopicRefused(f"The topic[{name}] is conflict with system topic.")
        if config.read_queue_nums < 0 or config.write_queue_nums < 0:
            raise TopicRefused(f"queue numbers of topic {name} must not be negative")
        old = self.table.get(name)
        self.table[name] = config
        log.info("topic %s: %s -> %s", "updated" if old else "created", name, config.to_obj())
        self._changed()

    def delete(self, topic: str) -> bool:
        if not topic.strip():
            raise TopicRefused("The specified topic is blank.")
        if self.is_system_topic(topic):
            raise TopicRefused(f"The topic[{topic}] is conflict with system topic.")
        if self.table.pop(topic, None) is None:
            return False
        log.info("topic deleted: %s", topic)
        self._changed()
        return True

    # --- auto-create ------------------------------------------------------------------------

    def create_from_template(self, topic: str, default_topic: str, client_queue_nums: int,
                             topic_sys_flag: int = 0) -> TopicConfig | None:
        """createTopicInSendMessageMethod: a new topic from a template with PERM_INHERIT; None if refused."""
        existing = self.table.get(topic)
        if existing is not None:
            return existing
        try:
            t.validate_topic(topic)
        except ProtocolError:
            return None
        if self.is_system_topic(topic):
            return None
        template = self.table.get(default_topic)
        if template is None:
            log.warning("auto-create of topic %s refused: template topic %s does not exist", topic, default_topic)
            return None
        perm = template.perm
        if default_topic == t.AUTO_CREATE_TOPIC_KEY_TOPIC and not self.broker.auto_create_topic_enable:
            perm = t.PERM_READ_WRITE
        if not t.is_inherited(perm):
            log.warning("auto-create of topic %s refused: template %s has no inherit permission (perm %d)",
                        topic, default_topic, perm)
            return None
        queue_nums = max(0, min(client_queue_nums, template.write_queue_nums))
        config = TopicConfig(topic, queue_nums, queue_nums, perm & ~t.PERM_INHERIT,
                             template.topic_filter_type, topic_sys_flag)
        self.table[topic] = config
        log.info("topic auto-created from %s: %s", default_topic, config.to_obj())
        self._changed()
        return config

    def create_retry_or_dlq(self, topic: str, queue_nums: int, perm: int, topic_sys_flag: int = 0
                            ) -> TopicConfig | None:
        """createTopicInSendMessageBackMethod: `%RETRY%<g>` / `%DLQ%<g>` on demand.

        None when the name is not a valid topic (a group name with other characters, or so
        long that the topic passes 127 characters): such a topic could not be stored, and
        its name would become a ConsumeQueue directory.
        """
        existing = self.table.get(topic)
        if existing is not None:
            return existing
        try:
            t.validate_topic(topic)
        except ProtocolError as exc:
            log.warning("topic %r not created: %s", topic[:200], exc)
            return None
        config = TopicConfig(topic, queue_nums, queue_nums, perm, topic_sys_flag=topic_sys_flag)
        self.table[topic] = config
        log.info("topic created on demand: %s", config.to_obj())
        self._changed()
        return config

    def create_retry_topic(self, group: str, retry_queue_nums: int, topic_sys_flag: int = 0
                           ) -> TopicConfig | None:
        return self.create_retry_or_dlq(t.retry_topic(group), retry_queue_nums, t.PERM_READ_WRITE,
                                        topic_sys_flag)

    def create_dlq_topic(self, group: str) -> TopicConfig | None:
        return self.create_retry_or_dlq(t.dlq_topic(group), 1, t.PERM_READ_WRITE)
