"""The real `rocketpy namesrv` process on loopback, spoken to over TCP.

Bodies the test sends are written by hand in the shape a Java 4.9.8 broker
sends (remoting-protocol.md §8), so the test checks the wire format, not our
own encoder against our own decoder. Every wait is bounded and polls; every
process is killed in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rocketpy.protocol.codes import RequestCode, ResponseCode, SerializeType
from tests.support.remoting_client import ConnectionClosed, RemotingTestClient

START_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 10.0
CLUSTER = "DefaultCluster"
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the process -------------------------------------------------------------------


@dataclass
class NamesrvProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    stdout_path: Path
    stderr_path: Path

    def client(self, timeout_s: float = 5.0) -> RemotingTestClient:
        return RemotingTestClient(self.host, self.port, timeout_s=timeout_s)

    def log_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _wait_listening(stdout_path: Path, proc: subprocess.Popen[bytes], stderr_path: Path) -> tuple[str, int]:
    deadline = time.monotonic() + START_TIMEOUT_S
    prefix = "rocketpy namesrv listening on "
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"namesrv exited with {proc.returncode}: {stderr_path.read_text()}")
        for line in stdout_path.read_text().splitlines():
            if line.startswith(prefix):
                host, _, port = line[len(prefix):].strip().rpartition(":")
                # the line comes once the port accepts; prove it by connecting
                with socket.create_connection((host, int(port)), timeout=2.0):
                    pass
                return host, int(port)
        time.sleep(0.02)
    raise AssertionError(f"namesrv not listening within {START_TIMEOUT_S} s: {stderr_path.read_text()}")


@pytest.fixture
def start_namesrv(tmp_path: Path) -> Iterator[Callable[..., NamesrvProcess]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*settings: str, properties: str | None = None) -> NamesrvProcess:
        index = len(procs)
        stdout_path = tmp_path / f"namesrv{index}.out"
        stderr_path = tmp_path / f"namesrv{index}.err"
        args = [sys.executable, "-m", "rocketpy.cli.namesrv", "--listen", "127.0.0.1:0", "--metrics-port", "0"]
        if properties is not None:
            config_path = tmp_path / f"namesrv{index}.properties"
            config_path.write_text(properties)
            args += ["-c", str(config_path)]
        for setting in settings:
            args += ["--set", setting]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=env, cwd=tmp_path)
        procs.append(proc)
        host, port = _wait_listening(stdout_path, proc, stderr_path)
        return NamesrvProcess(proc, host, port, stdout_path, stderr_path)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=EXIT_TIMEOUT_S)


@pytest.fixture
def namesrv(start_namesrv: Callable[..., NamesrvProcess]) -> NamesrvProcess:
    return start_namesrv()


# --- what a broker sends ---------------------------------------------------------------


def topic_config(name: str, queues: int = 4, perm: int = 6) -> dict[str, Any]:
    return {"topicName": name, "readQueueNums": queues, "writeQueueNums": queues, "perm": perm,
            "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": False}


def register_body(topics: list[dict[str, Any]], counter: int = 1) -> bytes:
    body = {"topicConfigSerializeWrapper": {
        "topicConfigTable": {t["topicName"]: t for t in topics},
        "dataVersion": {"timestamp": 1_700_000_000_000, "counter": counter}},
        "filterServerList": []}
    return json.dumps(body).encode()


def compressed_register_body(topics: list[dict[str, Any]], counter: int = 1) -> bytes:
    """RegisterBrokerBody.encode(true) of RocketMQ 4.9.8."""
    def chunk(data: bytes) -> bytes:
        return struct.pack(">i", len(data)) + data

    raw = chunk(json.dumps({"timestamp": 1_700_000_000_000, "counter": counter}).encode())
    raw += struct.pack(">i", len(topics))
    for t in topics:
        raw += chunk(f"{t['topicName']} {t['readQueueNums']} {t['writeQueueNums']} {t['perm']} "
                     f"{t['topicFilterType']}".encode())
    raw += chunk(b"[]")
    return zlib.compress(raw, 9)


def register(client: RemotingTestClient, topics: list[dict[str, Any]], *, name: str = "broker-a",
             addr: str = "127.0.0.1:10911", broker_id: int = 0, counter: int = 1,
             cluster: str = CLUSTER, compressed: bool = False, crc: int | None = None):
    body = compressed_register_body(topics, counter) if compressed else register_body(topics, counter)
    ext = {"brokerName": name, "brokerAddr": addr, "clusterName": cluster,
           "haServerAddr": addr.rsplit(":", 1)[0] + ":10912", "brokerId": broker_id,
           "compressed": compressed,
           "bodyCrc32": zlib.crc32(body) & 0x7FFFFFFF if crc is None else crc}
    return client.request(RequestCode.REGISTER_BROKER, ext, body)


def route(client: RemotingTestClient, topic: str):
    return client.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


# --- routes -------------------------------------------------------------------------------


def test_register_then_route_is_strict_json(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as broker, namesrv.client() as client:
        resp = register(broker, [topic_config("TopicA", queues=8), topic_config("TopicB")])
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        resp = route(client, "TopicA")
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        assert b'"0":"127.0.0.1:10911"' in resp.body.replace(b" ", b"")
        data = json.loads(resp.body)            # strict JSON: json refuses unquoted keys
        assert data["queueDatas"] == [{"brokerName": "broker-a", "readQueueNums": 8,
                                       "writeQueueNums": 8, "perm": 6, "topicSysFlag": 0}]
        assert data["brokerDatas"] == [{"cluster": CLUSTER, "brokerName": "broker-a",
                                        "brokerAddrs": {"0": "127.0.0.1:10911"}}]
        assert data.get("filterServerTable", {}) == {}


def test_compressed_registration(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as broker:
        resp = register(broker, [topic_config("Zipped", queues=2, perm=4)], compressed=True)
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        data = json.loads(route(broker, "Zipped").body)
        assert [(q["readQueueNums"], q["perm"]) for q in data["queueDatas"]] == [(2, 4)]


def test_crc_mismatch_is_refused(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as broker:
        resp = register(broker, [topic_config("TopicA")], crc=12345)
        assert (resp.code, resp.remark) == (ResponseCode.SYSTEM_ERROR, "crc32 not match")
        assert route(broker, "TopicA").code == ResponseCode.TOPIC_NOT_EXIST


def test_old_broker_version_sends_bare_wrapper(namesrv: NamesrvProcess) -> None:
    wrapper = {"topicConfigTable": {"Old": topic_config("Old")},
               "dataVersion": {"timestamp": 1, "counter": 1}}
    with namesrv.client() as broker:
        resp = broker.request(RequestCode.REGISTER_BROKER, {
            "brokerName": "broker-old", "brokerAddr": "127.0.0.1:20911", "clusterName": CLUSTER,
            "haServerAddr": "127.0.0.1:20912", "brokerId": 0}, json.dumps(wrapper).encode(), version=36)
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        assert route(broker, "Old").code == ResponseCode.SUCCESS


def test_numbers_and_booleans_in_ext_fields(namesrv: NamesrvProcess) -> None:
    """C++ and ali-ons send ext values as JSON numbers and booleans."""
    body = register_body([topic_config("Cpp")])
    with namesrv.client() as broker:
        resp = broker.request(RequestCode.REGISTER_BROKER, {
            "brokerName": "broker-a", "brokerAddr": "127.0.0.1:10911", "clusterName": CLUSTER,
            "haServerAddr": "127.0.0.1:10912", "brokerId": 0, "compressed": False,
            "bodyCrc32": zlib.crc32(body) & 0x7FFFFFFF}, body, raw_ext=True, version=63)
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        resp = broker.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "Cpp"}, raw_ext=True)
        assert resp.code == ResponseCode.SUCCESS


def test_topic_not_exist(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        resp = route(client, "NoSuchTopic")
        assert resp.code == ResponseCode.TOPIC_NOT_EXIST
        assert resp.remark == "No topic route info in name server for the topic: NoSuchTopic"


def test_slave_gets_master_address(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as master, namesrv.client() as slave:
        register(master, [topic_config("TopicA")], addr="127.0.0.1:10911")
        resp = register(slave, [], addr="127.0.0.2:10911", broker_id=1)
        assert resp.code == ResponseCode.SUCCESS
        assert resp.ext_fields["masterAddr"] == "127.0.0.1:10911"
        assert resp.ext_fields["haServerAddr"] == "127.0.0.1:10912"
        data = json.loads(route(slave, "TopicA").body)
        assert data["brokerDatas"][0]["brokerAddrs"] == {"0": "127.0.0.1:10911", "1": "127.0.0.2:10911"}


def test_cluster_info_topic_lists_and_delete(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as a, namesrv.client() as c, namesrv.client() as admin:
        register(a, [topic_config("TopicA"), topic_config("Shared")])
        register(c, [topic_config("TopicC"), topic_config("Shared")], name="broker-c",
                 addr="127.0.0.3:10911", cluster="Other")
        info = json.loads(admin.request(RequestCode.GET_BROKER_CLUSTER_INFO).body)
        assert info["clusterAddrTable"] == {CLUSTER: ["broker-a"], "Other": ["broker-c"]}
        assert info["brokerAddrTable"]["broker-c"]["brokerAddrs"] == {"0": "127.0.0.3:10911"}

        topics = json.loads(admin.request(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER).body)
        assert sorted(topics["topicList"]) == ["Shared", "TopicA", "TopicC"]
        by_cluster = json.loads(admin.request(RequestCode.GET_TOPICS_BY_CLUSTER, {"cluster": "Other"}).body)
        assert sorted(by_cluster["topicList"]) == ["Shared", "TopicC"]

        resp = admin.request(RequestCode.DELETE_TOPIC_IN_NAMESRV, {"topic": "Shared", "clusterName": "Other"})
        assert resp.code == ResponseCode.SUCCESS
        data = json.loads(route(admin, "Shared").body)
        assert [q["brokerName"] for q in data["queueDatas"]] == ["broker-a"]
        assert admin.request(RequestCode.DELETE_TOPIC_IN_NAMESRV, {"topic": "Shared"}).code == 0
        assert route(admin, "Shared").code == ResponseCode.TOPIC_NOT_EXIST
        assert route(admin, "TopicA").code == ResponseCode.SUCCESS


def test_wipe_and_add_write_perm(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as broker:
        register(broker, [topic_config("T1"), topic_config("T2")])
        resp = broker.request(RequestCode.WIPE_WRITE_PERM_OF_BROKER, {"brokerName": "broker-a"})
        assert (resp.code, resp.ext_fields["wipeTopicCount"]) == (ResponseCode.SUCCESS, "2")
        assert json.loads(route(broker, "T1").body)["queueDatas"][0]["perm"] == 4
        resp = broker.request(RequestCode.ADD_WRITE_PERM_OF_BROKER, {"brokerName": "broker-a"})
        assert (resp.code, resp.ext_fields["addTopicCount"]) == (ResponseCode.SUCCESS, "2")
        assert json.loads(route(broker, "T1").body)["queueDatas"][0]["perm"] == 6


def test_query_data_version_and_unregister(namesrv: NamesrvProcess) -> None:
    ident = {"brokerName": "broker-a", "brokerAddr": "127.0.0.1:10911", "clusterName": CLUSTER,
             "brokerId": 0}
    with namesrv.client() as broker:
        register(broker, [topic_config("TopicA")], counter=5)
        same = json.dumps({"timestamp": 1_700_000_000_000, "counter": 5}).encode()
        resp = broker.request(RequestCode.QUERY_DATA_VERSION, ident, same)
        assert (resp.code, resp.ext_fields["changed"]) == (ResponseCode.SUCCESS, "false")
        assert json.loads(resp.body)["counter"] == 5
        newer = json.dumps({"timestamp": 1_700_000_000_000, "counter": 6}).encode()
        assert broker.request(RequestCode.QUERY_DATA_VERSION, ident, newer).ext_fields["changed"] == "true"

        assert broker.request(RequestCode.UNREGISTER_BROKER, ident).code == ResponseCode.SUCCESS
        assert route(broker, "TopicA").code == ResponseCode.TOPIC_NOT_EXIST
        info = json.loads(broker.request(RequestCode.GET_BROKER_CLUSTER_INFO).body)
        assert info["brokerAddrTable"] == {} and info["clusterAddrTable"] == {}


# --- KV config ------------------------------------------------------------------------------


def test_kv_config(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as admin:
        put = {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicA", "value": "broker-a:4"}
        assert admin.request(RequestCode.PUT_KV_CONFIG, put).code == ResponseCode.SUCCESS
        resp = admin.request(RequestCode.GET_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicA"})
        assert (resp.code, resp.ext_fields["value"]) == (ResponseCode.SUCCESS, "broker-a:4")
        resp = admin.request(RequestCode.GET_KVLIST_BY_NAMESPACE, {"namespace": "ORDER_TOPIC_CONFIG"})
        assert json.loads(resp.body) == {"table": {"TopicA": "broker-a:4"}}
        # a registering broker gets the ORDER_TOPIC_CONFIG namespace back
        resp = register(admin, [topic_config("TopicA")])
        assert json.loads(resp.body) == {"table": {"TopicA": "broker-a:4"}}

        resp = admin.request(RequestCode.DELETE_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicA"})
        assert resp.code == ResponseCode.SUCCESS
        resp = admin.request(RequestCode.GET_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicA"})
        assert resp.code == ResponseCode.QUERY_NOT_FOUND
        resp = admin.request(RequestCode.GET_KVLIST_BY_NAMESPACE, {"namespace": "nothing-here"})
        assert resp.code == ResponseCode.QUERY_NOT_FOUND


# --- the remoting layer ----------------------------------------------------------------------


def _read_raw_frame(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    (total,) = struct.unpack(">i", exactly(4))
    payload = exactly(total)
    (word,) = struct.unpack(">i", payload[:4])
    assert word >> 24 == 0, "answered in JSON"
    header_len = word & 0xFFFFFF
    return json.loads(payload[4:4 + header_len]), payload[4 + header_len:]


def test_response_header_on_the_wire(namesrv: NamesrvProcess) -> None:
    """JSON header, response flag, echoed opaque, every extFields value a string."""
    with namesrv.client() as broker:
        register(broker, [topic_config("TopicA")])
        broker.request(RequestCode.PUT_KV_CONFIG, {"namespace": "ns", "key": "k", "value": "v"})
        cmd = broker.command(RequestCode.WIPE_WRITE_PERM_OF_BROKER, {"brokerName": "broker-a"})
        cmd.opaque = 424242
        broker.send(cmd)
        header, _ = _read_raw_frame(broker.sock)
        assert header["code"] == 0 and header["opaque"] == 424242 and header["flag"] & 1
        assert header["extFields"] == {"wipeTopicCount": "1"}
        broker.send(broker.command(RequestCode.GET_KV_CONFIG, {"namespace": "ns", "key": "k"}))
        header, _ = _read_raw_frame(broker.sock)
        assert all(isinstance(v, str) for v in header["extFields"].values())


def test_answers_in_the_request_serialization(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        resp = client.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "Nope"},
                              serialize_type=SerializeType.ROCKETMQ)
        assert resp.code == ResponseCode.TOPIC_NOT_EXIST
        assert resp.serialize_type == SerializeType.ROCKETMQ


def test_coalesced_and_split_frames(namesrv: NamesrvProcess) -> None:
    from rocketpy.protocol.remoting import encode_frame

    with namesrv.client() as client:
        cmds = [client.command(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": f"t{i}"}) for i in range(3)]
        client.send_raw(b"".join(encode_frame(c) for c in cmds))          # three in one write
        assert [client.read_frame().opaque for _ in cmds] == [c.opaque for c in cmds]
        split = client.command(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "split"})
        for byte in encode_frame(split):                                  # one byte per write
            client.send_raw(bytes([byte]))
        frame = client.read_frame()
        assert frame.opaque == split.opaque and frame.remark and frame.remark.endswith(": split")


def test_unknown_code_is_not_supported(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        resp = client.request(9999)
        assert (resp.code, resp.remark) == (ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                            " request type 9999 not supported")


def test_oneway_is_processed_but_never_answered(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        client.oneway(RequestCode.PUT_KV_CONFIG, {"namespace": "ns", "key": "k", "value": "one"})
        client.oneway(9999)
        get = client.command(RequestCode.GET_KV_CONFIG, {"namespace": "ns", "key": "k"})
        client.send(get)
        frame = client.read_frame()
        assert frame.opaque == get.opaque
        assert frame.ext_fields["value"] == "one"
        with pytest.raises(TimeoutError):
            client.read_frame(timeout_s=0.3)


def test_handler_error_keeps_the_connection(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        resp = client.request(RequestCode.REGISTER_BROKER, {"brokerName": "broker-a"}, b"{}")
        assert resp.code == ResponseCode.SYSTEM_ERROR and resp.remark
        resp = client.request(RequestCode.REGISTER_BROKER, {
            "brokerName": "b", "brokerAddr": "127.0.0.1:1", "clusterName": CLUSTER,
            "haServerAddr": "127.0.0.1:2", "brokerId": 0}, b"{not json")
        assert resp.code == ResponseCode.SYSTEM_ERROR and resp.remark
        assert route(client, "x").code == ResponseCode.TOPIC_NOT_EXIST


@pytest.mark.parametrize("garbage", [
    struct.pack(">ii", 8, 1000) + b"\0" * 4,               # header longer than the frame
    struct.pack(">ii", 6, 2) + b"{x",                       # header is not JSON
    struct.pack(">ii", 4, 5 << 24),                         # unknown serialize type
    struct.pack(">i", 0x7FFFFFFF),                          # oversized length prefix
    struct.pack(">i", 16 * 1024 * 1024 - 3),                # one byte over the 16 MiB frame
    struct.pack(">i", -5),                                  # negative length
], ids=["header-too-long", "not-json", "bad-serialize-type", "huge", "just-over", "negative"])
def test_bad_frame_closes_only_that_connection(namesrv: NamesrvProcess, garbage: bytes) -> None:
    with namesrv.client() as bad, namesrv.client() as good:
        assert route(good, "x").code == ResponseCode.TOPIC_NOT_EXIST
        bad.send_raw(garbage)
        assert bad.wait_closed(timeout_s=5.0), "the server keeps a connection that sent garbage"
        assert route(good, "x").code == ResponseCode.TOPIC_NOT_EXIST
        with namesrv.client() as fresh:
            assert route(fresh, "x").code == ResponseCode.TOPIC_NOT_EXIST
    assert "closing connection" in namesrv.log_text()
    assert namesrv.proc.poll() is None


# --- liveness --------------------------------------------------------------------------------


def test_broker_expires_with_short_intervals(start_namesrv: Callable[..., NamesrvProcess]) -> None:
    ns = start_namesrv("scanNotActiveBrokerFirstDelay=0", properties=(
        "# RocketMQ namesrv.properties keys\n"
        "brokerChannelExpiredTime=1500\n"
        "scanNotActiveBrokerInterval = 200\n"))
    with ns.client() as broker_a, ns.client() as broker_b, ns.client() as client:
        register(broker_a, [topic_config("TopicA")])
        register(broker_b, [topic_config("TopicB")], name="broker-b", addr="127.0.0.1:10921")
        started = time.monotonic()

        def a_gone() -> bool:
            # broker-b keeps registering; broker-a stays connected but falls silent
            register(broker_b, [topic_config("TopicB")], name="broker-b", addr="127.0.0.1:10921")
            return route(client, "TopicA").code == ResponseCode.TOPIC_NOT_EXIST

        wait_until(a_gone, 10.0, "broker-a expired")
        assert time.monotonic() - started >= 1.4
        assert route(client, "TopicB").code == ResponseCode.SUCCESS
        info = json.loads(client.request(RequestCode.GET_BROKER_CLUSTER_INFO).body)
        assert info["clusterAddrTable"] == {CLUSTER: ["broker-b"]}
        # RocketMQ closes the channel of an expired broker
        assert broker_a.wait_closed(timeout_s=5.0)
    assert "broker expired" in ns.log_text()


def test_idle_connection_is_closed(start_namesrv: Callable[..., NamesrvProcess]) -> None:
    ns = start_namesrv("serverChannelMaxIdleTime=300")
    with ns.client() as idle, ns.client() as busy:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:      # a connection in use stays open
            assert route(busy, "x").code == ResponseCode.TOPIC_NOT_EXIST
            time.sleep(0.05)
        assert idle.wait_closed(timeout_s=5.0)
        assert route(busy, "x").code == ResponseCode.TOPIC_NOT_EXIST


def test_closed_broker_connection_drops_at_once(namesrv: NamesrvProcess) -> None:
    with namesrv.client() as client:
        with namesrv.client() as broker:
            register(broker, [topic_config("TopicA")])
            assert route(client, "TopicA").code == ResponseCode.SUCCESS
        wait_until(lambda: route(client, "TopicA").code == ResponseCode.TOPIC_NOT_EXIST, 5.0,
                   "route gone after the broker's connection closed")


def test_two_nameservers_know_nothing_of_each_other(start_namesrv: Callable[..., NamesrvProcess]) -> None:
    first, second = start_namesrv(), start_namesrv()
    with first.client() as b1, second.client() as b2:
        register(b1, [topic_config("OnlyFirst")])
        register(b2, [topic_config("OnlySecond")], name="broker-b", addr="127.0.0.1:10921")
        assert route(b1, "OnlyFirst").code == ResponseCode.SUCCESS
        assert route(b1, "OnlySecond").code == ResponseCode.TOPIC_NOT_EXIST
        assert route(b2, "OnlySecond").code == ResponseCode.SUCCESS
        assert route(b2, "OnlyFirst").code == ResponseCode.TOPIC_NOT_EXIST


def test_port_in_use_fails_with_a_message(start_namesrv: Callable[..., NamesrvProcess],
                                          tmp_path: Path) -> None:
    first = start_namesrv()
    proc = subprocess.run(
        [sys.executable, "-m", "rocketpy.cli.namesrv", "--listen", f"127.0.0.1:{first.port}"],
        capture_output=True, timeout=START_TIMEOUT_S, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.returncode == 1
    assert b"cannot listen on 127.0.0.1:" in proc.stderr


def test_bad_setting_is_refused_naming_the_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rocketpy.cli.namesrv", "--listen", "127.0.0.1:0",
         "--set", "brokerChannelExpiredTime=soon"],
        capture_output=True, timeout=START_TIMEOUT_S, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.returncode == 2
    assert b"brokerChannelExpiredTime" in proc.stderr


def test_serve_in_process_with_ready_and_stop() -> None:
    """How `rocketpy up` embeds the NameServer: serve() with its own ready/stop events."""
    import asyncio

    from rocketpy.namesrv.config import NamesrvConfig
    from rocketpy.namesrv.server import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def ask() -> int:
        with RemotingTestClient("127.0.0.1", port) as client:
            return route(client, "x").code

    async def main() -> None:
        ready, stop = asyncio.Event(), asyncio.Event()
        config = NamesrvConfig(listen_host="127.0.0.1", listen_port=port, metrics_port=0)
        task = asyncio.create_task(serve(config, ready=ready, stop=stop))
        await asyncio.wait_for(ready.wait(), START_TIMEOUT_S)
        assert await asyncio.wait_for(asyncio.to_thread(ask), 10) == ResponseCode.TOPIC_NOT_EXIST
        stop.set()
        await asyncio.wait_for(task, EXIT_TIMEOUT_S)

    asyncio.run(main())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(namesrv: NamesrvProcess, sig: signal.Signals) -> None:
    with namesrv.client() as client:
        assert route(client, "x").code == ResponseCode.TOPIC_NOT_EXIST
        namesrv.proc.send_signal(sig)
        assert namesrv.proc.wait(timeout=EXIT_TIMEOUT_S) == 0
        assert client.wait_closed(timeout_s=5.0)
        with pytest.raises(ConnectionClosed):
            client.read_frame(timeout_s=1.0)
    with pytest.raises(OSError):
        socket.create_connection((namesrv.host, namesrv.port), timeout=1.0).close()
