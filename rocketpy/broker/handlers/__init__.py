"""Request handlers of a broker worker, one module per area (RocketMQ's broker/processor/).

| module | codes | served from |
|---|---|---|
| send | SEND_MESSAGE 10, SEND_MESSAGE_V2 310, SEND_BATCH_MESSAGE 320 | the writer, through this worker's put ring |
| pull | PULL_MESSAGE 11 (+ long_polling) | read-only maps of CommitLog and ConsumeQueue |
| lookup | GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME, QUERY_MESSAGE, VIEW_MESSAGE_BY_ID | the queue table and the maps |
| sendback | CONSUMER_SEND_MSG_BACK 36 (retry and DLQ) | the maps (the failed message), then the put ring |
| forward | HEART_BEAT, offsets, topics and groups admin, locks, runtime info | control, over its unix socket |

`WorkerContext` is what they share: configs, the shared-memory views, the
store reader and the metadata caches control keeps up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rocketpy.broker.control.registration import broker_ip1
from rocketpy.broker.reading import FollowingReader
from rocketpy.config import BrokerConfig, BrokerRole, StoreConfig
from rocketpy.ipc.control_block import ControlBlock
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.metrics.stats import ProcessStats
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import TopicConfig

if TYPE_CHECKING:
    from rocketpy.broker.control.groups import SubscriptionGroupConfig
    from rocketpy.broker.filter.subscriptions import GroupSubscriptions
    from rocketpy.store.file_store import StoreReader

log = logging.getLogger("rocketpy.broker.worker")


class WorkerContext:
    """State every handler of one worker reads."""

    def __init__(self, broker_config: BrokerConfig, store_config: StoreConfig, *, slot: int,
                 control_block: ControlBlock, queue_table: QueueTable,
                 store_reader: StoreReader | None = None) -> None:
        self.broker_config = broker_config
        self.store_config = store_config
        self.slot = slot
        self.control_block = control_block
        self.queue_table = queue_table
        self.store_reader = store_reader
        self._following = FollowingReader(store_reader, control_block) if store_reader is not None else None
        # The address clients reach this broker at: stamped into every record (store host) and
        # every offset msgId, so VIEW_MESSAGE_BY_ID and the C++ client's send-back find it.
        self.store_host = broker_ip1(broker_config)
        self.store_port = broker_config.listen_port
        self.cluster_name = broker_config.broker_cluster_name
        self.region_id = broker_config.region_id
        self.is_master = broker_config.broker_role is not BrokerRole.SLAVE
        # Metadata caches, replaced as a whole by control's TOPICS_CHANGED / GROUPS_CHANGED.
        self.topics: dict[str, TopicConfig] = {}
        self.groups: dict[str, SubscriptionGroupConfig] = {}
        # Consumer groups' subscriptions from heartbeats, replaced by control's SUBSCRIPTIONS_CHANGED.
        self.consumer_groups: dict[str, GroupSubscriptions] = {}
        self.topics_version = 0
        # Set by the worker: batches a consumer offset for control (pulls with COMMIT_OFFSET).
        self.commit_offset: Callable[[str, str, int, int], None] = _drop_offset
        # Counters shipped to control once a second (broker/metrics.py).
        self.stats = ProcessStats(f"worker{slot}")

    def reader(self) -> StoreReader:
        """The store reader, its maps refreshed when retention or a writer restart changed the
        files under it (`rocketpy.broker.reading`)."""
        following = self._following
        assert following is not None, "a worker serving reads has a store reader"
        return following.get()

    @property
    def broker_writable(self) -> bool:
        return t.is_writeable(self.broker_config.broker_permission)

    @property
    def broker_readable(self) -> bool:
        return t.is_readable(self.broker_config.broker_permission)

    def set_topics(self, table: dict[str, TopicConfig]) -> None:
        self.topics = table
        self.topics_version += 1

    def put_topic(self, config: TopicConfig) -> None:
        """One topic control just created for us (AUTO_CREATE_TOPIC); the next table replaces it."""
        table = dict(self.topics)
        table[config.topic_name] = config
        self.topics = table

    def set_groups(self, table: dict[str, Any]) -> None:
        self.groups = table

    def set_consumer_groups(self, table: dict[str, GroupSubscriptions]) -> None:
        self.consumer_groups = table


def _drop_offset(group: str, topic: str, queue_id: int, offset: int) -> None:
    log.debug("no control link: offset %s %s/%d=%d not committed", group, topic, queue_id, offset)
