"""ControlServer handlers driven through a worker connection on a fake transport (no sockets)."""

from __future__ import annotations

import asyncio
import mmap
import zlib
from pathlib import Path
from typing import Any

import orjson

from rocketpy.broker.control import server as control_server
from rocketpy.broker.control.registration import (
    broker_addr,
    ha_server_addr,
    register_request,
)
from rocketpy.broker.control.server import ControlServer, WorkerConnection, encode_commit_offsets
from rocketpy.broker.internal import (
    X_CLIENT_ADDR,
    X_CONN,
    X_LANGUAGE,
    X_VERSION,
    X_WORKER,
    InternalCode,
)
from rocketpy.clock import FakeClock
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.control_block import ControlBlock, Role, control_block_size
from rocketpy.protocol.bodies import (
    KVTable,
    RegisterBrokerBody,
    TopicConfig,
    TopicConfigSerializeWrapper,
)
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FLAG_RESPONSE, FrameDecoder, RemotingCommand, encode_frame

HEARTBEAT = (b'{"clientID":"10.0.0.1@1","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":'
             b'[{"groupName":"CG","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",'
             b'"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":'
             b'[{"topic":"T","subString":"*"}]}]}')


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return len(self.data)


class FakeWorker:
    def __init__(self, server: ControlServer, slot: int) -> None:
        self.server = server
        self.slot = slot
        self.transport = FakeTransport()
        self.conn = WorkerConnection(server)
        self.conn.connection_made(self.transport)
        self.decoder = FrameDecoder()
        self.opaque = 100

    def frames(self) -> list[RemotingCommand]:
        out = self.decoder.feed(bytes(self.transport.data))
        self.transport.data.clear()
        return out

    def send(self, code: int, ext: dict[str, str] | None = None, body: bytes = b"", *, conn_id: int = 1,
             oneway: bool = False) -> list[RemotingCommand]:
        self.opaque += 1
        fields = {X_WORKER: str(self.slot), X_CONN: str(conn_id), X_CLIENT_ADDR: "10.0.0.1:5555",
                  X_LANGUAGE: "CPP", X_VERSION: "63", **(ext or {})}
        cmd = RemotingCommand.request(code, fields, body, opaque=self.opaque, oneway=oneway)
        self.conn.data_received(encode_frame(cmd))
        return self.frames()

    def call(self, code: int, ext: dict[str, str] | None = None, body: bytes = b"", **kw: Any
             ) -> RemotingCommand:
        frames = self.send(code, ext, body, **kw)
        responses = [f for f in frames if f.flag & FLAG_RESPONSE]
        assert len(responses) == 1, frames
        assert responses[0].opaque == self.opaque
        return responses[0]


def _server(tmp_path: Path, clock: FakeClock | None = None, control_block: ControlBlock | None = None,
            **broker: Any) -> ControlServer:
    cfg = BrokerConfig(broker_name="b1", **broker)
    server = ControlServer(cfg, StoreConfig(store_path_root_dir=str(tmp_path)), clock=clock or FakeClock(),
                           control_block=control_block)
    server.load()
    return server


def _hello(server: ControlServer, slot: int = 3) -> FakeWorker:
    w = FakeWorker(server, slot)
    frames = w.send(InternalCode.WORKER_HELLO)
    assert [f.code for f in frames] == [InternalCode.TOPICS_CHANGED, InternalCode.GROUPS_CHANGED,
                                        InternalCode.SUBSCRIPTIONS_CHANGED, 0]
    assert frames[0].is_oneway and frames[1].is_oneway and frames[2].is_oneway
    assert "TBW102" in TopicConfigSerializeWrapper.from_json(frames[0].body).topic_config_table
    assert "TOOLS_CONSUMER" in orjson.loads(frames[1].body)["subscriptionGroupTable"]
    return w


