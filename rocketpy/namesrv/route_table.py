"""The NameServer's route tables (RocketMQ's RouteInfoManager and KVConfigManager).

Pure state, no I/O: the server feeds it requests and the clock; tests drive it
with a FakeClock. Liveness uses the monotonic clock.

Tables, as in RouteInfoManager::

    topic_queue_table   topic       -> {brokerName -> QueueData}
    broker_addr_table   brokerName  -> BrokerData {cluster, brokerName, brokerAddrs{id -> addr}}
    cluster_addr_table  cluster     -> {brokerName}
    broker_live_table   brokerAddr  -> LiveInfo {last update, dataVersion, haServerAddr, channel}
    filter_server_table brokerAddr  -> [filter server addr]

A broker address leaves the tables when it unregisters, when its connection
closes or when it has been silent longer than the expiry. Only when a broker
name has no address left do its BrokerData, its cluster membership and its
QueueData of every topic go (a topic left without QueueData disappears), so a
dead master with a live slave keeps the topic routable without brokerId 0.

The broker side, not this table, applies a broker's own permission: a broker
whose brokerPermission is not R|W registers every topic with perm = its own.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping

from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.protocol.bodies import (
    BrokerData,
    ClusterInfo,
    DataVersion,
    QueueData,
    TopicConfig,
    TopicRouteData,
)
from rocketpy.protocol.topics import PERM_READ, PERM_WRITE

log = logging.getLogger("rocketpy.namesrv")

MASTER_ID = 0
NAMESPACE_ORDER_TOPIC_CONFIG = "ORDER_TOPIC_CONFIG"


@dataclasses.dataclass(slots=True)
class LiveInfo:
    """RocketMQ's BrokerLiveInfo: one registered broker address."""

    last_update_ms: int
    data_version: DataVersion
    ha_server_addr: str
    channel: Hashable | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterResult:
    """RegisterBrokerResult: a slave learns its live master's addresses."""

    master_addr: str | None = None
    ha_server_addr: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ExpiredBroker:
    """An address the scan dropped, and the channel it last registered over."""

    broker_addr: str
    channel: Hashable | None
    silent_ms: int


@dataclasses.dataclass(slots=True)
class _BrokerEntry:
    cluster: str
    broker_name: str
    broker_addrs: dict[int, str]

    def snapshot(self) -> BrokerData:
        return BrokerData(cluster=self.cluster, broker_name=self.broker_name,
                          broker_addrs=dict(sorted(self.broker_addrs.items())))


