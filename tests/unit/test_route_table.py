"""RouteTable (RocketMQ's RouteInfoManager) with a FakeClock: registration, expiry, admin writes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rocketpy.clock import FakeClock
from rocketpy.namesrv.route_table import KVConfigTable, RouteTable
from rocketpy.protocol.bodies import DataVersion, TopicConfig
from rocketpy.protocol.topics import PERM_READ, PERM_WRITE

EXPIRY_MS = 120_000
RW = PERM_READ | PERM_WRITE


def topic(name: str, queues: int = 4, perm: int = RW) -> TopicConfig:
    return TopicConfig(topic_name=name, read_queue_nums=queues, write_queue_nums=queues, perm=perm)


def version(counter: int, timestamp: int = 1_700_000_000_000) -> DataVersion:
    return DataVersion(timestamp=timestamp, counter=counter)


@dataclass
class Broker:
    name: str
    addr: str
    broker_id: int = 0
    cluster: str = "DefaultCluster"
    ha: str = ""

    def register(self, table: RouteTable, topics: list[TopicConfig], counter: int = 1, channel: int = 0):
        return table.register_broker(
            cluster=self.cluster, broker_addr=self.addr, broker_name=self.name,
            broker_id=self.broker_id, ha_server_addr=self.ha or self.addr.replace(":10911", ":10912"),
            data_version=version(counter), topic_configs=topics, channel=channel or None)

    def unregister(self, table: RouteTable) -> None:
        table.unregister_broker(cluster=self.cluster, broker_addr=self.addr,
                                broker_name=self.name, broker_id=self.broker_id)


A_MASTER = Broker("broker-a", "10.0.0.1:10911")
A_SLAVE = Broker("broker-a", "10.0.0.2:10911", broker_id=1)
B_MASTER = Broker("broker-b", "10.0.0.3:10911")
C_OTHER_CLUSTER = Broker("broker-c", "10.0.0.4:10911", cluster="OtherCluster")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def table(clock: FakeClock) -> RouteTable:
    return RouteTable(broker_expiry_ms=EXPIRY_MS, clock=clock)


def addrs_of(table: RouteTable, topic_name: str) -> dict[str, dict[int, str]]:
    route = table.route_for_topic(topic_name)
    assert route is not None
    return {bd.broker_name: dict(bd.broker_addrs) for bd in route.broker_datas}


def perms_of(table: RouteTable, topic_name: str) -> dict[str, int]:
    route = table.route_for_topic(topic_name)
    assert route is not None
    return {qd.broker_name: qd.perm for qd in route.queue_datas}


# --- registration -----------------------------------------------------------------


def test_register_makes_topic_routable(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA", queues=8)])
    route = table.route_for_topic("TopicA")
    assert route is not None
    [qd] = route.queue_datas
    assert (qd.broker_name, qd.read_queue_nums, qd.write_queue_nums, qd.perm) == ("broker-a", 8, 8, RW)
    [bd] = route.broker_datas
    assert (bd.cluster, bd.broker_name, dict(bd.broker_addrs)) == (
        "DefaultCluster", "broker-a", {0: "10.0.0.1:10911"})
    assert table.route_for_topic("Unknown") is None


def test_same_data_version_does_not_rewrite_queue_data(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA", queues=4)], counter=1)
    A_MASTER.register(table, [topic("TopicA", queues=16), topic("TopicNew")], counter=1)
    route = table.route_for_topic("TopicA")
    assert route is not None and route.queue_datas[0].write_queue_nums == 4
    assert table.route_for_topic("TopicNew") is None
    A_MASTER.register(table, [topic("TopicA", queues=16), topic("TopicNew")], counter=2)
    route = table.route_for_topic("TopicA")
    assert route is not None and route.queue_datas[0].write_queue_nums == 16
    assert table.route_for_topic("TopicNew") is not None


def test_slave_never_changes_queue_data(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA", queues=4)])
    A_SLAVE.register(table, [topic("TopicA", queues=16), topic("SlaveOnly")], counter=5)
    route = table.route_for_topic("TopicA")
    assert route is not None and route.queue_datas[0].write_queue_nums == 4
    assert table.route_for_topic("SlaveOnly") is None
    assert addrs_of(table, "TopicA") == {"broker-a": {0: A_MASTER.addr, 1: A_SLAVE.addr}}


@pytest.mark.parametrize("master_first", [True, False])
def test_slave_learns_live_master(table: RouteTable, master_first: bool) -> None:
    if master_first:
        A_MASTER.register(table, [topic("TopicA")])
        result = A_SLAVE.register(table, [])
        assert (result.master_addr, result.ha_server_addr) == (A_MASTER.addr, "10.0.0.1:10912")
    else:
        result = A_SLAVE.register(table, [])
        assert (result.master_addr, result.ha_server_addr) == (None, None)
    assert A_MASTER.register(table, []).master_addr is None


def test_slave_promoted_on_same_address_replaces_old_id(table: RouteTable) -> None:
    A_SLAVE.register(table, [])
    promoted = Broker("broker-a", A_SLAVE.addr, broker_id=0)
    promoted.register(table, [topic("TopicA")])
    assert addrs_of(table, "TopicA") == {"broker-a": {0: A_SLAVE.addr}}


def test_unregister_last_address_removes_broker_cluster_and_topics(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA"), topic("Shared")])
    B_MASTER.register(table, [topic("Shared")])
    A_MASTER.unregister(table)
    assert table.route_for_topic("TopicA") is None
    assert addrs_of(table, "Shared") == {"broker-b": {0: B_MASTER.addr}}
    info = table.cluster_info()
    assert set(info.broker_addr_table) == {"broker-b"}
    assert {k: list(v) for k, v in info.cluster_addr_table.items()} == {"DefaultCluster": ["broker-b"]}
    B_MASTER.unregister(table)
    assert table.cluster_info().cluster_addr_table == {}
    assert table.topic_list() == ()


# --- data version -------------------------------------------------------------------


def test_query_data_version_refreshes_liveness_only_when_unchanged(
        table: RouteTable, clock: FakeClock) -> None:
    A_MASTER.register(table, [topic("TopicA")], counter=3)
    clock.advance(100_000)
    assert table.query_data_version(A_MASTER.addr, version(4)) == (True, version(3))
    clock.advance(30_000)                       # 130 s since the registration
    assert [e.broker_addr for e in table.scan_not_active()] == [A_MASTER.addr]

    A_MASTER.register(table, [topic("TopicA")], counter=3)
    clock.advance(100_000)
    assert table.query_data_version(A_MASTER.addr, version(3)) == (False, version(3))
    clock.advance(30_000)                       # 30 s since the query
    assert table.scan_not_active() == []
    assert table.query_data_version("10.9.9.9:10911", version(1)) == (True, None)


# --- expiry -------------------------------------------------------------------------


@pytest.mark.parametrize(("silent_ms", "expired"), [
    (0, False),
    (119_999, False),
    (120_000, False),                           # RocketMQ drops only when strictly older
    (120_001, True),
    (600_000, True),
])
def test_expiry_at_120_s(table: RouteTable, clock: FakeClock, silent_ms: int, expired: bool) -> None:
    A_MASTER.register(table, [topic("TopicA")])
    clock.advance(silent_ms)
    dropped = table.scan_not_active()
    assert bool(dropped) is expired
    assert (table.route_for_topic("TopicA") is None) is expired
    assert ("DefaultCluster" in table.cluster_info().cluster_addr_table) is not expired


def test_scan_with_explicit_now(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA")])
    assert table.scan_not_active(now_ms=EXPIRY_MS) == []
    [item] = table.scan_not_active(now_ms=EXPIRY_MS + 1)
    assert (item.broker_addr, item.silent_ms) == (A_MASTER.addr, EXPIRY_MS + 1)


def test_two_brokers_one_expires(table: RouteTable, clock: FakeClock) -> None:
    A_MASTER.register(table, [topic("TopicA"), topic("Shared")])
    clock.advance(60_000)
    B_MASTER.register(table, [topic("TopicB"), topic("Shared")])
    clock.advance(61_000)                       # A silent 121 s, B 61 s
    assert [e.broker_addr for e in table.scan_not_active()] == [A_MASTER.addr]
    assert table.route_for_topic("TopicA") is None
    assert addrs_of(table, "Shared") == {"broker-b": {0: B_MASTER.addr}}
    assert perms_of(table, "Shared") == {"broker-b": RW}
    assert sorted(table.topic_list()) == ["Shared", "TopicB"]
    clock.advance(60_000)
    assert [e.broker_addr for e in table.scan_not_active()] == [B_MASTER.addr]
    assert table.topic_list() == ()
    assert table.cluster_info().broker_addr_table == {}


def test_master_dies_slave_keeps_topic_routable(table: RouteTable, clock: FakeClock) -> None:
    A_MASTER.register(table, [topic("TopicA")])
    A_SLAVE.register(table, [])
    clock.advance(100_000)
    A_SLAVE.register(table, [])                 # the slave keeps registering, the master is gone
    clock.advance(30_000)
    assert [e.broker_addr for e in table.scan_not_active()] == [A_MASTER.addr]
    assert addrs_of(table, "TopicA") == {"broker-a": {1: A_SLAVE.addr}}   # no id 0: consume only
    assert perms_of(table, "TopicA") == {"broker-a": RW}
    result = A_SLAVE.register(table, [])
    assert result.master_addr is None


def test_channel_closed_drops_at_once(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA")], channel=7)
    B_MASTER.register(table, [topic("TopicB")], channel=8)
    assert table.addresses_of_channel(7) == [A_MASTER.addr]
    table.on_channel_closed(A_MASTER.addr)
    assert table.route_for_topic("TopicA") is None
    assert table.route_for_topic("TopicB") is not None
    assert table.addresses_of_channel(7) == []


def test_reregistration_over_new_channel_moves_the_channel(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA")], channel=7)
    A_MASTER.register(table, [topic("TopicA")], channel=9)
    assert table.addresses_of_channel(7) == []
    assert table.addresses_of_channel(9) == [A_MASTER.addr]


# --- reads ---------------------------------------------------------------------------


def test_cluster_info_and_topics_by_cluster(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("TopicA"), topic("Shared")])
    A_SLAVE.register(table, [])
    B_MASTER.register(table, [topic("Shared")])
    C_OTHER_CLUSTER.register(table, [topic("TopicC")])
    info = table.cluster_info()
    assert {k: sorted(v) for k, v in info.cluster_addr_table.items()} == {
        "DefaultCluster": ["broker-a", "broker-b"], "OtherCluster": ["broker-c"]}
    assert dict(info.broker_addr_table["broker-a"].broker_addrs) == {0: A_MASTER.addr, 1: A_SLAVE.addr}
    assert sorted(table.topics_by_cluster("DefaultCluster")) == ["Shared", "TopicA"]
    assert table.topics_by_cluster("OtherCluster") == ("TopicC",)
    assert table.topics_by_cluster("NoSuchCluster") == ()
    assert sorted(table.topic_list()) == ["Shared", "TopicA", "TopicC"]


# --- admin writes ------------------------------------------------------------------------


@pytest.mark.parametrize(("cluster", "left"), [
    (None, None),
    ("", None),
    ("DefaultCluster", {"broker-c"}),
    ("OtherCluster", {"broker-a"}),
    ("NoSuchCluster", {"broker-a", "broker-c"}),
])
def test_delete_topic(table: RouteTable, cluster: str | None, left: set[str] | None) -> None:
    A_MASTER.register(table, [topic("Shared"), topic("Keep")])
    C_OTHER_CLUSTER.register(table, [topic("Shared")])
    table.delete_topic("Shared", cluster)
    if left is None:
        assert table.route_for_topic("Shared") is None
    else:
        assert set(perms_of(table, "Shared")) == left
    assert table.route_for_topic("Keep") is not None
    table.delete_topic("NeverExisted", cluster)


def test_wipe_and_add_write_perm(table: RouteTable) -> None:
    A_MASTER.register(table, [topic("T1"), topic("T2", perm=RW | 1)])
    B_MASTER.register(table, [topic("T1")])
    assert table.wipe_write_perm("broker-a") == 2
    assert perms_of(table, "T1") == {"broker-a": PERM_READ, "broker-b": RW}
    assert perms_of(table, "T2") == {"broker-a": PERM_READ | 1}
    # A re-registration with the same data version does not undo the wipe (as in RocketMQ).
    A_MASTER.register(table, [topic("T1"), topic("T2")])
    assert perms_of(table, "T1")["broker-a"] == PERM_READ
    assert table.add_write_perm("broker-a") == 2
    assert perms_of(table, "T2") == {"broker-a": RW}
    assert table.wipe_write_perm("no-such-broker") == 0


# --- KV config ------------------------------------------------------------------------------


def test_kv_config_namespaces() -> None:
    kv = KVConfigTable()
    assert kv.get("ns", "k") is None
    assert kv.list_namespace("ns") is None
    kv.put("ns", "k", "v1")
    kv.put("ns", "k", "v2")
    kv.put("ns", "k2", "x")
    kv.put("other", "k", "o")
    assert kv.get("ns", "k") == "v2"
    assert kv.list_namespace("ns") == {"k": "v2", "k2": "x"}
    kv.delete("ns", "k")
    kv.delete("ns", "missing")
    kv.delete("missing", "k")
    assert kv.get("ns", "k") is None
    assert kv.list_namespace("ns") == {"k2": "x"}
    assert kv.get("other", "k") == "o"