def test_heartbeat_creates_retry_topic_and_notifies(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    frames = w.send(RequestCode.HEART_BEAT, body=HEARTBEAT, conn_id=9)
    codes = [f.code for f in frames]
    # group auto-created, retry topic created (tables broadcast), the group's subscriptions,
    # then the notify push, then the response
    assert codes == [InternalCode.GROUPS_CHANGED, InternalCode.TOPICS_CHANGED, InternalCode.SUBSCRIPTIONS_CHANGED,
                     InternalCode.PUSH_TO_CLIENT, ResponseCode.SUCCESS]
    assert "%RETRY%CG" in TopicConfigSerializeWrapper.from_json(frames[1].body).topic_config_table
    push = frames[3]
    assert push.is_oneway and push.ext_fields == {X_CONN: "9"}
    inner = FrameDecoder().feed(push.body)[0]
    assert inner.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED and inner.is_oneway
    assert inner.ext_fields == {"consumerGroup": "CG"}
    assert frames[4].flag == FLAG_RESPONSE
    ch = server.consumers.get("CG").channels["3:9"]  # type: ignore[union-attr]
    assert (ch.client_addr, ch.language, ch.version) == ("10.0.0.1:5555", "CPP", 63)
    resp = w.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "CG"})
    assert resp.code == ResponseCode.SUCCESS
    assert orjson.loads(resp.body) == {"consumerIdList": ["10.0.0.1@1"]}
    # the connection closes: the group is empty again, and gone from the workers' subscriptions
    frames = w.send(InternalCode.CLIENT_CONNECTION_CLOSED, conn_id=9, oneway=True)
    assert [f.code for f in frames] == [InternalCode.SUBSCRIPTIONS_CHANGED]
    assert orjson.loads(frames[0].body) == {"groups": {}}
    resp = w.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "CG"})
    assert (resp.code, resp.remark) == (ResponseCode.SYSTEM_ERROR, "no consumer for this group, CG")