class RouteTable:
    """RouteInfoManager: who serves which topic, and which brokers are alive."""

    def __init__(self, *, broker_expiry_ms: int, clock: Clock = SYSTEM_CLOCK) -> None:
        assert broker_expiry_ms > 0
        self._clock = clock
        self.broker_expiry_ms = broker_expiry_ms
        self.topic_queue_table: dict[str, dict[str, QueueData]] = {}
        self.broker_addr_table: dict[str, _BrokerEntry] = {}
        self.cluster_addr_table: dict[str, set[str]] = {}
        self.broker_live_table: dict[str, LiveInfo] = {}
        self.filter_server_table: dict[str, list[str]] = {}

    # --- registration -------------------------------------------------------

    def register_broker(self, *, cluster: str, broker_addr: str, broker_name: str, broker_id: int,
                        ha_server_addr: str, data_version: DataVersion,
                        topic_configs: Iterable[TopicConfig] | None,
                        filter_server_list: Iterable[str] = (),
                        channel: Hashable | None = None) -> RegisterResult:
        assert broker_id >= 0, "brokerId is 0 (master) or a positive slave id"
        self.cluster_addr_table.setdefault(cluster, set()).add(broker_name)
        entry = self.broker_addr_table.get(broker_name)
        first = entry is None
        if entry is None:
            entry = _BrokerEntry(cluster, broker_name, {})
            self.broker_addr_table[broker_name] = entry
        # A slave promoted to master (or renumbered) re-registers its address under a new id.
        for other_id in [i for i, a in entry.broker_addrs.items() if a == broker_addr and i != broker_id]:
            del entry.broker_addrs[other_id]
        old_addr = entry.broker_addrs.get(broker_id)
        entry.broker_addrs[broker_id] = broker_addr
        first = first or old_addr is None

        if topic_configs is not None and broker_id == MASTER_ID:
            if first or self.is_data_version_changed(broker_addr, data_version):
                for topic_config in topic_configs:
                    self._update_queue_data(broker_name, topic_config)

        now = self._clock.monotonic_ms()
        previous = self.broker_live_table.get(broker_addr)
        self.broker_live_table[broker_addr] = LiveInfo(now, data_version, ha_server_addr, channel)
        if previous is None:
            log.info("broker registered: cluster=%s name=%s id=%d addr=%s ha=%s",
                     cluster, broker_name, broker_id, broker_addr, ha_server_addr)

        filters = list(filter_server_list)
        if filters:
            self.filter_server_table[broker_addr] = filters
        else:
            self.filter_server_table.pop(broker_addr, None)

        if broker_id != MASTER_ID:
            master_addr = entry.broker_addrs.get(MASTER_ID)
            if master_addr is not None:
                master_live = self.broker_live_table.get(master_addr)
                if master_live is not None:
                    return RegisterResult(master_addr, master_live.ha_server_addr)
        return RegisterResult()

    def _update_queue_data(self, broker_name: str, topic_config: TopicConfig) -> None:
        queue_data = QueueData(
            broker_name=broker_name,
            read_queue_nums=topic_config.read_queue_nums,
            write_queue_nums=topic_config.write_queue_nums,
            perm=topic_config.perm,
            topic_sys_flag=topic_config.topic_sys_flag,
        )
        by_broker = self.topic_queue_table.setdefault(topic_config.topic_name, {})
        old = by_broker.get(broker_name)
        if old != queue_data:
            if old is None:
                log.info("new topic registered: topic=%s broker=%s", topic_config.topic_name, broker_name)
            else:
                log.info("topic changed: topic=%s broker=%s old=%s new=%s",
                         topic_config.topic_name, broker_name, old, queue_data)
            by_broker[broker_name] = queue_data

    def unregister_broker(self, *, cluster: str, broker_addr: str, broker_name: str,
                          broker_id: int) -> None:
        removed = self.broker_live_table.pop(broker_addr, None)
        self.filter_server_table.pop(broker_addr, None)
        log.info("broker unregistered: cluster=%s name=%s id=%d addr=%s was_live=%s",
                 cluster, broker_name, broker_id, broker_addr, removed is not None)
        entry = self.broker_addr_table.get(broker_name)
        if entry is None:
            return
        entry.broker_addrs.pop(broker_id, None)
        if not entry.broker_addrs:
            self._remove_broker_name(broker_name, clusters=(cluster,))

    def is_data_version_changed(self, broker_addr: str, data_version: DataVersion) -> bool:
        live = self.broker_live_table.get(broker_addr)
        return live is None or live.data_version != data_version

    def query_data_version(self, broker_addr: str, data_version: DataVersion
                           ) -> tuple[bool, DataVersion | None]:
        """(changed?, stored version); an unchanged broker counts as heard from now."""
        changed = self.is_data_version_changed(broker_addr, data_version)
        live = self.broker_live_table.get(broker_addr)
        if not changed and live is not None:
            live.last_update_ms = self._clock.monotonic_ms()
        return changed, live.data_version if live is not None else None

    # --- liveness -----------------------------------------------------------

    def scan_not_active(self, now_ms: int | None = None) -> list[ExpiredBroker]:
        """Drop every address silent longer than the expiry; returns what was dropped."""
        now = self._clock.monotonic_ms() if now_ms is None else now_ms
        expired = [ExpiredBroker(addr, live.channel, now - live.last_update_ms)
                   for addr, live in self.broker_live_table.items()
                   if now - live.last_update_ms > self.broker_expiry_ms]
        for item in expired:
            log.warning("broker expired: addr=%s silent for %d ms (expiry %d ms)",
                        item.broker_addr, item.silent_ms, self.broker_expiry_ms)
            self._drop_address(item.broker_addr)
        return expired

    def on_channel_closed(self, broker_addr: str) -> None:
        """The connection a broker registered over closed: drop that address at once."""
        if broker_addr in self.broker_live_table:
            log.info("broker connection closed, dropping addr=%s", broker_addr)
        self._drop_address(broker_addr)

    def addresses_of_channel(self, channel: Hashable) -> list[str]:
        """Addresses whose latest registration came over `channel`."""
        return [addr for addr, live in self.broker_live_table.items() if live.channel == channel]

    def _drop_address(self, broker_addr: str) -> None:
        """RouteInfoManager.onChannelDestroy: remove an address and whatever it leaves empty."""
        self.broker_live_table.pop(broker_addr, None)
        self.filter_server_table.pop(broker_addr, None)
        for broker_name, entry in list(self.broker_addr_table.items()):
            ids = [i for i, a in entry.broker_addrs.items() if a == broker_addr]
            for broker_id in ids:
                del entry.broker_addrs[broker_id]
            if ids and not entry.broker_addrs:
                self._remove_broker_name(broker_name, clusters=tuple(self.cluster_addr_table))

    def _remove_broker_name(self, broker_name: str, clusters: Iterable[str]) -> None:
        self.broker_addr_table.pop(broker_name, None)
        log.info("broker name removed, no address left: name=%s", broker_name)
        for cluster in list(clusters):
            names = self.cluster_addr_table.get(cluster)
            if names is not None and broker_name in names:
                names.discard(broker_name)
                if not names:
                    del self.cluster_addr_table[cluster]
                    log.info("cluster removed, no broker left: cluster=%s", cluster)
        for topic in list(self.topic_queue_table):
            by_broker = self.topic_queue_table[topic]
            if by_broker.pop(broker_name, None) is not None and not by_broker:
                del self.topic_queue_table[topic]
                log.info("topic removed, no broker left: topic=%s", topic)

    # --- reads ----------------------------------------------------------------

    def route_for_topic(self, topic: str) -> TopicRouteData | None:
        """Found only when some broker has QueueData for the topic and its BrokerData exists."""
        by_broker = self.topic_queue_table.get(topic)
        if not by_broker:
            return None
        broker_datas = [self.broker_addr_table[name].snapshot()
                        for name in by_broker if name in self.broker_addr_table]
        if not broker_datas:
            return None
        filter_servers: dict[str, tuple[str, ...]] = {}
        if self.filter_server_table:
            for broker_data in broker_datas:
                for addr in broker_data.broker_addrs.values():
                    if addr in self.filter_server_table:
                        filter_servers[addr] = tuple(self.filter_server_table[addr])
        return TopicRouteData(queue_datas=tuple(by_broker.values()), broker_datas=tuple(broker_datas),
                              filter_server_table=filter_servers)

    def cluster_info(self) -> ClusterInfo:
        return ClusterInfo(
            broker_addr_table={name: entry.snapshot() for name, entry in self.broker_addr_table.items()},
            cluster_addr_table={cluster: tuple(sorted(names)) for cluster, names in self.cluster_addr_table.items()},
        )

    def topic_list(self) -> tuple[str, ...]:
        return tuple(self.topic_queue_table)

    def topics_by_cluster(self, cluster: str) -> tuple[str, ...]:
        names = self.cluster_addr_table.get(cluster, set())
        return tuple(topic for topic, by_broker in self.topic_queue_table.items()
                     if any(name in by_broker for name in names))

    # --- admin writes ---------------------------------------------------------

    def delete_topic(self, topic: str, cluster: str | None = None) -> None:
        """Forget a topic everywhere, or only its QueueData of the brokers of `cluster`."""
        if not cluster:
            self.topic_queue_table.pop(topic, None)
            return
        by_broker = self.topic_queue_table.get(topic)
        if by_broker is None:
            return
        for name in self.cluster_addr_table.get(cluster, ()):
            by_broker.pop(name, None)
        if not by_broker:
            del self.topic_queue_table[topic]

    def wipe_write_perm(self, broker_name: str) -> int:
        """Clear PERM_WRITE in the broker's QueueData of every topic; returns the topic count."""
        return self._set_perm(broker_name, lambda perm: perm & ~PERM_WRITE)

    def add_write_perm(self, broker_name: str) -> int:
        """Set the broker's QueueData of every topic to R|W; returns the topic count."""
        return self._set_perm(broker_name, lambda _perm: PERM_READ | PERM_WRITE)

    def _set_perm(self, broker_name: str, change: Callable[[int], int]) -> int:
        count = 0
        for by_broker in self.topic_queue_table.values():
            old = by_broker.get(broker_name)
            if old is not None:
                by_broker[broker_name] = dataclasses.replace(old, perm=change(old.perm))
                count += 1
        return count


class KVConfigTable:
    """RocketMQ's KVConfigManager: namespace -> key -> value, in memory."""

    def __init__(self) -> None:
        self.table: dict[str, dict[str, str]] = {}

    def put(self, namespace: str, key: str, value: str) -> None:
        self.table.setdefault(namespace, {})[key] = value
        log.info("kv config put: namespace=%s key=%s value=%s", namespace, key, value)

    def get(self, namespace: str, key: str) -> str | None:
        return self.table.get(namespace, {}).get(key)

    def delete(self, namespace: str, key: str) -> None:
        values = self.table.get(namespace)
        if values is not None and values.pop(key, None) is not None:
            log.info("kv config deleted: namespace=%s key=%s", namespace, key)

    def list_namespace(self, namespace: str) -> Mapping[str, str] | None:
        values = self.table.get(namespace)
        return dict(values) if values is not None else None