def test_unregister_client_and_worker_loss(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    w.send(RequestCode.HEART_BEAT, body=HEARTBEAT, conn_id=1)
    w.send(RequestCode.HEART_BEAT, body=HEARTBEAT.replace(b"@1", b"@2"), conn_id=2)
    frames = w.send(RequestCode.UNREGISTER_CLIENT, {"clientID": "10.0.0.1@1", "consumerGroup": "CG",
                                                    "producerGroup": "PG"}, conn_id=1)
    assert [f.code for f in frames] == [InternalCode.PUSH_TO_CLIENT, ResponseCode.SUCCESS]
    assert server.consumers.consumer_ids("CG") == ["10.0.0.1@2"]
    w.conn.connection_lost(None)
    assert server.consumers.consumer_ids("CG") == []
    assert server.workers == {}


def test_errors_keep_the_connection(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    resp = w.call(4242)
    assert (resp.code, resp.remark) == (ResponseCode.REQUEST_CODE_NOT_SUPPORTED, " request type 4242 not supported")
    resp = w.call(RequestCode.HEART_BEAT, body=b"{garbage")
    assert resp.code == ResponseCode.SYSTEM_ERROR and "JSON" in (resp.remark or "")
    resp = w.call(RequestCode.QUERY_CONSUMER_OFFSET, {"topic": "T"})
    assert resp.code == ResponseCode.SYSTEM_ERROR and "consumerGroup" in (resp.remark or "")
    assert w.send(4242, oneway=True) == []                              # never answer oneway
    assert w.send(RequestCode.HEART_BEAT, body=b"x", oneway=True) == []
    assert not w.transport.closed
    w.conn.data_received(b"\x00\x00\x00\x02\x00\x00")                    # malformed frame
    assert w.transport.closed


def test_offsets(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    q = {"consumerGroup": "CG", "topic": "T", "queueId": "1"}
    resp = w.call(RequestCode.QUERY_CONSUMER_OFFSET, q)
    assert (resp.code, resp.ext_fields) == (ResponseCode.SUCCESS, {"offset": "0"})
    assert w.send(RequestCode.UPDATE_CONSUMER_OFFSET, {**q, "commitOffset": "17"}, oneway=True) == []
    assert w.call(RequestCode.QUERY_CONSUMER_OFFSET, q).ext_fields == {"offset": "17"}
    body = encode_commit_offsets([("CG", "T", 1, 20), ("CG", "T", 2, 5), ("CG", "T", 3, -1)])
    assert w.send(InternalCode.COMMIT_OFFSETS, body=body, oneway=True) == []
    assert w.call(RequestCode.QUERY_CONSUMER_OFFSET, q).ext_fields == {"offset": "20"}
    resp = w.call(RequestCode.GET_ALL_CONSUMER_OFFSET)
    assert orjson.loads(resp.body) == {"offsetTable": {"T@CG": {"1": 20, "2": 5}}}
    assert w.call(InternalCode.COMMIT_OFFSETS, body=b'{"offsets":[["CG","T"]]}').code == ResponseCode.SYSTEM_ERROR
    server.persist_offsets()
    assert orjson.loads((tmp_path / "config" / "consumerOffset.json").read_bytes())["offsetTable"] == {
        "T@CG": {"1": 20, "2": 5}}


def test_topic_admin_and_auto_create(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    create = {"topic": "TopicA", "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4",
              "perm": "6", "topicFilterType": "SINGLE_TAG"}
    frames = w.send(RequestCode.UPDATE_AND_CREATE_TOPIC, create)
    assert [f.code for f in frames] == [InternalCode.TOPICS_CHANGED, ResponseCode.SUCCESS]
    resp = w.call(RequestCode.UPDATE_AND_CREATE_TOPIC, {**create, "topic": "SCHEDULE_TOPIC_XXXX"})
    assert (resp.code, resp.remark) == (ResponseCode.SYSTEM_ERROR,
                                        "The topic[SCHEDULE_TOPIC_XXXX] is conflict with system topic.")
    resp = w.call(RequestCode.GET_ALL_TOPIC_CONFIG)
    assert TopicConfigSerializeWrapper.from_json(resp.body).topic_config_table["TopicA"] == TopicConfig(
        "TopicA", 4, 4, 6)
    frames = w.send(InternalCode.AUTO_CREATE_TOPIC, {"topic": "Auto1", "defaultTopic": "TBW102",
                                                     "defaultTopicQueueNums": "4"})
    assert [f.code for f in frames] == [InternalCode.TOPICS_CHANGED, ResponseCode.SUCCESS]
    assert TopicConfig.from_json(frames[1].body) == TopicConfig("Auto1", 4, 4, 6)
    resp = w.call(InternalCode.AUTO_CREATE_TOPIC, {"topic": "%RETRY%G9"})
    assert TopicConfig.from_json(resp.body) == TopicConfig("%RETRY%G9", 1, 1, 6)
    resp = w.call(InternalCode.AUTO_CREATE_TOPIC, {"topic": "%DLQ%G9"})
    assert TopicConfig.from_json(resp.body) == TopicConfig("%DLQ%G9", 1, 1, 6)
    resp = w.call(InternalCode.AUTO_CREATE_TOPIC, {"topic": "X", "defaultTopic": "TopicA",
                                                   "defaultTopicQueueNums": "4"})
    assert resp.code == ResponseCode.TOPIC_NOT_EXIST and "topic[X] not exist" in (resp.remark or "")
    frames = w.send(RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": "TopicA"})
    assert [f.code for f in frames] == [InternalCode.TOPICS_CHANGED, ResponseCode.SUCCESS]
    assert server.topics.get("TopicA") is None


def test_groups_admin(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    body = b'{"groupName":"CGX","retryQueueNums":3,"notifyConsumerIdsChangedEnable":false}'
    frames = w.send(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, body=body)
    assert [f.code for f in frames] == [InternalCode.GROUPS_CHANGED, ResponseCode.SUCCESS]
    resp = w.call(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    assert orjson.loads(resp.body)["subscriptionGroupTable"]["CGX"]["retryQueueNums"] == 3
    # notify disabled: a heartbeat registers without pushes
    frames = w.send(RequestCode.HEART_BEAT, body=HEARTBEAT.replace(b'"CG"', b'"CGX"'))
    assert InternalCode.PUSH_TO_CLIENT not in [f.code for f in frames]
    assert server.topics.get("%RETRY%CGX").write_queue_nums == 3  # type: ignore[union-attr]


def test_lock_batch(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    mq = b'[{"topic":"T","brokerName":"b1","queueId":0},{"topic":"T","brokerName":"b1","queueId":1}]'
    resp = w.call(RequestCode.LOCK_BATCH_MQ, body=b'{"consumerGroup":"G","clientId":"A","mqSet":' + mq + b"}")
    assert len(orjson.loads(resp.body)["lockOKMQSet"]) == 2
    resp = w.call(RequestCode.LOCK_BATCH_MQ, body=b'{"consumerGroup":"G","clientId":"B","mqSet":' + mq + b"}")
    assert orjson.loads(resp.body) == {"lockOKMQSet": []}
    resp = w.call(RequestCode.UNLOCK_BATCH_MQ, body=b'{"consumerGroup":"G","clientId":"A","mqSet":' + mq + b"}")
    assert resp.code == ResponseCode.SUCCESS and resp.body == b""
    resp = w.call(RequestCode.LOCK_BATCH_MQ, body=b'{"consumerGroup":"G","clientId":"B","mqSet":' + mq + b"}")
    assert len(orjson.loads(resp.body)["lockOKMQSet"]) == 2


def test_unregister_client_frees_its_queue_locks(tmp_path: Path) -> None:
    """A member that unregisters from a group holds no orderly-queue lock there any more, so the
    members told to rebalance can lock its queues at once; a connection that merely closes keeps
    its locks until they expire (the client may still be consuming)."""
    server = _server(tmp_path)
    w = _hello(server)
    mq = b'[{"topic":"T","brokerName":"b1","queueId":0},{"topic":"T","brokerName":"b1","queueId":1}]'

    def lock(client_id: bytes) -> int:
        resp = w.call(RequestCode.LOCK_BATCH_MQ, body=b'{"consumerGroup":"CG","clientId":"' + client_id
                      + b'","mqSet":' + mq + b"}")
        return len(orjson.loads(resp.body)["lockOKMQSet"])
    for conn, cid in ((1, b"10.0.0.1@1"), (2, b"10.0.0.1@2"), (3, b"10.0.0.1@3")):
        w.send(RequestCode.HEART_BEAT, body=HEARTBEAT.replace(b"10.0.0.1@1", cid), conn_id=conn)
    assert lock(b"10.0.0.1@1") == 2 and lock(b"10.0.0.1@2") == 0
    # a header naming another client frees nothing: the registered client id of the connection counts
    w.send(RequestCode.UNREGISTER_CLIENT, {"clientID": "10.0.0.1@1", "consumerGroup": "CG"}, conn_id=3)
    assert lock(b"10.0.0.1@2") == 0
    w.send(RequestCode.UNREGISTER_CLIENT, {"clientID": "10.0.0.1@1", "consumerGroup": "CG"}, conn_id=1)
    assert lock(b"10.0.0.1@2") == 2
    w.send(InternalCode.CLIENT_CONNECTION_CLOSED,
           conn_id=2, oneway=True)
    assert server.consumers.consumer_ids("CG") == []
    assert lock(b"10.0.0.1@9") == 0                                    # closed, not unregistered


def test_runtime_info(tmp_path: Path) -> None:
    buf = mmap.mmap(-1, control_block_size(4))
    sup = ControlBlock(buf, Role.SUPERVISOR, initialize=True, slot_count=4)
    sup.publish_writer(committed_offset=5000, flushed_offset=4000, flushed_store_ts=0, writer_generation=1)
    sup.publish_dispatched(3000, 0)
    old = sup.writer_fields()
    sup.publish_writer(committed_offset=old[0], flushed_offset=old[1], flushed_store_ts=old[2],
                       writer_generation=old[3], min_phys_offset=1024)
    server = _server(tmp_path, control_block=ControlBlock(buf, Role.CONTROL, slot=2))
    w = _hello(server)
    table = KVTable.from_json(w.call(RequestCode.GET_BROKER_RUNTIME_INFO).body).table
    assert table["commitLogMaxOffset"] == "5000"
    assert table["commitLogMinOffset"] == "1024"
    assert table["dispatchBehindBytes"] == "2000"
    assert table["brokerVersionDesc"] == "V4_9_8"
    assert float(table["putTps"].split()[0]) == 0.0
    assert int(table["bootTimestamp"]) > 0


def test_second_hello_for_a_slot_replaces_the_first(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w1 = _hello(server)
    w1.send(RequestCode.HEART_BEAT, body=HEARTBEAT)
    w2 = _hello(server)
    assert w1.transport.closed
    assert server.workers == {3: w2.conn}
    assert server.consumers.consumer_ids("CG") == []
    w1.conn.connection_lost(None)                    # late close of the old one changes nothing
    assert server.workers == {3: w2.conn}


def test_stuck_worker_is_dropped(tmp_path: Path, monkeypatch: Any) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    monkeypatch.setattr(control_server, "WORKER_WRITE_BUFFER_MAX", 10)
    w.transport.data += b"x" * 11             # the worker has not read this
    server.topics.create_retry_topic("G", 1)  # a broadcast to it
    assert w.transport.closed


def test_registration_request(tmp_path: Path) -> None:
    cfg = BrokerConfig(broker_name="b1", broker_cluster_name="C", listen_port=10911, broker_permission=4)
    assert broker_addr(cfg) == "127.0.0.1:10911"
    assert ha_server_addr(cfg) == "127.0.0.1:10912"
    assert broker_addr(BrokerConfig(listen_host="10.1.2.3")) == "10.1.2.3:10911"
    assert broker_addr(BrokerConfig(broker_ip1="192.168.1.5", listen_port=11000)) == "192.168.1.5:11000"
    wrapper = TopicConfigSerializeWrapper({"T": TopicConfig("T", 4, 4, 6)})
    cmd = register_request(cfg, wrapper)
    assert cmd.code == RequestCode.REGISTER_BROKER
    assert cmd.ext_fields["bodyCrc32"] == str(zlib.crc32(cmd.body) & 0x7FFFFFFF)
    assert cmd.ext_fields["brokerAddr"] == "127.0.0.1:10911"
    assert cmd.ext_fields["brokerId"] == "0" and cmd.ext_fields["clusterName"] == "C"
    body = RegisterBrokerBody.from_json(cmd.body)
    assert body.topic_config_serialize_wrapper.topic_config_table["T"].perm == 4   # broker perm wins
    assert all(type(v) is str for v in cmd.ext_fields.values())


def test_bad_group_names_create_nothing(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    for group in ("../../etc", "g" * 121):     # illegal characters; %RETRY% + 121 > 127 characters
        body = HEARTBEAT.replace(b'"CG"', b'"' + group.encode() + b'"')
        resp = w.call(RequestCode.HEART_BEAT, body=body)
        assert resp.code == ResponseCode.SUCCESS
        assert server.topics.get("%RETRY%" + group) is None
        resp = w.call(InternalCode.AUTO_CREATE_TOPIC, {"topic": "%RETRY%" + group})
        assert resp.code == ResponseCode.TOPIC_NOT_EXIST
    assert server.groups.get("../../etc") is None


def test_expiry_through_the_server_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    server = _server(tmp_path, clock, client_expiry_ms=120_000)
    w = _hello(server)
    w.send(RequestCode.HEART_BEAT, body=HEARTBEAT, conn_id=1)
    clock.advance(60_000)
    w.send(RequestCode.HEART_BEAT, body=HEARTBEAT.replace(b"@1", b"@2"), conn_id=2)
    w.frames()
    clock.advance(60_001)
    server.scan_clients()
    assert server.consumers.consumer_ids("CG") == ["10.0.0.1@2"]
    pushes = [f for f in w.frames() if f.code == InternalCode.PUSH_TO_CLIENT]
    assert [p.ext_fields[X_CONN] for p in pushes] == ["2"]
    assert server.producers.channels("PG")[0].conn_id == 2


def test_connection_lists(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    resp = w.call(RequestCode.GET_CONSUMER_CONNECTION_LIST, {"consumerGroup": "CG"})
    assert (resp.code, resp.remark) == (ResponseCode.CONSUMER_NOT_ONLINE, "the consumer group[CG] not online")
    w.send(RequestCode.HEART_BEAT, body=HEARTBEAT, conn_id=4)
    doc = orjson.loads(w.call(RequestCode.GET_CONSUMER_CONNECTION_LIST, {"consumerGroup": "CG"}).body)
    assert doc["connectionSet"] == [{"clientId": "10.0.0.1@1", "clientAddr": "10.0.0.1:5555",
                                     "language": "CPP", "version": 63}]
    assert doc["messageModel"] == "CLUSTERING" and set(doc["subscriptionTable"]) == {"T"}
    doc = orjson.loads(w.call(RequestCode.GET_PRODUCER_CONNECTION_LIST, {"producerGroup": "PG"}).body)
    assert [c["clientId"] for c in doc["connectionSet"]] == ["10.0.0.1@1"]
    resp = w.call(RequestCode.GET_PRODUCER_CONNECTION_LIST, {"producerGroup": "nope"})
    assert resp.code == ResponseCode.SYSTEM_ERROR
